#include "live/live.h"
#include "symbol/symbol.h"

#include <ppx/wire.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct exited {
    uint32_t pid;
    uint64_t start_ns, exited_ns;
};

struct live_proc_id {
    uint32_t pid;
    uint64_t start_ns;
};

struct live {
    pthread_mutex_t lock;
    live_send_fn send; /* under lock */
    void *send_arg;
    uint64_t flush_seq; /* under lock: the latest WIRE_CMD_FLUSH's */
    uint64_t tasks_seq; /* under lock: the latest WIRE_CMD_TASKS's */
    struct proc_table *table;
    struct exited exited[LIVE_KEEP_EXITED + 1]; /* oldest first */
    size_t n_exited;

    pthread_mutex_t build_lock;

    unsigned windows; /* under stop_lock: live_window_enter()s not left */

    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cv; /* CLOCK_MONOTONIC */
    bool stopping;

    pthread_t ticker; /* timeline.c's thread */
    bool ticker_started;
};

uint64_t live_now_ns(void)
{
    return realtime_ns();
}

struct live *live_new(void)
{
    struct live *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->table = proc_table_new();
    pthread_condattr_t attr;
    if (!l->table || pthread_condattr_init(&attr) != 0) {
        proc_table_free(l->table);
        free(l);
        return NULL;
    }
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&l->stop_cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&l->lock, NULL);
    pthread_mutex_init(&l->build_lock, NULL);
    pthread_mutex_init(&l->stop_lock, NULL);
    return l;
}

bool live_start_timeline(struct live *l)
{
    l->ticker_started = pthread_create(&l->ticker, NULL, live_timeline_main, l) == 0;
    return l->ticker_started;
}

void live_free(struct live *l)
{
    if (!l)
        return;
    if (l->ticker_started) {
        live_stop(l);
        pthread_join(l->ticker, NULL);
    }
    proc_table_free(l->table);
    pthread_mutex_destroy(&l->lock);
    pthread_mutex_destroy(&l->build_lock);
    pthread_mutex_destroy(&l->stop_lock);
    pthread_cond_destroy(&l->stop_cv);
    free(l);
}

struct proc_table *live_table(struct live *l)
{
    return l->table;
}

pthread_mutex_t *live_lock(struct live *l)
{
    return &l->lock;
}

static struct exited *find_exited(struct live *l, uint32_t pid, uint64_t start_ns)
{
    for (size_t i = 0; i < l->n_exited; i++)
        if (l->exited[i].pid == pid && l->exited[i].start_ns == start_ns)
            return &l->exited[i];
    return NULL;
}

static void drop_exited(struct live *l, size_t i)
{
    memmove(&l->exited[i], &l->exited[i + 1], (l->n_exited - i - 1) * sizeof l->exited[0]);
    l->n_exited--;
}

bool live_process_ended(struct live *l, struct proc *p)
{
    PPX_CHECK(ppx_mutex_held(&l->lock), "the ingest loop holds the table lock");
    if (live_stopping(l))
        return false;
    /* A process that reconnected since it was last listed is running. */
    for (size_t i = l->n_exited; i-- > 0;) {
        struct proc *q = proc_table_find(l->table, l->exited[i].pid, l->exited[i].start_ns);
        if (!q || q->connected)
            drop_exited(l, i);
    }
    struct exited *e = find_exited(l, p->pid, p->start_ns);
    if (e)
        drop_exited(l, (size_t)(e - l->exited));
    PPX_CHECK(l->n_exited <= LIVE_KEEP_EXITED, "room for one more exited process");
    l->exited[l->n_exited++] = (struct exited){p->pid, p->start_ns, live_now_ns()};
    if (l->n_exited > LIVE_KEEP_EXITED) {
        struct proc *old = proc_table_find(l->table, l->exited[0].pid, l->exited[0].start_ns);
        if (old && !old->connected && !proc_table_owner(old))
            proc_table_remove(l->table, old);
        drop_exited(l, 0);
    }
    return true;
}

void live_free_copies(struct proc **procs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        proc_copy_free(procs[i]);
    free(procs);
}

struct proc **live_select_locked(struct live *l, uint32_t pid, size_t *count, int *rc)
{
    struct proc **list = proc_table_list(l->table, count);
    if (!list && proc_table_count(l->table) > 0) {
        *rc = -1;
        return NULL;
    }
    if (pid) {
        /* The latest incarnation: the program pid runs now (or ran last). */
        struct proc *chosen = NULL;
        for (size_t i = 0; i < *count; i++)
            if (list[i]->pid == pid)
                chosen = list[i];
        *count = chosen ? 1 : 0;
        if (chosen)
            list[0] = chosen;
    }
    *rc = pid && *count == 0 ? LIVE_NO_SUCH_PID : 0;
    return list;
}

