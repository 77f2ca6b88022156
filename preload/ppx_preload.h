/* libppx.so internals: what the preload's files share.
 *
 * Everything here runs inside the target process. Ground rules (see
 * STYLE.md): no profiler memory from the target's malloc, no lock held while
 * unwinding or while calling the real allocator, nothing the profiler does
 * is itself profiled (the per-thread guard), never abort the target. */
#ifndef PPX_PRELOAD_H
#define PPX_PRELOAD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <ppx/wire.h>

/* Everything declared below is internal to libppx.so: hidden, so that it is
 * reached PC-relative instead of through the GOT. */
#pragma GCC visibility push(hidden)

#define PPX_LIKELY(x) __builtin_expect(!!(x), 1)
#define PPX_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PPX_EXPORT __attribute__((visibility("default")))
/* initial-exec: touching the variable never calls __tls_get_addr, which may
 * allocate, so the hooks can use it from the very first malloc. */
#define PPX_TLS __thread __attribute__((tls_model("initial-exec")))
#define PPX_CACHELINE 64

/* MurmurHash3's finaliser, for the hash tables: every input bit reaches
 * every output bit, so both high bits (a shard) and low bits (a slot) of
 * keys that share their low and high bits (addresses) are well spread. */
static inline uint64_t ppx_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* ---- init.c: configuration, lifecycle ---- */

#define PPX_DEFAULT_SAMPLE_RATE 524288u
#define PPX_DEFAULT_MAX_DEPTH 64u
#define PPX_DEFAULT_FLUSH_MS 100u
#define PPX_DEFAULT_SYSCALL_SAMPLE 64u
#define PPX_DEFAULT_CPU_HZ 100u
#define PPX_DEFAULT_SPOOL_MB 1024u
#define PPX_SOCKET_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

struct ppx_config {
    uint64_t sample_rate; /* mean bytes between samples; 1 = every allocation */
    uint32_t max_depth;   /* 1..WIRE_MAX_DEPTH */
    uint32_t flush_ms;
    bool syscalls;           /* PPX_SYSCALLS: false = the I/O hooks only pass through */
    uint32_t syscall_sample; /* mean I/O calls between stacks; 1 = every call */
    uint32_t cpu_hz;         /* PPX_CPU_HZ: SIGPROF ticks per CPU second from the start; 0 = none */
    bool cpu_hz_fixed;       /* PPX_CPU_HZ was set; else CPU is sampled on demand only */
    bool spool;              /* PPX_SPOOL: the final state goes to a spool file without a collector */
    uint32_t spool_max_mb;   /* PPX_SPOOL_MAX_MB: all spool files together */
    char socket_path[PPX_SOCKET_PATH_MAX];
};
extern struct ppx_config ppx_config;

enum ppx_state { PPX_UNINIT, PPX_INITIALIZING, PPX_READY };
extern atomic_int ppx_state;
/* false when the tables could not be set up: the hooks only pass through */
extern atomic_bool ppx_enabled;
/* CLOCK_REALTIME at start of this process incarnation (a forked child gets its own) */
extern uint64_t ppx_start_ns;
/* getpid() of this incarnation. Differs from getpid() in a vfork child or a
 * raw clone(), which share our memory (or a copy of it) without being us. */
extern pid_t ppx_pid;

/* Runs the one-time initialisation if nobody has started it. Returns with
 * ppx_state READY, or INITIALIZING when another thread (or this one, from
 * inside dlsym) is still at it; the caller then uses the bootstrap arena. */
void ppx_init(void);

/* One line on stderr, "ppx: " + the parts; write(2) only (no stdio, no malloc). */
void ppx_log(const char *a, const char *b, const char *c, const char *d);
/* v in decimal, NUL-terminated, cut to fit cap (no stdio). */
void ppx_format_u64(uint64_t v, char *buf, size_t cap);
/* Calls each(dirfd, name) for the entries of directory path until it
 * returns false, with neither malloc nor stdio (dir_walk.c); false when
 * the directory cannot be opened. */
bool ppx_dir_walk(const char *path, bool (*each)(int dirfd, const char *name, void *arg),
                  void *arg);
/* Like ppx_log, but only the first time for a given flag. */
void ppx_log_once(atomic_flag *once, const char *a, const char *b, const char *c,
                  const char *d);
/* A sample could not be recorded (no memory for the tables): counted, said once. */
void ppx_note_lost(const char *why);

