/* Sampled blocks that are still live: address -> (stack, size), so that
 * free() can credit the right stack with the right size.
 *
 * Sharded open-addressing tables (linear probing, backward-shift deletion,
 * no tombstones), each behind its own spinlock, grown with fresh pages.
 * In exact mode every malloc and free comes here: a critical section is a
 * probe of a few slots, shorter than a pthread mutex's own lock and unlock
 * (7.5% of window_bench's time under PPX_SAMPLE_RATE=1), and a shard is
 * nearly always taken by the one thread whose heap region it covers. In
 * front of them the live filter (heap.h): one bit per 512-byte grain, so
 * freeing an unsampled block (nearly all of them) costs one relaxed load of
 * a line that stays in cache, and never touches a lock.
 *
 * Bits cannot count, and a grain may hold several sampled blocks: a count
 * per grain sits behind them, read and written only here, under the lock of
 * the shard that owns the grain, and the bit follows it (set on 0 -> 1,
 * cleared on 1 -> 0). Ordering: the insert sets the bit before malloc
 * returns the block, so any thread the program hands the block to (with
 * whatever ordering it uses) reads the bit set, or a later value of its
 * word; a later value clears that bit only once the count is 0, under the
 * same lock, so after this block's remove. */
#include "heap.h"

#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#define LIVE_SHARD_BITS 6
#define LIVE_SHARDS (1u << LIVE_SHARD_BITS)
#define LIVE_INITIAL_SLOTS 128u /* 3 KiB: one page */

_Alignas(4096) _Atomic uint64_t ppx_live_filter[(1u << PPX_FILTER_BITS) / PPX_FILTER_WORD_BITS];
/* Sampled live blocks starting in each grain (modulo 4 GiB): owned by the
 * shard that owns the grain (shard_of), under its lock. Zero pages until
 * touched; only inserts and removes touch them. A count that reaches
 * COUNT_STUCK stays there, its bit set for good: a false positive at worst
 * (it takes 255 live sampled blocks starting in one grain, or in grains
 * 4 GiB apart). */
#define COUNT_STUCK UINT8_MAX
_Alignas(4096) static uint8_t live_counts[1u << PPX_FILTER_BITS];

struct live_shard {
    atomic_uint lock;             /* 1 while held */
    struct ppx_live_entry *slots; /* ptr == 0: empty */
    size_t mask;                  /* capacity - 1 */
    size_t count;
} __attribute__((aligned(PPX_CACHELINE)));

static struct live_shard shards[LIVE_SHARDS];

/* Shards by 4 MiB region, not by block: allocators hand each thread its own
 * regions (glibc's per-thread arenas, jemalloc's and tcmalloc's caches), so a
 * thread's blocks share a shard whose lock and slots stay in that thread's
 * cache, instead of every operation pulling a line from another core.
 * Regions 4 GiB apart share a shard, as their grains share filter bits: one
 * lock then covers a grain's count and its filter word. */
#define LIVE_REGION_SHIFT 22
#define LIVE_REGIONS (1u << (PPX_FILTER_BITS + PPX_FILTER_GRAIN_SHIFT - LIVE_REGION_SHIFT))
_Static_assert(LIVE_REGION_SHIFT >= PPX_FILTER_GRAIN_SHIFT + 6,
               "a filter word's grains lie in one region");
static inline struct live_shard *shard_of(uintptr_t ptr)
{
    uint64_t region = (ptr >> LIVE_REGION_SHIFT) & (LIVE_REGIONS - 1);
    return &shards[ppx_mix64(region) >> (64 - LIVE_SHARD_BITS)];
}

/* The bootstrap arena's grains keep their bits for good (bootstrap.c). */
static bool bootstrap_grain(size_t i)
{
    size_t first = ppx_live_filter_index((uintptr_t)ppx_bootstrap_arena);
    size_t grains = PPX_BOOTSTRAP_BYTES >> PPX_FILTER_GRAIN_SHIFT;
    return ((i - first) & ((1u << PPX_FILTER_BITS) - 1)) < grains;
}

/* Under the lock of shard_of(ptr). */
static void count_grain(uintptr_t ptr)
{
    size_t i = ppx_live_filter_index(ptr);
    if (ppx_live_all || live_counts[i] == COUNT_STUCK)
        return;
    if (live_counts[i]++ == 0)
        atomic_fetch_or_explicit(&ppx_live_filter[i / PPX_FILTER_WORD_BITS],
                                 UINT64_C(1) << (i % PPX_FILTER_WORD_BITS), memory_order_relaxed);
}