int live_copy(struct live *l, uint32_t pid, enum proc_copy_depth depth, struct proc ***out,
              size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&l->lock);
    size_t count = 0;
    int rc;
    struct proc **list = live_select_locked(l, pid, &count, &rc);
    struct proc **copies = count ? calloc(count, sizeof *copies) : NULL;
    if (count && !copies)
        rc = -1;
    for (size_t i = 0; i < count && rc == 0; i++) {
        copies[i] = proc_copy(list[i], depth);
        if (!copies[i]) {
            live_free_copies(copies, i);
            copies = NULL;
            rc = -1;
        }
    }
    pthread_mutex_unlock(&l->lock);
    free(list);
    if (rc == 0) {
        *out = copies;
        *n = count;
    }
    return rc;
}

int live_describe(struct live *l, struct live_info **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&l->lock);
    size_t count = 0;
    struct proc **list = proc_table_list(l->table, &count);
    struct live_info *info = count ? calloc(count, sizeof *info) : NULL;
    if (count && (!list || !info)) {
        pthread_mutex_unlock(&l->lock);
        free(list);
        free(info);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const struct proc *p = list[i];
        info[i].pid = p->pid;
        info[i].start_ns = p->start_ns;
        const struct exited *e = p->connected ? NULL : find_exited(l, p->pid, p->start_ns);
        info[i].exited_ns = e ? e->exited_ns : 0;
        snprintf(info[i].exe, sizeof info[i].exe, "%s", p->exe ? p->exe : "?");
    }
    pthread_mutex_unlock(&l->lock);
    free(list);
    *out = info;
    *n = count;
    return 0;
}

void live_build_begin(struct live *l)
{
    pthread_mutex_lock(&l->build_lock);
}

void live_build_end(struct live *l)
{
    pthread_mutex_unlock(&l->build_lock);
}

bool live_sleep(struct live *l, unsigned seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)seconds;
    pthread_mutex_lock(&l->stop_lock);
    int rc = 0;
    while (!l->stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&l->stop_cv, &l->stop_lock, &until);
    bool ok = !l->stopping;
    pthread_mutex_unlock(&l->stop_lock);
    return ok;
}

bool live_window_enter(struct live *l, unsigned max)
{
    pthread_mutex_lock(&l->stop_lock);
    bool ok = l->windows < max;
    if (ok)
        l->windows++;
    pthread_mutex_unlock(&l->stop_lock);
    return ok;
}

void live_window_leave(struct live *l)
{
    pthread_mutex_lock(&l->stop_lock);
    PPX_CHECK(l->windows > 0, "a window left was entered");
    l->windows--;
    pthread_mutex_unlock(&l->stop_lock);
}

void live_stop(struct live *l)
{
    pthread_mutex_lock(&l->stop_lock);
    l->stopping = true;
    pthread_cond_broadcast(&l->stop_cv);
    pthread_mutex_unlock(&l->stop_lock);
}

bool live_stopping(struct live *l)
{
    pthread_mutex_lock(&l->stop_lock);
    bool stopping = l->stopping;
    pthread_mutex_unlock(&l->stop_lock);
    return stopping;
}

void live_set_sender(struct live *l, live_send_fn send, void *arg)
{
    pthread_mutex_lock(&l->lock);
    l->send = send;
    l->send_arg = arg;
    pthread_mutex_unlock(&l->lock);
}

/* Under lock: the connected processes a request selects, in *ids (malloc'ed). */
static size_t connected_procs(struct live *l, uint32_t pid, struct live_proc_id **ids)
{
    PPX_CHECK(ppx_mutex_held(&l->lock), "the table is read under its lock");
    *ids = NULL;
    size_t count = 0;
    struct proc **list = proc_table_list(l->table, &count);
    if (!list || !l->send)
        count = 0;
    struct live_proc_id *out = count ? calloc(count, sizeof *out) : NULL;
    size_t n = 0;
    for (size_t i = 0; out && i < count; i++)
        if ((!pid || list[i]->pid == pid) && list[i]->connected)
            out[n++] = (struct live_proc_id){list[i]->pid, list[i]->start_ns};
    free(list);
    if (pid && n > 1) { /* the latest incarnation of pid, as live_copy() */
        out[0] = out[n - 1];
        n = 1;
    }
    *ids = out;
    return n;
}

