/* The block and mutex profiles laid out as Go's runtime/pprof writes them
 * (printCountCycleProfile): sample types contentions/count and
 * delay/nanoseconds, period type contentions/count, period 1, no default
 * sample type (pprof then shows the last, delay). One sample per stack:
 * for block the stack that waited, for mutex the stack that released the
 * lock others waited for; leaf first, the caller of the lock call. */
#include "pprof/pprof.h"

#include <stdlib.h>
#include <uthash.h>
#include <ppx/wire.h>

struct contention_writer {
    struct pprof_builder *b;
    bool mutex;
    bool pid_labels;
    struct pprof_location_ids loc; /* one sample's location ids */
};

static int write_proc(void *writer, const struct proc *p, const struct pprof_proc_mappings *pm)
{
    struct contention_writer *w = writer;
    for (const struct proc_stack *s = p->stacks; s; s = s->hh.next) {
        const struct proc_contention *c = w->mutex ? &s->mutex : &s->block;
        if ((c->contentions == 0 && c->delay_ns == 0) || s->depth == 0)
            continue;
        if (pprof_location_ids_reserve(&w->loc, s->depth) < 0 ||
            pprof_stack_locations(pm, s->pcs, s->depth, w->loc.ids) < 0)
            return -1;
        struct pprof_label pid = {.key = "pid", .num = (int64_t)p->pid};
        /* Go truncates its float count the same way. */
        const int64_t values[2] = {pprof_clamp_int64(c->contentions / WIRE_CONTENTION_ONE),
                                   pprof_clamp_int64(c->delay_ns)};
        pprof_add_sample(w->b, w->loc.ids, s->depth, values, 2, &pid, w->pid_labels ? 1 : 0);
    }
    return 0;
}

int pprof_contention_write(struct proc *const *procs, size_t n, bool mutex, bool pid_labels,
                           uint64_t now_ns, struct pprof_sink *out, char *err, size_t errlen)
{
    static const char *const types[][2] = {{"contentions", "count"}, {"delay", "nanoseconds"}};
    const struct pprof_profile_type type = {
        .sample_types = types,
        .n_sample_types = 2,
        .period_type = "contentions",
        .period_unit = "count",
        .period = 1,
        .default_type = NULL,
    };
    struct contention_writer w = {.mutex = mutex, .pid_labels = pid_labels};
    w.b = pprof_builder_start(&type, procs, n, now_ns, out, err, errlen);
    if (!w.b)
        return -1;
    int rc = pprof_each_proc(w.b, procs, n, write_proc, &w);
    free(w.loc.ids);
    return pprof_builder_finish(w.b, rc, out, err, errlen);
}
