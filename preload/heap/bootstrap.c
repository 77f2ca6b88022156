/* Memory for allocations made before the real allocator is known.
 *
 * dlsym(RTLD_NEXT, "malloc") itself calls calloc (for its error buffer), and
 * other threads may allocate while the first one is still resolving. Those
 * calls are served here: a bump allocator over a static array, never reused,
 * so its memory is zero (calloc-safe). free() ignores these blocks, realloc()
 * copies them out, malloc_usable_size() reads the size kept in front. Each
 * starts on a PPX_SAMPLED_ALIGN boundary and its grain is marked in the live
 * filter, so that free() and realloc() send it to their slow paths, which
 * recognise it (a page of arena a block: in practice there are none or a
 * few, and pages never touched cost nothing). */
#include "heap.h"

#include <errno.h>

#define BOOTSTRAP_HEADER 16u /* room for the size in front of a block */

_Alignas(4096) unsigned char ppx_bootstrap_arena[PPX_BOOTSTRAP_BYTES];
static atomic_size_t bootstrap_used;

void *ppx_bootstrap_alloc(size_t size, size_t align)
{
    if (align < PPX_SAMPLED_ALIGN)
        align = PPX_SAMPLED_ALIGN;
    if ((align & (align - 1)) != 0 || align > PPX_BOOTSTRAP_BYTES || size > PPX_BOOTSTRAP_BYTES) {
        errno = ENOMEM;
        return NULL;
    }
    size_t used = atomic_load_explicit(&bootstrap_used, memory_order_relaxed);
    for (;;) {
        size_t start = (used + BOOTSTRAP_HEADER + align - 1) & ~(align - 1);
        size_t end = start + ((size + 15u) & ~(size_t)15u);
        if (end > PPX_BOOTSTRAP_BYTES || end < start) {
            errno = ENOMEM;
            return NULL;
        }
        if (atomic_compare_exchange_weak_explicit(&bootstrap_used, &used, end, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            unsigned char *p = ppx_bootstrap_arena + start;
            *(size_t *)(void *)(p - sizeof(size_t)) = size;
            /* Marks the grain for good: free() and realloc() then take their
             * slow path for it, which knows bootstrap blocks. */
            ppx_live_filter_mark(p);
            return p;
        }
    }
}

size_t ppx_bootstrap_size(const void *p)
{
    return *(const size_t *)(const void *)((const unsigned char *)p - sizeof(size_t));
}

/* After fork the child's live filter starts from zero: mark the arena's
 * used grains again, or free() would hand bootstrap blocks to the real free. */
void ppx_bootstrap_mark_filter(void)
{
    size_t used = atomic_load_explicit(&bootstrap_used, memory_order_relaxed);
    for (size_t off = 0; off < used; off += (size_t)1 << PPX_FILTER_GRAIN_SHIFT)
        ppx_live_filter_mark(ppx_bootstrap_arena + off);
}
