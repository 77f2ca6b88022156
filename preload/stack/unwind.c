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

unsigned ppx_unwind(uintptr_t *pcs, unsigned max_depth, const void *ret)
{
    int n = 0;
    if (PPX_UNLIKELY(!ppx_stack_room())) {
        pcs[0] = (uintptr_t)ret; /* no room for a walk: the caller alone */
        return 1;
    }
    if (ppx_unwind_usable())
        n = backtrace_tracked(&ppx_tls, pcs, (int)(max_depth + PPX_UNWIND_SLACK));
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
