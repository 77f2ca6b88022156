#include "live/live.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "ingest/ingest.h"
#include "model/model.h"
#include "pprof/pprof.h"

/* Files whose mtime is this much older than the request are stale ones
 * from an earlier use of the directory (the file system's clock is
 * coarser than CLOCK_REALTIME). */
#define MTIME_SLACK_NS 2000000000ull

struct job {
    struct job *next;
    struct proc *proc; /* a copy: final profiles to write */
    bool exited;
    char *spool; /* the spool file it came from, removed once written; or NULL */
    int fd;      /* a control connection, or -1 */
    uint8_t *rest;
    size_t rest_len;
};

struct collect_worker {
    struct live *live;
    const char *out_dir;
    bool quiet;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    struct job *head, **tail;
    bool finishing;
};

void collect_proc_dirname(const struct proc *p, char *buf, size_t len)
{
    const char *exe = p->exe ? p->exe : "";
    const char *slash = strrchr(exe, '/');
    const char *base = slash ? slash + 1 : exe;
    char name[65];
    size_t n = 0;
    /* The exe path comes from the target: keep it a plain file name. */
    for (; n < sizeof name - 1 && base[n]; n++) {
        char c = base[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == '+';
        name[n] = ok ? c : '_';
    }
    name[n] = 0;
    if (n == 0 || strspn(name, ".") == n)
        snprintf(name, sizeof name, "unknown");
    if (p->incarnation)
        snprintf(buf, len, "%s.%u.%u", name, p->pid, p->incarnation);
    else
        snprintf(buf, len, "%s.%u", name, p->pid);
}

static bool worth_writing(const struct proc *p)
{
    return proc_has_samples(p) || proc_has_io(p) || proc_has_cpu(p) || proc_has_threads(p) ||
           proc_has_contention(p, false) || proc_has_contention(p, true);
}

static void enqueue(struct collect_worker *w, struct job *j)
{
    pthread_mutex_lock(&w->lock);
    *w->tail = j;
    w->tail = &j->next;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->lock);
}

void collect_worker_process_ended(struct collect_worker *w, const struct proc *p, bool exited,
                                  const char *spool)
{
    PPX_CHECK(ppx_mutex_held(live_lock(w->live)), "the ingest loop holds the table lock");
    if (!w->out_dir)
        return;
    if (!worth_writing(p)) {
        if (spool)
            unlink(spool); /* nothing in it to keep */
        return;
    }
    struct job *j = calloc(1, sizeof *j);
    struct proc *copy = j ? proc_copy(p, PROC_COPY_FULL) : NULL;
    char *path = spool && copy ? strdup(spool) : NULL;
    if (!copy || (spool && !path)) {
        fprintf(stderr, "ppx: pid %u: out of memory: its profiles are not written\n", p->pid);
        proc_copy_free(copy);
        free(j);
        return;
    }
    j->proc = copy;
    j->exited = exited;
    j->spool = path;
    j->fd = -1;
    enqueue(w, j);
}

void collect_worker_control(struct collect_worker *w, int fd, const uint8_t *rest, size_t len)
{
    struct job *j = calloc(1, sizeof *j);
    uint8_t *copy = j ? malloc(len ? len : 1) : NULL;
    if (!copy) {
        free(j);
        close(fd);
        return;
    }
    memcpy(copy, rest, len);
    j->fd = fd;
    j->rest = copy;
    j->rest_len = len;
    enqueue(w, j);
}

/* dir/name for a process, prepared; NULL after a message. */
static char *proc_dir(const char *dir, const struct proc *p, char *err, size_t errlen)
{
    char name[96];
    collect_proc_dirname(p, name, sizeof name);
    char *sub = path_join(dir, name);
    if (!sub) {
        snprintf(err, errlen, "ppx: out of memory");
        return NULL;
    }
    if (output_dir_prepare(sub, err, errlen) < 0) {
        free(sub);
        return NULL;
    }
    return sub;
}

