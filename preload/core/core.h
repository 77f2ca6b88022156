/* core: what every stage of libppx.so stands on. Configuration, messages,
 * the profiler's own memory, the calling thread's state and buffers,
 * random numbers, clocks, placement of the profiler's descriptors, and
 * the invariant checks.
 *
 * Everything here runs inside the target process. Ground rules (see
 * STYLE.md): no profiler memory from the target's malloc, no lock held while
 * unwinding or while calling the real allocator, nothing the profiler does
 * is itself profiled (the per-thread guard), never abort the target. */
#ifndef PPX_CORE_H
#define PPX_CORE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

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

/* ---- invariants (check.c) ----
 * Asserted where PPX_CHECKS is defined (configure --enable-checks, the test
 * suite's build): a failure says what and where with write(2) and aborts.
 * In a normal build the condition is not even evaluated: the profiler must
 * never harm its target. Async-signal-safe. */
#ifdef PPX_CHECKS
__attribute__((noreturn)) void ppx_check_failed(const char *file, int line, const char *what);
#define PPX_CHECK(cond) (PPX_LIKELY(cond) ? (void)0 : ppx_check_failed(__FILE__, __LINE__, #cond))
#else
#define PPX_CHECK(cond) ((void)0)
#endif

/* Who holds a lock, for PPX_CHECK: the holder's tid, 0 while it is free.
 * Kept only in check builds; the lock's user calls ppx_owner_take right
 * after locking and ppx_owner_drop right before unlocking. */
struct ppx_owner {
    _Atomic pid_t tid;
};
#ifdef PPX_CHECKS
pid_t ppx_check_tid(void);
static inline void ppx_owner_take(struct ppx_owner *o)
{
    PPX_CHECK(atomic_load_explicit(&o->tid, memory_order_relaxed) == 0);
    atomic_store_explicit(&o->tid, ppx_check_tid(), memory_order_relaxed);
}
static inline void ppx_owner_drop(struct ppx_owner *o)
{
    PPX_CHECK(atomic_load_explicit(&o->tid, memory_order_relaxed) == ppx_check_tid());
    atomic_store_explicit(&o->tid, 0, memory_order_relaxed);
}
/* The lock is free again (a forked child's copy, re-initialised). */
static inline void ppx_owner_reset(struct ppx_owner *o)
{
    atomic_store_explicit(&o->tid, 0, memory_order_relaxed);
}
#define PPX_CHECK_OWNED(o)                                                                         \
    PPX_CHECK(atomic_load_explicit(&(o)->tid, memory_order_relaxed) == ppx_check_tid())
#else
static inline void ppx_owner_take(struct ppx_owner *o)
{
    (void)o;
}
static inline void ppx_owner_drop(struct ppx_owner *o)
{
    (void)o;
}
static inline void ppx_owner_reset(struct ppx_owner *o)
{
    (void)o;
}
#define PPX_CHECK_OWNED(o) ((void)0)
#endif

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

/* ---- config.c: configuration from the environment ---- */

#define PPX_DEFAULT_SAMPLE_RATE 524288u
#define PPX_DEFAULT_MAX_DEPTH 64u
#define PPX_DEFAULT_FLUSH_MS 100u
#define PPX_DEFAULT_FLUSH_IDLE_MS 1000u
#define PPX_DEFAULT_SYSCALL_SAMPLE 64u
#define PPX_DEFAULT_CPU_HZ 100u
#define PPX_DEFAULT_SPOOL_MB 1024u
#define PPX_DEFAULT_BLOCK_RATE 100000u /* ns: see README, "Mutex and block profiles" */
#define PPX_DEFAULT_MUTEX_FRACTION 10u
#define PPX_SOCKET_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

struct ppx_config {
    uint64_t sample_rate;    /* mean bytes between samples; 1 = every allocation */
    uint32_t max_depth;      /* 1..WIRE_MAX_DEPTH */
    uint32_t flush_ms;       /* PPX_FLUSH_MS: the pace while profiles change fast */
    uint32_t flush_idle_ms;  /* PPX_FLUSH_IDLE_MS: the slowest pace, >= flush_ms */
    bool syscalls;           /* PPX_SYSCALLS: false = the I/O hooks only pass through */
    uint32_t syscall_sample; /* mean I/O calls between stacks; 1 = every call */
    uint32_t cpu_hz;         /* PPX_CPU_HZ: SIGPROF ticks per CPU second from the start; 0 = none */
    bool cpu_hz_fixed;       /* PPX_CPU_HZ was set; else CPU is sampled on demand only */
    uint64_t block_rate;     /* PPX_BLOCK_RATE: ns; 0 = no block profile */
    uint32_t mutex_fraction; /* PPX_MUTEX_FRACTION: 1 in N; 0 = no mutex profile */
    bool spool;            /* PPX_SPOOL: the final state goes to a spool file without a collector */
    uint32_t spool_max_mb; /* PPX_SPOOL_MAX_MB: all spool files together */
    char socket_path[PPX_SOCKET_PATH_MAX];
};
/* Written once by ppx_config_load (in ppx_init), read-only after. */
extern struct ppx_config ppx_config;
void ppx_config_load(void);

