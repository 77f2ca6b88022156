/* The process model: what the collector knows of each target incarnation
 * (cumulative since its HELLO), the table of them, and copies taken for
 * readers. The bottom of the collector's stages: ingest fills it, the
 * symbolizer and the pprof writers read it. */
#ifndef PPX_MODEL_H
#define PPX_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>
#include <ppx/wire.h>
#include "base/base.h"

/* ---- limits ----
 * What one process may hold. The decoder enforces them (ingest.h says
 * what happens beyond each); the profile writers report what was dropped. */
#define PROC_MAX_MAPPINGS 65536u
#define PROC_MAX_STACKS (1u << 22)
#define PROC_MAX_FRAMES (1u << 26) /* program counters held per process: 512 MiB */
#define PROC_MAX_IO_SITES 65536u
#define PROC_MAX_IO_ERRNOS 64u               /* distinct errnos named per site */
#define PROC_MAX_IO_SITE_STACKS 4096u        /* distinct sampled stacks per site */
#define PROC_MAX_IO_STACK_ENTRIES (1u << 20) /* (site, stack) pairs per process */
#define PROC_MAX_THREADS (1u << 20)          /* threads described per process */
#define PROC_MAX_CPU_ENTRIES (1u << 21)      /* (stack, thread) pairs per process */
#define PROC_MAX_DUMP_TASKS (1u << 20)       /* threads and coroutines kept of one dump */
#define PROC_MAX_DUMP_FRAMES (1u << 24)      /* their program counters: 128 MiB */

/* ---- process ---- */
/* Per-process state held by the collector: what one target incarnation
 * has told us (wire.h), cumulative since its HELLO. Owned by the ingest
 * side; the pprof writers only read it. */
struct proc_mapping {
    uint32_t id;
    bool is_main;
    uint64_t start, limit, offset, load_bias;
    char *path;
    uint8_t build_id[64];
    size_t build_id_len;
};

/* Contention figures of a stack (wire.h BLOCK_DELTA, MUTEX_DELTA),
 * cumulative, already scaled by the target's sampling. */
struct proc_contention {
    uint64_t contentions; /* in 1/WIRE_CONTENTION_ONE */
    uint64_t delay_ns;
};

struct proc_stack {
    uint32_t id;
    uint32_t depth;
    uint64_t *pcs; /* leaf first; return addresses (symbolize at pc - 1) */
    /* cumulative sampled figures, unscaled */
    uint64_t alloc_objects, alloc_bytes, free_objects, free_bytes;
    /* the waits at this stack (block) and the waits it caused (mutex) */
    struct proc_contention block, mutex;
    UT_hash_handle hh; /* keyed by id */
};

/* One I/O call site (wire.h IO_SITE) with its exact cumulative figures and
 * the sampled stacks seen from it. */
struct proc_io_errno {
    uint32_t err;
    uint64_t calls;
};
struct proc_io_stack {
    uint32_t stack_id; /* a proc_stack */
    uint64_t samples;
};
struct proc_io_site {
    uint32_t id;
    uint8_t call, fd_type, family, socktype; /* wire.h enums */
    uint64_t caller_pc;
    uint64_t calls, time_ns, bytes, messages, errors, eagain;
    struct proc_io_errno *errnos;
    size_t n_errnos;
    struct proc_io_stack *stacks;
    size_t n_stacks;
    UT_hash_handle hh; /* keyed by id */
};

/* One thread (wire.h THREAD), as its latest record described it. */
struct proc_thread {
    uint32_t id;                 /* the target's id, unique within the incarnation */
    uint32_t tid;                /* kernel thread id (reused by the kernel; ids are not) */
    uint32_t creator_id;         /* a proc_thread's id, or WIRE_NO_ID; need not be known */
    uint32_t stack_id;           /* creation stack (a proc_stack), or WIRE_NO_ID */
    uint64_t start_ns, end_ns;   /* CLOCK_REALTIME; end_ns 0 while it runs */
    uint64_t cpu_ns;             /* CPU time used, cumulative */
    uint32_t flags;              /* WIRE_THREAD_* */
    bool counted_running;        /* in the process's totals.threads */
    char name[WIRE_THREAD_NAME]; /* NUL-terminated */
    UT_hash_handle hh;           /* keyed by id */
};

/* t's name for labels: never "", which profile.proto cannot tell from an
 * absent string (a label with str 0 reads back as a numeric one). */
static inline const char *proc_thread_name(const struct proc_thread *t)
{
    return t->name[0] ? t->name : "(unnamed)";
}

