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

/* Whether unw_backtrace agrees with the n frames in pcs (from the caller
 * of fp's function up, cut at size): 1 yes, -1 no, 0 cannot tell (its walk
 * was cut first). Its own walk starts in here, below pcs[0], so it is
 * asked for PPX_UNWIND_SLACK frames more and pcs[0] looked for among its
 * first ones. */
static int verified(struct ppx_tls *t, const uintptr_t *pcs, unsigned n, unsigned size)
{
    uintptr_t *check = t->buffers->verify_pcs;
    unsigned cap = size + PPX_UNWIND_SLACK;
    if (cap > WIRE_MAX_DEPTH + 2 * PPX_UNWIND_SLACK)
        cap = WIRE_MAX_DEPTH + 2 * PPX_UNWIND_SLACK;
    int m = backtrace_tracked(t, check, (int)cap);
    for (int start = 0; start < m && start < (int)PPX_UNWIND_SLACK; start++) {
        if (check[start] != pcs[0])
            continue;
        unsigned have = (unsigned)(m - start);
        bool theirs_cut = (unsigned)m >= cap, ours_cut = n >= size;
        unsigned common = have < n ? have : n;
        if (memcmp(check + start, pcs, common * sizeof *pcs) != 0)
            return -1;
        if (have < n)
            return theirs_cut ? 0 : -1;
        return have == n || ours_cut ? 1 : -1;
    }
    return -1;
}

/* From the caller of fp's function up: the frame cache (frame_cache.c),
 * else a learning walk. Returns the frames found, or -1 to fall back to
 * unw_backtrace. fp is a frame with a frame pointer; reads (or NULL) gets
 * the words the walk read, its n set past its cap unless the walk came
 * from the cache alone. */
static int walk_cached(struct ppx_tls *t, uintptr_t *pcs, unsigned size, const uintptr_t *fp,
                       struct ppx_walk_reads *reads)
{
    uintptr_t sp = (uintptr_t)(fp + 2), rbp = fp[0], ra = fp[1];
    bool learnable, unconfirmed;
    unsigned n = ppx_frames_walk(t, pcs, size, sp, rbp, ra, &learnable, &unconfirmed, reads);
    if (n == 0) {
        if (reads != NULL)
            reads->n = reads->cap + 1;
        if (!learnable)
            return -1;
        ppx_unwinder_enter(t);
        n = ppx_frames_learn(pcs, size, sp);
        ppx_unwinder_leave(t);
        return n == 0 ? -1 : (int)n;
    }
    if (unconfirmed && t->buffers != NULL) {
        int agree = verified(t, pcs, n, size);
        if (agree < 0) {
            ppx_frames_disable("the frame cache and unw_backtrace disagree on a stack");
            if (reads != NULL)
                reads->n = reads->cap + 1;
            return -1;
        }
        if (agree > 0)
            ppx_frames_confirm(t, pcs, n);
    }
    return (int)n;
}

/* The hook's caller and up, in pcs; fp: the frame of ppx_unwind or
 * ppx_stack_sample (either keeps a frame pointer: __builtin_frame_address),
 * NULL if its return address did not check out. */
