/* lock: the contention recorder, for the block and mutex profiles (as
 * Go's runtime records them, runtime/mprof.go). The lock hooks
 * (hooks/lock.c) call in here only once a lock was not free at once, or
 * a thread waits on a condition variable or a semaphore; and at unlock,
 * after a load that says whether anyone waits for that lock.
 *
 * block: the time a thread waited, at its own stack (wait.c, sampled at
 * PPX_BLOCK_RATE). mutex: the time threads waited for a mutex or rwlock,
 * at the stack of the thread that held it and let it go (waiters.c keeps,
 * per lock address, who waits since when; sampled 1 in
 * PPX_MUTEX_FRACTION). Both are counted per stack in contention.c and sent
 * as BLOCK_DELTA and MUTEX_DELTA records. */
#ifndef PPX_LOCK_H
#define PPX_LOCK_H

#include "../stream/stream.h"

#pragma GCC visibility push(hidden)

/* The lock hooks record (READY, tables usable, a profile on). Until then,
 * and on a thread inside the profiler, they only pass through. */
extern atomic_bool ppx_lock_active;
/* Sets ppx_lock_active from the configuration; once, from ppx_init. */
void ppx_lock_init(bool tables);

/* ---- waiters.c: who waits for which lock, since when ----
 * A direct-mapped table of PPX_LOCK_SLOTS slots by lock address. A slot
 * belongs to one address while it has waiters; a waiter whose slot
 * belongs to another address is not seen by the mutex profile (counted
 * lost). Each slot's few fields are under a spin flag of its own, taken
 * with the guard held, for a handful of instructions, never while
 * waiting for the program's lock. */
#define PPX_LOCK_SLOTS 4096u /* of 48 bytes */

struct ppx_lock_slot {
    atomic_uint spin;
    _Atomic uint32_t waiters; /* threads waiting for addr */
    _Atomic uintptr_t addr;
    uint64_t released_ns; /* the last release that paid the waiters */
    uint64_t pad;
    /* sum over the waiters of when their unpaid wait began: the later of
     * their start and the last release (ns, CLOCK_MONOTONIC); 128 bits, as
     * thousands of waiters times months of uptime overflow 64 */
    unsigned __int128 base_sum;
};
extern struct ppx_lock_slot ppx_lock_slots[PPX_LOCK_SLOTS];

static inline struct ppx_lock_slot *ppx_lock_slot_of(const void *lock)
{
    uintptr_t a = (uintptr_t)lock;
    return &ppx_lock_slots[((a >> 3) ^ (a >> 15)) & (PPX_LOCK_SLOTS - 1)];
}

/* The unlock hooks' test: whether a waiter may be registered for lock.
 * Two relaxed loads of one cache line; false is the common case. */
static inline bool ppx_lock_maybe_waited(const void *lock)
{
    const struct ppx_lock_slot *s = ppx_lock_slot_of(lock);
    return atomic_load_explicit(&s->waiters, memory_order_relaxed) != 0 &&
           atomic_load_explicit(&s->addr, memory_order_relaxed) == (uintptr_t)lock;
}

/* ---- wait.c: one wait, from the hooks ---- */

enum ppx_lock_kind {
    PPX_LOCK_HELD,  /* a mutex or rwlock: the waiter waits for a holder */
    PPX_LOCK_EVENT, /* a condition variable or semaphore: block profile only */
};

struct ppx_lock_wait {
    const void *lock;
    uint64_t start_ns;
    bool registered; /* counted in the lock's slot */
};

/* Before a wait (the lock was not free): takes the time and, for a lock
 * with a holder, says to the slot that this thread waits. Keeps errno. */
void ppx_lock_wait_begin(struct ppx_lock_wait *w, const void *lock, enum ppx_lock_kind kind);
/* After it: leaves the slot and, if the thread did wait (not a call that
 * failed at once), records the block event at the stack from ret (the
 * return address into the caller of the hook). Keeps errno. */
void ppx_lock_wait_end(struct ppx_lock_wait *w, bool waited, const void *ret);

/* Before the real unlock of lock, when ppx_lock_maybe_waited: the waiting
 * its waiters did since they began or since the last release, in ns (0
 * when none). Keeps errno. */
uint64_t ppx_lock_release_begin(const void *lock);
/* After the real unlock succeeded: records the mutex event of delay ns at
 * the stack from ret. Keeps errno. */
void ppx_lock_release_end(uint64_t delay_ns, const void *ret);

/* ---- contention.c: figures per stack, BLOCK_DELTA and MUTEX_DELTA ---- */

enum ppx_contention_profile { PPX_CONTENTION_BLOCK, PPX_CONTENTION_MUTEX };

/* Adds contentions (in 1/WIRE_CONTENTION_ONE) and delay to s's figures in
 * profile p. Lock-free. */
void ppx_contention_add(enum ppx_contention_profile p, struct ppx_stack *s, uint64_t contentions,
                        uint64_t delay_ns);
/* Whether anything was recorded since start (or fork). */
bool ppx_contention_any(void);
/* Encodes what changed since the last flush on connection gen: the STACK
 * records needed, then BLOCK_DELTA and MUTEX_DELTA, for stacks with id <
 * n_stacks. false when the connection failed. */
bool ppx_contention_send(struct ppx_encoder *enc, uint64_t gen, uint32_t n_stacks);

/* Forked child: the parent's waiters are gone, its figures are not ours. */
void ppx_lock_reset_child(void);
void ppx_contention_reset_child(void);

#pragma GCC visibility pop

#endif