/* CPU samples of one (stack, thread), cumulative. cpu_ns adds each
 * record's samples * 1e9 / hz, so a rate change keeps the time right. */
struct proc_cpu_key {
    uint32_t stack_id, thread_id;
};
struct proc_cpu_sample {
    struct proc_cpu_key key;
    uint64_t samples, cpu_ns;
    UT_hash_handle hh; /* keyed by key */
};

/* What a process's profiles sum to now (proc_totals.c): the heap figures
 * scaled as the heap profile scales them, CPU as its threads' clocks say,
 * I/O as its sites count. Kept by the decoder; reset with the counters. */
struct proc_totals {
    double alloc_objects, alloc_bytes, inuse_objects, inuse_bytes;
    uint64_t cpu_ns; /* the sum of its threads' CPU clocks */
    uint64_t io_calls, io_bytes;
    uint32_t threads; /* described and not ended */
};

/* The peak heap (peak.c): the highest heap in use seen at a flush, and
 * what each stack had in use then. Outlives the HELLOs that reset the
 * process's counters (its history), not the process. */
struct proc_peak_stack;
struct proc_peak {
    double inuse_bytes; /* scaled, as totals.inuse_bytes */
    uint64_t t_ns;      /* CLOCK_REALTIME of the collector, when it was seen */
    bool pending;       /* the process's counters now are the peak's: not copied yet */
    struct proc_peak_stack *stacks;
    size_t n;
};
/* One thread or coroutine of a dump (wire.h TASK): what it was doing. */
struct proc_task {
    uint64_t id;      /* a thread's tid, a coroutine's address */
    uint64_t wait_ns; /* in wait_call so long; a sleeping coroutine: time left */
    uint32_t tid, thread_id, depth;
    int32_t fd;                                     /* -1: none */
    uint8_t kind, state, stack, wait_call, fd_type; /* wire.h */
    char name[WIRE_THREAD_NAME];                    /* NUL-terminated */
    uint64_t *pcs; /* depth of them, leaf first; symbolize at pc - 1 */
};

/* A dump of every thread and coroutine (WIRE_CMD_TASKS), whole once its
 * TASKS_END came. */
struct proc_dump {
    uint64_t seq;      /* the command's; 0: none */
    uint64_t taken_ns; /* CLOCK_REALTIME (the collector's) when it was whole */
    uint64_t took_ns;  /* how long the target took */
    struct proc_task *tasks;
    size_t n, cap;
    uint64_t frames;
    uint64_t dropped; /* tasks beyond PROC_MAX_DUMP_*, counted only */
};
void proc_dump_clear(struct proc_dump *d);

struct proc {
    uint32_t pid, ppid;
    uint64_t start_ns;    /* identifies the incarnation with pid */
    uint64_t sample_rate; /* 1 = exact */
    uint32_t max_depth;
    char *exe;     /* executable path */
    char *cmdline; /* arguments separated by NUL */
    size_t cmdline_len;
    struct proc_mapping *mappings;
    size_t n_mappings, cap_mappings;
    struct proc_stack *stacks;           /* uthash by id */
    struct proc_io_site *io_sites;       /* uthash by id */
    struct proc_thread *threads;         /* uthash by id, in the order first described */
    struct proc_cpu_sample *cpu_samples; /* uthash by (stack, thread) */
    uint32_t cpu_hz;                     /* rate of the latest CPU_SAMPLES record; 0 before one */
    uint64_t cpu_lost, cpu_lost_ns;      /* ticks the target could not record */
    /* samples of (stack, thread) pairs beyond the decoder's limit
     * (ingest.h): kept in the totals, without stack or thread */
    uint64_t cpu_dropped, cpu_dropped_ns;
    bool threads_full; /* past PROC_MAX_THREADS: new threads undescribed */
    bool connected;    /* a connection currently feeds it */
    bool said_goodbye;
    bool cpu_fixed;                /* HELLO had WIRE_HELLO_CPU_FIXED: CPU commands are ignored */
    uint64_t flushed_seq;          /* the latest FLUSHED record's seq; 0 before one */
    uint64_t flush_late_seq;       /* a flush it did not answer in time (live.c); 0: none */
    uint64_t flush_asked_seq;      /* the latest flush asked of its connection (live.c); 0: none */
    unsigned cpu_requests;         /* profile windows asking it for CPU samples now (live.c) */
    uint32_t cpu_hz_asked;         /* the rate they asked for: resent when it reconnects (live.c) */
    unsigned incarnation;          /* 0 for the first process seen with this pid, 1.. after exec */
    struct proc_dump dump;         /* the latest whole dump; seq 0: none */
    struct proc_dump dump_partial; /* the one being received */
    uint64_t tasks_asked_seq;      /* the latest dump asked of its connection (live.c) */
    struct proc_totals totals;
    uint64_t fed_ns;        /* CLOCK_REALTIME: when the latest record was applied (the decoder) */
    struct proc_peak *peak; /* NULL until some heap was in use; kept by proc_clear() */
};

