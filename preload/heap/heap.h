/* heap: the allocation recorder. The bootstrap memory served before the
 * real allocator is known, which allocations are sampled (as Go's runtime
 * does), the table of sampled blocks still live, and the HEAP_DELTA
 * records. The malloc hooks (hooks/malloc.c) call in here. */
#ifndef PPX_HEAP_H
#define PPX_HEAP_H

#include "../stream/stream.h"

#pragma GCC visibility push(hidden)

/* ---- sampler.c ---- */

/* Slow path of every allocating hook: the thread's countdown ran out (or it
 * was never seeded) before an allocation of size bytes. Draws the next
 * distance; true when this allocation is to be recorded (as a sampled
 * block: aligned, see ppx_sampled_mask). Never for the profiler's own
 * allocations. */
bool ppx_sample_due(size_t size);
/* Records the sampled block p (size bytes, the caller's request). ret:
 * return address into the caller of the hook. */
void ppx_sample_record(void *p, size_t size, const void *ret);
/* free(p) found p's grain marked in the live filter: forget p and count
 * the free if it was sampled. false: p is NULL or from the bootstrap arena,
 * not for the real free. */
bool ppx_sample_free(void *p);

/* A sampled block, live: in the live table until freed. */
struct ppx_live_entry {
    uintptr_t ptr;
    uint64_t size;
    struct ppx_stack *stack;
};
/* Removes p from the live table if it is there. For realloc, which must
 * forget the old block before the real realloc may hand its address to
 * another thread, and restore it if the real realloc fails. */
bool ppx_sample_forget(void *p, struct ppx_live_entry *out);
void ppx_sample_restore(const struct ppx_live_entry *e);
void ppx_sample_count_free(const struct ppx_live_entry *e);
/* Fork: the child's next allocation on the forking thread reseeds. */
void ppx_sampler_reset_thread(void);

/* ---- live_table.c: sampled blocks not yet freed ---- */

/* The live filter, free()'s test: one bit per 512-byte grain of address
 * space (modulo 4 GiB), set while a sampled live block starts in that grain
 * (or in one 4 GiB apart). 2 KiB of filter per 8 MiB of heap, a quarter of
 * the lines of the 32-bit counter per 4 KiB page it replaces (a cache miss
 * per free on a large heap); and a sampled small block sends only the frees
 * of its grain's neighbours, not of its page's, to the slow path. The counts
 * behind the bits are kept by live_table.c on its slow path only. Indexed
 * by address, not by hash: frees near each other in memory read the same
 * line. Static, zero pages until touched: valid before initialisation, and
 * free() pays one relaxed load. */
#define PPX_FILTER_GRAIN_SHIFT 9
#define PPX_FILTER_BITS (32 - PPX_FILTER_GRAIN_SHIFT)
#define PPX_FILTER_WORD_BITS 64
extern _Atomic uint64_t ppx_live_filter[(1u << PPX_FILTER_BITS) / PPX_FILTER_WORD_BITS];
static inline size_t ppx_live_filter_index(uintptr_t p)
{
    return (size_t)(p >> PPX_FILTER_GRAIN_SHIFT) & ((1u << PPX_FILTER_BITS) - 1);
}
/* Exact mode (PPX_SAMPLE_RATE=1), set once by ppx_live_init: every block
 * is sampled, nearly every grain would be marked, and free() goes to the
 * table without reading the filter; inserts and removes then keep neither
 * counts nor bits (two lines fewer per call, one of them a locked RMW). */
extern bool ppx_live_all;
/* Sampled blocks start on a PPX_SAMPLED_ALIGN boundary, as do bootstrap
 * blocks, while ppx_sampled_mask is PPX_SAMPLED_ALIGN - 1: free() then
 * tells most blocks unsampled by their address alone, with no load (the
 * filter's line missed the cache on every free of a large heap: most of
 * free()'s cost). Set once by ppx_live_init, before any sampled block:
 * with glibc's allocator under default sampling, whose aligned blocks cost
 * a split and whose calloc's fresh blocks can be told (hooks/). 0 (every
 * address goes on to the filter) in exact mode and under other allocators.
 * 1 in 256 of glibc's 16-byte-aligned small blocks, and none of its mmapped
 * ones, start on such a boundary. */
