/* The live collector's timelines (model.h, timeline.c): a thread takes,
 * each second, a point of every process's totals that moved; readers copy
 * them out for /debug/pprof/timeline. */
#include "live/live.h"

#include <stdlib.h>
#include <string.h>

#define POINT_NS 1000000000ull
#define QUIET_NS (2 * POINT_NS) /* twice a target's slowest pace (PPX_FLUSH_IDLE_MS) */

/* One pass: a point for each process that sent figures since its latest
 * point (one that has gone since included), stamped with when they came.
 * Targets flush at their own pace (every 100 ms while their profiles
 * change fast, up to a second while they are steady): a point a second of
 * whatever had come would show a second without a flush as a fall to 0 and
 * the next as twice the rate. A rate is over the time since the point
 * before. A target sends something at least every second while anything
 * changes, so one silent for QUIET_NS has had nothing to say: it gets a
 * point a second of the same figures (its rates 0), and its chart goes on
 * to now. A reader takes the point of what came since the last tick. */
static void take_point(struct proc *p, uint64_t now, bool tick)
{
    struct proc_timeline **tl = proc_table_timeline(p);
    uint64_t last = proc_timeline_last_ns(*tl);
    if (p->fed_ns > last) /* (a process gone since: its last figures) */
        proc_timeline_add(tl, p, p->fed_ns);
    else if (tick && p->connected && now >= p->fed_ns + QUIET_NS && now >= last + POINT_NS)
        proc_timeline_add(tl, p, now);
}

static void take_points(struct live *l)
{
    pthread_mutex_lock(live_lock(l));
    size_t n = 0;
    struct proc **list = proc_table_list(live_table(l), &n);
    uint64_t now = live_now_ns();
    for (size_t i = 0; i < n; i++)
        take_point(list[i], now, true);
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
        struct proc *p = list[i];
        take_point(p, 0, false); /* what came since the last tick: the reader sees it */
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
