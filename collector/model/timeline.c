/* A process's timeline: a point of its running totals at most a second
 * (taken by the live collector), the latest TIMELINE_MAX_POINTS kept in a ring that
 * grows as it fills, so a short-lived process costs a few points. Owned by
 * the process's table entry: it outlives the HELLOs that reset the
 * process's counters. */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

struct proc_timeline {
    struct timeline_point *points;
    size_t cap, n, first; /* n points from points[first], wrapping at cap */
};

void proc_timeline_free(struct proc_timeline *tl)
{
    if (!tl)
        return;
    free(tl->points);
    free(tl);
}

static bool grow(struct proc_timeline *tl)
{
    size_t cap = tl->cap ? 2 * tl->cap : 64;
    if (cap > TIMELINE_MAX_POINTS)
        cap = TIMELINE_MAX_POINTS;
    struct timeline_point *points = malloc(cap * sizeof *points);
    if (!points)
        return false;
    /* unwrapped, oldest first */
    for (size_t i = 0; i < tl->n; i++)
        points[i] = tl->points[(tl->first + i) % tl->cap];
    free(tl->points);
    tl->points = points;
    tl->cap = cap;
    tl->first = 0;
    return true;
}

bool proc_timeline_add(struct proc_timeline **tlp, const struct proc *p, uint64_t t_ns)
{
    struct proc_timeline *tl = *tlp;
    if (!tl && !(tl = *tlp = calloc(1, sizeof *tl)))
        return false;
    if (tl->n == tl->cap && tl->cap < TIMELINE_MAX_POINTS && !grow(tl))
        return false;
    struct timeline_point pt = {.t_ns = t_ns, .totals = p->totals};
    if (tl->n < tl->cap) {
        tl->points[(tl->first + tl->n++) % tl->cap] = pt;
    } else { /* full: the oldest goes */
        tl->points[tl->first] = pt;
        tl->first = (tl->first + 1) % tl->cap;
    }
    return true;
}

uint64_t proc_timeline_last_ns(const struct proc_timeline *tl)
{
    if (!tl || tl->n == 0)
        return 0;
    return tl->points[(tl->first + tl->n - 1) % tl->cap].t_ns;
}

struct timeline_point *proc_timeline_copy(const struct proc_timeline *tl, size_t *n)
{
    *n = 0;
    if (!tl || tl->n == 0)
        return NULL;
    struct timeline_point *out = malloc(tl->n * sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < tl->n; i++)
        out[i] = tl->points[(tl->first + i) % tl->cap];
    *n = tl->n;
    return out;
}