/* ---- per-thread state (sampler.c, thread_mem.c) ---- */

#define PPX_STACK_CACHE 64    /* per-thread interned stack cache, power of two */
#define PPX_IO_SITE_CACHE 64  /* per-thread I/O site cache, power of two */
#define PPX_UNWIND_SLACK 16   /* frames of our own above the caller of malloc */

struct ppx_stack;
struct ppx_io_site;
struct ppx_io_local;

struct ppx_stack_cache_slot {
    uint64_t hash;
    struct ppx_stack *stack;
};

struct ppx_io_cache_slot {
    struct ppx_io_site *site;
    struct ppx_io_local *local; /* the site's counters in this thread's block */
};

/* A thread's buffers: too large for static TLS, which glibc carves from
 * every thread's stack (a thread with a 16 KiB stack would lose a quarter
 * of it). From the profiler's own memory, reached through ppx_thread.mem,
 * taken on the thread's first slow path (or when it starts through the
 * pthread_create hook) and handed to another thread once this one is gone
 * (thread_mem.c). */
struct ppx_thread_mem {
    struct ppx_stack_cache_slot stack_cache[PPX_STACK_CACHE];
    struct ppx_io_cache_slot io_cache[PPX_IO_SITE_CACHE];
    uintptr_t pcs[WIRE_MAX_DEPTH + PPX_UNWIND_SLACK];
};

/* Static TLS: a few words only (see struct ppx_thread_mem). */
struct ppx_thread {
    /* Bytes this thread may still allocate before the next sample. The fast
     * path is one compare and one subtraction on this. 0 in a fresh thread,
     * so its first allocation takes the slow path, which seeds it. */
    uint64_t next_sample;
    uint64_t rng;
    uint32_t guard;      /* > 0 while the profiler works on this thread */
    uint32_t holds_lock; /* > 0 inside a table's critical section */
    uint32_t seeded;
    uint32_t unwind_slot; /* 1 + index of this thread's in-libunwind counter */
    struct ppx_thread_mem *mem; /* NULL until ppx_thread_mem_ensure */
    uintptr_t *pcs;             /* mem->pcs: the unwinder's output, guard held */
    /* Lowest address of the thread's stack as far as known (threads started
     * through the hook with a stack size), else 0: see ppx_stack_room(). */
    uintptr_t stack_lo;
};
extern PPX_TLS struct ppx_thread ppx_thread;

/* Slow path of every allocating hook: the thread's countdown ran out (or it
 * was never seeded). Decides whether p (size bytes, NULL if the allocation
 * failed) is sampled and records it. ret: return address into the caller
 * of the hook. */
void ppx_sample_alloc(void *p, size_t size, const void *ret);
/* free(p) found p's page marked in the live filter: forget p and count
 * the free if it was sampled. false: p is NULL or from the bootstrap arena,
 * not for the real free. */
bool ppx_sample_free(void *p);

/* Removes p from the live table if it is there. For realloc, which must
 * forget the old block before the real realloc may hand its address to
 * another thread, and restore it if the real realloc fails. */
struct ppx_live_entry {
    uintptr_t ptr;
    uint64_t size;
    struct ppx_stack *stack;
};
bool ppx_sample_forget(void *p, struct ppx_live_entry *out);
void ppx_sample_restore(const struct ppx_live_entry *e);
void ppx_sample_count_free(const struct ppx_live_entry *e);

/* Fork: the child's next allocation on the forking thread reseeds. */
void ppx_sampler_reset_thread(void);

/* thread_mem.c. The buffers of the calling thread, taken now if it has
 * none: lock-free and from mmap, so this works in any hook (and in a signal
 * handler), but the caller must hold the guard, taken while it was 0 (then
 * no call of this thread is under way: a handler sees the guard and does
 * not come here). false when out of memory; said once. */
bool ppx_thread_mem_take(struct ppx_thread *t);
static inline bool ppx_thread_mem_ensure(struct ppx_thread *t)
{
    return PPX_LIKELY(t->mem != NULL) || ppx_thread_mem_take(t);
}
/* The thread's end is watched (threads.c's key destructor will run). */
void ppx_thread_mem_watched(void);
/* The key destructor: the thread is ending. Its buffers stay its own for
 * what it still does, and go to another thread once it is gone. */
void ppx_thread_mem_end(void);
/* Fork: the other threads' buffers are free in the child. */
void ppx_thread_mem_reset_child(void);

