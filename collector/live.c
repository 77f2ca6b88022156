#include "live.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct exited {
    uint32_t pid;
    uint64_t start_ns, exited_ns;
};

struct live {
    pthread_mutex_t lock;
    struct proc_table *table;
    struct exited exited[LIVE_KEEP_EXITED + 1]; /* oldest first */
    size_t n_exited;

    pthread_mutex_t build_lock;

    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cv; /* CLOCK_MONOTONIC */
    bool stopping;
};

uint64_t live_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

void live_free(struct live *l)
{
    if (!l)
        return;
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

int live_copy(struct live *l, uint32_t pid, enum proc_copy_depth depth, struct proc ***out,
              size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&l->lock);
    size_t count = 0;
    struct proc **list = proc_table_list(l->table, &count);
    if (!list && proc_table_count(l->table) > 0) {
        pthread_mutex_unlock(&l->lock);
        return -1;
    }
    if (pid) {
        /* The latest incarnation: the program pid runs now (or ran last). */
        struct proc *chosen = NULL;
        for (size_t i = 0; i < count; i++)
            if (list[i]->pid == pid)
                chosen = list[i];
        count = chosen ? 1 : 0;
        if (chosen)
            list[0] = chosen;
    }
    int rc = pid && count == 0 ? LIVE_NO_SUCH_PID : 0;
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
