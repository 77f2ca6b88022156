/* Which allocations are recorded, and recording them.
 *
 * As Go's runtime does: each thread counts down the bytes it allocates; when
 * the countdown runs out, that allocation is sampled and a new distance is
 * drawn from an exponential distribution with mean PPX_SAMPLE_RATE bytes.
 * Over the bytes a thread allocates, samples thus form a Poisson process,
 * and an allocation of n bytes is sampled with probability 1 - exp(-n/rate),
 * which the collector undoes per stack. With rate 1 the distance is always
 * 0: every allocation, even of 0 bytes, is sampled (exact mode). */
#include "heap.h"

#include <errno.h>
#include <math.h>
#include <time.h>

static void seed(struct ppx_tls *t)
{
    t->rng = ppx_random_seed(t);
    t->seeded = 1;
}

/* Bytes until the next sample: ceil of an exponential variate with mean
 * rate, so that an allocation of n bytes is sampled with P = 1 - exp(-n/rate). */
static uint64_t draw_distance(struct ppx_tls *t)
{
    uint64_t rate = ppx_config.sample_rate;
    if (rate <= 1)
        return 0;
    double u = (double)(ppx_random_next(&t->rng) >> 11) * 0x1.0p-53; /* [0, 1) */
    double d = ceil(-log1p(-u) * (double)rate);
    if (!(d < 9.0e18))
        return UINT64_C(9000000000000000000);
    return (uint64_t)d;
}

static void record(struct ppx_tls *t, void *p, size_t size, const void *ret)
{
    int saved_errno = errno;
    t->guard++;
    if (!ppx_thread_buffers_ensure(t)) {
        ppx_note_lost("out of memory for per-thread buffers");
        t->guard--;
        errno = saved_errno;
        return;
    }
    /* the slot's line arrives while we unwind */
    ppx_live_prefetch((uintptr_t)p);
    /* Unwind first, with no lock held: unwinding may take the loader's lock. */
    struct ppx_stack *s = ppx_stack_sample(t, ppx_config.max_depth, ret);
    if (s != NULL) {
        struct ppx_live_entry e = {(uintptr_t)p, size, s}, stale;
        if (ppx_live_insert(&e, &stale)) {
            if (stale.ptr != 0)
                ppx_stack_count_free(stale.stack, stale.size);
            ppx_stack_count_alloc(s, size);
        } else {
            ppx_note_lost("out of memory for the live-block table");
        }
    } else {
        ppx_note_lost("out of memory for the stack table");
    }
    t->guard--;
    errno = saved_errno;
}

bool ppx_sample_due(size_t size)
{
    struct ppx_tls *t = &ppx_tls;
    if (t->guard != 0)
        return false; /* the profiler's own allocation */
    if (PPX_UNLIKELY(!t->seeded)) {
        seed(t);
        uint64_t distance = draw_distance(t);
        if (size < distance) {
            t->next_sample = distance - size;
            return false;
        }
    }
    t->next_sample = draw_distance(t);
    return atomic_load_explicit(&ppx_enabled, memory_order_acquire);
}

void ppx_sample_record(void *p, size_t size, const void *ret)
{
    record(&ppx_tls, p, size, ret);
}

bool ppx_sample_free(void *p)
{
    if (p == NULL || ppx_bootstrap_owns(p))
        return false;
    struct ppx_live_entry e;
    if (ppx_sample_forget(p, &e))
        ppx_stack_count_free(e.stack, e.size);
    return true;
}

bool ppx_sample_forget(void *p, struct ppx_live_entry *out)
{
    /* A signal handler that frees while this thread is inside one of the
     * tables cannot take the lock again; the entry stays, and is replaced
     * when the address is sampled anew. */
    if (ppx_tls.holds_lock != 0)
        return false;
    int saved_errno = errno;
    bool found = ppx_live_remove((uintptr_t)p, out);
    errno = saved_errno;
    return found;
}

void ppx_sample_restore(const struct ppx_live_entry *e)
{
    int saved_errno = errno;
    struct ppx_live_entry stale;
    if (!ppx_live_insert(e, &stale)) {
        /* Cannot track it any more: better counted freed than leaked forever. */
        ppx_stack_count_free(e->stack, e->size);
        ppx_note_lost("out of memory for the live-block table");
    } else if (stale.ptr != 0) {
        ppx_stack_count_free(stale.stack, stale.size);
    }
    errno = saved_errno;
}

void ppx_sample_count_free(const struct ppx_live_entry *e)
{
    ppx_stack_count_free(e->stack, e->size);
}

void ppx_sampler_reset_thread(void)
{
    ppx_tls.seeded = 0;
    ppx_tls.next_sample = 0;
}