/* ---- state.c: the library's state and this incarnation's identity ---- */

enum ppx_state { PPX_UNINIT, PPX_INITIALIZING, PPX_READY };
extern atomic_int ppx_state;
/* false when the tables could not be set up: the hooks only pass through */
extern atomic_bool ppx_enabled;
/* CLOCK_REALTIME at start of this process incarnation (a forked child gets its own) */
extern uint64_t ppx_start_ns;
/* getpid() of this incarnation. Differs from getpid() in a vfork child or a
 * raw clone(), which share our memory (or a copy of it) without being us. */
extern pid_t ppx_pid;
/* Sets ppx_start_ns and ppx_pid for this process (at start, after fork). */
void ppx_incarnation_begin(void);

/* ---- log.c: messages on stderr ---- */

/* Once, at initialisation: which file stderr is, so that nothing is ever
 * written into another file a daemon put on fd 2 later. */
void ppx_log_remember_stderr(void);
/* One line on stderr, "ppx: " + the parts; write(2) only (no stdio, no malloc). */
void ppx_log(const char *a, const char *b, const char *c, const char *d);
/* The same with any number of parts, up to a NULL. */
void ppx_log_list(const char *first, ...) __attribute__((sentinel));
/* Like ppx_log, but only the first time for a given flag. */
void ppx_log_once(atomic_flag *once, const char *a, const char *b, const char *c, const char *d);
/* v in decimal, NUL-terminated, cut to fit cap (no stdio). */
void ppx_format_u64(uint64_t v, char *buf, size_t cap);
/* A sample could not be recorded (no memory for the tables): counted, said once. */
void ppx_note_lost(const char *why);

/* The calling thread's kernel id (raw: no libc wrapper, nothing cached). */
static inline pid_t ppx_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* ---- next_symbol.c ---- */

/* The next definition of name (dlsym(RTLD_NEXT)), stored in *slot; a
 * stand-in that fails with ENOSYS if there is none (said once). */
void *ppx_next_symbol(void **slot, const char *name);

/* ---- dir_walk.c ---- */

/* Calls each(dirfd, name) for the entries of directory path until it
 * returns false, with neither malloc nor stdio; false when the directory
 * cannot be opened. */
bool ppx_dir_walk(const char *path, bool (*each)(int dirfd, const char *name, void *arg),
                  void *arg);
/* The same over an open directory, from its start (it is rewound). */
bool ppx_dir_walk_fd(int fd, bool (*each)(int dirfd, const char *name, void *arg), void *arg);

/* ---- the calling thread's state: thread_state.c, thread_buffers.c ---- */

#define PPX_STACK_CACHE 64   /* per-thread interned stack cache, power of two */
#define PPX_IO_SITE_CACHE 64 /* per-thread I/O site cache, power of two */
#define PPX_UNWIND_SLACK 16  /* frames of our own above the caller of malloc */

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
 * of it). From the profiler's own memory, reached through ppx_tls.buffers,
 * taken on the thread's first slow path (or when it starts through the
 * pthread_create hook) and handed to another thread once this one is gone
 * (thread_buffers.c). */
#define PPX_WALK_MEMO_BYTES 8192 /* stack/unwind.c's memos of recent walks */
#define PPX_FRAME_RULE_COPIES 32 /* stack/frame_cache.c's, power of two */
struct ppx_frame_rule_copy {
    uintptr_t key;
    uint64_t rule;
};
/* What a thread is blocked in, as ppx's hooks see it: written by the
 * thread around the real call (two loads and two stores each way), read
 * by a thread dump from the flusher (cpu/task_dump.c). since is 0 while
 * the thread is in no hooked call; what packs the call (enum wire_io_call
 * or WIRE_WAIT_*) and the descriptor: call | (uint32_t)fd << 32. A call
 * made by a signal handler that interrupted another puts the outer one
 * back when it returns. */
struct ppx_wait {
    _Atomic uint64_t since; /* ppx_ticks_now() as the call began */
    _Atomic uint64_t what;
};