static unsigned unwind_from(struct ppx_tls *t, uintptr_t *pcs, unsigned max_depth, const void *ret,
                            const uintptr_t *fp, struct ppx_walk_reads *reads)
{
    int n = 0;
    if (PPX_UNLIKELY(!ppx_stack_room())) {
        pcs[0] = (uintptr_t)ret; /* no room for a walk: the caller alone */
        return 1;
    }
    if (ppx_unwind_usable()) {
        unsigned size = max_depth + PPX_UNWIND_SLACK;
        n = -1;
        if (fp != NULL && ppx_frames_usable())
            n = walk_cached(t, pcs, size, fp, reads);
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

__attribute__((noinline)) unsigned ppx_unwind(uintptr_t *pcs, unsigned max_depth, const void *ret)
{
    const uintptr_t *fp = __builtin_frame_address(0);
    if (fp[1] != (uintptr_t)__builtin_return_address(0))
        fp = NULL;
    return unwind_from(&ppx_tls, pcs, max_depth, ret, fp, NULL);
}

/* ---- memos of recent walks ----
 * Under exact mode a thread samples the same few stacks over and over, and
 * each walk reads the same words from the same addresses. A memo keeps a
 * walk's start (its caller's CFA and return address, rbp if the walk
 * used it, and ret), every
 * word it read with its address, and the stack it interned. A sample whose
 * start matches and whose stack still holds each of those words would walk
 * exactly that way again (the rules are the same while the frame cache's
 * epoch is): its stack is the memo's, for a few loads. */
#define MEMO_READS 24
#define MEMOS 16
/* Sets of four: a thread's few hot stacks (window_bench's four call depths)
 * sharing a set of two evicted each other, one sample in eight walked. */
#define MEMO_WAYS 4
struct walk_memo {
    uintptr_t sp, rbp, ra, ret;
    unsigned epoch, n_reads;
    unsigned owner;          /* thread_serial of the thread that walked */
    bool rbp_used;           /* the walk depended on rbp */
    unsigned stamp;          /* memo_clock when last used */
    struct ppx_stack *stack; /* NULL: empty */
    uintptr_t addr[MEMO_READS], val[MEMO_READS];
};
_Static_assert(MEMOS * sizeof(struct walk_memo) <= PPX_WALK_MEMO_BYTES, "memos fit the buffer");

/* Buffers go to another thread once theirs ends, and its stack may lie
 * where the old one did but end lower: a memo is only for the thread that
 * walked (its addresses above sp are then on its live stack). */
static PPX_TLS unsigned thread_serial;
static PPX_TLS unsigned memo_clock;
static atomic_uint next_serial;
static inline unsigned this_thread_serial(void)
{
    if (PPX_UNLIKELY(thread_serial == 0)) {
        unsigned n;
        do {
            n = atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed) + 1;
        } while (n == 0);
        thread_serial = n;
    }
    return thread_serial;
}

static inline bool memo_holds(const struct walk_memo *m)
{
    for (unsigned i = 0; i < m->n_reads; i++) {
        if (*(const uintptr_t *)m->addr[i] != m->val[i])
            return false;
    }
    return true;
}

__attribute__((noinline)) struct ppx_stack *ppx_stack_sample(struct ppx_tls *t, unsigned max_depth,
                                                             const void *ret)
{
    const uintptr_t *fp = __builtin_frame_address(0);
    uintptr_t sp = (uintptr_t)(fp + 2), rbp = fp[0], ra = fp[1];
    unsigned epoch = ppx_frames_epoch();
    if (ra != (uintptr_t)__builtin_return_address(0) || epoch == 0 || !ppx_stack_room() ||
        !ppx_unwind_usable())
        return ppx_stack_intern(t, t->pcs, unwind_from(t, t->pcs, max_depth, ret, NULL, NULL));
    struct walk_memo *set = (struct walk_memo *)(void *)t->buffers->walk_memo +
                            (ppx_mix64(sp ^ ra) >> 32) % (MEMOS / MEMO_WAYS) * MEMO_WAYS;
    unsigned owner = this_thread_serial();
    for (struct walk_memo *m = set; m < set + MEMO_WAYS; m++) {
        if (m->stack != NULL && m->sp == sp && (m->rbp == rbp || !m->rbp_used) && m->ra == ra &&
            m->ret == (uintptr_t)ret && m->epoch == epoch && m->owner == owner && memo_holds(m)) {
            m->stamp = ++memo_clock;
            return m->stack;
        }
    }
    /* the way used least recently goes */
    struct walk_memo *m = set;
    for (struct walk_memo *w = set + 1; w < set + MEMO_WAYS; w++)
        if (w->stamp < m->stamp)
            m = w;
    m->stack = NULL;
    struct ppx_walk_reads reads = {m->addr, m->val, 0, MEMO_READS, false}; /* filled in place */
    unsigned depth = unwind_from(t, t->pcs, max_depth, ret, fp, &reads);
    struct ppx_stack *s = ppx_stack_intern(t, t->pcs, depth);
    if (s != NULL && reads.n <= MEMO_READS) {
        m->sp = sp;
        m->rbp = rbp;
        m->ra = ra;
        m->ret = (uintptr_t)ret;
        m->epoch = epoch;
        m->n_reads = reads.n;
        m->rbp_used = reads.rbp_used;
        m->owner = owner;
        m->stamp = ++memo_clock;
        m->stack = s;
    }
    return s;
}