/* Stack a walk may need: libunwind's cursor, context and DWARF state, and
 * the loader resolving libunwind's symbols on first use. */
#define PPX_UNWIND_STACK_NEED (12u * 1024u)
/* Whether the calling thread has room on its stack for a walk. A thread
 * created with a small stack (PTHREAD_STACK_MIN is 16 KiB) may not: its
 * stacks are then cut to their first frame, rather than overflowing it. */
static inline bool ppx_stack_room(void)
{
    uintptr_t lo = ppx_thread.stack_lo;
    /* below lo (an alternate signal stack, a coroutine's): unsigned wrap, room */
    return lo == 0 || (uintptr_t)__builtin_frame_address(0) - lo >= PPX_UNWIND_STACK_NEED;
}

/* ---- hooks_malloc.c: the next allocator ---- */

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
extern struct ppx_real ppx_real;
/* dlsym(RTLD_NEXT) for every function; called once by ppx_init. */
void ppx_hooks_resolve(void);

/* ---- bootstrap.c: memory before the real allocator is known ---- */

void *ppx_bootstrap_alloc(size_t size, size_t align);
size_t ppx_bootstrap_size(const void *p);
void ppx_bootstrap_mark_filter(void);
extern unsigned char ppx_bootstrap_arena[];
#define PPX_BOOTSTRAP_BYTES (256u * 1024u)
static inline bool ppx_bootstrap_owns(const void *p)
{
    return (uintptr_t)p - (uintptr_t)ppx_bootstrap_arena < PPX_BOOTSTRAP_BYTES;
}

/* ---- arena.c: the profiler's own memory ---- */

/* Zeroed, never freed, from mmap. NULL when out of memory. */
void *ppx_arena_alloc(size_t size, size_t align);
/* Zeroed pages straight from mmap, for tables that grow. */
void *ppx_pages_alloc(size_t bytes);
void ppx_pages_free(void *p, size_t bytes);
void ppx_arena_lock(void);
void ppx_arena_unlock(void);
void ppx_arena_reset_child(void);

/* ---- unwind.c ---- */

/* Called once from ppx_init, with the guard held. */
void ppx_unwind_init(void);
/* Fills pcs with up to max_depth return addresses, leaf first, starting at
 * ret (the return address into the caller of the hook). Always >= 1. */
unsigned ppx_unwind(uintptr_t *pcs, unsigned max_depth, const void *ret);
/* Whether pc lies in libppx.so's or libunwind's code (set up by init). */
bool ppx_unwind_own_pc(uintptr_t pc);
/* For the SIGPROF handler (cpu.c), once, outside any handler: where the
 * loader's code lies. */
void ppx_unwind_signal_init(void);
/* In the handler: whether unwinding now could deadlock or read a link map
 * mid-update (the interrupted pc is in ld.so, or the thread is inside
 * dl_iterate_phdr). The tick is then dropped. */
bool ppx_unwind_signal_unsafe(const void *ucontext);
/* In the handler (recursion guard held): fills pcs with up to max_depth
 * frames of the interrupted code, from its ucontext_t. The leaf is the
 * interrupted pc + 1 (wire.h), the others return addresses; frames of
 * libppx.so and libunwind dropped. Async-signal-safe, never blocks. 0 when
 * the tick must be dropped (the loader's lock was busy), else >= 1. */
unsigned ppx_unwind_signal(uintptr_t *pcs, unsigned max_depth, const void *ucontext);
/* Flusher: make sure the program has not closed libunwind's pipe. */
void ppx_unwind_check_fds(void);
/* fork: libunwind's own locks cannot be taken from outside; a child forked
 * while some thread was inside libunwind stops unwinding (it could block on
 * a lock that thread held). */
void ppx_unwind_lock(void);
void ppx_unwind_unlock(void);
void ppx_unwind_reset_child(void);
/* A high fd number for the profiler's own descriptors, so they stay out of
 * the program's way (programs expect open() to return the lowest free fd). */
int ppx_high_fd_base(void);

/* ---- coroutines.c: where stacks of coroutines end ---- */

/* Once, from ppx_unwind_init (guard held): finds state-threads' coroutine
 * entry in the executable and in the object that defines st_thread_create,
 * and registers it with libunwind as the end of the stack. */
void ppx_coroutines_init(void);
/* Whether pc lies in a coroutine entry (pc as libunwind looks it up: an
 * interrupted pc, or a return address - 1). Async-signal-safe. */