static void write_final(struct collect_worker *w, struct job *j)
{
    char err[1024];
    char *dir = proc_dir(w->out_dir, j->proc, err, sizeof err);
    if (!dir) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    live_build_begin(w->live);
    int rc = output_write_procs(dir, &j->proc, 1);
    live_build_end(w->live);
    if (rc == 0 && !w->quiet)
        fprintf(stderr, "ppx: pid %u %s: profiles in %s/\n", j->proc->pid,
                j->spool    ? "exited while no collector ran (spool file)"
                : j->exited ? "exited"
                            : "still running at the collector's exit",
                dir);
    /* the spool file goes only once its profiles are safe */
    if (rc == 0 && j->spool && unlink(j->spool) != 0 && errno != ENOENT)
        fprintf(stderr, "ppx: cannot remove spool file %s: %s\n", j->spool, strerror(errno));
    else if (rc != 0 && j->spool)
        fprintf(stderr, "ppx: spool file %s is kept\n", j->spool);
    free(dir);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists to the client the profiles written into dir by this request. */
static size_t reply_files(int fd, const char *dir, uint64_t since_ns)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 6, ".pb.gz") != 0)
            continue;
        char *path = path_join(dir, e->d_name);
        struct stat st;
        if (!path || stat(path, &st) < 0 ||
            (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec +
                    MTIME_SLACK_NS <
                since_ns) {
            free(path);
            continue;
        }
        if (n == cap) {
            size_t grown_cap = cap ? 2 * cap : 16;
            char **grown = realloc(names, grown_cap * sizeof *grown);
            if (!grown) {
                free(path);
                break;
            }
            names = grown;
            cap = grown_cap;
        }
        names[n++] = path;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++) {
        control_reply(fd, "file %s", names[i]);
        free(names[i]);
    }
    free(names);
    return n;
}

/* goroutine.pb.gz in dir: the dump just taken of procs[0..n). */
static int write_goroutine(const char *dir, struct proc *const *procs, size_t n)
{
    char *path = path_join(dir, "goroutine.pb.gz");
    char err[512] = "";
    int rc = path ? pprof_goroutine_write(procs, n, n > 1, live_now_ns(), PPROF_TO_FILE(path), err,
                                          sizeof err)
                  : -1;
    if (rc < 0)
        fprintf(stderr, "ppx: %s\n", *err ? err : "out of memory");
    free(path);
    return rc;
}

/* Why live_copy() (rc, not 0) gave nothing for a request about pid. */
static int copy_failed(int rc, uint32_t pid, char *err, size_t errlen)
{
    if (rc == LIVE_NO_SUCH_PID)
        snprintf(err, errlen, "no process with pid %u has connected to this collector", pid);
    else
        snprintf(err, errlen, "out of memory");
    return -1;
}

