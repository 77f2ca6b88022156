/* ppx wire protocol: what libppx.so (the target) sends to ppx (the collector),
 * and the few commands the collector sends back.
 *
 * Transport: a SOCK_STREAM Unix socket. The target connects and writes a
 * stream of records; the collector never trusts a byte of it. After the
 * target's HELLO the collector may write commands the other way (below,
 * "commands"); the target never trusts those either.
 *
 * Framing: every record is a wire_header followed by `length` payload bytes.
 * All integers are little-endian (both ends run on the same host; the
 * collector still checks the magic of the hello to catch a foreign stream).
 * A payload never exceeds WIRE_MAX_RECORD bytes.
 *
 * Order on one connection:
 *   HELLO                  exactly once, first
 *   { MAPPING | STACK | HEAP_DELTA | IO_SITE | IO_DELTA | IO_ERRNO | IO_STACKS
 *     | THREAD | CPU_SAMPLES | FLUSHED | BLOCK_DELTA | MUTEX_DELTA | TASK
 *     | TASKS_END }*
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
    WIRE_IO_SITE = 6,
    WIRE_IO_DELTA = 7,
    WIRE_IO_ERRNO = 8,
    WIRE_IO_STACKS = 9,
    WIRE_THREAD = 10,
    WIRE_CPU_SAMPLES = 11,
    WIRE_FLUSHED = 12,
    WIRE_BLOCK_DELTA = 13,
    WIRE_MUTEX_DELTA = 14,
    WIRE_TASK = 15,      /* one thread or coroutine of a dump (WIRE_CMD_TASKS) */
    WIRE_TASKS_END = 16, /* the end of that dump */
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
    uint32_t magic;   /* WIRE_MAGIC */
    uint32_t version; /* WIRE_VERSION */
    uint32_t pid;
    uint32_t ppid;
    uint64_t start_ns;    /* CLOCK_REALTIME at library start, identifies the incarnation */
    uint64_t sample_rate; /* mean bytes between samples; 1 = every allocation */
    uint32_t max_depth;   /* frames recorded per stack, <= WIRE_MAX_DEPTH */
    uint32_t exe_len;     /* <= WIRE_MAX_PATH */
    uint32_t cmdline_len; /* <= WIRE_MAX_PATH */
    uint32_t flags;       /* WIRE_HELLO_*; other bits 0 */
};
/* PPX_CPU_HZ was set: the target samples CPU at that rate (or not at all,
 * for 0) from its start to its end, and ignores WIRE_CMD_CPU. Without it
 * the target samples CPU only while a collector asks (WIRE_CMD_CPU). */
#define WIRE_HELLO_CPU_FIXED 1u

/* MAPPING payload: one executable segment of a loaded ELF object, then
 * build_id_len bytes of build id, then path_len bytes of path (no NUL).
 * A runtime address a in [start, limit) lies at file offset
 * a - start + offset, and at ELF virtual address a - load_bias. */