static int send_to(struct live *l, const struct live_proc_id *id, uint32_t type,
                   const void *payload, size_t len, struct proc **found)
{
    PPX_CHECK(ppx_mutex_held(&l->lock), "commands are sent under the table lock");
    struct proc *p = proc_table_find(l->table, id->pid, id->start_ns);
    *found = p;
    if (!p || !p->connected)
        return -1;
    return l->send(l->send_arg, p, type, payload, len);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Under lock: p's current connection was asked seq (or later) and has not
 * answered it. After a reconnect it was not: the connection asked is gone,
 * and the new one owes nothing. */
static bool owes_flush(const struct proc *p, uint64_t seq)
{
    return p->connected && p->flush_asked_seq >= seq && p->flushed_seq < seq;
}

static bool flushed(const struct proc *p, uint64_t seq)
{
    return p->flushed_seq >= seq;
}

/* The ingest loop decodes the answers meanwhile: looks every pause_ms
 * until each of the asked processes answered seq or no longer owes it,
 * the collector stops, or timeout_ms passed (*timed_out). How many
 * answered. */
static size_t await_answers(struct live *l, const struct live_proc_id *ids, size_t asked,
                            uint64_t seq, int timeout_ms, int pause_ms,
                            bool (*answered_to)(const struct proc *, uint64_t),
                            bool (*owes)(const struct proc *, uint64_t), bool *timed_out)
{
    long long deadline = monotonic_ms() + timeout_ms;
    size_t answered = 0;
    *timed_out = false;
    for (;;) {
        size_t waiting = 0;
        answered = 0;
        pthread_mutex_lock(&l->lock);
        for (size_t i = 0; i < asked; i++) {
            struct proc *p = proc_table_find(l->table, ids[i].pid, ids[i].start_ns);
            if (p && answered_to(p, seq))
                answered++;
            else if (p && owes(p, seq))
                waiting++;
        }
        pthread_mutex_unlock(&l->lock);
        if (waiting == 0 || live_stopping(l))
            break;
        if (monotonic_ms() >= deadline) {
            *timed_out = true;
            break;
        }
        sleep_ms(pause_ms);
    }
    return answered;
}

/* The deadline passed: those that still owe seq are late. */
static void mark_late(struct live *l, const struct live_proc_id *ids, size_t n, uint64_t seq)
{
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < n; i++) {
        struct proc *p = proc_table_find(l->table, ids[i].pid, ids[i].start_ns);
        if (p && owes_flush(p, seq) && p->flush_late_seq < seq)
            p->flush_late_seq = seq;
    }
    pthread_mutex_unlock(&l->lock);
}

size_t live_flush(struct live *l, uint32_t pid, int timeout_ms)
{
    pthread_mutex_lock(&l->lock);
    struct live_proc_id *ids;
    size_t n = connected_procs(l, pid, &ids);
    uint64_t seq = ++l->flush_seq;
    struct wire_cmd_flush cmd = {seq};
    size_t asked = 0;
    for (size_t i = 0; i < n; i++) {
        struct proc *p = proc_table_find(l->table, ids[i].pid, ids[i].start_ns);
        /* One that let a flush pass unanswered (its flusher stuck, say)
         * is neither asked nor waited for until it answers that one. */
        if (p && p->flushed_seq < p->flush_late_seq)
            continue;
        if (send_to(l, &ids[i], WIRE_CMD_FLUSH, &cmd, sizeof cmd, &p) == 0) {
            p->flush_asked_seq = seq;
            ids[asked++] = ids[i];
        }
    }
    pthread_mutex_unlock(&l->lock);
    bool timed_out;
    size_t answered =
        await_answers(l, ids, asked, seq, timeout_ms, 5, flushed, owes_flush, &timed_out);
    if (timed_out)
        mark_late(l, ids, asked, seq);
    free(ids);
    return answered;
}

/* Under lock: p's current connection was asked dump seq and has not
 * sent it whole. */
static bool owes_tasks(const struct proc *p, uint64_t seq)
{
    return p->connected && p->tasks_asked_seq >= seq && p->dump.seq < seq;
}

static bool dumped(const struct proc *p, uint64_t seq)
{
    return p->dump.seq >= seq;
}

/* The command for a dump: the seq, then the state-threads layout the
 * executable's DWARF gives (wire.h), if it has one. */
struct tasks_command {
    struct wire_cmd_tasks cmd;
    struct wire_st_layout layout;
    bool has_layout;
};

/* Under lock: where p's executable is (its main mapping's path and build
 * id, else HELLO's path), copied, for reading its DWARF without the lock. */
struct exe_ref {
    char *path;
    uint8_t build_id[64];
    size_t build_id_len;
};

static void exe_of(const struct proc *p, struct exe_ref *out)
{
    *out = (struct exe_ref){0};
    for (size_t i = 0; i < p->n_mappings; i++)
        if (p->mappings[i].is_main && p->mappings[i].path) {
            const struct proc_mapping *m = &p->mappings[i];
            out->path = strdup(m->path);
            out->build_id_len = m->build_id_len <= sizeof out->build_id ? m->build_id_len : 0;
            memcpy(out->build_id, m->build_id, out->build_id_len);
            return;
        }
    out->path = p->exe ? strdup(p->exe) : NULL;
}

/* Each process's executable, under lock; their layouts, without it (the
 * first reading of a large program's DWARF takes a while: the ingest loop
 * must not wait for it). */