bool ppx_coroutine_entry(uintptr_t pc);
/* How many of the n return addresses pcs[] (leaf first) to keep: up to and
 * including the first one in a coroutine entry. */
unsigned ppx_coroutine_cut(const uintptr_t *pcs, unsigned n);

/* ---- fd_place.c ---- */

/* Moves a descriptor of ours out of the program's reach: above its soft
 * RLIMIT_NOFILE where the limits allow, else to ppx_high_fd_base() or
 * higher. Returns the descriptor to use from now on (fd is closed when it
 * moved; fd itself if it could not move), close-on-exec, errno kept. */
int ppx_fd_above_limit(int fd);
/* fcntl(fd, F_DUPFD_CLOEXEC, min), min possibly at or above the soft limit
 * (raised for that moment). */
int ppx_fd_dup_from(int fd, int min);

/* ---- socket_trust.c ---- */

/* Whether the directory of the collector socket at socket_path may be
 * trusted: a directory (not a symlink) of this process's effective uid or
 * root, that group and others may not write. Says once why not. */
bool ppx_socket_dir_trusted(const char *socket_path);
/* Whether the listener at the other end of connected fd runs as this
 * process's effective uid or as root (SO_PEERCRED). Says once why not. */
bool ppx_socket_peer_trusted(int fd, const char *socket_path);

/* ---- stacks.c ---- */

struct ppx_stack {
    /* hot: updated by the hooks */
    _Atomic uint64_t alloc_objects, alloc_bytes, free_objects, free_bytes;
    atomic_uint dirty;             /* on the dirty list, or will be */
    uint32_t id;
    struct ppx_stack *dirty_next;
    /* flusher only: figures already sent on connection sent_generation */
    uint64_t sent_generation;
    uint64_t sent_alloc_objects, sent_alloc_bytes, sent_free_objects, sent_free_bytes;
    /* immutable once published */
    uint64_t hash;
    uint32_t depth;
    uint32_t pad;
    uintptr_t pcs[];
};

void ppx_stacks_init(void);
/* The stack's record, created if new. NULL when out of memory. */
struct ppx_stack *ppx_stack_intern(struct ppx_thread *t, const uintptr_t *pcs, unsigned depth);
void ppx_stack_count_alloc(struct ppx_stack *s, uint64_t bytes);
void ppx_stack_count_free(struct ppx_stack *s, uint64_t bytes);
/* Whether anything was counted since start (or fork). */
bool ppx_stacks_any_counted(void);
/* Stacks ever interned; ids are 0..count-1. */
uint32_t ppx_stacks_count(void);
/* The record of id, NULL if it is not published yet. */
struct ppx_stack *ppx_stack_get(uint32_t id);
/* Takes the whole dirty list (each record once, linked by dirty_next). */
struct ppx_stack *ppx_stacks_take_dirty(void);
/* Puts back a record taken from the dirty list, still dirty. */
void ppx_stacks_requeue(struct ppx_stack *s);
void ppx_stacks_lock_all(void);
void ppx_stacks_unlock_all(void);
void ppx_stacks_reset_child(void);

/* ---- live_table.c ---- */

/* A counting filter over the live table: one counter per 4 KiB page of
 * address space (modulo 4 GiB), counting the sampled live blocks that start
 * there. Indexed by page, not by hash: frees that are near each other in
 * memory read the same cache line, so the filter stays in cache (a hashed
 * index cost a cache miss per free). Static, zero pages until touched:
 * valid before initialisation, and free() pays one relaxed load. */
#define PPX_FILTER_BITS 20
#define PPX_FILTER_PAGE_SHIFT 12
extern _Atomic uint32_t ppx_live_filter[1u << PPX_FILTER_BITS];
static inline size_t ppx_live_filter_index(uintptr_t p)
{
    return (size_t)(p >> PPX_FILTER_PAGE_SHIFT) & ((1u << PPX_FILTER_BITS) - 1);
}
/* Cheap test for free(): false means p was certainly not sampled. */
static inline bool ppx_live_maybe(const void *p)
{
    return atomic_load_explicit(&ppx_live_filter[ppx_live_filter_index((uintptr_t)p)],
                                memory_order_relaxed) != 0;
}
bool ppx_live_init(void);
/* Records a sampled block. If an entry for ptr is still there (its free went
 * unseen), it is returned in *stale (stale->ptr != 0) to be counted freed.
 * false when out of memory. */
