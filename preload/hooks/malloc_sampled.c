/* The malloc hooks' slow paths: the thread's countdown ran out, and the
 * allocation may be recorded. A recorded block is made on a
 * PPX_SAMPLED_ALIGN boundary while ppx_sampled_mask asks for it (heap.h),
 * so that free() knows every other block unsampled from its address.
 *
 * malloc and calloc decide first and ask the next allocator for an aligned
 * block; realloc and the aligned family make their block first (realloc
 * may grow in place, the aligned ones have their own rules) and move it to
 * an aligned one only if it is not. When an aligned block cannot be had,
 * the program gets what it asked for, unrecorded: nothing it does depends
 * on the profiler. */
#include "hooks.h"

#include <errno.h>
#include <string.h>

/* Whether an allocation of size bytes whose countdown ran out is recorded.
 * Before initialisation is complete, never (the early stubs serve it). */
static bool due(size_t size)
{
    if (!ppx_hooks_ready())
        return false;
    /* the slow path of the program's own allocations: where a process
     * without a flusher looks for a collector (flush/) */
    if (ppx_tls.guard == 0)
        ppx_flusher_start_if_due();
    return ppx_sample_due(size);
}

/* An aligned block of size bytes from the next allocator (its alignment at
 * least align), or NULL with errno as it was. */
static void *aligned_block(size_t align, size_t size)
{
    int saved_errno = errno;
    void *p = ppx_real.memalign(align > PPX_SAMPLED_ALIGN ? align : PPX_SAMPLED_ALIGN, size);
    if (p == NULL)
        errno = saved_errno;
    return p;
}

static void *recorded(void *p, size_t size, const void *ret)
{
    if (p != NULL)
        ppx_sample_record(p, size, ret);
    return p;
}

/* No aligned block: p, what the program asked for, goes unrecorded (said
 * once, if the program got it: a request that fails anyway loses no
 * sample). */
static void *unrecorded(void *p)
{
    if (p != NULL) {
        int saved_errno = errno;
        ppx_note_lost("no aligned block for a sampled allocation");
        errno = saved_errno;
    }
    return p;
}

void *ppx_malloc_sampled(size_t size, const void *ret)
{
    if (!due(size))
        return ppx_real.malloc(size);
    if (ppx_sampled_mask == 0)
        return recorded(ppx_real.malloc(size), size, ret);
    void *p = aligned_block(0, size);
    return p != NULL ? recorded(p, size, ret) : unrecorded(ppx_real.malloc(size));
}

/* glibc's mmapped chunks come zeroed from the kernel, as its calloc knows:
 * zeroing them again would make every page of a large calloc resident. A
 * chunk filled by MALLOC_PERTURB_ holds its byte everywhere: zero only if
 * the byte is. (Only glibc's blocks are aligned, see ppx_live_init.) */
#define GLIBC_IS_MMAPPED 2u
static bool fresh_zero(const void *p)
{
    size_t head = ((const size_t *)p)[-1];
    return (head & GLIBC_IS_MMAPPED) != 0 && *(const unsigned char *)p == 0;
}

void *ppx_calloc_sampled(size_t n, size_t m, size_t total, const void *ret)
{
    if (!due(total))
        return ppx_real.calloc(n, m);
    if (ppx_sampled_mask == 0)
        return recorded(ppx_real.calloc(n, m), total, ret);
    void *p = aligned_block(0, total);
    if (p == NULL)
        return unrecorded(ppx_real.calloc(n, m));
    if (!fresh_zero(p))
        memset(p, 0, total);
    return recorded(p, total, ret);
}

void *ppx_recorded_after(void *p, size_t align, size_t size, bool keep, const void *ret)
{
    if (p == NULL || !due(size))
        return p;
    if (!ppx_sampled_aligned(p)) {
        void *q = aligned_block(align, size);
        if (q == NULL)
            return unrecorded(p);
        if (keep)
            memcpy(q, p, size);
        ppx_real.free(p);
        p = q;
    }
    return recorded(p, size, ret);
}