static int write_snapshot(struct collect_worker *w, int fd, const struct control_snapshot *req,
                          char *err, size_t errlen)
{
    uint64_t since = live_now_ns();
    struct proc **procs;
    size_t n;
    /* what the targets hold now, not as of their last periodic flush,
     * and what their threads are doing */
    live_tasks(w->live, req->pid, LIVE_TASKS_WAIT_MS);
    live_flush(w->live, req->pid, LIVE_FLUSH_WAIT_MS);
    int rc = live_copy(w->live, req->pid, PROC_COPY_FULL, &procs, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!procs[i]->connected) /* an exited process's last dump is no current one */
            proc_dump_clear(&procs[i]->dump);
    if (rc != 0)
        return copy_failed(rc, req->pid, err, errlen);
    if (output_dir_prepare(req->dir, err, errlen) < 0) {
        live_free_copies(procs, n);
        return -1;
    }
    char **subdirs = calloc(n ? n : 1, sizeof *subdirs);
    if (!subdirs) {
        live_free_copies(procs, n);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    live_build_begin(w->live);
    rc = output_write_procs(req->dir, procs, n);
    if (rc == 0)
        rc = write_goroutine(req->dir, procs, n);
    for (size_t i = 0; n > 1 && i < n && rc == 0; i++) {
        subdirs[i] = proc_dir(req->dir, procs[i], err, errlen);
        if (!subdirs[i] || output_write_procs(subdirs[i], &procs[i], 1) < 0 ||
            write_goroutine(subdirs[i], &procs[i], 1) < 0)
            rc = -1;
    }
    live_build_end(w->live);
    live_free_copies(procs, n);
    size_t files = reply_files(fd, req->dir, since);
    for (size_t i = 0; i < n; i++) {
        if (subdirs[i])
            files += reply_files(fd, subdirs[i], since);
        free(subdirs[i]);
    }
    free(subdirs);
    if (rc < 0) {
        if (!*err)
            snprintf(err, errlen, "cannot write every profile (the collector's stderr says why)");
        return -1;
    }
    control_reply(fd, "ok %zu", files);
    return 0;
}

/* `ppx stacks`: a dump of the selected processes now, as goroutine?debug=2. */
static int write_stacks(struct collect_worker *w, int fd, const struct control_snapshot *req,
                        char *err, size_t errlen)
{
    live_tasks(w->live, req->pid, LIVE_TASKS_WAIT_MS);
    struct proc **procs;
    size_t n;
    int rc = live_copy(w->live, req->pid, PROC_COPY_MAPPINGS, &procs, &n);
    if (rc != 0)
        return copy_failed(rc, req->pid, err, errlen);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (procs[i]->connected && procs[i]->dump.seq)
            procs[kept++] = procs[i];
        else
            proc_copy_free(procs[i]);
    }
    if (kept == 0) {
        live_free_copies(procs, 0);
        if (req->pid)
            snprintf(err, errlen,
                     "process %u did not answer (it has exited, or its flusher is stuck)",
                     req->pid);
        else
            snprintf(err, errlen, "no running process answered");
        return -1;
    }
    char *text = NULL;
    size_t len = 0;
    live_build_begin(w->live);
    rc = goroutine_text_write(procs, kept, 2, &text, &len);
    live_build_end(w->live);
    live_free_copies(procs, kept);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    control_reply(fd, "ok");
    control_reply_bytes(fd, text, len);
    free(text);
    return 0;
}

static void answer_control(struct collect_worker *w, struct job *j)
{
    static struct control_snapshot req; /* 4 KiB: the worker is the only user */
    char err[1024] = "";
    if (control_read_request(j->fd, j->rest, j->rest_len, &req, err, sizeof err) < 0 ||
        (req.command == CONTROL_STACKS ? write_stacks(w, j->fd, &req, err, sizeof err)
                                       : write_snapshot(w, j->fd, &req, err, sizeof err)) < 0) {
        /* output_dir_prepare's messages start with "ppx: " already */
        control_reply(j->fd, "error %s", strncmp(err, "ppx: ", 5) == 0 ? err + 5 : err);
        fprintf(stderr, "ppx: %s request: %s\n",
                req.command == CONTROL_STACKS ? "stacks" : "snapshot",
                strncmp(err, "ppx: ", 5) == 0 ? err + 5 : err);
    }
    close(j->fd);
}

static void *worker_main(void *arg)
{
    struct collect_worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->finishing)
            pthread_cond_wait(&w->cv, &w->lock);
        struct job *j = w->head;
        if (!j)
            break; /* finishing, and nothing left */
        w->head = j->next;
        if (!w->head)
            w->tail = &w->head;
        pthread_mutex_unlock(&w->lock);
        if (j->proc)
            write_final(w, j);
        else
            answer_control(w, j);
        proc_copy_free(j->proc);
        free(j->spool);
        free(j->rest);
        free(j);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

struct collect_worker *collect_worker_start(struct live *l, const char *out_dir, bool quiet)
{
    struct collect_worker *w = calloc(1, sizeof *w);
    if (!w) {
        fprintf(stderr, "ppx: out of memory\n");
        return NULL;
    }
    w->live = l;
    w->out_dir = out_dir;
    w->quiet = quiet;
    w->tail = &w->head;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cv, NULL);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        fprintf(stderr, "ppx: cannot start a thread: %s\n", strerror(rc));
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    return w;
}

void collect_worker_finish(struct collect_worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->finishing = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cv);
    free(w);
}
