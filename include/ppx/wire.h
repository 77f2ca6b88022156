/* ppx wire protocol: what libppx.so (the target) sends to ppx (the collector).
 *
 * Transport: a SOCK_STREAM Unix socket. The target connects and writes a
 * stream of records; the collector never trusts a byte of it.
 *
 * Framing: every record is a wire_header followed by `length` payload bytes.
 * All integers are little-endian (both ends run on the same host; the
 * collector still checks the magic of the hello to catch a foreign stream).
 * A payload never exceeds WIRE_MAX_RECORD bytes.
 *
 * Order on one connection:
 *   HELLO                  exactly once, first
 *   { MAPPING | STACK | HEAP_DELTA }*
 *   GOODBYE                optional, last: the target is exiting normally
 *
 * A connection is one incarnation of one process. A process that loses its
 * collector and reconnects sends HELLO again (same pid, same start_ns) and
 * then its full state from zero: every mapping, every stack it refers to,
 * and counters as deltas from zero. The collector therefore resets what it
 * holds for a (pid, start_ns) pair when it sees a second HELLO for it.
 *
 * Ids: stack ids are chosen by the target, unique within one incarnation;
 * a STACK record precedes the first HEAP_DELTA entry that names its id.
 * Mapping ids likewise precede nothing: the collector locates addresses by
 * range, the id only deduplicates.
 */
#ifndef PPX_WIRE_H
#define PPX_WIRE_H

#include <stdint.h>

#define WIRE_MAGIC 0x31585050u /* "PPX1" little-endian */
#define WIRE_VERSION 1u
#define WIRE_MAX_RECORD (16u << 20) /* bytes of payload, hard limit */
#define WIRE_MAX_DEPTH 256u         /* frames in one stack, hard limit */
#define WIRE_MAX_PATH 4096u         /* bytes of a path or of the command line */
#define WIRE_MAX_BUILD_ID 64u       /* bytes of a GNU build id */

enum wire_type {
    WIRE_HELLO = 1,
    WIRE_MAPPING = 2,
    WIRE_STACK = 3,
    WIRE_HEAP_DELTA = 4,
    WIRE_GOODBYE = 5,
};

struct wire_header {
    uint32_t type;   /* enum wire_type */
    uint32_t length; /* payload bytes that follow */
};

/* HELLO payload: this fixed part, then exe_len bytes of the executable's
 * path (no NUL), then cmdline_len bytes of the command line (arguments
 * separated by NUL bytes, as in /proc/PID/cmdline). length must equal
 * sizeof(struct wire_hello) + exe_len + cmdline_len. */
struct wire_hello {
    uint32_t magic;       /* WIRE_MAGIC */
    uint32_t version;     /* WIRE_VERSION */
    uint32_t pid;
    uint32_t ppid;
    uint64_t start_ns;    /* CLOCK_REALTIME at library start, identifies the incarnation */
    uint64_t sample_rate; /* mean bytes between samples; 1 = every allocation */
    uint32_t max_depth;   /* frames recorded per stack, <= WIRE_MAX_DEPTH */
    uint32_t exe_len;     /* <= WIRE_MAX_PATH */
    uint32_t cmdline_len; /* <= WIRE_MAX_PATH */
    uint32_t reserved;    /* 0 */
};

/* MAPPING payload: one executable segment of a loaded ELF object, then
 * build_id_len bytes of build id, then path_len bytes of path (no NUL).
 * A runtime address a in [start, limit) lies at file offset
 * a - start + offset, and at ELF virtual address a - load_bias. */
struct wire_mapping {
    uint32_t id;
    uint32_t flags;       /* WIRE_MAPPING_MAIN for the main executable */
    uint64_t start;       /* runtime address, page-aligned down */
    uint64_t limit;       /* runtime address one past the segment */
    uint64_t offset;      /* file offset of start */
    uint64_t load_bias;   /* dlpi_addr: runtime address minus ELF vaddr */
    uint32_t build_id_len; /* <= WIRE_MAX_BUILD_ID */
    uint32_t path_len;     /* 1..WIRE_MAX_PATH */
};
#define WIRE_MAPPING_MAIN 1u

/* STACK payload: this, then depth uint64_t program counters. The first is
 * the leaf (the return address into the code that called the allocator),
 * each further one a return address into its caller. The target has
 * already dropped its own frames. depth is 1..WIRE_MAX_DEPTH. */
struct wire_stack {
    uint32_t id;
    uint32_t depth;
};

/* HEAP_DELTA payload: a uint32_t count (then 4 bytes of zero padding),
 * then count entries. Values are increments since the previous delta for
 * the same stack on this connection, unscaled sampled figures. */
struct wire_heap_entry {
    uint32_t stack_id;
    uint32_t reserved; /* 0 */
    uint64_t alloc_objects;
    uint64_t alloc_bytes;
    uint64_t free_objects;
    uint64_t free_bytes;
};
struct wire_heap_delta {
    uint32_t count;
    uint32_t reserved; /* 0 */
};

/* GOODBYE payload: empty. After it the target sends nothing more. */

#endif
