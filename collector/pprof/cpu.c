/* The CPU profile laid out as Go's runtime/pprof writes it (proto.go,
 * profileBuilder.build): values [samples, cpu nanoseconds], period_type
 * cpu/nanoseconds, period 1e9/hz. Go labels samples with goroutine labels;
 * here every sample names its thread ("thread", "tid"), so that
 * -tagfocus=thread=worker or -tags splits the profile by thread. */
#include "pprof/pprof.h"

#include <stdio.h>
#include <stdlib.h>
#include <uthash.h>
#include <ppx/wire.h>

struct cpu_writer {
    struct pprof_builder *b;
    bool pid_labels;
    uint64_t lost_location, dropped_location; /* synthetic, 0 until used */
    struct pprof_location_ids loc;            /* one sample's location ids */
};

static int write_sample(struct cpu_writer *w, const struct proc *p,
                        const struct pprof_proc_mappings *pm, const struct proc_cpu_sample *cs)
{
    if (cs->samples == 0 && cs->cpu_ns == 0)
        return 0;
    const struct proc_stack *st;
    HASH_FIND(hh, p->stacks, &cs->key.stack_id, sizeof cs->key.stack_id, st);
    if (!st || st->depth == 0)
        return 0; /* the decoder lets none through; a hand-made proc might */
    if (pprof_location_ids_reserve(&w->loc, st->depth) < 0)
        return -1;
    /* The leaf is the interrupted pc + 1 (wire.h), so pc - 1 like every
     * other frame lands on the interrupted instruction itself. */
    if (pprof_stack_locations(pm, st->pcs, st->depth, w->loc.ids) < 0)
        return -1;

    struct pprof_label labels[3];
    size_t n_labels = 0;
    const struct proc_thread *t;
    HASH_FIND(hh, p->threads, &cs->key.thread_id, sizeof cs->key.thread_id, t);
    if (t) {
        labels[n_labels++] = (struct pprof_label){.key = "thread", .str = proc_thread_name(t)};
        labels[n_labels++] = (struct pprof_label){.key = "tid", .num = (int64_t)t->tid};
    }
    if (w->pid_labels)
        labels[n_labels++] = (struct pprof_label){.key = "pid", .num = (int64_t)p->pid};
    const int64_t values[2] = {pprof_clamp_int64(cs->samples), pprof_clamp_int64(cs->cpu_ns)};
    pprof_add_sample(w->b, w->loc.ids, st->depth, values, 2, labels, n_labels);
    return 0;
}

/* A sample of p on one synthetic frame (created on first use in *location). */
static int write_synthetic(struct cpu_writer *w, const struct proc *p, uint64_t *location,
                           const char *frame, uint64_t samples, uint64_t ns)
{
    if (samples == 0 && ns == 0)
        return 0;
    if (!*location)
        *location = pprof_function_location(w->b, frame, 0);
    if (!*location)
        return -1;
    struct pprof_label pid = {.key = "pid", .num = (int64_t)p->pid};
    const int64_t values[2] = {pprof_clamp_int64(samples), pprof_clamp_int64(ns)};
    pprof_add_sample(w->b, location, 1, values, 2, &pid, w->pid_labels ? 1 : 0);
    return 0;
}

static int write_proc(void *writer, const struct proc *p, const struct pprof_proc_mappings *pm)
{
    struct cpu_writer *w = writer;
    int rc = 0;
    for (const struct proc_cpu_sample *cs = p->cpu_samples; cs && rc == 0; cs = cs->hh.next)
        rc = write_sample(w, p, pm, cs);
    if (rc == 0)
        rc = write_synthetic(w, p, &w->lost_location, PPROF_CPU_LOST_FRAME, p->cpu_lost,
                             p->cpu_lost_ns);
    if (rc == 0)
        rc = write_synthetic(w, p, &w->dropped_location, PPROF_CPU_DROPPED_FRAME, p->cpu_dropped,
                             p->cpu_dropped_ns);
    return rc;
}

int pprof_cpu_write(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                    struct pprof_sink *out, char *err, size_t errlen)
{
    static const char *const types[][2] = {{"samples", "count"}, {"cpu", "nanoseconds"}};
    /* One period per profile: processes sampled at other rates (a child
     * with another PPX_CPU_HZ) carry their own nanoseconds in the values. */
    uint32_t hz = 0;
    for (size_t i = 0; i < n && hz == 0; i++)
        hz = procs[i]->cpu_hz;
    const struct pprof_profile_type type = {
        .sample_types = types,
        .n_sample_types = 2,
        .period_type = "cpu",
        .period_unit = "nanoseconds",
        .period = 1000000000 / (hz ? hz : PPROF_CPU_DEFAULT_HZ),
        .default_type = "cpu",
    };
    struct cpu_writer w = {.pid_labels = pid_labels};
    w.b = pprof_builder_start(&type, procs, n, now_ns, out, err, errlen);
    if (!w.b)
        return -1;
    int rc = pprof_each_proc(w.b, procs, n, write_proc, &w);
    free(w.loc.ids);
    return pprof_builder_finish(w.b, rc, out, err, errlen);
}
