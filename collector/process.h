/* Per-process state held by the collector: what one target incarnation
 * has told us (wire.h), cumulative since its HELLO. Owned by the ingest
 * side; the pprof writers only read it. */
#ifndef PPX_PROCESS_H
#define PPX_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

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
    bool connected;         /* a connection currently feeds it */
    bool said_goodbye;
    unsigned incarnation;   /* 0 for the first process seen with this pid, 1.. after exec */
};

#endif