bool ppx_live_insert(const struct ppx_live_entry *e, struct ppx_live_entry *stale);
bool ppx_live_remove(uintptr_t ptr, struct ppx_live_entry *out);
void ppx_live_lock_all(void);
void ppx_live_unlock_all(void);
void ppx_live_reset_child(void);

/* ---- mappings.c (flusher thread only) ---- */

struct ppx_encoder;
/* Rescans loaded objects when something was loaded or unloaded (or when
 * force), then encodes every mapping not yet sent on connection gen.
 * false when the connection failed. */
bool ppx_mappings_send(struct ppx_encoder *enc, uint64_t gen, bool force_scan);
/* The main executable's path into buf (NUL-terminated); its length. */
size_t ppx_exe_path(char *buf, size_t cap);

/* ---- I/O call audits: hooks_io.c, hooks_fd.c, io_sites.c, fd_class.c ---- */

/* The I/O hooks count (READY, tables usable, PPX_SYSCALLS not 0). Until
 * then, and on a thread inside the profiler, they only pass through. */
extern atomic_bool ppx_io_active;

/* hooks_io.c, hooks_fd.c: dlsym(RTLD_NEXT) for every hooked function, so
 * that no hook needs the loader later (from a signal handler, say). */
void ppx_io_hooks_resolve(void);
void ppx_fd_hooks_resolve(void);
/* The next definition of name (dlsym(RTLD_NEXT)), stored in *slot; a
 * stand-in that fails with ENOSYS if there is none. Initialises the
 * library first if nothing has yet. */
void *ppx_next_fn(void **slot, const char *name);
static inline void *ppx_next(void **slot, const char *name)
{
    void *fn = __atomic_load_n(slot, __ATOMIC_RELAXED);
    return PPX_LIKELY(fn != NULL) ? fn : ppx_next_fn(slot, name);
}

/* Per-thread pseudo-random numbers for the samplers (sampler.c). */
uint64_t ppx_random_seed(const void *state);
uint64_t ppx_random_next(uint64_t *state);

static inline uint64_t ppx_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The I/O hooks' clock, in "ticks": the CPU's time-stamp counter where it
 * is invariant (constant rate, never stops: read in ~10 ns, where
 * clock_gettime takes ~30 ns, twice per hooked call), else nanoseconds.
 * The choice depends only on the CPU, so every thread makes the same one,
 * before or after initialisation. ppx_io_ns_per_tick() converts. */
bool ppx_io_tsc_probe(void);
extern _Atomic int ppx_io_clock; /* 0 not probed yet, 1 TSC, 2 CLOCK_MONOTONIC */
static inline uint64_t ppx_io_now(void)
{
#if defined(__x86_64__)
    int clock = atomic_load_explicit(&ppx_io_clock, memory_order_relaxed);
    if (PPX_UNLIKELY(clock == 0))
        clock = ppx_io_tsc_probe() ? 1 : 2;
    if (PPX_LIKELY(clock == 1))
        return __builtin_ia32_rdtsc();
#endif
    return ppx_monotonic_ns();
}
/* Nanoseconds per tick, at the rate measured since start. */
double ppx_io_ns_per_tick(void);

/* Counts one finished call at the site (ret, call, class of fd) and
 * samples its stack now and then. fd < 0: the call has no descriptor.
 * err: errno of a failed call, 0 if it succeeded. bytes, messages: what a
 * successful data call moved. May change errno (the hooks restore it). */
void ppx_io_count(unsigned call, int fd, const void *ret, uint64_t t0, int err, uint64_t bytes,
                  uint64_t messages);
void ppx_io_init(void);
/* Whether any I/O call was counted since start (or fork). */
bool ppx_io_any_counted(void);
/* The flusher: how many sites and (site, stack) pairs exist now. Taken
 * with the stack count, before the mapping scan (see stream.c). */
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

/* fd_class.c: what a descriptor is, cached per fd number. The class is
 * packed as fd_type | family << 4 | socktype << 8 (wire.h enums). */
#define PPX_FD_CLASS(type, family, socktype) \
    ((uint32_t)(type) | (uint32_t)(family) << 4 | (uint32_t)(socktype) << 8)
uint32_t ppx_fd_class(int fd);
/* fd was closed or replaced, or is a new descriptor: classify it afresh. */
void ppx_fd_forget(int fd);
void ppx_fd_forget_range(unsigned first, unsigned last);
/* A new socket whose class is known (socket(), accept()). */
void ppx_fd_set_socket(int fd, int domain, int type);
void ppx_fd_set_class(int fd, uint32_t cls);

