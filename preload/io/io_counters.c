/* Per-thread blocks of I/O counters (see io_counters.h).
 *
 * A block holds one entry per site id, in chunks mapped on first use.
 * Blocks are linked in one list that only grows at its head; a thread owns
 * a block by winning a compare-and-swap on its owner flag. Taking and
 * giving back a block needs no lock, so a signal handler's I/O call may be
 * the first one of its thread. */
#include "io.h"

#include <string.h>

#define CHUNK_BITS 7
#define CHUNK (1u << CHUNK_BITS)
#define CHUNKS (PPX_IO_MAX_SITES / CHUNK)

struct io_block {
    atomic_uint owned;
    struct io_block *next;          /* immutable once on the list */
    _Atomic(void *) chunks[CHUNKS]; /* of struct ppx_io_local */
};

/* The list of every block ever made (owned by no one: lock-free). */
static _Atomic(struct io_block *) blocks;
/* This thread's block, NULL until its first counted call. */
static PPX_TLS struct io_block *my_block;

static struct io_block *block_take(void)
{
    for (struct io_block *b = atomic_load_explicit(&blocks, memory_order_acquire); b != NULL;
         b = b->next) {
        unsigned free_flag = 0;
        if (atomic_load_explicit(&b->owned, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&b->owned, &free_flag, 1, memory_order_acquire,
                                                    memory_order_relaxed))
            return b;
    }
    struct io_block *b = ppx_pages_alloc(sizeof *b);
    if (b == NULL)
        return NULL;
    atomic_store_explicit(&b->owned, 1, memory_order_relaxed);
    struct io_block *head = atomic_load_explicit(&blocks, memory_order_relaxed);
    do
        b->next = head;
    while (!atomic_compare_exchange_weak_explicit(&blocks, &head, b, memory_order_release,
                                                  memory_order_relaxed));
    return b;
}

static struct ppx_io_local *chunk_get(struct io_block *b, unsigned c)
{
    struct ppx_io_local *chunk = atomic_load_explicit(&b->chunks[c], memory_order_relaxed);
    if (PPX_LIKELY(chunk != NULL))
        return chunk;
    /* Only the owner's thread maps a chunk, but a signal handler on that
     * thread may map the same one while it is at it: the first to publish
     * wins (the handler's cache keeps pointing into the chunk it used). */
    chunk = ppx_pages_publish(&b->chunks[c], CHUNK * sizeof *chunk);
    return chunk;
}

struct ppx_io_local *ppx_io_local_get(uint32_t site_id)
{
    if (site_id >= PPX_IO_MAX_SITES)
        return NULL;
    struct io_block *b = my_block;
    if (PPX_UNLIKELY(b == NULL)) {
        if ((b = block_take()) == NULL)
            return NULL;
        if (my_block != NULL) { /* a signal handler took one meanwhile: keep that */
            atomic_store_explicit(&b->owned, 0, memory_order_release);
            b = my_block;
        } else {
            my_block = b;
        }
    }
    struct ppx_io_local *chunk = chunk_get(b, site_id >> CHUNK_BITS);
    return chunk != NULL ? &chunk[site_id & (CHUNK - 1)] : NULL;
}

void ppx_io_local_release(void)
{
    struct io_block *b = my_block;
    if (b == NULL)
        return;
    my_block = NULL;
    atomic_store_explicit(&b->owned, 0, memory_order_release);
}

void ppx_io_local_foreach(uint32_t n_sites,
                          void (*add)(void *arg, uint32_t site_id, const struct ppx_io_local *e),
                          void *arg)
{
    unsigned n_chunks = (n_sites + CHUNK - 1) / CHUNK;
    for (struct io_block *b = atomic_load_explicit(&blocks, memory_order_acquire); b != NULL;
         b = b->next) {
        for (unsigned c = 0; c < n_chunks && c < CHUNKS; c++) {
            const struct ppx_io_local *chunk =
                atomic_load_explicit(&b->chunks[c], memory_order_acquire);
            if (chunk == NULL)
                continue;
            for (unsigned i = 0; i < CHUNK; i++) {
                uint32_t id = c * CHUNK + i;
                if (id < n_sites && atomic_load_explicit(&chunk[i].calls, memory_order_acquire))
                    add(arg, id, &chunk[i]);
            }
        }
    }
}

void ppx_io_local_reset_child(void)
{
    for (struct io_block *b = atomic_load_explicit(&blocks, memory_order_acquire); b != NULL;
         b = b->next) {
        for (unsigned c = 0; c < CHUNKS; c++) {
            struct ppx_io_local *chunk = atomic_load_explicit(&b->chunks[c], memory_order_relaxed);
            if (chunk != NULL)
                for (unsigned i = 0; i < CHUNK; i++)
                    memset(&chunk[i], 0, sizeof chunk[i]);
        }
        atomic_store_explicit(&b->owned, b == my_block, memory_order_relaxed);
    }
}
