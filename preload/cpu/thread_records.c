/* THREAD records (wire.h), from the flusher. A record is sent when it is
 * new on the connection, renamed, ended, or its CPU grew by >= 1 ms since
 * it was last sent; at the final flush every change goes out. */
#include "cpu.h"

#include <errno.h>
#include <string.h>

#define CPU_RESEND_NS 1000000ull

/* A running thread's CPU time, read now; a thread whose clock is gone ended
 * without our destructor: it ends now. */
static void poll_cpu(struct ppx_thread_record *r)
{
    uint64_t ns = 0;
    int err = ppx_thread_cpu_ns(r->tid, &ns);
    if (err == 0) {
        ppx_thread_cpu_raise(r, ns);
    } else if (err == EINVAL) {
        ppx_thread_record_end(r); /* the last one: the flusher's own check sees it */
    }
}

static bool emit_thread(struct ppx_encoder *enc, struct ppx_thread_record *r, struct ppx_stack *s,
                        uint64_t end_ns, uint64_t cpu_ns)
{
    struct wire_thread w = {
        .id = r->id,
        .tid = (uint32_t)r->tid,
        .creator_id = r->creator_id,
        .stack_id = r->stack_id,
        .start_ns = r->start_ns,
        .end_ns = end_ns,
        .cpu_ns = cpu_ns,
        .flags = r->flags,
        .reserved = 0,
    };
    memcpy(w.name, r->name, sizeof w.name); /* may race a rename: resent then */
    ppx_thread_name_normalize(w.name);
    if (s != NULL && !ppx_stream_send_stack(enc, s))
        return false;
    return ppx_emit(enc, WIRE_THREAD, &w, sizeof w, NULL, 0, NULL, 0);
}

bool ppx_threads_send(struct ppx_encoder *enc, uint64_t gen, uint32_t n_stacks)
{
    bool final = enc->final;
    for (struct ppx_thread_record *r = ppx_threads_list(); r != NULL; r = r->next) {
        struct ppx_stack *s = NULL;
        if (r->stack_id != WIRE_NO_ID) {
            /* a stack interned after this flush's mapping scan waits */
            s = r->stack_id < n_stacks ? ppx_stack_get(r->stack_id) : NULL;
            if (s == NULL)
                continue;
        }
        /* changed, then the figures: a change after this is sent next time */
        unsigned changed = atomic_exchange_explicit(&r->changed, 0, memory_order_acq_rel);
        uint64_t end_ns = atomic_load_explicit(&r->end_ns, memory_order_acquire);
        if (end_ns == 0) {
            poll_cpu(r);
            end_ns = atomic_load_explicit(&r->end_ns, memory_order_acquire);
        }
        uint64_t cpu_ns = atomic_load_explicit(&r->cpu_ns, memory_order_relaxed);
        bool fresh = r->sent_generation != gen;
        bool cpu_due =
            cpu_ns >= r->sent_cpu_ns + CPU_RESEND_NS || (final && cpu_ns != r->sent_cpu_ns);
        /* The process ends (exit or exec): so do the threads still running,
         * though no destructor of theirs will say so (the main thread's
         * never runs at exit). Only in what is sent: after a failed exec
         * they run on, and the next connection sends them afresh. */
        bool ends_now = final && end_ns == 0;
        if (ends_now)
            end_ns = ppx_realtime_ns();
        if (!fresh && !changed && !cpu_due && !ends_now)
            continue;
        if (!emit_thread(enc, r, s, end_ns, cpu_ns)) {
            if (changed)
                ppx_thread_mark_changed(r);
            return false;
        }
        r->sent_generation = gen;
        r->sent_cpu_ns = cpu_ns;
    }
    return true;
}
