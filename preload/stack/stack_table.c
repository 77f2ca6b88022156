/* Interned call stacks and their counters.
 *
 * A stack (leaf-first return addresses) is interned once into a record that
 * lives for the rest of the process, with an id dense from 0 (the wire id)
 * and atomic counters the hooks add to, one stripe per thread (stack.h).
 * Lookups first try a small per-thread cache (a server repeats the same few
 * stacks), then a sharded hash table, each shard behind its own mutex.
 *
 * The flusher does not scan every stack: a stripe whose counters change is
 * pushed (once) on a lock-free dirty list, which the flusher takes whole. */
#include "stack.h"

#include <string.h>

#define STACK_SHARD_BITS 6
#define STACK_SHARDS (1u << STACK_SHARD_BITS)
#define STACK_INITIAL_SLOTS 512u /* one page of pointers */
#define DIR_CHUNK_BITS 16
#define DIR_CHUNK (1u << DIR_CHUNK_BITS)
#define DIR_CHUNKS 256u
#define MAX_STACKS (DIR_CHUNKS * DIR_CHUNK) /* 16M distinct stacks */

struct stack_shard {
    pthread_mutex_t mu;
    struct ppx_stack **slots;
    size_t mask;
    size_t count;
} __attribute__((aligned(PPX_CACHELINE)));

static struct stack_shard shards[STACK_SHARDS];
/* id -> record, in chunks allocated on demand; never moved, so the flusher
 * reads it without locks. */
static _Atomic(void *) directory[DIR_CHUNKS]; /* of _Atomic(struct ppx_stack *) */
static atomic_uint next_id;
static _Atomic(struct ppx_stack_stripe *) dirty_head;
static atomic_bool any_counted;

/* Every sample hashes its stack: two lanes of xor-and-multiply (each step
 * a bijection, so stacks that differ in one frame differ in their lane)
 * run side by side instead of one chain of dependent multiplies, and one
 * finaliser spreads the result over all bits (shard, slot, cache index). */
static inline uint64_t hash_pcs(const uintptr_t *pcs, unsigned depth)
{
    uint64_t a = 0x9E3779B97F4A7C15ull ^ depth, b = 0x6A09E667F3BCC909ull;
    unsigned i = 0;
    for (; i + 1 < depth; i += 2) {
        a = (a ^ pcs[i]) * 0xff51afd7ed558ccdull;
        b = (b ^ pcs[i + 1]) * 0xc4ceb9fe1a85ec53ull;
    }
    if (i < depth)
        a = (a ^ pcs[i]) * 0xff51afd7ed558ccdull;
    return ppx_mix64(a ^ (b << 31 | b >> 33));
}

static inline bool same_pcs(const uintptr_t *x, const uintptr_t *y, unsigned depth)
{
    for (unsigned i = 0; i < depth; i++) {
        if (x[i] != y[i])
            return false;
    }
    return true;
}

static inline bool same_stack(const struct ppx_stack *s, uint64_t h, const uintptr_t *pcs,
                              unsigned depth)
{
    return s->hash == h && s->depth == depth && same_pcs(s->pcs, pcs, depth);
}

void ppx_stacks_init(void)
{
    for (unsigned i = 0; i < STACK_SHARDS; i++)
        pthread_mutex_init(&shards[i].mu, NULL);
}

static bool grow(struct stack_shard *sh)
{
    size_t old_cap = sh->slots == NULL ? 0 : sh->mask + 1;
    size_t cap = old_cap == 0 ? STACK_INITIAL_SLOTS : old_cap * 2;
    struct ppx_stack **slots = ppx_pages_alloc(cap * sizeof *slots);
    if (slots == NULL)
        return false;
    for (size_t i = 0; i < old_cap; i++) {
        struct ppx_stack *s = sh->slots[i];
        if (s == NULL)
            continue;
        size_t j = s->hash & (cap - 1);
        while (slots[j] != NULL)
            j = (j + 1) & (cap - 1);
        slots[j] = s;
    }
    ppx_pages_free(sh->slots, old_cap * sizeof *slots);
    sh->slots = slots;
    sh->mask = cap - 1;
    return true;
}

static _Atomic(struct ppx_stack *) *directory_chunk(uint32_t id, bool create)
{
    unsigned c = id >> DIR_CHUNK_BITS;
    _Atomic(struct ppx_stack *) *chunk = atomic_load_explicit(&directory[c], memory_order_acquire);
    if (chunk != NULL || !create)
        return chunk;
    return ppx_pages_publish(&directory[c], DIR_CHUNK * sizeof *chunk);
}