static void uncount_grain(uintptr_t ptr)
{
    size_t i = ppx_live_filter_index(ptr);
    if (ppx_live_all || live_counts[i] == COUNT_STUCK)
        return;
    if (--live_counts[i] == 0 && !bootstrap_grain(i))
        atomic_fetch_and_explicit(&ppx_live_filter[i / PPX_FILTER_WORD_BITS],
                                  ~(UINT64_C(1) << (i % PPX_FILTER_WORD_BITS)),
                                  memory_order_relaxed);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* The holder may have been preempted (more threads than cores): after a
 * short spin the waiter gives its core away. A signal handler never waits
 * here for its own thread (ppx_sample_forget checks holds_lock). */
static __attribute__((noinline)) void spin_wait(atomic_uint *lock)
{
    unsigned spins = 0;
    do {
        while (atomic_load_explicit(lock, memory_order_relaxed) != 0) {
            if (++spins < 128)
                cpu_relax();
            else
                sched_yield();
        }
    } while (atomic_exchange_explicit(lock, 1, memory_order_acquire) != 0);
}

static inline void spin_lock(atomic_uint *lock)
{
    if (PPX_UNLIKELY(atomic_exchange_explicit(lock, 1, memory_order_acquire) != 0))
        spin_wait(lock);
}

static inline void shard_lock(struct live_shard *s)
{
    ppx_tls.holds_lock++;
    spin_lock(&s->lock);
}

static inline void shard_unlock(struct live_shard *s)
{
    PPX_CHECK(atomic_load_explicit(&s->lock, memory_order_relaxed) == 1);
    atomic_store_explicit(&s->lock, 0, memory_order_release);
    ppx_tls.holds_lock--;
}

/* An entry's home slot: Fibonacci hashing, one multiply (every free of
 * exact mode computes it for the entries a deletion shifts). Bits 32 and up
 * of the product depend on every lower bit of the address. */
static inline size_t slot_home(uintptr_t ptr, size_t mask)
{
    return (size_t)(((uint64_t)ptr * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & mask;
}

bool ppx_live_all;
uintptr_t ppx_sampled_mask; /* 0 until ppx_live_init: the filter decides */

bool ppx_live_init(bool aligned_blocks)
{
    ppx_live_all = ppx_config.sample_rate <= 1;
    if (aligned_blocks && !ppx_live_all)
        ppx_sampled_mask = PPX_SAMPLED_ALIGN - 1;
    for (unsigned i = 0; i < LIVE_SHARDS; i++)
        atomic_store_explicit(&shards[i].lock, 0, memory_order_relaxed);
    return true;
}

static size_t slots_bytes(size_t capacity)
{
    return capacity * sizeof(struct ppx_live_entry);
}

static bool grow(struct live_shard *s)
{
    size_t old_cap = s->slots == NULL ? 0 : s->mask + 1;
    size_t cap = old_cap == 0 ? LIVE_INITIAL_SLOTS : old_cap * 2;
    struct ppx_live_entry *slots = ppx_pages_alloc(slots_bytes(cap));
    if (slots == NULL)
        return false;
    for (size_t i = 0; i < old_cap; i++) {
        const struct ppx_live_entry *e = &s->slots[i];
        if (e->ptr == 0)
            continue;
        size_t j = slot_home(e->ptr, cap - 1);
        while (slots[j].ptr != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = *e;
    }
    ppx_pages_free(s->slots, slots_bytes(old_cap));
    /* atomic stores: ppx_live_prefetch reads them without the lock */
    __atomic_store_n(&s->slots, slots, __ATOMIC_RELAXED);
    __atomic_store_n(&s->mask, cap - 1, __ATOMIC_RELAXED);
    return true;
}

/* A hint, without the lock: the table may grow meanwhile (a prefetch of
 * an old array's address never faults). The grain's count and filter word
 * too: indexed by address, on a heap larger than the caches they were the
 * insert's misses. */
void ppx_live_prefetch(uintptr_t ptr)
{
    const struct live_shard *s = shard_of(ptr);
    const struct ppx_live_entry *slots = __atomic_load_n(&s->slots, __ATOMIC_RELAXED);
    size_t mask = __atomic_load_n(&s->mask, __ATOMIC_RELAXED);
    if (slots != NULL)
        __builtin_prefetch(&slots[slot_home(ptr, mask)], 1);
    if (!ppx_live_all) {
        size_t i = ppx_live_filter_index(ptr);
        __builtin_prefetch(&live_counts[i], 1);
        __builtin_prefetch(&ppx_live_filter[i / PPX_FILTER_WORD_BITS], 1);
    }
}

bool ppx_live_insert(const struct ppx_live_entry *e, struct ppx_live_entry *stale)
{
    struct live_shard *s = shard_of(e->ptr);
    stale->ptr = 0;
    shard_lock(s);
    /* at most half full: short runs for the probe and the deletion's shift */
    if (s->slots == NULL || (s->count + 1) * 2 > s->mask + 1) {
        if (!grow(s)) {
            shard_unlock(s);
            return false;
        }
    }
    size_t i = slot_home(e->ptr, s->mask);
    for (;;) {
        struct ppx_live_entry *slot = &s->slots[i];
        if (slot->ptr == 0) {
            *slot = *e;
            s->count++;
            count_grain(e->ptr);
            break;
        }
        if (slot->ptr == e->ptr) {
            /* Its free went unseen (a path we do not hook); the block is gone. */
            *stale = *slot;
            *slot = *e;
            break;
        }
        i = (i + 1) & s->mask;
    }
    shard_unlock(s);
    return true;
}

/* Whether k lies cyclically in (lo, hi]. */
static inline bool cyclic_between(size_t lo, size_t k, size_t hi)
{
    return lo <= hi ? (lo < k && k <= hi) : (k > lo || k <= hi);
}

bool ppx_live_remove(uintptr_t ptr, struct ppx_live_entry *out)
{
    struct live_shard *s = shard_of(ptr);
    /* the slot, count and filter lines are fetched while the lock's is
     * (exact mode touches the slot alone: nothing to overlap) */
    if (!ppx_live_all)
        ppx_live_prefetch(ptr);
    shard_lock(s);
    if (s->slots == NULL) {
        shard_unlock(s);
        return false;
    }
    size_t mask = s->mask;
    size_t i = slot_home(ptr, mask);
    for (;;) {
        if (s->slots[i].ptr == 0) {
            shard_unlock(s);
            return false;
        }
        if (s->slots[i].ptr == ptr)
            break;
        i = (i + 1) & mask;
    }
    *out = s->slots[i];
    /* Backward-shift deletion: pull later entries of the run into the hole
     * unless they already sit between their home slot and the hole. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (s->slots[j].ptr == 0)
            break;
        size_t home = slot_home(s->slots[j].ptr, mask);
        if (!cyclic_between(i, home, j)) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i].ptr = 0;
    s->count--;
    uncount_grain(ptr);
    shard_unlock(s);
    return true;
}

void ppx_live_lock_all(void)
{
    for (unsigned i = 0; i < LIVE_SHARDS; i++)
        spin_lock(&shards[i].lock);
}

void ppx_live_unlock_all(void)
{
    for (unsigned i = 0; i < LIVE_SHARDS; i++)
        atomic_store_explicit(&shards[i].lock, 0, memory_order_release);
}

/* The child does not own the parent's blocks' history: it starts with an
 * empty table (blocks inherited from the parent are untracked). */
void ppx_live_reset_child(void)
{
    for (unsigned i = 0; i < LIVE_SHARDS; i++) {
        struct live_shard *s = &shards[i];
        atomic_store_explicit(&s->lock, 0, memory_order_relaxed);
        if (s->slots != NULL)
            ppx_pages_free(s->slots, slots_bytes(s->mask + 1));
        __atomic_store_n(&s->slots, NULL, __ATOMIC_RELAXED);
        __atomic_store_n(&s->mask, 0, __ATOMIC_RELAXED);
        s->count = 0;
    }
    /* Anonymous pages: dropping them reads back zero, without touching them. */
    if (madvise(live_counts, sizeof live_counts, MADV_DONTNEED) != 0)
        memset(live_counts, 0, sizeof live_counts);
    if (madvise(ppx_live_filter, sizeof ppx_live_filter, MADV_DONTNEED) != 0)
        memset(ppx_live_filter, 0, sizeof ppx_live_filter);
    ppx_bootstrap_mark_filter();
}
