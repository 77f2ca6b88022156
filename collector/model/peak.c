/* A process's peak heap (model.h, struct proc_peak): the flush at which
 * its heap in use was highest, and what each stack had in use then.
 *
 * The decoder reports each HEAP_DELTA before and after applying it. A new
 * high marks the peak pending: the process's current counters are the
 * peak's, and nothing is copied while the heap keeps growing. Only a
 * delta that would bring the heap down from a pending peak makes the copy
 * (of the stacks with something in use), before it is applied: one copy
 * per fall from a new high, not one per flush. */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct proc_peak_stack {
    uint32_t id;
    uint64_t objects, bytes; /* sampled, unscaled: alloc - free then */
};

void proc_peak_free(struct proc_peak *peak)
{
    if (!peak)
        return;
    free(peak->stacks);
    free(peak);
}

/* The current counters become the peak's. false when out of memory (the
 * peak stays pending: the next fall tries again, a little late). */
static bool take(struct proc_peak *peak, const struct proc *p)
{
    size_t n = 0;
    for (const struct proc_stack *s = p->stacks; s; s = s->hh.next)
        n += s->alloc_bytes > s->free_bytes;
    struct proc_peak_stack *stacks = n ? malloc(n * sizeof *stacks) : NULL;
    if (n && !stacks)
        return false;
    size_t i = 0;
    for (const struct proc_stack *s = p->stacks; s && i < n; s = s->hh.next)
        if (s->alloc_bytes > s->free_bytes)
            stacks[i++] = (struct proc_peak_stack){
                s->id, s->alloc_objects > s->free_objects ? s->alloc_objects - s->free_objects : 0,
                s->alloc_bytes - s->free_bytes};
    free(peak->stacks);
    peak->stacks = stacks;
    peak->n = i;
    peak->pending = false;
    return true;
}

bool proc_peak_pending(const struct proc *p)
{
    return p->peak && p->peak->pending;
}

void proc_peak_settle(struct proc *p)
{
    if (proc_peak_pending(p))
        take(p->peak, p);
}

void proc_peak_before_delta(struct proc *p, double inuse_change)
{
    if (proc_peak_pending(p) && inuse_change < 0)
        take(p->peak, p);
}

void proc_peak_after_delta(struct proc *p, uint64_t t_ns)
{
    double now = p->totals.inuse_bytes;
    if (p->peak && now <= p->peak->inuse_bytes)
        return;
    if (!p->peak && (now <= 0 || !(p->peak = calloc(1, sizeof *p->peak))))
        return;
    p->peak->inuse_bytes = now;
    p->peak->t_ns = t_ns;
    p->peak->pending = true;
}

struct proc_peak *proc_peak_copy(const struct proc_peak *peak)
{
    if (!peak)
        return NULL;
    struct proc_peak *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    *c = *peak;
    c->stacks = NULL;
    if (peak->n && !(c->stacks = malloc(peak->n * sizeof *c->stacks))) {
        free(c);
        return NULL;
    }
    if (peak->n)
        memcpy(c->stacks, peak->stacks, peak->n * sizeof *c->stacks);
    return c;
}

static int by_id(const void *a, const void *b)
{
    uint32_t x = ((const struct proc_peak_stack *)a)->id,
             y = ((const struct proc_peak_stack *)b)->id;
    return x < y ? -1 : x > y;
}

void proc_peak_apply(struct proc *c)
{
    const struct proc_peak *peak = c->peak;
    bool current = !peak || peak->pending; /* the counters now are the peak's */
    if (peak && !current && peak->n)
        qsort(peak->stacks, peak->n, sizeof *peak->stacks, by_id);
    for (struct proc_stack *s = c->stacks; s; s = s->hh.next) {
        uint64_t objects = 0, bytes = 0;
        if (!peak) {
            /* no heap in use ever: nothing */
        } else if (current) {
            if (s->alloc_bytes > s->free_bytes) {
                bytes = s->alloc_bytes - s->free_bytes;
                objects =
                    s->alloc_objects > s->free_objects ? s->alloc_objects - s->free_objects : 0;
            }
        } else {
            struct proc_peak_stack key = {.id = s->id};
            const struct proc_peak_stack *at =
                bsearch(&key, peak->stacks, peak->n, sizeof key, by_id);
            if (at) {
                objects = at->objects;
                bytes = at->bytes;
            }
        }
        /* in use at the peak, as allocations never freed */
        s->alloc_objects = objects;
        s->alloc_bytes = bytes;
        s->free_objects = s->free_bytes = 0;
    }
}
