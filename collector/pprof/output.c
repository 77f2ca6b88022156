#include "pprof/pprof.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* dir and its parents made as needed, or err says why not. */
static int make_output_dir(const char *dir, char *err, size_t errlen)
{
    char *failed;
    if (path_make_dirs(dir, 0777, &failed) == 0)
        return 0;
    int saved_errno = errno;
    if (failed)
        snprintf(err, errlen, "ppx: cannot create directory %s: %s", failed, strerror(saved_errno));
    else if (saved_errno == ENOMEM)
        snprintf(err, errlen, "ppx: out of memory");
    else
        snprintf(err, errlen, "ppx: %s is not a directory", dir);
    free(failed);
    return -1;
}

int output_dir_prepare(const char *dir, char *err, size_t errlen)
{
    if (*dir == 0) {
        snprintf(err, errlen, "ppx: empty output directory name");
        return -1;
    }
    if (make_output_dir(dir, err, errlen) < 0)
        return -1;
    char *probe = path_join(dir, ".ppx-probe-XXXXXX");
    if (!probe) {
        snprintf(err, errlen, "ppx: out of memory");
        return -1;
    }
    int fd = mkstemp(probe);
    if (fd < 0) {
        snprintf(err, errlen, "ppx: cannot write in output directory %s: %s", dir, strerror(errno));
        free(probe);
        return -1;
    }
    close(fd);
    unlink(probe);
    free(probe);
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void say_error(const char *err)
{
    fprintf(stderr, "%s%s\n", strncmp(err, "ppx:", 4) == 0 ? "" : "ppx: ", err);
}

/* The heap profile of each process at its peak (model.h): from copies. */
static int write_peak(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                      struct pprof_sink *out, char *err, size_t errlen)
{
    struct proc **at_peak = n ? calloc(n, sizeof *at_peak) : NULL;
    int rc = n && !at_peak ? -1 : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!(at_peak[i] = proc_copy(procs[i], PROC_COPY_FULL)))
            rc = -1;
        else
            proc_peak_apply(at_peak[i]);
    }
    if (rc == 0)
        rc = pprof_heap_write(at_peak, n, PPROF_HEAP, pid_labels, now_ns, out, err, errlen);
    else
        snprintf(err, errlen, "out of memory for the peak heap profile");
    for (size_t i = 0; i < n && at_peak; i++)
        proc_copy_free(at_peak[i]);
    free(at_peak);
    return rc;
}

int pprof_write(enum pprof_profile which, struct proc *const *procs, size_t n, bool pid_labels,
                uint64_t now_ns, struct pprof_sink *out, char *err, size_t errlen)
{
    switch (which) {
    case PPROF_PROFILE_HEAP:
        return pprof_heap_write(procs, n, PPROF_HEAP, pid_labels, now_ns, out, err, errlen);
    case PPROF_PROFILE_ALLOCS:
        return pprof_heap_write(procs, n, PPROF_ALLOCS, pid_labels, now_ns, out, err, errlen);
    case PPROF_PROFILE_SYSCALLS:
        return pprof_syscalls_write(procs, n, pid_labels, now_ns, out, err, errlen);
    case PPROF_PROFILE_CPU:
        return pprof_cpu_write(procs, n, pid_labels, now_ns, out, err, errlen);
    case PPROF_PROFILE_THREADCREATE:
        return pprof_threads_write(procs, n, pid_labels, now_ns, out, err, errlen);
    case PPROF_PROFILE_PEAK:
        return write_peak(procs, n, pid_labels, now_ns, out, err, errlen);
    case PPROF_PROFILE_BLOCK:
        return pprof_contention_write(procs, n, false, pid_labels, now_ns, out, err, errlen);
    case PPROF_PROFILE_MUTEX:
        return pprof_contention_write(procs, n, true, pid_labels, now_ns, out, err, errlen);
    case PPROF_PROFILE_GOROUTINE:
        return pprof_goroutine_write(procs, n, pid_labels, now_ns, out, err, errlen);
    }
    snprintf(err, errlen, "no such profile (%d)", (int)which);
    return -1;
}

int pprof_describe(enum pprof_profile which, const char *const (**types)[2], size_t *n_types,
                   const char **default_type)
{
    struct pprof_sink empty = {.name = "an empty profile"};
    char err[256];
    int rc = pprof_write(which, NULL, 0, false, 0, &empty, err, sizeof err);
    free(empty.data);
    *types = empty.sample_types;
    *n_types = empty.n_sample_types;
    *default_type = empty.writer_default_type;
    return rc < 0 && !empty.sample_types ? -1 : 0;
}

/* heap, allocs, syscalls, cpu, threadcreate, block, mutex and peak
 * <suffix>.pb.gz in dir. Each
 * is written even without data of its kind (then it holds no sample), so a
 * reused output directory never keeps a stale one. */