/* Called with the shard locked. */
static struct ppx_stack *create(uint64_t h, const uintptr_t *pcs, unsigned depth)
{
    struct ppx_stack *s = ppx_arena_alloc(sizeof *s + depth * sizeof *pcs, PPX_CACHELINE);
    if (s == NULL)
        return NULL;
    uint32_t id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    if (id >= MAX_STACKS)
        return NULL; /* the record is simply not used */
    _Atomic(struct ppx_stack *) *chunk = directory_chunk(id, true);
    if (chunk == NULL)
        return NULL;
    s->id = id;
    for (unsigned i = 0; i < PPX_STACK_STRIPES; i++)
        s->stripes[i].stack = s;
    s->hash = h;
    s->depth = depth;
    memcpy(s->pcs, pcs, depth * sizeof *pcs);
    atomic_store_explicit(&chunk[id & (DIR_CHUNK - 1)], s, memory_order_release);
    return s;
}

static struct ppx_stack *lookup_or_create(uint64_t h, const uintptr_t *pcs, unsigned depth)
{
    struct stack_shard *sh = &shards[h >> (64 - STACK_SHARD_BITS)];
    struct ppx_stack *found = NULL;
    ppx_tls.holds_lock++;
    pthread_mutex_lock(&sh->mu);
    if (sh->slots != NULL) {
        for (size_t i = h & sh->mask; sh->slots[i] != NULL; i = (i + 1) & sh->mask) {
            if (same_stack(sh->slots[i], h, pcs, depth)) {
                found = sh->slots[i];
                break;
            }
        }
    }
    if (found == NULL) {
        bool room = sh->slots != NULL && (sh->count + 1) * 2 <= sh->mask + 1;
        if (room || grow(sh))
            found = create(h, pcs, depth);
        if (found != NULL) {
            size_t i = h & sh->mask;
            while (sh->slots[i] != NULL)
                i = (i + 1) & sh->mask;
            sh->slots[i] = found;
            sh->count++;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    ppx_tls.holds_lock--;
    return found;
}

struct ppx_stack *ppx_stack_intern(struct ppx_tls *t, const uintptr_t *pcs, unsigned depth)
{
    uint64_t h = hash_pcs(pcs, depth);
    /* Every caller holds the guard, taken while it was 0 (the flusher's,
     * for good): the buffers may be taken here. */
    if (PPX_UNLIKELY(!ppx_thread_buffers_ensure(t)))
        return lookup_or_create(h, pcs, depth); /* no memory: no cache */
    struct ppx_stack_cache_slot *slot = &t->buffers->stack_cache[(h >> 32) & (PPX_STACK_CACHE - 1)];
    struct ppx_stack *s = slot->stack;
    if (s != NULL && slot->hash == h && same_stack(s, h, pcs, depth))
        return s;
    s = lookup_or_create(h, pcs, depth);
    if (s != NULL) {
        slot->hash = h;
        slot->stack = s;
    }
    return s;
}

/* The counters were just changed (seq_cst): if the flusher already cleared
 * the flag it will not have seen the change, so queue the stripe again.
 * Pairs with the store-then-load in the flusher (ppx_stacks_take_dirty's
 * users clear the flag before reading the counters). */
static inline void mark_dirty(struct ppx_stack_stripe *st)
{
    if (atomic_load_explicit(&st->dirty, memory_order_seq_cst) != 0)
        return;
    if (atomic_exchange_explicit(&st->dirty, 1, memory_order_seq_cst) != 0)
        return;
    ppx_stacks_requeue(st);
    if (!atomic_load_explicit(&any_counted, memory_order_relaxed))
        atomic_store_explicit(&any_counted, true, memory_order_relaxed);
}

bool ppx_stacks_any_counted(void)
{
    return atomic_load_explicit(&any_counted, memory_order_relaxed);
}

/* 1 + the calling thread's stripe, 0 until it first counts. */
static PPX_TLS unsigned stripe_plus1;
static atomic_uint next_stripe;

static inline struct ppx_stack_stripe *stripe_of(struct ppx_stack *s)
{
    unsigned i = stripe_plus1;
    if (PPX_UNLIKELY(i == 0)) {
        i = 1 +
            atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) % PPX_STACK_STRIPES;
        stripe_plus1 = i;
    }
    return &s->stripes[i - 1];
}

void ppx_stack_count_alloc(struct ppx_stack *s, uint64_t bytes)
{
    struct ppx_stack_stripe *st = stripe_of(s);
    atomic_fetch_add_explicit(&st->alloc_objects, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->alloc_bytes, bytes, memory_order_seq_cst);
    mark_dirty(st);
}

void ppx_stack_count_free(struct ppx_stack *s, uint64_t bytes)
{
    struct ppx_stack_stripe *st = stripe_of(s);
    atomic_fetch_add_explicit(&st->free_objects, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->free_bytes, bytes, memory_order_seq_cst);
    mark_dirty(st);
}

void ppx_stack_figures(const struct ppx_stack *s, struct ppx_stack_figures *out)
{
    *out = (struct ppx_stack_figures){0, 0, 0, 0};
    for (unsigned i = 0; i < PPX_STACK_STRIPES; i++) {
        const struct ppx_stack_stripe *st = &s->stripes[i];
        out->free_objects += atomic_load_explicit(&st->free_objects, memory_order_seq_cst);
        out->free_bytes += atomic_load_explicit(&st->free_bytes, memory_order_seq_cst);
    }
    for (unsigned i = 0; i < PPX_STACK_STRIPES; i++) {
        const struct ppx_stack_stripe *st = &s->stripes[i];
        out->alloc_objects += atomic_load_explicit(&st->alloc_objects, memory_order_seq_cst);
        out->alloc_bytes += atomic_load_explicit(&st->alloc_bytes, memory_order_seq_cst);
    }
}

uint32_t ppx_stacks_count(void)
{
    uint32_t n = atomic_load_explicit(&next_id, memory_order_acquire);
    return n < MAX_STACKS ? n : MAX_STACKS;
}

struct ppx_stack *ppx_stack_get(uint32_t id)
{
    if (id >= MAX_STACKS)
        return NULL;
    _Atomic(struct ppx_stack *) *chunk = directory_chunk(id, false);
    if (chunk == NULL)
        return NULL;
    return atomic_load_explicit(&chunk[id & (DIR_CHUNK - 1)], memory_order_acquire);
}

struct ppx_stack_stripe *ppx_stacks_take_dirty(void)
{
    return atomic_exchange_explicit(&dirty_head, NULL, memory_order_acquire);
}

void ppx_stacks_requeue(struct ppx_stack_stripe *st)
{
    struct ppx_stack_stripe *head = atomic_load_explicit(&dirty_head, memory_order_relaxed);
    do {
        st->dirty_next = head;
    } while (!atomic_compare_exchange_weak_explicit(&dirty_head, &head, st, memory_order_release,
                                                    memory_order_relaxed));
}

void ppx_stacks_lock_all(void)
{
    for (unsigned i = 0; i < STACK_SHARDS; i++)
        pthread_mutex_lock(&shards[i].mu);
}

void ppx_stacks_unlock_all(void)
{
    for (unsigned i = 0; i < STACK_SHARDS; i++)
        pthread_mutex_unlock(&shards[i].mu);
}

/* The child keeps the interned stacks (same code, same addresses) but none
 * of the parent's figures, and has sent nothing yet. */
void ppx_stacks_reset_child(void)
{
    for (unsigned i = 0; i < STACK_SHARDS; i++)
        pthread_mutex_init(&shards[i].mu, NULL);
    atomic_store_explicit(&dirty_head, NULL, memory_order_relaxed);
    atomic_store_explicit(&any_counted, false, memory_order_relaxed);
    uint32_t n = ppx_stacks_count();
    for (uint32_t id = 0; id < n; id++) {
        struct ppx_stack *s = ppx_stack_get(id);
        if (s == NULL)
            continue;
        for (unsigned i = 0; i < PPX_STACK_STRIPES; i++) {
            struct ppx_stack_stripe *st = &s->stripes[i];
            atomic_store_explicit(&st->alloc_objects, 0, memory_order_relaxed);
            atomic_store_explicit(&st->alloc_bytes, 0, memory_order_relaxed);
            atomic_store_explicit(&st->free_objects, 0, memory_order_relaxed);
            atomic_store_explicit(&st->free_bytes, 0, memory_order_relaxed);
            atomic_store_explicit(&st->dirty, 0, memory_order_relaxed);
            st->dirty_next = NULL;
        }
        s->sent_generation = 0;
        s->sent_alloc_objects = s->sent_alloc_bytes = 0;
        s->sent_free_objects = s->sent_free_bytes = 0;
    }
}
