/* Call stacks of sampled allocations and I/O calls, with libunwind's
 * unw_backtrace; from a signal: unwind_signal.c.
 *
 * Caching policy. unw_backtrace's fast path keeps its own per-thread frame
 * cache whatever the policy; the policy only governs the cache of parsed
 * CFI used on that cache's misses. Debian's libunwind 1.6 is built without
 * --enable-per-thread-cache, so UNW_CACHE_PER_THREAD there means one global
 * cache used without its lock (a data race), and UNW_CACHE_GLOBAL holds that
 * lock across dl_iterate_phdr (a deadlock against a thread that allocates
 * while holding the loader lock; fixed upstream by commit 9538c8f).
 * UNW_CACHE_NONE takes neither path: a miss re-parses the CFI, then the
 * frame cache has it. */
#include "stack.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <string.h>

static atomic_bool unwind_ready;
static atomic_bool unwind_disabled;

/* Which threads are inside unw_backtrace right now, read by the child after
 * fork. Each thread owns a slot (its own cache line) and marks it with plain
 * stores: a locked add per unwind cost more than the rest of a sample's
 * bookkeeping. Threads beyond the slots share the last one, atomically. */
#define INSIDE_SLOTS 1024u
static struct {
    _Alignas(PPX_CACHELINE) atomic_uint n;
} inside_unwinder[INSIDE_SLOTS];
static atomic_uint next_inside_slot;

bool ppx_unwind_usable(void)
{
    return atomic_load_explicit(&unwind_ready, memory_order_acquire) &&
           !atomic_load_explicit(&unwind_disabled, memory_order_relaxed);
}

bool ppx_unwind_disabled(void)
{
    return atomic_load_explicit(&unwind_disabled, memory_order_relaxed);
}

void ppx_unwind_init(void)
{
    ppx_loader_lock_locate();
    ppx_code_ranges_init();
    /* This runs libunwind's one-time setup, here, under our guard: its pipe
     * goes through the pipe2() hook (unwind_pipe.c). (No warm-up unwind: the
     * first one costs a 256 KiB frame cache, which a process that never
     * samples should not pay.) */
    ppx_unwind_pipe_resolve();
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_NONE);
    ppx_coroutines_init();
    atomic_store_explicit(&unwind_ready, true, memory_order_release);
}

void ppx_unwind_disable(const char *why)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    atomic_store_explicit(&unwind_disabled, true, memory_order_relaxed);
    ppx_log_once(&said, why, "; recording only the caller of malloc from now on", NULL, NULL);
}

void ppx_unwind_reset_child(void)
{
    ppx_unwind_pipe_reset_child();
    unsigned used = atomic_load_explicit(&next_inside_slot, memory_order_relaxed);
    bool inside = false;
    for (unsigned i = 0; i < INSIDE_SLOTS && i < used; i++) {
        if (atomic_load_explicit(&inside_unwinder[i].n, memory_order_relaxed) != 0)
            inside = true;
        atomic_store_explicit(&inside_unwinder[i].n, 0, memory_order_relaxed);
    }
    if (ppx_loader_lock_reset_child())
        inside = true;
    if (inside)
        atomic_store_explicit(&unwind_disabled, true, memory_order_relaxed);
}
/* Marks this thread as inside libunwind (see inside_unwinder). Also from
 * the SIGPROF handler: a lock-free add, no allocation. */
void ppx_unwinder_enter(struct ppx_tls *t)
{
    if (PPX_UNLIKELY(t->unwind_slot == 0)) {
        unsigned slot = atomic_fetch_add_explicit(&next_inside_slot, 1, memory_order_relaxed);
        t->unwind_slot = 1 + (slot < INSIDE_SLOTS - 1 ? slot : INSIDE_SLOTS - 1);
    }
    atomic_uint *inside = &inside_unwinder[t->unwind_slot - 1].n;
    if (PPX_UNLIKELY(t->unwind_slot == INSIDE_SLOTS))
        atomic_fetch_add_explicit(inside, 1, memory_order_relaxed);
    else
        atomic_store_explicit(inside, 1, memory_order_relaxed);
    /* the mark must be in memory before libunwind takes any lock */
    atomic_signal_fence(memory_order_seq_cst);
}

void ppx_unwinder_leave(struct ppx_tls *t)
{
    atomic_signal_fence(memory_order_seq_cst);
    atomic_uint *inside = &inside_unwinder[t->unwind_slot - 1].n;
    if (PPX_UNLIKELY(t->unwind_slot == INSIDE_SLOTS))
        atomic_fetch_sub_explicit(inside, 1, memory_order_relaxed);
    else
        atomic_store_explicit(inside, 0, memory_order_relaxed);
}

