/* The threadcreate profile as Go writes it (runtime/pprof printCountProfile:
 * sample and period type threadcreate/count, period 1), except that Go
 * merges equal stacks into one sample whose value counts them, while here
 * every thread is its own sample of value 1 carrying its labels: pprof
 * sums them back into counts per stack, and `ppx threads` reads the
 * labels. */
#include "pprof/pprof.h"

#include <stdio.h>
#include <stdlib.h>
#include <uthash.h>
#include <ppx/wire.h>

enum synthetic { SYN_MAIN, SYN_PREEXISTING, SYN_UNKNOWN, N_SYNTHETIC };

static const char *const synthetic_frames[N_SYNTHETIC] = {
    PPROF_THREADS_MAIN_FRAME, PPROF_THREADS_PREEXISTING_FRAME, PPROF_THREADS_UNKNOWN_FRAME};

struct threads_writer {
    struct pprof_builder *b;
    bool pid_labels;
    uint64_t synthetic[N_SYNTHETIC]; /* location ids, 0 until used */
    struct pprof_location_ids loc;   /* one sample's location ids */
};

/* The thread's creation stack as locations in w->loc.ids; returns
 * their count, 0 when out of memory. */
static size_t creation_locations(struct threads_writer *w, const struct proc *p,
                                 const struct pprof_proc_mappings *pm, const struct proc_thread *t)
{
    const struct proc_stack *st = NULL;
    if (t->stack_id != WIRE_NO_ID)
        HASH_FIND(hh, p->stacks, &t->stack_id, sizeof t->stack_id, st);
    if (st && st->depth > 0) {
        if (pprof_location_ids_reserve(&w->loc, st->depth) < 0)
            return 0;
        /* The leaf is the return address into pthread_create's caller. */
        return pprof_stack_locations(pm, st->pcs, st->depth, w->loc.ids) < 0 ? 0 : st->depth;
    }
    enum synthetic kind = (t->flags & WIRE_THREAD_MAIN)          ? SYN_MAIN
                          : (t->flags & WIRE_THREAD_PREEXISTING) ? SYN_PREEXISTING
                                                                 : SYN_UNKNOWN;
    if (!w->synthetic[kind])
        w->synthetic[kind] = pprof_function_location(w->b, synthetic_frames[kind], 0);
    if (!w->synthetic[kind])
        return 0;
    if (pprof_location_ids_reserve(&w->loc, 1) < 0)
        return 0;
    w->loc.ids[0] = w->synthetic[kind];
    return 1;
}

static int write_thread(struct threads_writer *w, const struct proc *p,
                        const struct pprof_proc_mappings *pm, const struct proc_thread *t)
{
    size_t n = creation_locations(w, p, pm, t);
    if (n == 0)
        return -1;
    struct pprof_label labels[7];
    size_t n_labels = 0;
    labels[n_labels++] = (struct pprof_label){.key = "thread", .str = proc_thread_name(t)};
    labels[n_labels++] = (struct pprof_label){.key = "tid", .num = (int64_t)t->tid};
    const struct proc_thread *creator = NULL;
    if (t->creator_id != WIRE_NO_ID)
        HASH_FIND(hh, p->threads, &t->creator_id, sizeof t->creator_id, creator);
    if (creator)
        labels[n_labels++] =
            (struct pprof_label){.key = "creator_tid", .num = (int64_t)creator->tid};
    labels[n_labels++] =
        (struct pprof_label){.key = "start_ns", .num = pprof_clamp_int64(t->start_ns)};
    if (t->end_ns)
        labels[n_labels++] =
            (struct pprof_label){.key = "end_ns", .num = pprof_clamp_int64(t->end_ns)};
    labels[n_labels++] = (struct pprof_label){
        .key = "cpu", .num = pprof_clamp_int64(t->cpu_ns), .num_unit = "nanoseconds"};
    if (w->pid_labels)
        labels[n_labels++] = (struct pprof_label){.key = "pid", .num = (int64_t)p->pid};
    const int64_t one = 1;
    pprof_add_sample(w->b, w->loc.ids, n, &one, 1, labels, n_labels);
    return 0;
}

static int write_proc(void *writer, const struct proc *p, const struct pprof_proc_mappings *pm)
{
    struct threads_writer *w = writer;
    int rc = 0;
    for (const struct proc_thread *t = p->threads; t && rc == 0; t = t->hh.next)
        rc = write_thread(w, p, pm, t);
    return rc;
}

int pprof_threads_write(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                        struct pprof_sink *out, char *err, size_t errlen)
{
    static const char *const types[][2] = {{"threadcreate", "count"}};
    const struct pprof_profile_type type = {
        .sample_types = types,
        .n_sample_types = 1,
        .period_type = "threadcreate",
        .period_unit = "count",
        .period = 1,
        .default_type = "threadcreate",
    };
    struct threads_writer w = {.pid_labels = pid_labels};
    w.b = pprof_builder_start(&type, procs, n, now_ns, out, err, errlen);
    if (!w.b)
        return -1;
    int rc = pprof_each_proc(w.b, procs, n, write_proc, &w);
    free(w.loc.ids);
    return pprof_builder_finish(w.b, rc, out, err, errlen);
}
