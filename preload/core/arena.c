/* The profiler's own memory: mmap'ed, never the target's malloc, so that
 * profiling neither recurses into the hooks nor disturbs the target's heap.
 *
 * Records that live as long as the process (stacks, mappings, directory
 * chunks) come from a bump arena; tables that grow take whole pages. */
#include "core.h"

#include <errno.h>
#include <sys/mman.h>

#define ARENA_CHUNK (1u << 20)

static pthread_mutex_t arena_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *arena_cur;
static size_t arena_left;

void *ppx_pages_alloc(size_t bytes)
{
    int saved = errno;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

void ppx_pages_free(void *p, size_t bytes)
{
    int saved = errno;
    if (p != NULL)
        munmap(p, bytes);
    errno = saved;
}

void *ppx_arena_alloc(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    pthread_mutex_lock(&arena_mu);
    uintptr_t cur = (uintptr_t)arena_cur;
    size_t skip = (size_t)(((cur + align - 1) & ~(uintptr_t)(align - 1)) - cur);
    if (arena_cur == NULL || skip + size > arena_left) {
        size_t chunk = ARENA_CHUNK;
        if (size + align > chunk)
            chunk = (size + align + 4095u) & ~(size_t)4095u;
        unsigned char *fresh = ppx_pages_alloc(chunk);
        if (fresh == NULL) {
            pthread_mutex_unlock(&arena_mu);
            return NULL;
        }
        arena_cur = fresh;
        arena_left = chunk;
        cur = (uintptr_t)fresh;
        skip = (size_t)(((cur + align - 1) & ~(uintptr_t)(align - 1)) - cur);
    }
    void *p = arena_cur + skip;
    arena_cur += skip + size;
    arena_left -= skip + size;
    pthread_mutex_unlock(&arena_mu);
    return p;
}

void *ppx_pages_publish(_Atomic(void *) *slot, size_t bytes)
{
    void *fresh = ppx_pages_alloc(bytes);
    if (fresh == NULL)
        return NULL;
    void *seen = NULL;
    if (!atomic_compare_exchange_strong_explicit(slot, &seen, fresh, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        ppx_pages_free(fresh, bytes);
        return seen;
    }
    return fresh;
}

void ppx_arena_lock(void)
{
    pthread_mutex_lock(&arena_mu);
}

void ppx_arena_unlock(void)
{
    pthread_mutex_unlock(&arena_mu);
}

/* The forking thread held the lock across fork(); the child starts afresh. */
void ppx_arena_reset_child(void)
{
    pthread_mutex_init(&arena_mu, NULL);
}
