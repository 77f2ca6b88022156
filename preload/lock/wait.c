/* One wait for a lock, a condition variable or a semaphore, and one
 * release of a lock others waited for: the block and mutex events, as
 * Go's runtime samples them (runtime/mprof.go, blockevent and
 * mutexevent), and the table of waiters that tells an unlocking thread
 * how long others waited for it.
 *
 * The mutex profile charges a wait to the thread that made it last: each
 * release of a lock with waiters pays the waiting they did since they
 * began, or since the previous release, whichever is later (a reader of
 * an rwlock pays for the time the writer waited while it held it). The
 * little a waiter waits after the last release (being woken, a timed
 * wait that gave up) is paid by nobody. */
#include "lock.h"

#include <errno.h>
#include <sched.h>

atomic_bool ppx_lock_active;
struct ppx_lock_slot ppx_lock_slots[PPX_LOCK_SLOTS] __attribute__((aligned(PPX_CACHELINE)));

/* Waiters the mutex profile could not follow (their slot was another
 * lock's); reported by nothing but a debugger, kept for one. */
static _Atomic uint64_t unfollowed_waiters;
/* The sampling decisions' random numbers, per thread. */
static PPX_TLS uint64_t lock_rng;

void ppx_lock_init(bool tables)
{
    atomic_store(&ppx_lock_active,
                 tables && (ppx_config.block_rate != 0 || ppx_config.mutex_fraction != 0));
}

static void slot_lock(struct ppx_lock_slot *s)
{
    unsigned spins = 0;
    while (atomic_exchange_explicit(&s->spin, 1, memory_order_acquire) != 0) {
        while (atomic_load_explicit(&s->spin, memory_order_relaxed) != 0) {
            /* The holder runs a handful of instructions; unless it was
             * preempted, which only the scheduler undoes. */
            if (++spins > 64)
                sched_yield();
#if defined(__x86_64__) || defined(__i386__)
            else
                __builtin_ia32_pause();
#endif
        }
    }
}

static void slot_unlock(struct ppx_lock_slot *s)
{
    atomic_store_explicit(&s->spin, 0, memory_order_release);
}

static uint64_t random_below(uint64_t n)
{
    if (PPX_UNLIKELY(lock_rng == 0))
        lock_rng = ppx_random_seed(&lock_rng) | 1;
    return ppx_random_next(&lock_rng) % n;
}

/* Unwinds from ret and adds the event to the stack's figures; guard held. */
static void record(struct ppx_tls *t, enum ppx_contention_profile p, uint64_t contentions,
                   uint64_t delay_ns, const void *ret)
{
    if (!ppx_thread_buffers_ensure(t)) {
        ppx_note_lost("out of memory for per-thread buffers");
        return;
    }
    unsigned depth = ppx_unwind(t->pcs, ppx_config.max_depth, ret);
    struct ppx_stack *s = ppx_stack_intern(t, t->pcs, depth);
    if (s == NULL) {
        ppx_note_lost("out of memory for the stack table");
        return;
    }
    ppx_contention_add(p, s, contentions, delay_ns);
}

void ppx_lock_wait_begin(struct ppx_lock_wait *w, const void *lock, enum ppx_lock_kind kind)
{
    w->lock = lock;
    w->registered = false;
    w->start_ns = ppx_monotonic_ns();
    if (kind != PPX_LOCK_HELD || ppx_config.mutex_fraction == 0)
        return;
    struct ppx_tls *t = &ppx_tls;
    t->guard++;
    struct ppx_lock_slot *s = ppx_lock_slot_of(lock);
    slot_lock(s);
    uint32_t n = atomic_load_explicit(&s->waiters, memory_order_relaxed);
    if (n == 0) {
        atomic_store_explicit(&s->addr, (uintptr_t)lock, memory_order_relaxed);
        s->base_sum = 0;
        s->released_ns = 0;
    }
    if (atomic_load_explicit(&s->addr, memory_order_relaxed) == (uintptr_t)lock) {
        s->base_sum += w->start_ns > s->released_ns ? w->start_ns : s->released_ns;
        atomic_store_explicit(&s->waiters, n + 1, memory_order_relaxed);
        w->registered = true;
    } else {
        atomic_fetch_add_explicit(&unfollowed_waiters, 1, memory_order_relaxed);
    }
    slot_unlock(s);
    t->guard--;
}

