/* Per-process state held by the collector: what one target incarnation
 * has told us (wire.h), cumulative since its HELLO. Owned by the ingest
 * side; the pprof writers only read it. */
#ifndef PPX_PROCESS_H
#define PPX_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>
#include <ppx/wire.h>

struct proc_mapping {
    uint32_t id;
    bool is_main;
    uint64_t start, limit, offset, load_bias;
    char *path;
    uint8_t build_id[64];
    size_t build_id_len;
};

struct proc_stack {
    uint32_t id;
    uint32_t depth;
    uint64_t *pcs; /* leaf first; return addresses (symbolize at pc - 1) */
    /* cumulative sampled figures, unscaled */
    uint64_t alloc_objects, alloc_bytes, free_objects, free_bytes;
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
    uint32_t id;         /* the target's id, unique within the incarnation */
    uint32_t tid;        /* kernel thread id (reused by the kernel; ids are not) */
    uint32_t creator_id; /* a proc_thread's id, or WIRE_NO_ID; need not be known */
    uint32_t stack_id;   /* creation stack (a proc_stack), or WIRE_NO_ID */
    uint64_t start_ns, end_ns; /* CLOCK_REALTIME; end_ns 0 while it runs */
    uint64_t cpu_ns;     /* CPU time used, cumulative */
    uint32_t flags;      /* WIRE_THREAD_* */
    char name[WIRE_THREAD_NAME]; /* NUL-terminated */
    UT_hash_handle hh;   /* keyed by id */
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

struct proc {
    uint32_t pid, ppid;
    uint64_t start_ns;      /* identifies the incarnation with pid */
    uint64_t sample_rate;   /* 1 = exact */
    uint32_t max_depth;
    char *exe;              /* executable path */
    char *cmdline;          /* arguments separated by NUL */
    size_t cmdline_len;
    struct proc_mapping *mappings;
    size_t n_mappings, cap_mappings;
    struct proc_stack *stacks; /* uthash by id */
    struct proc_io_site *io_sites; /* uthash by id */
    struct proc_thread *threads;   /* uthash by id, in the order first described */
    struct proc_cpu_sample *cpu_samples; /* uthash by (stack, thread) */
    uint32_t cpu_hz;        /* rate of the latest CPU_SAMPLES record; 0 before one */
    uint64_t cpu_lost, cpu_lost_ns; /* ticks the target could not record */
    /* samples of (stack, thread) pairs beyond the decoder's limit
     * (wire_decode.h): kept in the totals, without stack or thread */
    uint64_t cpu_dropped, cpu_dropped_ns;
    bool threads_full;      /* past WIRE_DECODE_MAX_THREADS: new threads undescribed */
    bool connected;         /* a connection currently feeds it */
    bool said_goodbye;
    bool cpu_fixed;         /* HELLO had WIRE_HELLO_CPU_FIXED: CPU commands are ignored */
    uint64_t flushed_seq;   /* the latest FLUSHED record's seq; 0 before one */
    uint64_t flush_late_seq; /* a flush it did not answer in time (live.c); 0: none */
    uint64_t flush_asked_seq; /* the latest flush asked of its connection (live.c); 0: none */
    unsigned cpu_requests;  /* profile windows asking it for CPU samples now (live.c) */
    uint32_t cpu_hz_asked;  /* the rate they asked for: resent when it reconnects (live.c) */
    unsigned incarnation;   /* 0 for the first process seen with this pid, 1.. after exec */
};

#endif