#define PPX_SAMPLED_ALIGN ((size_t)4096)
extern uintptr_t ppx_sampled_mask;
/* p starts where a sampled block may (always, when ppx_sampled_mask is 0). */
static inline bool ppx_sampled_aligned(const void *p)
{
    return ((uintptr_t)p & ppx_sampled_mask) == 0;
}
/* Cheap test for free(): false means p was certainly not sampled. */
static inline bool ppx_live_maybe(const void *p)
{
    if (!ppx_sampled_aligned(p))
        return false;
    if (ppx_live_all)
        return true;
    size_t i = ppx_live_filter_index((uintptr_t)p);
    uint64_t word =
        atomic_load_explicit(&ppx_live_filter[i / PPX_FILTER_WORD_BITS], memory_order_relaxed);
    return (word >> (i % PPX_FILTER_WORD_BITS)) & 1u;
}
/* Sets the filter bit of p's grain for good (bootstrap blocks). */
static inline void ppx_live_filter_mark(const void *p)
{
    size_t i = ppx_live_filter_index((uintptr_t)p);
    atomic_fetch_or_explicit(&ppx_live_filter[i / PPX_FILTER_WORD_BITS],
                             UINT64_C(1) << (i % PPX_FILTER_WORD_BITS), memory_order_relaxed);
}
/* aligned_blocks: the hooks can make sampled blocks aligned (glibc's
 * allocator); sets ppx_sampled_mask with exact mode in mind. */
bool ppx_live_init(bool aligned_blocks);
/* Records a sampled block. If an entry for ptr is still there (its free went
 * unseen), it is returned in *stale (stale->ptr != 0) to be counted freed.
 * false when out of memory. */
bool ppx_live_insert(const struct ppx_live_entry *e, struct ppx_live_entry *stale);
bool ppx_live_remove(uintptr_t ptr, struct ppx_live_entry *out);
/* Starts loading ptr's home slot: under exact mode nearly every insert
 * waits for that line, so it is fetched while the stack is unwound. */
void ppx_live_prefetch(uintptr_t ptr);
void ppx_live_lock_all(void);
void ppx_live_unlock_all(void);
void ppx_live_reset_child(void);

/* ---- bootstrap.c: memory before the real allocator is known ---- */

void *ppx_bootstrap_alloc(size_t size, size_t align);
size_t ppx_bootstrap_size(const void *p);
void ppx_bootstrap_mark_filter(void);
extern unsigned char ppx_bootstrap_arena[];
#define PPX_BOOTSTRAP_BYTES (4u * 1024u * 1024u)
static inline bool ppx_bootstrap_owns(const void *p)
{
    return (uintptr_t)p - (uintptr_t)ppx_bootstrap_arena < PPX_BOOTSTRAP_BYTES;
}

/* ---- heap_delta.c: HEAP_DELTA records (the flusher) ---- */

/* Encodes the heap figures that changed since the last flush on this
 * connection (every stack's when fresh), stacks with id < n_stacks only;
 * their STACK records first. false when the connection failed. */
bool ppx_heap_send(struct ppx_encoder *enc, uint32_t n_stacks, bool fresh);
/* Whether the last flush found the heap in use changing fast (by an
 * sixteenth of it, and more than sampling's noise): the flusher keeps its
 * fast pace while it is, so that the collector sees a peak as it comes. */
bool ppx_heap_moving(void);
/* Emits the HEAP_DELTA record built so far. */
bool ppx_heap_send_pending(struct ppx_encoder *enc);

#pragma GCC visibility pop

#endif