/* ---- threads and CPU: threads.c, hooks_thread.c, cpu.c, hooks_signal.c ----
 * threads.c keeps a registry of the process's threads (created through the
 * pthread_create hook, or found at start in /proc/self/task) and sends
 * THREAD records; cpu.c runs one CPU-time timer per registered thread and
 * turns its SIGPROF ticks into CPU_SAMPLES. */

struct ppx_cpu_thread; /* cpu.c's per-thread state (timer, sample ring) */

struct ppx_thread_rec {
    uint32_t id;      /* wire id, never reused within an incarnation */
    pid_t tid;
    pthread_t handle; /* valid only for threads created through the hook */
    uint32_t creator_id; /* WIRE_NO_ID if unknown */
    uint32_t stack_id;   /* creation stack, WIRE_NO_ID if none */
    uint32_t flags;      /* WIRE_THREAD_* */
    uint64_t start_ns;
    _Atomic uint64_t end_ns;  /* 0 while it runs */
    _Atomic uint64_t cpu_ns;  /* last read */
    char name[WIRE_THREAD_NAME];
    atomic_uint changed;      /* something to send */
    _Atomic(struct ppx_cpu_thread *) cpu; /* owned by cpu.c; NULL: not sampled */
    struct ppx_thread_rec *next; /* registry list, newest first */
    /* flusher only */
    uint64_t sent_generation;
};

/* The calling thread's record, NULL if it is not registered (yet). */
extern PPX_TLS struct ppx_thread_rec *ppx_thread_self;

/* threads.c */
/* At init: sets up cpu.c (ppx_cpu_init) and registers the calling thread
 * (the main thread, nearly always). */
void ppx_threads_init(void);
/* Flusher, first run: registers the threads found in /proc/self/task that
 * are not registered yet (threads started before us, or while the hooks
 * only passed through) and starts their CPU timers from there. Their
 * ppx_thread_self stays NULL until they call a thread hook. */
void ppx_threads_scan(void);
/* Every record ever registered, newest first (records are never freed;
 * the list only grows at its head, so a reader needs no lock). */
struct ppx_thread_rec *ppx_threads_list(void);
/* Flusher: sends THREAD records for new or changed threads (creation
 * stacks first). false when the connection failed. */
bool ppx_threads_send(struct ppx_encoder *enc, uint64_t gen, uint32_t n_stacks);
void ppx_threads_reset_child(void);
/* Flusher: the main thread called pthread_exit and every other thread but
 * the caller has ended. glibc exits the process (status 0) when its last
 * thread ends; the flusher, a thread too, must then do it. */
bool ppx_threads_none_left(void);

/* cpu.c: called by threads.c */
void ppx_cpu_init(void);
/* From the flusher, for WIRE_CMD_CPU: samples every thread at hz from now
 * on, 0 stops. Nothing when PPX_CPU_HZ was set or sampling stopped for
 * good. ppx_cpu_sample_hz: the rate of the samples not yet sent. */
void ppx_cpu_set_rate(uint32_t hz);
uint32_t ppx_cpu_sample_hz(void);
/* r is registered; start its timer (on the thread itself, or from the
 * flusher for threads found at start). */
void ppx_cpu_thread_started(struct ppx_thread_rec *r);
/* r is ending, on its own thread: stop its timer; its ring is drained and
 * freed by the flusher later. */
void ppx_cpu_thread_ended(struct ppx_thread_rec *r);
/* Flusher: drains every thread's ring and sends CPU_SAMPLES deltas. */
bool ppx_cpu_send(struct ppx_encoder *enc, uint64_t gen);
/* exec: stop every timer and discard pending ticks; after a failed exec,
 * start them again. */
void ppx_cpu_before_exec(void);
void ppx_cpu_after_exec_failed(void);
void ppx_cpu_reset_child(void);
/* > 0 while this thread runs cpu.c's SIGPROF handler (every asynchronous
 * signal blocked). */
extern PPX_TLS unsigned ppx_cpu_in_handler;
/* The program installed a SIGPROF handler of its own (hooks_signal.c):
 * delete every timer, sampling stops for good, say so once. */
void ppx_cpu_sigprof_taken(void);
/* The program's timer_create failed with EAGAIN (no queued-signal slot
 * left for the user): delete one of ppx's timers, its thread goes
 * unsampled. false when ppx has none. */