static struct tasks_command *tasks_commands(struct live *l, const struct live_proc_id *ids,
                                            size_t n)
{
    struct tasks_command *cmds = calloc(n ? n : 1, sizeof *cmds);
    struct exe_ref *exes = calloc(n ? n : 1, sizeof *exes);
    if (!cmds || !exes) {
        free(exes);
        return cmds;
    }
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < n; i++) {
        struct proc *p = proc_table_find(l->table, ids[i].pid, ids[i].start_ns);
        if (p)
            exe_of(p, &exes[i]);
    }
    pthread_mutex_unlock(&l->lock);
    for (size_t i = 0; i < n; i++) {
        if (exes[i].path)
            cmds[i].has_layout = st_layout_of(exes[i].path, exes[i].build_id, exes[i].build_id_len,
                                              &cmds[i].layout) == 0;
        free(exes[i].path);
    }
    free(exes);
    return cmds;
}

size_t live_tasks(struct live *l, uint32_t pid, int timeout_ms)
{
    pthread_mutex_lock(&l->lock);
    struct live_proc_id *ids;
    size_t n = connected_procs(l, pid, &ids);
    pthread_mutex_unlock(&l->lock);
    struct tasks_command *cmds = tasks_commands(l, ids, n);
    pthread_mutex_lock(&l->lock);
    uint64_t seq = ++l->tasks_seq;
    size_t asked = 0;
    for (size_t i = 0; cmds && i < n; i++) {
        struct proc *p;
        cmds[i].cmd.seq = seq;
        /* the layout right after the seq, as wire.h says */
        unsigned char payload[sizeof(struct wire_cmd_tasks) + sizeof(struct wire_st_layout)];
        memcpy(payload, &cmds[i].cmd, sizeof cmds[i].cmd);
        memcpy(payload + sizeof cmds[i].cmd, &cmds[i].layout, sizeof cmds[i].layout);
        size_t len = sizeof cmds[i].cmd + (cmds[i].has_layout ? sizeof cmds[i].layout : 0);
        if (send_to(l, &ids[i], WIRE_CMD_TASKS, payload, len, &p) == 0) {
            p->tasks_asked_seq = seq;
            ids[asked++] = ids[i];
        }
    }
    pthread_mutex_unlock(&l->lock);
    free(cmds);
    bool timed_out;
    size_t answered =
        await_answers(l, ids, asked, seq, timeout_ms, 2, dumped, owes_tasks, &timed_out);
    free(ids);
    return answered;
}

static void send_cpu(struct live *l, const struct live_proc_id *id, uint32_t hz, bool begin)
{
    struct proc *p = proc_table_find(l->table, id->pid, id->start_ns);
    if (!p)
        return;
    if (!begin && p->cpu_requests > 0 && --p->cpu_requests > 0)
        return; /* another window still wants samples */
    if (begin && p->cpu_requests++ > 0)
        return; /* sampling already, for another window */
    p->cpu_hz_asked = hz;
    struct wire_cmd_cpu cmd = {hz, 0};
    if (l->send && p->connected && !p->cpu_fixed)
        l->send(l->send_arg, p, WIRE_CMD_CPU, &cmd, sizeof cmd);
}

void live_process_opened(struct live *l, struct proc *p)
{
    PPX_CHECK(ppx_mutex_held(&l->lock), "the ingest loop holds the table lock");
    p->flush_late_seq = p->flush_asked_seq = 0; /* the new connection owes nothing */
    p->tasks_asked_seq = 0;
    if (p->cpu_requests == 0 || p->cpu_fixed || !l->send)
        return;
    /* preload/flush/flush.c: a new connection starts with sampling off */
    struct wire_cmd_cpu cmd = {p->cpu_hz_asked, 0};
    l->send(l->send_arg, p, WIRE_CMD_CPU, &cmd, sizeof cmd);
}

void live_cpu_begin(struct live *l, uint32_t pid, uint32_t hz, struct live_cpu_window *w)
{
    pthread_mutex_lock(&l->lock);
    w->n = connected_procs(l, pid, &w->procs);
    size_t kept = 0;
    for (size_t i = 0; i < w->n; i++) {
        struct proc *p = proc_table_find(l->table, w->procs[i].pid, w->procs[i].start_ns);
        if (!p || p->cpu_fixed)
            continue;
        send_cpu(l, &w->procs[i], hz, true);
        w->procs[kept++] = w->procs[i];
    }
    w->n = kept;
    pthread_mutex_unlock(&l->lock);
}

void live_cpu_end(struct live *l, struct live_cpu_window *w)
{
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < w->n; i++)
        send_cpu(l, &w->procs[i], 0, false);
    pthread_mutex_unlock(&l->lock);
    free(w->procs);
    w->procs = NULL;
    w->n = 0;
}