static int backtrace_tracked(struct ppx_tls *t, uintptr_t *pcs, int size)
{
    ppx_unwinder_enter(t);
    int n = unw_backtrace((void **)pcs, size);
    ppx_unwinder_leave(t);
    return n;
}

/* Walks checked against unw_backtrace on this thread: the first few, then
 * one in VERIFY_EVERY. */
#define VERIFY_FIRST 16u
#define VERIFY_EVERY 1024u
static PPX_TLS unsigned walks;

/* Whether unw_backtrace agrees with the n frames in pcs (from the caller
 * of ppx_unwind up, at most size): its own walk starts in here, so pcs[0]
 * is looked for among its first frames. */
static bool verified(struct ppx_tls *t, const uintptr_t *pcs, unsigned n, unsigned size)
{
    uintptr_t check[96]; /* a deeper stack is compared up to here */
    if (size > sizeof check / sizeof check[0])
        size = sizeof check / sizeof check[0];
    int m = backtrace_tracked(t, check, (int)size);
    for (int start = 0; start < m && start < (int)PPX_UNWIND_SLACK; start++) {
        if (check[start] != pcs[0])
            continue;
        unsigned have = (unsigned)(m - start);
        unsigned common = have < n ? have : n;
        if (memcmp(check + start, pcs, common * sizeof *pcs) != 0)
            return false;
        /* equal lengths, unless one of the walks was cut at size */
        return have == n || (have > n && n >= size) || (have < n && (unsigned)m >= size);
    }
    return false;
}

/* From the caller of ppx_unwind up: the frame cache (frame_cache.c), else
 * a learning walk, else unw_backtrace. Returns the frames found, or -1 to
 * fall back. fp is ppx_unwind's frame (it keeps a frame pointer). */
static int walk_cached(struct ppx_tls *t, uintptr_t *pcs, unsigned size, const uintptr_t *fp)
{
    uintptr_t sp = (uintptr_t)(fp + 2), rbp = fp[0], ra = fp[1];
    bool learnable;
    unsigned n = ppx_frames_walk(pcs, size, sp, rbp, ra, &learnable);
    if (n == 0) {
        if (!learnable)
            return -1;
        ppx_unwinder_enter(t);
        n = ppx_frames_learn(pcs, size, sp);
        ppx_unwinder_leave(t);
        return n == 0 ? -1 : (int)n;
    }
    unsigned w = ++walks;
    if ((w <= VERIFY_FIRST || w % VERIFY_EVERY == 0) && !verified(t, pcs, n, size)) {
        ppx_frames_disable("the frame cache and unw_backtrace disagree on a stack");
        return -1;
    }
    return (int)n;
}

/* Keeps a frame pointer (__builtin_frame_address): the frame cache's walk
 * starts from this frame's CFA, its caller's rbp and return address. */
__attribute__((noinline)) unsigned ppx_unwind(uintptr_t *pcs, unsigned max_depth, const void *ret)
{
    int n = 0;
    if (PPX_UNLIKELY(!ppx_stack_room())) {
        pcs[0] = (uintptr_t)ret; /* no room for a walk: the caller alone */
        return 1;
    }
    if (ppx_unwind_usable()) {
        struct ppx_tls *t = &ppx_tls;
        unsigned size = max_depth + PPX_UNWIND_SLACK;
        const uintptr_t *fp = __builtin_frame_address(0);
        n = -1;
        if (ppx_frames_usable() && fp[1] == (uintptr_t)__builtin_return_address(0))
            n = walk_cached(t, pcs, size, fp);
        if (n < 0)
            n = backtrace_tracked(t, pcs, (int)size);
    }
    if (n < 0)
        n = 0;
    /* Our frames come first; the caller of the hook starts at ret. */
    unsigned start = 0, count = ppx_coroutine_cut(pcs, (unsigned)n);
    while (start < count && start < PPX_UNWIND_SLACK && pcs[start] != (uintptr_t)ret)
        start++;
    if (start == count || start == PPX_UNWIND_SLACK) {
        start = 0; /* ret not seen (a tail call?): drop what lies in our text */
        while (start < count && ppx_unwind_own_pc(pcs[start]))
            start++;
    }
    unsigned depth = count - start;
    if (depth > max_depth)
        depth = max_depth;
    if (depth == 0) {
        pcs[0] = (uintptr_t)ret;
        return 1;
    }
    if (start != 0)
        memmove(pcs, pcs + start, depth * sizeof *pcs);
    return depth;
}
