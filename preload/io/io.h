/* io: the I/O call recorder. Every hooked call counted exactly at its call
 * site (io_sites.c) in counters of the calling thread's own
 * (io_counters.c), by descriptor kind (fd_class.c), stacks sampled; the
 * IO_SITE, IO_DELTA, IO_ERRNO and IO_STACKS records. The I/O hooks
 * (hooks/io.c, hooks/fd.c) call in here. */
#ifndef PPX_IO_H
#define PPX_IO_H

#include "../stream/stream.h"

#pragma GCC visibility push(hidden)

/* ---- io_sites.c ---- */

/* The I/O hooks count (READY, tables usable, PPX_SYSCALLS not 0). Until
 * then, and on a thread inside the profiler, they only pass through. */
extern atomic_bool ppx_io_active;

/* Counts one finished call at the site (ret, call, class of fd) and
 * samples its stack now and then. fd < 0: the call has no descriptor.
 * err: errno of a failed call, 0 if it succeeded. bytes, messages: what a
 * successful data call moved. t0: ppx_ticks_now() before the call. May
 * change errno (the hooks restore it). */
void ppx_io_count(unsigned call, int fd, const void *ret, uint64_t t0, int err, uint64_t bytes,
                  uint64_t messages);
void ppx_io_init(void);
/* Whether any I/O call was counted since start (or fork). */
bool ppx_io_any_counted(void);
/* The flusher: how many sites and (site, stack) pairs exist now. Taken
 * with the stack count, before the mapping scan (see flush/flush.c). */
struct ppx_io_snapshot {
    uint32_t sites, pairs;
};
void ppx_io_snapshot(struct ppx_io_snapshot *snap);
/* Encodes what changed since the last flush on connection gen: new sites,
 * then IO_DELTA, IO_ERRNO, and IO_STACKS (with the STACK records they
 * need). Only sites, pairs and stacks inside the snapshot. false when the
 * connection failed. */
bool ppx_io_send(struct ppx_encoder *enc, uint64_t gen, uint32_t n_stacks,
                 const struct ppx_io_snapshot *snap);
void ppx_io_reset_child(void);
/* A thread is ending; its counters go back to the pool. */
void ppx_io_thread_exit(void);

/* ---- fd_class.c: what a descriptor is, cached per fd number ---- */

/* The class is packed as fd_type | family << 4 | socktype << 8 (wire.h enums). */
#define PPX_FD_CLASS(type, family, socktype)                                                       \
    ((uint32_t)(type) | (uint32_t)(family) << 4 | (uint32_t)(socktype) << 8)
/* The cache per fd number below PPX_FD_CACHE_SIZE: a generation (bits
 * 16..), valid, the class (written by fd_class.c only). */
#define PPX_FD_CACHE_SIZE 65536u
#define PPX_FD_ENTRY_VALID 0x8000u
#define PPX_FD_ENTRY_CLASS 0x7fffu
extern _Atomic uint32_t ppx_fd_cache[PPX_FD_CACHE_SIZE];
uint32_t ppx_fd_class_slow(int fd);
/* fd's class: cached (inline: every counted call asks), else found now
 * (fstat, getsockopt). */
static inline uint32_t ppx_fd_class(int fd)
{
    if (PPX_LIKELY((unsigned)fd < PPX_FD_CACHE_SIZE)) {
        uint32_t e = atomic_load_explicit(&ppx_fd_cache[fd], memory_order_acquire);
        if (PPX_LIKELY(e & PPX_FD_ENTRY_VALID))
            return e & PPX_FD_ENTRY_CLASS;
    }
    return ppx_fd_class_slow(fd);
}
/* fd was closed or replaced, or is a new descriptor: classify it afresh. */
void ppx_fd_forget(int fd);
void ppx_fd_forget_range(unsigned first, unsigned last);
/* A new socket whose class is known (socket(), accept()). */
void ppx_fd_set_socket(int fd, int domain, int type);
void ppx_fd_set_class(int fd, uint32_t cls);

/* ---- inside this stage only: io_counters.c, per-thread counters ----
 *
 * Each thread counts its calls in a block of its own: plain loads and
 * stores on memory no other thread writes, where a shared counter cost a
 * locked add and, when several threads call from the same site, a cache
 * line moving between cores on every call. The flusher sums the blocks.
 * A block outlives its thread: when the thread ends it goes back to a pool
 * and the next new thread goes on counting in it (the sums only grow). */

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

/* ---- inside this stage only: io_sites.c's tables, read by io_send.c ---- */

#define PPX_IO_MAX_SITES 65536u /* the collector's PROC_MAX_IO_SITES */

struct ppx_io_counts {
    uint64_t calls, time_ns, bytes, messages, errors, eagain;
};

struct ppx_io_site {
    /* immutable once published */
    uintptr_t pc;
    uint32_t key; /* call | class << 8 */
    uint32_t id;
    /* Shared counters, for calls a thread cannot count in its own block
     * (a signal handler interrupting that, no memory). time_ns in ticks. */
    _Atomic uint64_t calls, time_ns, bytes, messages, errors, eagain;
    atomic_uint has_stack;                    /* a call of this site was sampled (or is being) */
    atomic_uint published;                    /* pc, key and id are set */
    _Atomic uint32_t err[PPX_IO_ERRNO_SLOTS]; /* 0: free slot; claimed once, never changed */
    _Atomic uint64_t err_calls[PPX_IO_ERRNO_SLOTS];
    _Atomic uint64_t err_unnamed; /* failures beyond the slots: errors without errno */
    /* flusher only: the sum over the shared and per-thread counters, and
     * what connection sent_generation has */
    struct ppx_io_counts total;
    uint64_t total_err_calls[PPX_IO_ERRNO_SLOTS];
    uint64_t sent_generation;
    struct ppx_io_counts sent;
    uint64_t sent_err_calls[PPX_IO_ERRNO_SLOTS];
} __attribute__((aligned(PPX_CACHELINE)));

struct ppx_io_pair {
    _Atomic uint64_t key; /* (site id << 32 | stack id) + 1; 0 until filled */
    _Atomic uint64_t samples;
    uint64_t sent_generation, sent_samples; /* flusher only */
};

/* The site of id, NULL if it is not published yet. */
struct ppx_io_site *ppx_io_site_get(uint32_t id);
/* The pair at index, NULL if its chunk was never mapped. */
struct ppx_io_pair *ppx_io_pair_get(uint32_t index);

#pragma GCC visibility pop

#endif