bool ppx_cpu_give_back_timer(void);

/* hooks_signal.c: SIGPROF's real action, between the program and cpu.c */
struct sigaction;
int ppx_real_sigaction(int sig, const struct sigaction *act, struct sigaction *oact);
/* Installs cpu.c's handler unless the program has a handler of its own
 * (false then); from now on the program sees only its own view. */
bool ppx_sigprof_install(const struct sigaction *handler);
/* exec: SIG_IGN (discards pending ticks), then the program's own action,
 * which the new image inherits. */
void ppx_sigprof_hand_back(void);
/* exec failed: cpu.c's handler again (unless the program took SIGPROF). */
void ppx_sigprof_take_back(const struct sigaction *handler);
/* From cpu.c's handler: a SIGPROF that no timer of ours sent (kill -PROF,
 * the program's own ITIMER_PROF) gets the program's action: ignored under
 * SIG_IGN; under SIG_DFL the process ends by SIGPROF, as it would without
 * ppx (re-raised with the default action, delivered when the handler
 * returns). Async-signal-safe. */
void ppx_sigprof_foreign(void);

/* io_sites.c: a thread is ending; its counters go back to the pool. */
void ppx_io_thread_exit(void);

/* ---- spool.c: the final state of a process with no collector ---- */

/* Creates this incarnation's spool file (stream_mu held); its descriptor
 * and in *room the bytes it may take, or -1 when spooling is off or not
 * possible here (quietly, but for a full spool directory). */
int ppx_spool_open(uint64_t *room);
/* Closes it: kept under its final name when complete, else removed. */
void ppx_spool_close(int fd, bool complete);

/* ---- stream.c ---- */

/* Appends one record (header + up to three payload parts); false when the
 * connection failed. */
bool ppx_emit(struct ppx_encoder *enc, uint32_t type, const void *a, size_t alen,
              const void *b, size_t blen, const void *c, size_t clen);
/* Emits s's STACK record unless this connection has it already. */
bool ppx_stream_send_stack(struct ppx_encoder *enc, struct ppx_stack *s);
void ppx_stream_init(void);
/* The constructor's argc/argv (glibc passes them to ELF constructors): the
 * HELLO's command line without reading /proc (and taking a descriptor). */
void ppx_stream_set_cmdline(int argc, char **argv);
/* Constructor: one synchronous flush (connects if a collector listens),
 * and the flusher thread if one did; else the flusher waits for one. */
void ppx_stream_begin(void);
/* The flusher starts once a collector's socket is there, looked for from
 * CLOCK_MONOTONIC after_ns on, at most once a second, by
 * ppx_stream_start_if_due on the allocation slow path. */
extern atomic_bool ppx_stream_start_pending;
void ppx_stream_start_later(uint64_t after_ns);
void ppx_stream_start_if_due(void);
/* threads.c: the program's last thread is ending, on that thread; the
 * flusher stops and is waited for, so that the process exits on it. */
void ppx_stream_last_thread_ending(void);
/* Destructor: final flush, GOODBYE, stop the flusher. */
void ppx_stream_shutdown(void);
void ppx_stream_lock(void);
void ppx_stream_unlock(void);
void ppx_stream_reset_child(void);
void ppx_stream_disable_child(void);
/* exec: send what this image recorded, with GOODBYE; and if exec failed,
 * carry on (the next flush reconnects). */
void ppx_stream_before_exec(void);
void ppx_stream_after_exec_failed(void);
/* Whether the flush under way is the last one (exit, exec): every change
 * goes out then, however small (threads.c's CPU times). */
bool ppx_stream_final_flush(void);
/* The collector connection's descriptor number (-1: none), for the I/O
 * hooks: a read or write of it by the program (a daemon that writes to
 * every descriptor) has mixed the program's bytes into the stream, or
 * taken the collector's. */
extern atomic_int ppx_stream_fd;
void ppx_stream_program_touched(void);
/* In an I/O hook, before the call: fd is our connection's number, and the
 * caller is the program (not the profiler, which holds the guard). */
static inline void ppx_stream_check_program_use(int fd)
{
    if (PPX_UNLIKELY(fd == atomic_load_explicit(&ppx_stream_fd, memory_order_relaxed)) &&
        ppx_thread.guard == 0)
        ppx_stream_program_touched();
}

#pragma GCC visibility pop

#endif