/* Go's blockevent: a wait of rate ns or more is one contention of its
 * length; a shorter one is taken with probability wait/rate and stands
 * for rate/wait contentions of rate ns in all (the debiasing of Go 1.17,
 * CL 299991). */
static void block_event(struct ppx_tls *t, uint64_t wait_ns, const void *ret)
{
    uint64_t rate = ppx_config.block_rate;
    if (rate == 0)
        return;
    if (wait_ns == 0)
        wait_ns = 1;
    if (wait_ns >= rate) {
        record(t, PPX_CONTENTION_BLOCK, WIRE_CONTENTION_ONE, wait_ns, ret);
        return;
    }
    if (random_below(rate) >= wait_ns)
        return;
    record(t, PPX_CONTENTION_BLOCK, rate * WIRE_CONTENTION_ONE / wait_ns, rate, ret);
}

void ppx_lock_wait_end(struct ppx_lock_wait *w, bool waited, const void *ret)
{
    int saved_errno = errno;
    uint64_t end = ppx_monotonic_ns();
    struct ppx_tls *t = &ppx_tls;
    t->guard++;
    if (w->registered) {
        struct ppx_lock_slot *s = ppx_lock_slot_of(w->lock);
        slot_lock(s);
        uint64_t base = w->start_ns > s->released_ns ? w->start_ns : s->released_ns;
        uint32_t n = atomic_load_explicit(&s->waiters, memory_order_relaxed);
        PPX_CHECK(n > 0 &&
                  atomic_load_explicit(&s->addr, memory_order_relaxed) == (uintptr_t)w->lock);
        s->base_sum = n > 1 && s->base_sum > base ? s->base_sum - base : 0;
        atomic_store_explicit(&s->waiters, n > 0 ? n - 1 : 0, memory_order_relaxed);
        slot_unlock(s);
    }
    if (waited)
        block_event(t, end > w->start_ns ? end - w->start_ns : 0, ret);
    t->guard--;
    errno = saved_errno;
}

uint64_t ppx_lock_release_begin(const void *lock)
{
    struct ppx_tls *t = &ppx_tls;
    t->guard++;
    uint64_t delay = 0;
    struct ppx_lock_slot *s = ppx_lock_slot_of(lock);
    slot_lock(s);
    uint32_t n = atomic_load_explicit(&s->waiters, memory_order_relaxed);
    if (n != 0 && atomic_load_explicit(&s->addr, memory_order_relaxed) == (uintptr_t)lock) {
        /* read under the flag, so that releases of one lock pay in order */
        uint64_t now = ppx_monotonic_ns();
        if (now < s->released_ns)
            now = s->released_ns;
        unsigned __int128 paid = (unsigned __int128)now * n;
        unsigned __int128 owed = paid > s->base_sum ? paid - s->base_sum : 0;
        delay = owed > UINT64_MAX ? UINT64_MAX : (uint64_t)owed;
        s->base_sum = paid;
        s->released_ns = now;
    }
    slot_unlock(s);
    t->guard--;
    return delay;
}

/* Go's mutexevent: 1 in fraction events, each standing for fraction. */
void ppx_lock_release_end(uint64_t delay_ns, const void *ret)
{
    uint32_t fraction = ppx_config.mutex_fraction;
    if (delay_ns == 0 || fraction == 0)
        return;
    int saved_errno = errno;
    if (fraction == 1 || random_below(fraction) == 0) {
        struct ppx_tls *t = &ppx_tls;
        t->guard++;
        record(t, PPX_CONTENTION_MUTEX, (uint64_t)fraction * WIRE_CONTENTION_ONE,
               delay_ns * fraction, ret);
        t->guard--;
    }
    errno = saved_errno;
}

void ppx_lock_reset_child(void)
{
    /* Only the slots in use: writing all 128 KiB would copy every page of
     * the table into a child that may fork again at once. */
    for (unsigned i = 0; i < PPX_LOCK_SLOTS; i++) {
        struct ppx_lock_slot *s = &ppx_lock_slots[i];
        if (atomic_load_explicit(&s->spin, memory_order_relaxed) == 0 &&
            atomic_load_explicit(&s->waiters, memory_order_relaxed) == 0)
            continue;
        atomic_store_explicit(&s->spin, 0, memory_order_relaxed);
        atomic_store_explicit(&s->waiters, 0, memory_order_relaxed);
        atomic_store_explicit(&s->addr, 0, memory_order_relaxed);
        s->base_sum = 0;
        s->released_ns = 0;
    }
    ppx_contention_reset_child();
}
