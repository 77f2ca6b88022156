/* Per-thread I/O counters (io_counters.c), used by io_sites.c.
 *
 * Each thread counts its calls in a block of its own: plain loads and
 * stores on memory no other thread writes, where a shared counter cost a
 * locked add and, when several threads call from the same site, a cache
 * line moving between cores on every call. The flusher sums the blocks.
 * A block outlives its thread: when the thread ends it goes back to a pool
 * and the next new thread goes on counting in it (the sums only grow). */
#ifndef PPX_IO_COUNTERS_H
#define PPX_IO_COUNTERS_H

#include "../ppx_preload.h"

#define PPX_IO_ERRNO_SLOTS 8u

/* One site's figures in one thread's block. Written only by that thread
 * (relaxed loads and stores: no lock prefix), read by the flusher. */
struct ppx_io_local {
    _Atomic uint64_t calls, time, bytes, messages, errors, eagain;
    _Atomic uint64_t err_calls[PPX_IO_ERRNO_SLOTS]; /* by the site's errno slot */
    uint64_t pad[2]; /* 128 bytes: two entries never share a cache line */
};

/* The calling thread's entry for site id, its block taken from the pool
 * (or mapped) on first use. NULL when there is no memory: the caller
 * counts in the site's shared counters instead. Lock-free: may run in a
 * signal handler. */
struct ppx_io_local *ppx_io_local_get(uint32_t site_id);

/* The calling thread ends: its block goes back to the pool. */
void ppx_io_local_release(void);

/* Flusher: calls add(arg, site id, entry) for every entry of every block
 * with site id < n_sites that counted anything. */
void ppx_io_local_foreach(uint32_t n_sites,
                          void (*add)(void *arg, uint32_t site_id, const struct ppx_io_local *e),
                          void *arg);

/* Forked child: every block is zeroed and free, except the calling
 * thread's, which it keeps (zeroed). */
void ppx_io_local_reset_child(void);

static inline void ppx_io_local_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

#endif