static int write_set(const char *dir, const char *suffix, struct proc *const *procs, size_t n,
                     bool pid_labels, uint64_t now)
{
    static const struct {
        const char *stem;
        enum pprof_profile kind;
    } files[] = {{"heap", PPROF_PROFILE_HEAP},
                 {"allocs", PPROF_PROFILE_ALLOCS},
                 {"syscalls", PPROF_PROFILE_SYSCALLS},
                 {"cpu", PPROF_PROFILE_CPU},
                 {"threadcreate", PPROF_PROFILE_THREADCREATE},
                 {"block", PPROF_PROFILE_BLOCK},
                 {"mutex", PPROF_PROFILE_MUTEX},
                 {"peak", PPROF_PROFILE_PEAK}};
    int rc = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char name[64], err[512] = "";
        snprintf(name, sizeof name, "%s%s.pb.gz", files[i].stem, suffix);
        char *path = path_join(dir, name);
        if (!path) {
            say_error("out of memory");
            return -1;
        }
        if (pprof_write(files[i].kind, procs, n, pid_labels, now, PPROF_TO_FILE(path), err,
                        sizeof err) < 0) {
            say_error(*err ? err : "cannot write a profile");
            rc = -1;
        }
        free(path);
    }
    return rc;
}

/* Says, once at the end, which I/O detail the decoder's limits dropped. */
static void report_io_drops(const struct proc *p)
{
    uint64_t stack_samples, errno_calls;
    proc_table_io_drops(p, &stack_samples, &errno_calls);
    if (stack_samples)
        fprintf(stderr,
                "ppx: pid %u: %llu sampled I/O calls lost their stacks (more than %u stacks "
                "at one call site, or %u in the process); the sites' figures are exact and "
                "spread over the stacks kept\n",
                p->pid, (unsigned long long)stack_samples, PROC_MAX_IO_SITE_STACKS,
                PROC_MAX_IO_STACK_ENTRIES);
    if (errno_calls)
        fprintf(stderr,
                "ppx: pid %u: %llu failed I/O calls are counted without their errno (more "
                "than %u distinct errnos at one call site)\n",
                p->pid, (unsigned long long)errno_calls, PROC_MAX_IO_ERRNOS);
}

/* Says, once at the end, how many CPU samples lost their stack and thread
 * to the decoder's limits (they stay in the totals, on a frame of their
 * own), and whether threads went undescribed. */
static void report_cpu_drops(const struct proc *p)
{
    if (p->threads_full)
        fprintf(stderr,
                "ppx: pid %u: more than %u threads; the later ones are not in "
                "threadcreate.pb.gz\n",
                p->pid, PROC_MAX_THREADS);
    if (p->cpu_dropped)
        fprintf(stderr,
                "ppx: pid %u: %llu CPU samples are counted without stack and thread (more "
                "than %u distinct (stack, thread) pairs, or threads past the limit); they "
                "show as \"%s\"\n",
                p->pid, (unsigned long long)p->cpu_dropped, PROC_MAX_CPU_ENTRIES,
                PPROF_CPU_DROPPED_FRAME);
}

static int write_per_process(const char *dir, struct proc *p, uint64_t now)
{
    char name[48];
    if (p->incarnation)
        snprintf(name, sizeof name, "%u.%u", p->pid, p->incarnation);
    else
        snprintf(name, sizeof name, "%u", p->pid);
    char *sub = path_join(dir, name);
    char err[512];
    if (!sub) {
        say_error("out of memory");
        return -1;
    }
    int rc = output_dir_prepare(sub, err, sizeof err);
    if (rc < 0)
        say_error(err);
    else
        rc = write_set(sub, "", &p, 1, false, now);
    free(sub);
    return rc;
}

int output_write_procs(const char *dir, struct proc *const *procs, size_t n)
{
    return write_set(dir, "", procs, n, n > 1, now_ns());
}

int output_write(const char *dir, struct proc_table *t, unsigned snapshot, bool final)
{
    size_t n = 0;
    struct proc **procs = proc_table_list(t, &n);
    if (!procs && proc_table_count(t) > 0) {
        say_error("out of memory");
        return -1;
    }
    char suffix[24] = "";
    if (snapshot)
        snprintf(suffix, sizeof suffix, ".%u", snapshot);
    uint64_t now = now_ns();
    int rc = write_set(dir, suffix, procs, n, n > 1, now);
    for (size_t i = 0; final && n > 1 && i < n; i++)
        if ((proc_has_samples(procs[i]) || proc_has_io(procs[i]) || proc_has_cpu(procs[i]) ||
             proc_has_threads(procs[i]) || proc_has_contention(procs[i], false) ||
             proc_has_contention(procs[i], true)) &&
            write_per_process(dir, procs[i], now) < 0)
            rc = -1;
    for (size_t i = 0; final && i < n; i++) {
        report_io_drops(procs[i]);
        report_cpu_drops(procs[i]);
    }
    free(procs);
    return rc;
}