struct ppx_thread_buffers {
    struct ppx_wait wait;
    struct ppx_stack_cache_slot stack_cache[PPX_STACK_CACHE];
    struct ppx_io_cache_slot io_cache[PPX_IO_SITE_CACHE];
    uintptr_t pcs[WIRE_MAX_DEPTH + PPX_UNWIND_SLACK];
    uintptr_t verify_pcs[WIRE_MAX_DEPTH + 2 * PPX_UNWIND_SLACK]; /* unw_backtrace's, to compare */
    _Alignas(PPX_CACHELINE) unsigned char walk_memo[PPX_WALK_MEMO_BYTES];
    struct ppx_frame_rule_copy frame_rules[PPX_FRAME_RULE_COPIES];
    unsigned frame_rules_generation;
};

/* The calling thread's profiler state, in static TLS: a few words only
 * (see struct ppx_thread_buffers). */
struct ppx_tls {
    /* Bytes this thread may still allocate before the next sample. The fast
     * path is one compare and one subtraction on this. 0 in a fresh thread,
     * so its first allocation takes the slow path, which seeds it. */
    uint64_t next_sample;
    uint64_t rng;
    uint32_t guard;      /* > 0 while the profiler works on this thread */
    uint32_t holds_lock; /* > 0 inside a table's critical section */
    uint32_t seeded;
    uint32_t unwind_slot;               /* 1 + index of this thread's in-libunwind counter */
    struct ppx_thread_buffers *buffers; /* NULL until ppx_thread_buffers_ensure */
    uintptr_t *pcs;                     /* buffers->pcs: the unwinder's output, guard held */
    /* Lowest address of the thread's stack as far as known (threads started
     * through the hook with a stack size), else 0: see ppx_stack_room(). */
    uintptr_t stack_lo;
};
extern PPX_TLS struct ppx_tls ppx_tls;

/* The buffers of the calling thread, taken now if it has none: lock-free
 * and from mmap, so this works in any hook (and in a signal handler), but
 * the caller must hold the guard, taken while it was 0 (then no call of
 * this thread is under way: a handler sees the guard and does not come
 * here). false when out of memory; said once. */
bool ppx_thread_buffers_take(struct ppx_tls *t);
static inline bool ppx_thread_buffers_ensure(struct ppx_tls *t)
{
    return PPX_LIKELY(t->buffers != NULL) || ppx_thread_buffers_take(t);
}
/* The calling thread enters a call that may block (call: enum wire_io_call
 * or WIRE_WAIT_*; fd -1: none), at ticks t0; *saved keeps what it was in
 * before, for ppx_wait_end. NULL when the thread has no buffers yet. */