/* ---- proc_totals ---- */
/* Go's scaleHeapSample: an allocation of size S is sampled with probability
 * 1 - exp(-S/rate), so a sampled figure of count blocks of size bytes in
 * all stands for this many times as much (1 in exact mode). */
double proc_heap_scale(uint64_t count, uint64_t size, uint64_t rate);
/* A stack's four heap counters, before and after a change. */
struct proc_heap_counts {
    uint64_t alloc_objects, alloc_bytes, free_objects, free_bytes;
};
/* Moves p's heap totals by what the change from before to after does to
 * that stack's scaled figures. */
void proc_totals_heap(struct proc *p, const struct proc_heap_counts *before,
                      const struct proc_heap_counts *after);

/* The heap in use of one stack's counters moving from before to after,
 * scaled (what proc_totals_heap adds to totals.inuse_bytes). */
double proc_heap_inuse_change(const struct proc *p, const struct proc_heap_counts *before,
                              const struct proc_heap_counts *after);

/* ---- peak ---- */
/* From the decoder: a HEAP_DELTA is about to move the heap in use by
 * inuse_change (the sum of proc_heap_inuse_change over its entries), and
 * it was applied at t_ns. */
void proc_peak_before_delta(struct proc *p, double inuse_change);
/* Whether the process's counters now are its peak's (not copied yet):
 * only then does a delta's inuse_change matter. */
bool proc_peak_pending(const struct proc *p);
void proc_peak_after_delta(struct proc *p, uint64_t t_ns);
/* A pending peak copied now: p's counters are about to go (a HELLO). */
void proc_peak_settle(struct proc *p);
/* A malloc'ed copy (NULL for NULL, or out of memory). */
struct proc_peak *proc_peak_copy(const struct proc_peak *peak);
void proc_peak_free(struct proc_peak *peak);
/* Turns c, a full copy (proc_copy() copies the peak), into its heap at the
 * peak: each stack's allocations are what it had in use then, nothing
 * freed; none for a process that never had heap in use. */
void proc_peak_apply(struct proc *c);

/* ---- timeline ---- */
/* A point a second of a process's totals, for the last hour (timeline.c). */
#define TIMELINE_MAX_POINTS 3600u
struct timeline_point {
    uint64_t t_ns; /* CLOCK_REALTIME */
    struct proc_totals totals;
};
struct proc_timeline;
/* Appends a point of p's totals at t_ns to *tl (made on first use); the
 * oldest goes once TIMELINE_MAX_POINTS are held. false when out of memory. */
bool proc_timeline_add(struct proc_timeline **tl, const struct proc *p, uint64_t t_ns);
/* The time of *tl's latest point; 0 if none. */
uint64_t proc_timeline_last_ns(const struct proc_timeline *tl);
/* The points, oldest first, in a malloc'ed array; NULL with *n 0 if none. */
struct timeline_point *proc_timeline_copy(const struct proc_timeline *tl, size_t *n);
void proc_timeline_free(struct proc_timeline *tl);

/* ---- proc_table ---- */
/* The collector's processes, keyed by (pid, start_ns): one entry per
 * target incarnation. A HELLO creates an entry or, when the same
 * incarnation reconnects, resets it (the target resends its full state).
 * A new start_ns for a pid already seen is a new incarnation (the process
 * exec'd): its `incarnation` number is one more than the last one's. */
struct proc_table;

struct proc_table *proc_table_new(void);
/* Frees every process and the table. */
void proc_table_free(struct proc_table *t);

struct proc *proc_table_find(const struct proc_table *t, uint32_t pid, uint64_t start_ns);

/* Returns the process for (pid, start_ns), created if new, emptied if it
 * existed (its stacks, mappings, strings and counters dropped; pid, start_ns
 * and incarnation kept). *existed tells which. NULL when out of memory. */
struct proc *proc_table_hello(struct proc_table *t, uint32_t pid, uint64_t start_ns, bool *existed);

/* How many HELLOs p has had: a connection that took the n-th is the
 * process's latest while this is n. */
unsigned proc_table_hellos(const struct proc *p);

