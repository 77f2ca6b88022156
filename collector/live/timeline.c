/* The live collector's timelines (model.h, timeline.c): a thread takes a
 * point of every connected process's totals each second; readers copy
 * them out for /debug/pprof/timeline. */
#include "live/live.h"

#include <stdlib.h>
#include <string.h>

/* One pass: a point for each process a connection feeds now. */
static void take_points(struct live *l)
{
    pthread_mutex_lock(live_lock(l));
    size_t n = 0;
    struct proc **list = proc_table_list(live_table(l), &n);
    uint64_t now = live_now_ns();
    for (size_t i = 0; i < n; i++)
        if (list[i]->connected)
            proc_timeline_add(proc_table_timeline(list[i]), list[i], now);
    pthread_mutex_unlock(live_lock(l));
    free(list);
}

void *live_timeline_main(void *arg)
{
    struct live *l = arg;
    while (live_sleep(l, 1))
        take_points(l);
    return NULL;
}

int live_timelines(struct live *l, uint32_t pid, struct live_timeline **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(live_lock(l));
    size_t count = 0;
    int rc;
    struct proc **list = live_select_locked(l, pid, &count, &rc);
    if (rc < 0)
        count = 0;
    struct live_timeline *t = count ? calloc(count, sizeof *t) : NULL;
    if (count && !t)
        rc = -1;
    for (size_t i = 0; i < count && rc == 0; i++) {
        const struct proc *p = list[i];
        t[i].pid = p->pid;
        t[i].start_ns = p->start_ns;
        t[i].sample_rate = p->sample_rate;
        snprintf(t[i].exe, sizeof t[i].exe, "%s", p->exe ? p->exe : "?");
        t[i].points = proc_timeline_copy(*proc_table_timeline(list[i]), &t[i].n);
        if (!t[i].points && t[i].n == 0 && *proc_table_timeline(list[i]) != NULL)
            rc = -1; /* one held points and could not be copied */
    }
    pthread_mutex_unlock(live_lock(l));
    free(list);
    if (rc != 0) {
        live_timelines_free(t, count);
        return rc;
    }
    *out = t;
    *n = count;
    return 0;
}

void live_timelines_free(struct live_timeline *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        free(t[i].points);
    free(t);
}
