/* A process's running totals (model.h, struct proc_totals): what its
 * profiles would sum to now, kept up to date by the decoder as records
 * arrive, so that a point of its timeline costs no walk over its stacks. */
#include "model/model.h"

#include <math.h>

double proc_heap_scale(uint64_t count, uint64_t size, uint64_t rate)
{
    if (count == 0 || size == 0 || rate <= 1)
        return 1;
    double avg = (double)size / (double)count;
    return 1 / (1 - exp(-avg / (double)rate));
}

/* A stack's scaled figures, as the heap profile shows them: allocations,
 * and what is in use (0 when the counters disagree in sign). */
static void stack_figures(const struct proc_heap_counts *c, uint64_t rate, double out[4])
{
    double a = proc_heap_scale(c->alloc_objects, c->alloc_bytes, rate);
    out[0] = (double)c->alloc_objects * a;
    out[1] = (double)c->alloc_bytes * a;
    out[2] = out[3] = 0;
    if (c->alloc_objects >= c->free_objects && c->alloc_bytes >= c->free_bytes) {
        uint64_t objects = c->alloc_objects - c->free_objects;
        uint64_t bytes = c->alloc_bytes - c->free_bytes;
        double u = proc_heap_scale(objects, bytes, rate);
        out[2] = (double)objects * u;
        out[3] = (double)bytes * u;
    }
}

double proc_heap_inuse_change(const struct proc *p, const struct proc_heap_counts *before,
                              const struct proc_heap_counts *after)
{
    double b[4], a[4];
    stack_figures(before, p->sample_rate, b);
    stack_figures(after, p->sample_rate, a);
    return a[3] - b[3];
}

void proc_totals_heap(struct proc *p, const struct proc_heap_counts *before,
                      const struct proc_heap_counts *after)
{
    double b[4], a[4];
    stack_figures(before, p->sample_rate, b);
    stack_figures(after, p->sample_rate, a);
    p->totals.alloc_objects += a[0] - b[0];
    p->totals.alloc_bytes += a[1] - b[1];
    p->totals.inuse_objects += a[2] - b[2];
    p->totals.inuse_bytes += a[3] - b[3];
}