/* The order (wire_decoder_set_order) of the connection whose HELLO was
 * taken last for p; 0 if none had one. */
uint64_t proc_table_hello_order(const struct proc *p);
void proc_table_set_hello_order(struct proc *p, uint64_t order);

/* Who currently feeds a process: the decoder of its current connection, or
 * NULL. A reconnect takes ownership; the older connection then learns it
 * was superseded. */
void *proc_table_owner(const struct proc *p);
void proc_table_set_owner(struct proc *p, void *owner);

/* True the first time it is called for p: a process whose stream broke
 * the protocol keeps what it sent before the bad record, and is welcome to
 * reconnect (its HELLO starts afresh, and it resends its whole state); if
 * its streams keep breaking, saying so once is enough. */
bool proc_table_first_corruption(struct proc *p);

/* p's timeline (kept by the table: a HELLO that resets p keeps it). */
struct proc_timeline **proc_table_timeline(struct proc *p);

/* Removes p from the table and frees it. p must have no connection
 * (proc_table_owner(p) == NULL): the live collector forgets exited
 * processes this way. */
void proc_table_remove(struct proc_table *t, struct proc *p);

size_t proc_table_count(const struct proc_table *t);
/* The processes in the order they first said HELLO, in a malloc'ed array
 * the caller frees (the processes stay owned by the table). *n gets the
 * count. NULL with *n == 0 for an empty table or when out of memory. */
struct proc **proc_table_list(const struct proc_table *t, size_t *n);

/* True when any stack of p has a sampled allocation. */
bool proc_has_samples(const struct proc *p);

/* True when p made any I/O call a site counted. */
bool proc_has_io(const struct proc *p);

/* True when p sent a CPU sample, or lost one. */
bool proc_has_cpu(const struct proc *p);

/* True when any stack of p has block (mutex false) or mutex figures. */
bool proc_has_contention(const struct proc *p, bool mutex);

/* True when p described any thread. */
bool proc_has_threads(const struct proc *p);

/* I/O detail the decoder dropped beyond its limits (ingest.h), since
 * p's last HELLO: sampled calls whose stack was not kept, and failed calls
 * whose errno was not named. The sites' own figures include both. */
void proc_table_count_io_drops(struct proc *p, uint64_t stack_samples, uint64_t errno_calls);
void proc_table_io_drops(const struct proc *p, uint64_t *stack_samples, uint64_t *errno_calls);

/* Drops everything a HELLO sent after: stacks, mappings, I/O sites,
 * threads, CPU samples and counts, exe, cmdline. */
void proc_clear(struct proc *p);

/* ---- proc_copy ---- */
/* Copies of processes (model.h) that stand on their own, and the
 * difference of two copies.
 *
 * The live collector's readers (HTTP handlers, snapshots, the profiles of
 * an exited process) copy what they need while holding the table's lock,
 * and build profiles from the copy after letting go of it, so symbolizing
 * and encoding never stall the ingest of the targets' streams.
 *
 * A delta profile (`?seconds=N`, Go's net/http/pprof semantics: the
 * difference of two profiles) is made at this level: a copy of the
 * counters at t0, a full copy at t1, and proc_copy_subtract(). Counters
 * are cumulative per id (stack, I/O site, (stack, thread) CPU pair), and a
 * target that reconnects resends them from zero under the same ids, so the
 * subtraction is per id; a figure below its base (a reconnection still
 * being resent) counts as no change. */
enum proc_copy_depth {
    PROC_COPY_FULL,     /* everything a pprof writer reads */
    PROC_COPY_COUNTERS, /* ids and counters only: no frames, mappings, names */
    PROC_COPY_MAPPINGS, /* mappings, names and the latest dump: to look addresses up */
};

/* A malloc'ed copy of p that shares nothing with it; NULL when out of
 * memory. Free it with proc_copy_free(). */
struct proc *proc_copy(const struct proc *p, enum proc_copy_depth depth);
void proc_copy_free(struct proc *copy);

/* Turns now (a PROC_COPY_FULL copy) into the change since base (a copy of
 * the same process, start_ns equal, taken earlier): heap, I/O and CPU
 * counters become differences (a stack whose blocks were freed in the
 * window has more frees than allocations: its in-use figures go
 * negative), threads described in base are dropped (left: the threads
 * created in the window), and start_ns becomes since_ns, so that a
 * profile's duration is the window's. base NULL: the process started in
 * the window, everything stays. */
void proc_copy_subtract(struct proc *now, const struct proc *base, uint64_t since_ns);

#endif
