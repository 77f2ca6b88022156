/* ppx threads: reads a threadcreate.pb.gz (pprof.h) and prints its
 * threads as a table, like `top -H` summed over the whole run: CPU time,
 * share of the process's CPU, start, lifetime and where each thread was
 * created. Everything comes from the labels ppx record puts on each
 * thread's sample; the creation site from its stack. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "symbol/symbol.h"
#include "pprof/pprof.h"

typedef Perftools__Profiles__Profile Profile;
typedef Perftools__Profiles__Sample Sample;
typedef Perftools__Profiles__Location Location;
typedef Perftools__Profiles__Function Function;
typedef Perftools__Profiles__Mapping Mapping;

#define DEFAULT_TOP 50
#define CREATOR_WIDTH 32 /* characters of the CREATED BY column */

/* One thread: one sample of the profile. */
struct thread_row {
    int64_t pid; /* 0 without pid labels */
    int64_t tid;
    char name[64]; /* printable */
    char creator[CREATOR_WIDTH + 1];
    bool has_start, has_end;
    int64_t start_ns, end_ns, cpu_ns;
};

/* The threads of one process, and its figures. */
struct process {
    int64_t pid; /* from the pid labels, or the main thread's tid; 0 unknown */
    struct thread_row **rows;
    size_t n_rows;
    int64_t first_start_ns; /* the process's start: its earliest thread's, or the
                               profile's start when it holds one process */
    bool has_start;
    uint64_t cpu_ns;
    size_t running;
};

struct report {
    const char *path;
    const Profile *prof;
    struct pprof_index ix;
    struct thread_row *rows;
    size_t n_rows;
    struct process *procs;
    size_t n_procs;
};

#define threads_error(...) cli_error("threads", __VA_ARGS__)

static void help(FILE *out)
{
    fprintf(out,
            "Usage: ppx threads [options] DIR|FILE\n"
            "\n"
            "Lists the threads of a run recorded by `ppx record` (DIR/threadcreate.pb.gz,\n"
            "or a threadcreate.N.pb.gz snapshot, or a per-process PID/threadcreate.pb.gz),\n"
            "like `top -H` over the whole run: each thread's CPU time and share of its\n"
            "process's CPU, when it started, how long it lived, and where it was created.\n"
            "\n"
            "Options:\n"
            "  --top N     show the N threads of each process with the most CPU time\n"
            "              (default %d)\n"
            "  --pid N     only the threads of process N (a profile of several processes)\n"
            "  -h, --help  show this help\n"
            "\n"
            "A header line per process (threads, how many still running, CPU seconds of all\n"
            "its threads, seconds from its first thread's start to the last thread's end or\n"
            "to the profile's time), then one row per thread, most CPU time first:\n"
            "  TID         kernel thread id\n"
            "  NAME        thread name (pthread_setname_np, prctl(PR_SET_NAME), or inherited)\n"
            "  CREATED BY  the function that called pthread_create (the first frame of the\n"
            "              creation stack outside system libraries and std::thread), or\n"
            "              \"%s\" / \"%s\" for threads already\n"
            "              running when ppx started\n"
            "  START       seconds after the process's first thread (its start)\n"
            "  LIFETIME    seconds from start to end; a + marks a thread still running when\n"
            "              the profile was written (its lifetime until then)\n"
            "  CPU         CPU seconds (user + system) the thread used\n"
            "  SHARE       its part of the CPU time of all threads of its process\n"
            "\n"
            "Exit status: 0 table printed, 1 the file cannot be read or is no thread profile\n"
            "of ppx record, 2 usage error.\n",
            DEFAULT_TOP, PPROF_THREADS_MAIN_FRAME, PPROF_THREADS_PREEXISTING_FRAME);
}

/* ---- names ---------------------------------------------------------------- */

/* name, demangled and simplified, in out; the tail kept when too long. */
static void display_name(const char *name, char *out, size_t outlen)
{
    char simple[1024];
    demangle_short(name, simple, sizeof simple);
    size_t len = strlen(simple);
    if (len < outlen)
        memcpy(out, simple, len + 1);
    else
        snprintf(out, outlen, "...%s", simple + len - (outlen - 4));
}

/* Thread names are whatever the program set: never let one drive the
 * terminal. */
static void printable(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in && o + 1 < outlen; in++)
        out[o++] = isprint((unsigned char)*in) ? *in : '?';
    out[o] = 0;
}

