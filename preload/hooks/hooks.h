/* hooks: the exported entry points, where the program's calls arrive
 * (malloc.c and its slow paths malloc_sampled.c, io.c, fd.c, thread.c,
 * signal.c, exec.c), and the library's lifecycle (init.c, fork.c). The top
 * of the pipeline: a hook hands what it saw to a recorder (heap/, io/,
 * cpu/), and the lifecycle drives flush/. */
#ifndef PPX_HOOKS_H
#define PPX_HOOKS_H

#include "../flush/flush.h"

#pragma GCC visibility push(hidden)

/* ---- init.c ---- */

/* Runs the one-time initialisation if nobody has started it. Returns with
 * ppx_state READY, or INITIALIZING when another thread (or this one, from
 * inside dlsym) is still at it; the caller then uses the bootstrap arena. */
void ppx_init(void);
/* The next definition of name (dlsym(RTLD_NEXT)), stored in *slot; a
 * stand-in that fails with ENOSYS if there is none. Initialises the
 * library first if nothing has yet. */
void *ppx_next_fn(void **slot, const char *name);
static inline void *ppx_next(void **slot, const char *name)
{
    void *fn = __atomic_load_n(slot, __ATOMIC_RELAXED);
    return PPX_LIKELY(fn != NULL) ? fn : ppx_next_fn(slot, name);
}
/* Resolves every slot of a table of next definitions not resolved yet
 * (the I/O and lock hooks', at initialisation; each is also resolved on
 * its first use through ppx_next). */
void ppx_next_resolve_all(void **slots, const char *const *names, unsigned n);

/* Initialisation is complete: the next functions are resolved. */
static inline bool ppx_hooks_ready(void)
{
    return atomic_load_explicit(&ppx_state, memory_order_acquire) == PPX_READY;
}

/* ---- fork.c ---- */

/* From the constructor, once the next allocator has set itself up. */
void ppx_fork_handlers_install(void);

/* ---- malloc.c: the next allocator ---- */

struct ppx_real {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*memalign)(size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*malloc_usable_size)(void *);
};
/* Set by ppx_hooks_resolve (in ppx_init), read by every hook; until then
 * the hot four point at stubs that initialise (malloc.c). */
extern struct ppx_real ppx_real;
/* dlsym(RTLD_NEXT) for every function; called once by ppx_init. */
void ppx_hooks_resolve(void);
/* After it: whether the next allocator is glibc's (heap.h's aligned
 * sampled blocks rely on its chunk layout). */
bool ppx_hooks_glibc_allocator(void);

/* ---- malloc_sampled.c: the malloc hooks' slow paths ---- */

/* The countdown ran out before malloc(size) / calloc(n, m) (total bytes):
 * the block, recorded if due. */
void *ppx_malloc_sampled(size_t size, const void *ret);
void *ppx_calloc_sampled(size_t n, size_t m, size_t total, const void *ret);
/* The countdown ran out for p (size bytes, NULL if the allocation failed),
 * just made by realloc (keep: its contents count) or an aligned allocation
 * (alignment align): p or an aligned stand-in, recorded if due. */
void *ppx_recorded_after(void *p, size_t align, size_t size, bool keep, const void *ret);

/* ---- io.c, fd.c ---- */

/* dlsym(RTLD_NEXT) for every hooked function, so that no hook needs the
 * loader later (from a signal handler, say). */
void ppx_io_hooks_resolve(void);
void ppx_fd_hooks_resolve(void);

/* ---- lock.c ---- */

void ppx_lock_hooks_resolve(void);

#pragma GCC visibility pop

#endif