struct wire_mapping {
    uint32_t id;
    uint32_t flags;        /* WIRE_MAPPING_MAIN for the main executable */
    uint64_t start;        /* runtime address, page-aligned down */
    uint64_t limit;        /* runtime address one past the segment */
    uint64_t offset;       /* file offset of start */
    uint64_t load_bias;    /* dlpi_addr: runtime address minus ELF vaddr */
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

/* FLUSHED payload: the seq of the WIRE_CMD_FLUSH it answers. Every figure
 * the target had counted when it read the command is in the records
 * before this one. */
struct wire_flushed {
    uint64_t seq;
};

/* ---- I/O call audits ----------------------------------------------------
 * Every hooked I/O call is counted exactly per *site*: the triple (caller
 * pc, call, descriptor class). Full stacks are unwound only for a sample
 * of calls (every call with PPX_SYSCALL_STACKS=all); IO_STACKS says how
 * many sampled calls of a site had which stack, and the collector divides
 * the site's exact figures among its stacks in that proportion. */

enum wire_io_call {
    WIRE_IO_READ = 1,
    WIRE_IO_WRITE,
    WIRE_IO_READV,
    WIRE_IO_WRITEV,
    WIRE_IO_PREAD,
    WIRE_IO_PWRITE,
    WIRE_IO_PREADV,
    WIRE_IO_PWRITEV,
    WIRE_IO_RECV,
    WIRE_IO_SEND,
    WIRE_IO_RECVFROM,
    WIRE_IO_SENDTO,
    WIRE_IO_RECVMSG,
    WIRE_IO_SENDMSG,
    WIRE_IO_RECVMMSG,
    WIRE_IO_SENDMMSG,
    WIRE_IO_ACCEPT,
    WIRE_IO_ACCEPT4,
    WIRE_IO_CONNECT,
    WIRE_IO_EPOLL_WAIT,
    WIRE_IO_EPOLL_PWAIT,
    WIRE_IO_POLL,
    WIRE_IO_PPOLL,
    WIRE_IO_SELECT,
    WIRE_IO_PSELECT,
    WIRE_IO_SENDFILE,
    WIRE_IO_SPLICE,
    /* Readiness set-up: an event loop's epoll_ctl calls are often as many
     * as its reads. epoll_ctl's site is labelled by the watched descriptor
     * (its third argument), epoll_create's by none. */
    WIRE_IO_EPOLL_CTL,
    WIRE_IO_EPOLL_CREATE,
    WIRE_IO_EPOLL_CREATE1,
    WIRE_IO_CALL_MAX /* one past the last */
};

/* What the descriptor a call used was, when the call has one. */
enum wire_fd_type {
    WIRE_FD_NONE = 0, /* no single descriptor (poll, select) or unknown */
    WIRE_FD_FILE = 1, /* regular file */
    WIRE_FD_PIPE = 2, /* pipe or FIFO */
    WIRE_FD_SOCKET = 3,
    WIRE_FD_CHAR = 4,  /* character device, e.g. a terminal */
    WIRE_FD_ANON = 5,  /* epoll, eventfd, timerfd, signalfd and the like */
    WIRE_FD_OTHER = 6, /* directory, block device */
};
enum wire_sock_family {
    WIRE_FAMILY_NONE = 0,
    WIRE_FAMILY_UNIX = 1,
    WIRE_FAMILY_INET = 2,
    WIRE_FAMILY_INET6 = 3,
    WIRE_FAMILY_OTHER = 4
};
enum wire_sock_type {
    WIRE_SOCK_NONE = 0,
    WIRE_SOCK_STREAM = 1,
    WIRE_SOCK_DGRAM = 2,
    WIRE_SOCK_SEQPACKET = 3,
    WIRE_SOCK_RAW = 4,
    WIRE_SOCK_OTHER = 5
};

/* IO_SITE payload: defines a site id, before the first IO_* record that
 * names it. caller_pc is the return address into the function that made
 * the call (symbolize at caller_pc - 1). */
struct wire_io_site {
    uint32_t id;
    uint8_t call;     /* enum wire_io_call */
    uint8_t fd_type;  /* enum wire_fd_type */
    uint8_t family;   /* enum wire_sock_family, sockets only */
    uint8_t socktype; /* enum wire_sock_type, sockets only */
    uint64_t caller_pc;
};

/* IO_DELTA payload: a uint32_t count, 4 bytes of zero, then count entries
 * of increments since the previous delta for the site. errors counts
 * failed calls except EAGAIN/EWOULDBLOCK, which eagain counts. bytes is
 * what successful data calls moved; messages is what recvmmsg/sendmmsg
 * moved (1 per successful call of the other data calls). */
struct wire_io_entry {
    uint32_t site_id;
    uint32_t reserved; /* 0 */
    uint64_t calls;
    uint64_t time_ns; /* wall time spent inside the call */
    uint64_t bytes;
    uint64_t messages;
    uint64_t errors;
    uint64_t eagain;
};

/* IO_ERRNO payload: a uint32_t count, 4 bytes of zero, then entries:
 * failed calls of a site by errno (EAGAIN included), increments. */
struct wire_io_errno_entry {
    uint32_t site_id;
    uint32_t err; /* errno value, 1..4095 */
    uint64_t calls;
};

/* IO_STACKS payload: a uint32_t count, 4 bytes of zero, then entries:
 * sampled calls of a site whose full stack was stack_id (a STACK record;
 * its leaf is the site's caller_pc), increments. */
struct wire_io_stack_entry {
    uint32_t site_id;
    uint32_t stack_id;
    uint64_t samples;
};

/* ---- threads and CPU ------------------------------------------------------
 * THREAD describes one thread of the process, in full, each time anything
 * about it changed (new, renamed, more CPU used, ended); the collector
 * keeps the latest per id. Threads that existed before libppx.so started
 * (the main thread, threads of libraries loaded earlier) are described
 * too, with WIRE_THREAD_PREEXISTING and no creation stack. */
#define WIRE_NO_ID 0xffffffffu
#define WIRE_THREAD_NAME 16u /* bytes, as the kernel's comm: 15 + NUL */

struct wire_thread {
    uint32_t id;         /* chosen by the target, unique within one incarnation
                            (kernel tids are reused; ids are not) */
    uint32_t tid;        /* kernel thread id */
    uint32_t creator_id; /* id of the thread that called pthread_create; WIRE_NO_ID unknown */
    uint32_t stack_id;   /* creation stack (a STACK record sent before; its leaf is the
                            return address into the caller of pthread_create); WIRE_NO_ID none */
    uint64_t start_ns;   /* CLOCK_REALTIME when it started (preexisting: when found) */
    uint64_t end_ns;     /* CLOCK_REALTIME when it ended; 0 while it runs */
    uint64_t cpu_ns;     /* CPU time (user + system) it used so far, cumulative */
    uint32_t flags;      /* WIRE_THREAD_* */
    char name[WIRE_THREAD_NAME]; /* NUL-terminated, NUL-padded */
    uint32_t reserved;           /* 0 */
};
#define WIRE_THREAD_MAIN 1u        /* the process's main thread (tid == pid) */
#define WIRE_THREAD_PREEXISTING 2u /* existed before libppx.so started */

/* CPU_SAMPLES payload: this header, then count entries of increments since
 * the previous record for the same (stack, thread). Each sample stands for
 * 1e9/hz nanoseconds of that thread's CPU time. A CPU stack's leaf is the
 * interrupted pc + 1, so that, like every other frame, it is symbolized at
 * pc - 1. lost counts ticks that could not be recorded (the thread was
 * inside the profiler, a buffer was full); the collector reports them. */
struct wire_cpu_samples {
    uint32_t count;
    uint32_t hz;   /* sampling rate of these samples, 1..WIRE_MAX_CPU_HZ */
    uint64_t lost; /* increment */
};
#define WIRE_MAX_CPU_HZ 10000u
struct wire_cpu_entry {
    uint32_t stack_id;  /* a STACK record sent before */
    uint32_t thread_id; /* a THREAD record's id sent before */
    uint64_t samples;
};

/* ---- contention: the block and mutex profiles ---------------------------
 * As Go's runtime records them (runtime/mprof.go). BLOCK_DELTA: time
 * threads spent waiting for a lock, a condition variable or a semaphore,
 * charged at the stack of the thread that waited (its leaf the return
 * address into the caller of the waiting call). MUTEX_DELTA: time threads
 * spent waiting for a mutex or rwlock, charged at the stack of the thread
 * that held it and released it (its leaf the return address into the
 * caller of the unlock). Both payloads: this header, then count entries of
 * increments since the previous record of the same type for the stack,
 * already scaled by the target's sampling (the collector writes them as
 * they are). Contentions are in 1/WIRE_CONTENTION_ONE units: a sampled
 * short wait stands for rate/wait contentions, as in Go. */
#define WIRE_CONTENTION_ONE 65536u
struct wire_contention_delta {
    uint32_t count;
    uint32_t reserved; /* 0 */
};
struct wire_contention_entry {
    uint32_t stack_id;    /* a STACK record sent before */
    uint32_t reserved;    /* 0 */
    uint64_t contentions; /* in 1/WIRE_CONTENTION_ONE */
    uint64_t delay_ns;
};

/* ---- what every thread and coroutine is doing now ----------------------
 * The answer to WIRE_CMD_TASKS: the target's flusher takes each thread's
 * current stack (a signal to each, unwound in its handler; never waited
 * for beyond a bound) and each state-threads coroutine's, and sends one
 * TASK per thread or coroutine, then TASKS_END with the same seq. Tasks
 * carry their program counters themselves (no STACK record: a dump's
 * stacks are seen once); MAPPING records for them were sent before.
 *
 * TASK payload: this, then depth uint64_t program counters, leaf first,
 * as a STACK's: return addresses, but a thread's leaf is the interrupted
 * pc + 1 (wire.h CPU_SAMPLES), so every frame is symbolized at pc - 1. */
enum wire_task_kind {
    WIRE_TASK_THREAD = 1,
    WIRE_TASK_COROUTINE = 2,
};
/* How the stack was taken, or why it was not. */
enum wire_task_stack {
    WIRE_TASK_STACK_OK = 0,              /* whole */
    WIRE_TASK_STACK_LEAF = 1,            /* the interrupted pc only: the thread was inside the
                                            profiler, the loader's lock was busy, or no stack room */
    WIRE_TASK_STACK_BLOCKED = 2,         /* the thread blocks the dump signal: none */
    WIRE_TASK_STACK_NO_ANSWER = 3,       /* it did not answer in time (stopped, in the kernel) */
    WIRE_TASK_STACK_NO_SIGNAL = 4,       /* the signal is the program's (or CPU profiling is off) */
    WIRE_TASK_STACK_UNREACHABLE = 5,     /* a coroutine on no scheduler queue (waiting on a
                                            condition variable or mutex without timeout) */
    WIRE_TASK_STACK_NOT_INTERRUPTED = 6, /* in a call a signal handler would cut short (nanosleep,
                                            poll, epoll_wait, ...): not asked */
    WIRE_TASK_STACK_MAX = 6,
};
/* A coroutine's state (state-threads), in wire_task.state. A thread's is
 * the letter /proc/PID/task/TID/stat shows ('R', 'S', 'D', 'T', ...), '?'
 * when it could not be read. */
enum wire_coroutine_state {
    WIRE_CO_RUNNING = 1,   /* the one running on its thread now */
    WIRE_CO_RUNNABLE = 2,  /* on the run queue */
    WIRE_CO_SLEEPING = 3,  /* st_sleep/st_usleep: wait_ns is the time left */
    WIRE_CO_IO_WAIT = 4,   /* waiting for fd to be ready (st_read, st_accept, ...) */
    WIRE_CO_COND_WAIT = 5, /* st_cond_wait, st_mutex_lock */
    WIRE_CO_ZOMBIE = 6,    /* ended, not joined yet */
    WIRE_CO_STATE_MAX = 6,
};
/* What a thread is blocked in, by ppx's own hooks (wait_call): an I/O call
 * (enum wire_io_call), or one of these. */
#define WIRE_WAIT_NONE 0u
#define WIRE_WAIT_MUTEX 64u /* pthread_mutex_lock */

struct wire_task {
    uint64_t seq;        /* the WIRE_CMD_TASKS it answers */
    uint64_t id;         /* a coroutine's address; a thread's tid */
    uint64_t wait_ns;    /* how long it has been in wait_call; a sleeping coroutine: time left */
    uint32_t tid;        /* kernel thread id (a coroutine: the thread it runs on) */
    uint32_t thread_id;  /* the THREAD record's id; WIRE_NO_ID unknown */
    uint32_t depth;      /* 0..WIRE_MAX_DEPTH program counters follow */
    int32_t fd;          /* the descriptor it waits on; -1 none */
    uint8_t kind;        /* enum wire_task_kind */
    uint8_t state;       /* a thread's letter, a coroutine's enum wire_coroutine_state */
    uint8_t stack;       /* enum wire_task_stack */
    uint8_t wait_call;   /* WIRE_WAIT_NONE, an enum wire_io_call, WIRE_WAIT_MUTEX */
    uint8_t fd_type;     /* enum wire_fd_type of fd */
    uint8_t reserved[3]; /* 0 */
    char name[WIRE_THREAD_NAME]; /* the thread's name, NUL-terminated, NUL-padded */
};

/* TASKS_END payload: the dump of seq is whole; tasks TASK records were
 * sent for it (the collector checks). */
struct wire_tasks_end {
    uint64_t seq;
    uint32_t tasks;
    uint32_t reserved; /* 0 */
    uint64_t took_ns;  /* how long the dump took in the target */
};

/* ---- commands: collector to target ---------------------------------------
 * After the target's HELLO, the collector may write commands on the same
 * connection, each a wire_header (type one of enum wire_command) followed
 * by exactly `length` payload bytes, length the size of the command's
 * struct. The target reads them each time its flusher wakes (and wakes
 * when one arrives); a command it does not know, or of the wrong length,
 * makes it drop the connection (and reconnect later, from zero). Commands
 * on one connection are acted on in order. */
enum wire_command {
    WIRE_CMD_FLUSH = 0x100, /* send everything now, then FLUSHED */
    WIRE_CMD_CPU = 0x101,   /* start, change or stop CPU sampling */
    WIRE_CMD_TASKS = 0x102, /* take every thread's and coroutine's stack now */
};

/* WIRE_CMD_FLUSH payload: seq, chosen by the collector, comes back in the
 * FLUSHED record that ends the flush. */
struct wire_cmd_flush {
    uint64_t seq;
};

/* WIRE_CMD_CPU payload: sample every thread's CPU time at hz
 * (1..WIRE_MAX_CPU_HZ) from now on, or stop sampling (0). A target whose
 * HELLO had WIRE_HELLO_CPU_FIXED ignores it. */
struct wire_cmd_cpu {
    uint32_t hz;
    uint32_t reserved; /* 0 */
};

/* WIRE_CMD_TASKS payload: seq comes back in the TASK and TASKS_END
 * records of the dump. Its length is sizeof(struct wire_cmd_tasks), or
 * that plus sizeof(struct wire_st_layout) when the collector found
 * state-threads in the DWARF of the target's executable: the layout
 * follows the seq. A target takes both lengths (the shorter: coroutines
 * as before, state-threads 1.9's layout); one older than the layout
 * refuses the longer (wrong length): the collector and libppx.so come
 * from the same ppx, as HELLO's version already requires. */
struct wire_cmd_tasks {
    uint64_t seq;
};

/* A state-threads (ST) linked into the executable, as its DWARF describes
 * it: where its scheduler's variables are and how its records are laid
 * out (byte offsets of members within their struct; WIRE_ST_ABSENT for a
 * member the build lacks). The target checks every offset against its
 * record's size and every variable against the executable's segments
 * before using any, and still checks what it reads (states, saved stack
 * pointers inside their stacks); a layout that fails turns coroutine
 * dumps off, said once on stderr.
 *
 * Variables (flags WIRE_ST_TLS: thread-local, as in recent SRS; each
 * scheduler thread has its own):
 *   this_vp       _st_this_vp (struct _st_vp): the ELF virtual address in
 *                 the executable (the target adds its load bias), or with
 *                 WIRE_ST_TLS its offset in the executable's TLS block
 *   this_thread   _st_this_thread (struct _st_thread *): the running one
 *   active_count  _st_active_count (int): live coroutines; WIRE_ST_NO_VAR
 *                 none (then none is said to be on no queue)
 * struct _st_thread (thread_size bytes):
 *   th_state (int), th_start, th_arg, th_stack (pointers), th_links (the
 *   run/zombie queue's list node), th_tlink (debug builds' list node on
 *   the vp's thread_q, which holds every coroutine; WIRE_ST_ABSENT
 *   without), th_due (st_utime_t, sleeping until), th_left, th_right (the
 *   sleep heap's children), th_context (the saved registers)
 * struct _st_stack (stack_size): stk_bottom, stk_top (pointers)
 * struct _st_vp (vp_size): vp_idle (pointer), vp_run_q, vp_io_q,
 *   vp_zombie_q, vp_thread_q (list heads; thread_q WIRE_ST_ABSENT without
 *   th_tlink), vp_sleep_q (the sleep heap's root)
 * struct _st_pollq (pollq_size): pq_links (its node on io_q), pq_thread
 *   (the waiting record), pq_pds (its struct pollfd array: the first fd
 *   is the one shown)
 * ctx_slot: the 8-byte word of the context that holds rbx, rbp, r12,
 *   r13, r14, r15, the stack pointer after the switch, the pc it returns
 *   to, in that order (ST's md.S on x86-64: 0..7, unmangled);
 *   ctx_words: the context's size in words. */
#define WIRE_ST_TLS 1u
#define WIRE_ST_ABSENT 0xffffu
#define WIRE_ST_NO_VAR UINT64_MAX
#define WIRE_ST_MAX_RECORD 4096u /* bytes: larger records are refused */
struct wire_st_layout {
    uint32_t flags;    /* WIRE_ST_* */
    uint32_t reserved; /* 0 */
    uint64_t this_vp, this_thread, active_count;
    uint16_t thread_size, th_state, th_start, th_arg, th_stack, th_links, th_tlink, th_due, th_left,
        th_right, th_context;
    uint16_t stack_size, stk_bottom, stk_top;
    uint16_t vp_size, vp_idle, vp_run_q, vp_io_q, vp_zombie_q, vp_thread_q, vp_sleep_q;
    uint16_t pollq_size, pq_links, pq_thread, pq_pds;
    uint16_t ctx_words;
    uint8_t ctx_slot[8];
    uint8_t reserved2[4]; /* 0 */
};

/* The layout above is the protocol: both ends compile these structs and
 * the collector copies records into them byte for byte, so a size or an
 * offset that moves (a field added or widened, padding appearing) must be
 * a deliberate protocol change (WIRE_VERSION), never an accident. */
#ifndef __cplusplus
#include <stddef.h>
#define WIRE_SIZE(type, size) _Static_assert(sizeof(struct type) == (size), #type " size")
#define WIRE_FIELD(type, field, offset)                                                            \
    _Static_assert(offsetof(struct type, field) == (offset), #type "." #field " offset")
WIRE_SIZE(wire_header, 8);
WIRE_FIELD(wire_header, type, 0);
WIRE_FIELD(wire_header, length, 4);
WIRE_SIZE(wire_hello, 48);
WIRE_FIELD(wire_hello, magic, 0);
WIRE_FIELD(wire_hello, version, 4);
WIRE_FIELD(wire_hello, pid, 8);
WIRE_FIELD(wire_hello, ppid, 12);
WIRE_FIELD(wire_hello, start_ns, 16);
WIRE_FIELD(wire_hello, sample_rate, 24);
WIRE_FIELD(wire_hello, max_depth, 32);
WIRE_FIELD(wire_hello, exe_len, 36);
WIRE_FIELD(wire_hello, cmdline_len, 40);
WIRE_FIELD(wire_hello, flags, 44);
WIRE_SIZE(wire_mapping, 48);
WIRE_FIELD(wire_mapping, id, 0);
WIRE_FIELD(wire_mapping, flags, 4);
WIRE_FIELD(wire_mapping, start, 8);
WIRE_FIELD(wire_mapping, limit, 16);
WIRE_FIELD(wire_mapping, offset, 24);
WIRE_FIELD(wire_mapping, load_bias, 32);
WIRE_FIELD(wire_mapping, build_id_len, 40);
WIRE_FIELD(wire_mapping, path_len, 44);
WIRE_SIZE(wire_stack, 8);
WIRE_FIELD(wire_stack, id, 0);
WIRE_FIELD(wire_stack, depth, 4);
WIRE_SIZE(wire_heap_entry, 40);
WIRE_FIELD(wire_heap_entry, stack_id, 0);
WIRE_FIELD(wire_heap_entry, reserved, 4);
WIRE_FIELD(wire_heap_entry, alloc_objects, 8);
WIRE_FIELD(wire_heap_entry, alloc_bytes, 16);
WIRE_FIELD(wire_heap_entry, free_objects, 24);
WIRE_FIELD(wire_heap_entry, free_bytes, 32);
WIRE_SIZE(wire_heap_delta, 8);
WIRE_FIELD(wire_heap_delta, count, 0);
WIRE_FIELD(wire_heap_delta, reserved, 4);
WIRE_SIZE(wire_flushed, 8);
WIRE_FIELD(wire_flushed, seq, 0);
WIRE_SIZE(wire_io_site, 16);
WIRE_FIELD(wire_io_site, id, 0);
WIRE_FIELD(wire_io_site, call, 4);
WIRE_FIELD(wire_io_site, fd_type, 5);
WIRE_FIELD(wire_io_site, family, 6);
WIRE_FIELD(wire_io_site, socktype, 7);
WIRE_FIELD(wire_io_site, caller_pc, 8);
WIRE_SIZE(wire_io_entry, 56);
WIRE_FIELD(wire_io_entry, site_id, 0);
WIRE_FIELD(wire_io_entry, reserved, 4);
WIRE_FIELD(wire_io_entry, calls, 8);
WIRE_FIELD(wire_io_entry, time_ns, 16);
WIRE_FIELD(wire_io_entry, bytes, 24);
WIRE_FIELD(wire_io_entry, messages, 32);
WIRE_FIELD(wire_io_entry, errors, 40);
WIRE_FIELD(wire_io_entry, eagain, 48);
WIRE_SIZE(wire_io_errno_entry, 16);
WIRE_FIELD(wire_io_errno_entry, site_id, 0);
WIRE_FIELD(wire_io_errno_entry, err, 4);
WIRE_FIELD(wire_io_errno_entry, calls, 8);
WIRE_SIZE(wire_io_stack_entry, 16);
WIRE_FIELD(wire_io_stack_entry, site_id, 0);
WIRE_FIELD(wire_io_stack_entry, stack_id, 4);
WIRE_FIELD(wire_io_stack_entry, samples, 8);
WIRE_SIZE(wire_thread, 64);
WIRE_FIELD(wire_thread, id, 0);
WIRE_FIELD(wire_thread, tid, 4);
WIRE_FIELD(wire_thread, creator_id, 8);
WIRE_FIELD(wire_thread, stack_id, 12);
WIRE_FIELD(wire_thread, start_ns, 16);
WIRE_FIELD(wire_thread, end_ns, 24);
WIRE_FIELD(wire_thread, cpu_ns, 32);
WIRE_FIELD(wire_thread, flags, 40);
WIRE_FIELD(wire_thread, name, 44);
WIRE_FIELD(wire_thread, reserved, 60);
WIRE_SIZE(wire_cpu_samples, 16);
WIRE_FIELD(wire_cpu_samples, count, 0);
WIRE_FIELD(wire_cpu_samples, hz, 4);
WIRE_FIELD(wire_cpu_samples, lost, 8);
WIRE_SIZE(wire_cpu_entry, 16);
WIRE_FIELD(wire_cpu_entry, stack_id, 0);
WIRE_FIELD(wire_cpu_entry, thread_id, 4);
WIRE_FIELD(wire_cpu_entry, samples, 8);
WIRE_SIZE(wire_cmd_flush, 8);
WIRE_FIELD(wire_cmd_flush, seq, 0);
WIRE_SIZE(wire_cmd_cpu, 8);
WIRE_FIELD(wire_cmd_cpu, hz, 0);
WIRE_FIELD(wire_cmd_cpu, reserved, 4);
WIRE_SIZE(wire_contention_delta, 8);
WIRE_FIELD(wire_contention_delta, count, 0);
WIRE_FIELD(wire_contention_delta, reserved, 4);
WIRE_SIZE(wire_contention_entry, 24);
WIRE_FIELD(wire_contention_entry, stack_id, 0);
WIRE_FIELD(wire_contention_entry, reserved, 4);
WIRE_FIELD(wire_contention_entry, contentions, 8);
WIRE_FIELD(wire_contention_entry, delay_ns, 16);
WIRE_SIZE(wire_task, 64);
WIRE_FIELD(wire_task, seq, 0);
WIRE_FIELD(wire_task, id, 8);
WIRE_FIELD(wire_task, wait_ns, 16);
WIRE_FIELD(wire_task, tid, 24);
WIRE_FIELD(wire_task, thread_id, 28);
WIRE_FIELD(wire_task, depth, 32);
WIRE_FIELD(wire_task, fd, 36);
WIRE_FIELD(wire_task, kind, 40);
WIRE_FIELD(wire_task, state, 41);
WIRE_FIELD(wire_task, stack, 42);
WIRE_FIELD(wire_task, wait_call, 43);
WIRE_FIELD(wire_task, fd_type, 44);
WIRE_FIELD(wire_task, reserved, 45);
WIRE_FIELD(wire_task, name, 48);
WIRE_SIZE(wire_tasks_end, 24);
WIRE_FIELD(wire_tasks_end, seq, 0);
WIRE_FIELD(wire_tasks_end, tasks, 8);
WIRE_FIELD(wire_tasks_end, reserved, 12);
WIRE_FIELD(wire_tasks_end, took_ns, 16);
WIRE_SIZE(wire_cmd_tasks, 8);
WIRE_FIELD(wire_cmd_tasks, seq, 0);
WIRE_SIZE(wire_st_layout, 96);
WIRE_FIELD(wire_st_layout, flags, 0);
WIRE_FIELD(wire_st_layout, this_vp, 8);
WIRE_FIELD(wire_st_layout, active_count, 24);
WIRE_FIELD(wire_st_layout, thread_size, 32);
WIRE_FIELD(wire_st_layout, th_context, 52);
WIRE_FIELD(wire_st_layout, stack_size, 54);
WIRE_FIELD(wire_st_layout, vp_size, 60);
WIRE_FIELD(wire_st_layout, pollq_size, 74);
WIRE_FIELD(wire_st_layout, ctx_words, 82);
WIRE_FIELD(wire_st_layout, ctx_slot, 84);
WIRE_FIELD(wire_st_layout, reserved2, 92);
#undef WIRE_SIZE
#undef WIRE_FIELD
#endif

#endif