/* ---- the creation site -------------------------------------------------- */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Code the program did not write: the C and C++ runtime, installed
 * libraries, and the std:: templates (std::thread's constructor) that are
 * instantiated into the program itself. */
static bool is_system_frame(const char *file, const char *function)
{
    static const char *const dirs[] = {"/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/",
                                       "/usr/libexec/"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        if (has_prefix(file, dirs[i]))
            return true;
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    static const char *const runtime[] = {"libc.so",   "libc-",  "libpthread",
                                          "libstdc++", "libc++", "libgcc_s"};
    for (size_t i = 0; i < sizeof runtime / sizeof runtime[0]; i++)
        if (has_prefix(base, runtime[i]))
            return true;
    return has_prefix(function, "_ZNSt") || has_prefix(function, "_ZSt") ||
           has_prefix(function, "std::") || has_prefix(function, "__gthread");
}

/* The CREATED BY cell of sample s: its first user frame, else its leaf
 * frame; a synthetic frame names itself. */
static void creation_site(const struct report *r, const Sample *s, char *out, size_t outlen)
{
    const char *first = NULL;
    uint64_t first_address = 0;
    for (size_t i = 0; i < s->n_location_id; i++) {
        const Location *loc = pprof_index_location(&r->ix, s->location_id[i]);
        if (!loc)
            continue;
        const Mapping *m = loc->mapping_id ? pprof_index_mapping(&r->ix, loc->mapping_id) : NULL;
        const char *file = m ? pprof_index_string(&r->ix, m->filename) : "";
        if (loc->n_line == 0) {
            if (i == 0)
                first_address = loc->address;
            if (!is_system_frame(file, "")) {
                snprintf(out, outlen, "0x%" PRIx64, loc->address);
                return;
            }
            continue;
        }
        if (!m) { /* a synthetic frame ("main thread"): its name as it is */
            const Function *f = pprof_index_function(&r->ix, loc->line[0]->function_id);
            snprintf(out, outlen, "%s", f ? pprof_index_string(&r->ix, f->name) : "?");
            return;
        }
        for (size_t l = 0; l < loc->n_line; l++) { /* innermost (inlined) first */
            const Function *f = pprof_index_function(&r->ix, loc->line[l]->function_id);
            const char *name = f ? pprof_index_string(&r->ix, f->name) : "";
            if (!*name)
                continue;
            if (!first)
                first = name;
            if (!is_system_frame(file, name)) {
                display_name(name, out, outlen);
                return;
            }
        }
    }
    if (first)
        display_name(first, out, outlen);
    else if (s->n_location_id)
        snprintf(out, outlen, "0x%" PRIx64, first_address);
    else
        snprintf(out, outlen, "?");
}

/* ---- reading the samples ------------------------------------------------ */

static int check_sample_type(const struct report *r)
{
    const Profile *p = r->prof;
    for (size_t i = 0; i < p->n_sample_type; i++)
        if (strcmp(pprof_index_string(&r->ix, p->sample_type[i]->type), "threadcreate") == 0 &&
            strcmp(pprof_index_string(&r->ix, p->sample_type[i]->unit), "count") == 0)
            return 0;
    char have[512] = "";
    size_t at = 0;
    for (size_t i = 0; i < p->n_sample_type && at < sizeof have; i++)
        at += (size_t)snprintf(have + at, sizeof have - at, "%s%s/%s", i ? ", " : "",
                               pprof_index_string(&r->ix, p->sample_type[i]->type),
                               pprof_index_string(&r->ix, p->sample_type[i]->unit));
    return threads_error("%s is a pprof profile, but not of threads: it has no "
                         "threadcreate/count sample type (it has: %s); ppx threads reads the "
                         "threadcreate.pb.gz that ppx record writes",
                         r->path, *have ? have : "none");
}

static int read_rows(struct report *r, bool want_pid, int64_t pid)
{
    const Profile *p = r->prof;
    r->rows = calloc(p->n_sample ? p->n_sample : 1, sizeof *r->rows);
    if (!r->rows)
        return threads_error("out of memory");
    for (size_t i = 0; i < p->n_sample; i++) {
        const Sample *s = p->sample[i];
        struct thread_row row;
        memset(&row, 0, sizeof row);
        if (!pprof_index_label_num(&r->ix, s, "tid", &row.tid))
            return threads_error("%s: sample %zu has no tid label: not a thread profile of "
                                 "ppx record (a Go program's threadcreate profile has no "
                                 "labels)",
                                 r->path, i);
        pprof_index_label_num(&r->ix, s, "pid", &row.pid);
        if (want_pid && row.pid != pid)
            continue;
        const char *name = pprof_index_label_str(&r->ix, s, "thread");
        printable(name ? name : "?", row.name, sizeof row.name);
        row.has_start = pprof_index_label_num(&r->ix, s, "start_ns", &row.start_ns);
        row.has_end = pprof_index_label_num(&r->ix, s, "end_ns", &row.end_ns);
        if (!pprof_index_label_num(&r->ix, s, "cpu", &row.cpu_ns) || row.cpu_ns < 0)
            row.cpu_ns = 0;
        creation_site(r, s, row.creator, sizeof row.creator);
        r->rows[r->n_rows++] = row;
    }
    return 0;
}

/* ---- grouping by process ------------------------------------------------- */

static bool has_pid_labels(const struct report *r)
{
    for (size_t i = 0; i < r->prof->n_sample; i++) {
        int64_t pid;
        if (pprof_index_label_num(&r->ix, r->prof->sample[i], "pid", &pid))
            return true;
    }
    return false;
}

static struct process *process_of(struct report *r, int64_t pid)
{
    for (size_t i = 0; i < r->n_procs; i++)
        if (r->procs[i].pid == pid)
            return &r->procs[i];
    struct process *grown = realloc(r->procs, (r->n_procs + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    r->procs = grown;
    struct process *pr = &r->procs[r->n_procs++];
    memset(pr, 0, sizeof *pr);
    pr->pid = pid;
    pr->rows = malloc(r->n_rows * sizeof *pr->rows);
    return pr->rows ? pr : NULL;
}

static int group_by_process(struct report *r)
{
    for (size_t i = 0; i < r->n_rows; i++) {
        struct thread_row *row = &r->rows[i];
        struct process *pr = process_of(r, row->pid);
        if (!pr)
            return threads_error("out of memory");
        pr->rows[pr->n_rows++] = row;
        pr->cpu_ns += (uint64_t)row->cpu_ns;
        if (!row->has_end)
            pr->running++;
        if (row->has_start && (!pr->has_start || row->start_ns < pr->first_start_ns)) {
            pr->first_start_ns = row->start_ns;
            pr->has_start = true;
        }
    }
    if (r->n_procs != 1 || has_pid_labels(r))
        return 0;
    /* Without pid labels (one process) the main thread's tid is the pid,
     * and the profile's duration runs from the process's start
     * (pprof_set_time_since_start), which may precede its first thread
     * record: the target finds its main thread a little after it starts. */
    struct process *pr = &r->procs[0];
    for (size_t j = 0; pr->pid == 0 && j < pr->n_rows; j++)
        if (strcmp(pr->rows[j]->creator, PPROF_THREADS_MAIN_FRAME) == 0)
            pr->pid = pr->rows[j]->tid;
    const Profile *p = r->prof;
    if (p->duration_nanos > 0 && p->time_nanos > p->duration_nanos) {
        int64_t start = p->time_nanos - p->duration_nanos;
        if (!pr->has_start || start < pr->first_start_ns) {
            pr->first_start_ns = start;
            pr->has_start = true;
        }
    }
    return 0;
}

/* ---- output ------------------------------------------------------------- */

static int by_cpu(const void *x, const void *y)
{
    const struct thread_row *a = *(const struct thread_row *const *)x;
    const struct thread_row *b = *(const struct thread_row *const *)y;
    if (a->cpu_ns != b->cpu_ns)
        return a->cpu_ns > b->cpu_ns ? -1 : 1;
    if (a->start_ns != b->start_ns)
        return a->start_ns < b->start_ns ? -1 : 1;
    return a->tid < b->tid ? -1 : a->tid > b->tid;
}

static double seconds(int64_t ns)
{
    return (double)ns / 1e9;
}

/* When a running thread's lifetime ends: the profile's time, else the
 * latest time the profile knows of. */
static int64_t profile_end_ns(const struct report *r)
{
    int64_t end = r->prof->time_nanos;
    for (size_t i = 0; i < r->n_rows; i++) {
        if (r->rows[i].has_end && r->rows[i].end_ns > end)
            end = r->rows[i].end_ns;
        if (r->rows[i].has_start && r->rows[i].start_ns > end)
            end = r->rows[i].start_ns;
    }
    return end;
}

static void print_row(FILE *out, const struct process *pr, const struct thread_row *t,
                      int64_t end_ns)
{
    char start[32] = "-", lifetime[32] = "-", share[16] = "-";
    if (t->has_start && pr->has_start)
        snprintf(start, sizeof start, "%.3f", seconds(t->start_ns - pr->first_start_ns));
    if (t->has_start) {
        int64_t until = t->has_end ? t->end_ns : end_ns;
        int64_t life = until > t->start_ns ? until - t->start_ns : 0;
        snprintf(lifetime, sizeof lifetime, "%.3f%s", seconds(life), t->has_end ? " " : "+");
    }
    if (pr->cpu_ns)
        snprintf(share, sizeof share, "%.1f%%", 100.0 * (double)t->cpu_ns / (double)pr->cpu_ns);
    fprintf(out, "%8" PRId64 "  %-16s %-*s %9s %10s %9.3f %7s\n", t->tid, t->name, CREATOR_WIDTH,
            t->creator, start, lifetime, seconds(t->cpu_ns), share);
}

static void print_process(FILE *out, const struct report *r, struct process *pr, size_t top)
{
    int64_t end_ns = profile_end_ns(r);
    qsort(pr->rows, pr->n_rows, sizeof *pr->rows, by_cpu);
    if (pr->pid)
        fprintf(out, "pid %" PRId64 ":", pr->pid);
    else
        fprintf(out, "process:");
    fprintf(out, " %zu thread%s (%zu still running), %.3f s CPU", pr->n_rows,
            pr->n_rows == 1 ? "" : "s", pr->running, seconds((int64_t)pr->cpu_ns));
    if (pr->has_start) {
        int64_t last = pr->running ? end_ns : pr->first_start_ns;
        for (size_t i = 0; i < pr->n_rows; i++)
            if (pr->rows[i]->has_end && pr->rows[i]->end_ns > last)
                last = pr->rows[i]->end_ns;
        fprintf(out, " in %.3f s",
                seconds(last > pr->first_start_ns ? last - pr->first_start_ns : 0));
    }
    fprintf(out, "\n%8s  %-16s %-*s %9s %10s %9s %7s\n", "TID", "NAME", CREATOR_WIDTH, "CREATED BY",
            "START", "LIFETIME", "CPU", "SHARE");
    for (size_t i = 0; i < pr->n_rows && i < top; i++)
        print_row(out, pr, pr->rows[i], end_ns);
    if (pr->n_rows > top)
        fprintf(out, "(%zu more threads: --top %zu shows them)\n", pr->n_rows - top, pr->n_rows);
}

/* ---- the command -------------------------------------------------------- */

static void free_report(struct report *r)
{
    for (size_t i = 0; i < r->n_procs; i++)
        free(r->procs[i].rows);
    free(r->procs);
    free(r->rows);
    pprof_index_free(&r->ix);
}

int threads_print(FILE *out, const char *path, size_t top, bool want_pid, int64_t pid)
{
    char err[1024];
    Profile *prof = pprof_read_file(path, err, sizeof err);
    if (!prof)
        return threads_error("%s", err);
    struct report r = {.path = path, .prof = prof};
    int rc = pprof_index_init(&r.ix, prof) < 0 ? threads_error("out of memory") : 0;
    if (rc == 0)
        rc = check_sample_type(&r);
    if (rc == 0)
        rc = read_rows(&r, want_pid, pid);
    if (rc == 0)
        rc = group_by_process(&r);
    if (rc == 0 && want_pid && r.n_rows == 0) {
        if (has_pid_labels(&r))
            rc = threads_error("%s has no threads of pid %" PRId64, path, pid);
        else
            rc = threads_error("%s has no pid labels (it holds one process, or none): "
                               "leave out --pid",
                               path);
    }
    if (rc == 0) {
        fprintf(out, "%s: %zu thread%s", path, r.n_rows, r.n_rows == 1 ? "" : "s");
        if (r.n_procs > 1)
            fprintf(out, " of %zu processes", r.n_procs);
        fprintf(out, "\n");
        if (r.n_rows == 0)
            fprintf(out, "no threads recorded\n");
        for (size_t i = 0; i < r.n_procs; i++) {
            fputc('\n', out);
            print_process(out, &r, &r.procs[i], top);
        }
    }
    free_report(&r);
    perftools__profiles__profile__free_unpacked(prof, NULL);
    return rc;
}

int cmd_threads(int argc, char **argv)
{
    struct cli_report_args a = {.top = DEFAULT_TOP};
    int status = cli_report_args("threads", argc, argv, 100000000, "threads", "threadcreate.pb.gz",
                                 help, &a);
    if (status >= 0)
        return status;
    int rc = threads_print(stdout, a.path, (size_t)a.top, a.want_pid, (int64_t)a.pid);
    free(a.path);
    return rc;
}