static inline struct ppx_wait *ppx_wait_begin(unsigned call, int fd, uint64_t t0,
                                              struct ppx_wait *saved)
{
    struct ppx_thread_buffers *b = ppx_tls.buffers;
    if (PPX_UNLIKELY(b == NULL))
        return NULL;
    struct ppx_wait *w = &b->wait;
    atomic_store_explicit(&saved->since, atomic_load_explicit(&w->since, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&saved->what, atomic_load_explicit(&w->what, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&w->what, (uint64_t)call | (uint64_t)(uint32_t)fd << 32,
                          memory_order_relaxed);
    atomic_store_explicit(&w->since, t0 != 0 ? t0 : 1, memory_order_release);
    return w;
}
static inline void ppx_wait_end(struct ppx_wait *w, const struct ppx_wait *saved)
{
    if (w == NULL)
        return;
    atomic_store_explicit(&w->since, atomic_load_explicit(&saved->since, memory_order_relaxed),
                          memory_order_release);
    atomic_store_explicit(&w->what, atomic_load_explicit(&saved->what, memory_order_relaxed),
                          memory_order_relaxed);
}
/* For a thread dump (the flusher, guard held): for each tids[i] (sorted
 * ascending, n of them), what it is blocked in now: since[i] (ticks; 0 in
 * no hooked call) and what[i] (struct ppx_wait). */
/* Index of tid in tids[0..n) (ascending), or n when it is not there. */
unsigned ppx_tid_index(const pid_t *tids, unsigned n, pid_t tid);
void ppx_thread_waits(const pid_t *tids, unsigned n, uint64_t *since, uint64_t *what);

/* The thread's end is watched (the thread registry's key destructor will run). */
void ppx_thread_buffers_watched(void);
/* The key destructor: the thread is ending. Its buffers stay its own for
 * what it still does, and go to another thread once it is gone. */
void ppx_thread_buffers_end(void);
/* Fork: the other threads' buffers are free in the child. */
void ppx_thread_buffers_reset_child(void);

/* Stack a walk may need: libunwind's cursor, context and DWARF state, and
 * the loader resolving libunwind's symbols on first use. */
#define PPX_UNWIND_STACK_NEED (12u * 1024u)
/* Whether the calling thread has room on its stack for a walk. A thread
 * created with a small stack (PTHREAD_STACK_MIN is 16 KiB) may not: its
 * stacks are then cut to their first frame, rather than overflowing it. */
static inline bool ppx_stack_room(void)
{
    uintptr_t lo = ppx_tls.stack_lo;
    /* below lo (an alternate signal stack, a coroutine's): unsigned wrap, room */
    return lo == 0 || (uintptr_t)__builtin_frame_address(0) - lo >= PPX_UNWIND_STACK_NEED;
}

/* ---- arena.c: the profiler's own memory ---- */

/* Zeroed, never freed, from mmap. NULL when out of memory. */
void *ppx_arena_alloc(size_t size, size_t align);
/* Zeroed pages straight from mmap, for tables that grow. */
void *ppx_pages_alloc(size_t bytes);
void ppx_pages_free(void *p, size_t bytes);
/* For a table whose chunks are mapped on first use: maps a zeroed chunk of
 * bytes for *slot, which was NULL when the caller looked. The first of
 * racing threads (or of a thread and its signal handler) to publish wins,
 * the others' pages go back. The chunk now at *slot; NULL when out of
 * memory. Lock-free. */
void *ppx_pages_publish(_Atomic(void *) *slot, size_t bytes);
void ppx_arena_lock(void);
void ppx_arena_unlock(void);
void ppx_arena_reset_child(void);

/* ---- rng.c: per-thread pseudo-random numbers for the samplers ---- */

uint64_t ppx_random_seed(const void *state);
uint64_t ppx_random_next(uint64_t *state);

/* ---- clock.c: clocks ---- */

static inline uint64_t ppx_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t ppx_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The I/O hooks' clock, in "ticks": the CPU's time-stamp counter where it
 * is invariant (constant rate, never stops: read in ~10 ns, where
 * clock_gettime takes ~30 ns, twice per hooked call), else nanoseconds.
 * The choice depends only on the CPU, so every thread makes the same one,
 * before or after initialisation. ppx_ns_per_tick() converts. */
bool ppx_tsc_probe(void);
extern _Atomic int ppx_tick_clock; /* 0 not probed yet, 1 TSC, 2 CLOCK_MONOTONIC */
static inline uint64_t ppx_ticks_now(void)
{
#if defined(__x86_64__)
    int clock = atomic_load_explicit(&ppx_tick_clock, memory_order_relaxed);
    if (PPX_UNLIKELY(clock == 0))
        clock = ppx_tsc_probe() ? 1 : 2;
    if (PPX_LIKELY(clock == 1))
        return __builtin_ia32_rdtsc();
#endif
    return ppx_monotonic_ns();
}
/* Once, at initialisation: the base the tick rate is measured from. */
void ppx_ticks_init(void);
/* Nanoseconds per tick, at the rate measured since start. */
double ppx_ns_per_tick(void);

/* ---- fd_place.c: the profiler's descriptors, out of the program's way ---- */

/* A high fd number for the profiler's own descriptors, so they stay out of
 * the program's way (programs expect open() to return the lowest free fd). */
int ppx_high_fd_base(void);
/* Moves a descriptor of ours out of the program's reach: above its soft
 * RLIMIT_NOFILE where the limits allow, else to ppx_high_fd_base() or
 * higher. Returns the descriptor to use from now on (fd is closed when it
 * moved; fd itself if it could not move), close-on-exec, errno kept. */
int ppx_fd_above_limit(int fd);
/* fcntl(fd, F_DUPFD_CLOEXEC, min), min possibly at or above the soft limit
 * (raised for that moment). */
int ppx_fd_dup_from(int fd, int min);

/* ---- fd_identity.c: the profiler's own descriptors, known by their file ---- */

/* A program may close any descriptor (a daemon closes them all) and open
 * something else at its number: before each use, the profiler checks that
 * its descriptor still is the file it opened. */
struct ppx_fd_identity {
    dev_t dev;
    ino_t ino;
};
/* Records fd's file in *id; false when fstat fails. */
bool ppx_fd_identify(int fd, struct ppx_fd_identity *id);
/* Whether fd (>= 0) still is the file *id names. Async-signal-safe. */
bool ppx_fd_is(int fd, const struct ppx_fd_identity *id);

#pragma GCC visibility pop

#endif
