/* Builds wire streams (include/ppx/wire.h) in memory, for the decoder's
 * unit test and the fuzzer's seed corpus. Header-only: static functions. */
#ifndef PPX_TESTS_UNIT_WIRE_STREAM_H
#define PPX_TESTS_UNIT_WIRE_STREAM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ppx/wire.h>

struct stream {
    uint8_t *data;
    size_t len, cap;
};

static void stream_put(struct stream *s, const void *p, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n)
            cap *= 2;
        s->data = realloc(s->data, cap);
        if (!s->data)
            abort();
        s->cap = cap;
    }
    if (n)
        memcpy(s->data + s->len, p, n);
    s->len += n;
}

static void stream_header(struct stream *s, uint32_t type, uint32_t length)
{
    struct wire_header h = {.type = type, .length = length};
    stream_put(s, &h, sizeof h);
}

static void stream_hello(struct stream *s, uint32_t pid, uint64_t start_ns, uint64_t rate,
                         uint32_t max_depth, const char *exe)
{
    static const char cmdline[] = "prog\0--flag"; /* two arguments */
    struct wire_hello h = {
        .magic = WIRE_MAGIC,
        .version = WIRE_VERSION,
        .pid = pid,
        .ppid = 1,
        .start_ns = start_ns,
        .sample_rate = rate,
        .max_depth = max_depth,
        .exe_len = (uint32_t)strlen(exe),
        .cmdline_len = sizeof cmdline - 1,
    };
    stream_header(s, WIRE_HELLO, (uint32_t)(sizeof h + h.exe_len + h.cmdline_len));
    stream_put(s, &h, sizeof h);
    stream_put(s, exe, h.exe_len);
    stream_put(s, cmdline, h.cmdline_len);
}

static void stream_mapping(struct stream *s, uint32_t id, uint32_t flags, uint64_t start,
                           uint64_t limit, const char *path)
{
    static const uint8_t build_id[20] = {0xde, 0xad, 0xbe, 0xef, 1,  2,  3,  4,  5,  6,
                                         7,    8,    9,    10,   11, 12, 13, 14, 15, 16};
    struct wire_mapping m = {
        .id = id,
        .flags = flags,
        .start = start,
        .limit = limit,
        .offset = 0x1000,
        .load_bias = start - 0x1000,
        .build_id_len = sizeof build_id,
        .path_len = (uint32_t)strlen(path),
    };
    stream_header(s, WIRE_MAPPING, (uint32_t)(sizeof m + m.build_id_len + m.path_len));
    stream_put(s, &m, sizeof m);
    stream_put(s, build_id, sizeof build_id);
    stream_put(s, path, m.path_len);
}

static void stream_stack(struct stream *s, uint32_t id, uint32_t depth, uint64_t first_pc)
{
    struct wire_stack st = {.id = id, .depth = depth};
    stream_header(s, WIRE_STACK, (uint32_t)(sizeof st + depth * sizeof(uint64_t)));
    stream_put(s, &st, sizeof st);
    for (uint32_t i = 0; i < depth; i++) {
        uint64_t pc = first_pc + 16 * i;
        stream_put(s, &pc, sizeof pc);
    }
}

/* One HEAP_DELTA entry for stack_id. */
static void stream_delta1(struct stream *s, uint32_t stack_id, uint64_t ao, uint64_t ab,
                          uint64_t fo, uint64_t fb)
{
    struct wire_heap_delta d = {.count = 1};
    struct wire_heap_entry e = {.stack_id = stack_id,
                                .alloc_objects = ao,
                                .alloc_bytes = ab,
                                .free_objects = fo,
                                .free_bytes = fb};
    stream_header(s, WIRE_HEAP_DELTA, sizeof d + sizeof e);
    stream_put(s, &d, sizeof d);
    stream_put(s, &e, sizeof e);
}

static void stream_io_site(struct stream *s, uint32_t id, uint8_t call, uint8_t fd_type,
                           uint8_t family, uint8_t socktype, uint64_t caller_pc)
{
    struct wire_io_site w = {.id = id,
                             .call = call,
                             .fd_type = fd_type,
                             .family = family,
                             .socktype = socktype,
                             .caller_pc = caller_pc};
    stream_header(s, WIRE_IO_SITE, sizeof w);
    stream_put(s, &w, sizeof w);
}

/* One BLOCK_DELTA or MUTEX_DELTA entry (type) for stack_id. */
static void stream_contention1(struct stream *s, uint32_t type, uint32_t stack_id,
                               uint64_t contentions, uint64_t delay_ns)
{
    struct wire_contention_delta d = {.count = 1};
    struct wire_contention_entry e = {
        .stack_id = stack_id, .contentions = contentions, .delay_ns = delay_ns};
    stream_header(s, type, sizeof d + sizeof e);
    stream_put(s, &d, sizeof d);
    stream_put(s, &e, sizeof e);
}

/* One IO_DELTA entry for site_id. */
static void stream_io_delta1(struct stream *s, uint32_t site_id, uint64_t calls, uint64_t time_ns,
                             uint64_t bytes, uint64_t messages, uint64_t errors, uint64_t eagain)
{
    struct wire_heap_delta h = {.count = 1};
    struct wire_io_entry e = {.site_id = site_id,
                              .calls = calls,
                              .time_ns = time_ns,
                              .bytes = bytes,
                              .messages = messages,
                              .errors = errors,
                              .eagain = eagain};
    stream_header(s, WIRE_IO_DELTA, sizeof h + sizeof e);
    stream_put(s, &h, sizeof h);
    stream_put(s, &e, sizeof e);
}

/* One IO_ERRNO entry. */
static void stream_io_errno1(struct stream *s, uint32_t site_id, uint32_t err, uint64_t calls)
{
    struct wire_heap_delta h = {.count = 1};
    struct wire_io_errno_entry e = {.site_id = site_id, .err = err, .calls = calls};
    stream_header(s, WIRE_IO_ERRNO, sizeof h + sizeof e);
    stream_put(s, &h, sizeof h);
    stream_put(s, &e, sizeof e);
}

/* One IO_STACKS entry. */
static void stream_io_stacks1(struct stream *s, uint32_t site_id, uint32_t stack_id,
                              uint64_t samples)
{
    struct wire_heap_delta h = {.count = 1};
    struct wire_io_stack_entry e = {.site_id = site_id, .stack_id = stack_id, .samples = samples};
    stream_header(s, WIRE_IO_STACKS, sizeof h + sizeof e);
    stream_put(s, &h, sizeof h);
    stream_put(s, &e, sizeof e);
}

static void stream_goodbye(struct stream *s)
{
    stream_header(s, WIRE_GOODBYE, 0);
}

static void stream_thread(struct stream *s, uint32_t id, uint32_t tid, uint32_t creator_id,
                          uint32_t stack_id, uint64_t start_ns, uint64_t end_ns, uint64_t cpu_ns,
                          uint32_t flags, const char *name)
{
    struct wire_thread t;
    memset(&t, 0, sizeof t);
    t.id = id;
    t.tid = tid;
    t.creator_id = creator_id;
    t.stack_id = stack_id;
    t.start_ns = start_ns;
    t.end_ns = end_ns;
    t.cpu_ns = cpu_ns;
    t.flags = flags;
    strncpy(t.name, name, sizeof t.name - 1);
    stream_header(s, WIRE_THREAD, sizeof t);
    stream_put(s, &t, sizeof t);
}

/* A CPU_SAMPLES record of n entries. */
static void stream_cpu(struct stream *s, uint32_t hz, uint64_t lost,
                       const struct wire_cpu_entry *entries, uint32_t n)
{
    struct wire_cpu_samples h = {.count = n, .hz = hz, .lost = lost};
    stream_header(s, WIRE_CPU_SAMPLES, (uint32_t)(sizeof h + n * sizeof *entries));
    stream_put(s, &h, sizeof h);
    stream_put(s, entries, n * sizeof *entries);
}

/* One CPU_SAMPLES entry. */
static void stream_cpu1(struct stream *s, uint32_t hz, uint64_t lost, uint32_t stack_id,
                        uint32_t thread_id, uint64_t samples)
{
    struct wire_cpu_entry e = {.stack_id = stack_id, .thread_id = thread_id, .samples = samples};
    stream_cpu(s, hz, lost, &e, 1);
}

/* A complete, valid stream of pid with threads and CPU samples:
 *   thread 1: tid pid, "prog", the main thread, preexisting, 40 ms CPU
 *   thread 2: tid pid+1, "worker", created by 1 at stack 5, ended, 30 ms
 *   thread 7: tid pid+2, "io", created by 2 at stack 5, renamed from
 *             "prog" (its first record), still running, 10 ms
 *   CPU at 100 Hz: stack 6 on thread 2: 3 + 2 samples; stack 6 on
 *   thread 1: 4; stack 5 on thread 7: 1; lost 3 + 2 ticks */
static void stream_valid_cpu(struct stream *s, uint32_t pid, uint64_t start_ns)
{
    stream_hello(s, pid, start_ns, 524288, 64, "/usr/bin/prog");
    stream_mapping(s, 1, WIRE_MAPPING_MAIN, 0x400000, 0x500000, "/usr/bin/prog");
    stream_stack(s, 5, 3, 0x401000);
    stream_stack(s, 6, 2, 0x402000);
    stream_thread(s, 1, pid, WIRE_NO_ID, WIRE_NO_ID, start_ns, 0, 1000000,
                  WIRE_THREAD_MAIN | WIRE_THREAD_PREEXISTING, "prog");
    stream_thread(s, 7, pid + 2, 2, 5, start_ns + 300, 0, 0, 0, "prog"); /* before its creator */
    stream_thread(s, 2, pid + 1, 1, 5, start_ns + 200, 0, 5000000, 0, "worker");
    const struct wire_cpu_entry first[] = {{.stack_id = 6, .thread_id = 2, .samples = 3},
                                           {.stack_id = 6, .thread_id = 1, .samples = 4}};
    stream_cpu(s, 100, 3, first, 2);
    stream_thread(s, 7, pid + 2, 2, 5, start_ns + 300, 0, 10000000, 0, "io");
    stream_thread(s, 2, pid + 1, 1, 5, start_ns + 200, start_ns + 900, 30000000, 0, "worker");
    stream_cpu1(s, 100, 2, 6, 2, 2);
    stream_cpu1(s, 100, 0, 5, 7, 1);
    stream_thread(s, 1, pid, WIRE_NO_ID, WIRE_NO_ID, start_ns, 0, 40000000,
                  WIRE_THREAD_MAIN | WIRE_THREAD_PREEXISTING, "prog");
    stream_goodbye(s);
}

/* A complete, valid stream of pid with two stacks:
 *   stack 1: 10 allocations, 1000 bytes, 4 freed (400 bytes)
 *   stack 2: 3 allocations, 3 MiB, none freed */
static void stream_valid(struct stream *s, uint32_t pid, uint64_t start_ns)
{
    stream_hello(s, pid, start_ns, 524288, 64, "/usr/bin/prog");
    stream_mapping(s, 1, WIRE_MAPPING_MAIN, 0x400000, 0x500000, "/usr/bin/prog");
    stream_mapping(s, 2, 0, 0x7f0000000000, 0x7f0000100000, "/lib/libc.so.6");
    stream_stack(s, 1, 3, 0x401000);
    stream_stack(s, 2, 64, 0x402000);
    stream_delta1(s, 1, 6, 600, 4, 400);
    stream_delta1(s, 2, 3, 3u << 20, 0, 0);
    stream_delta1(s, 1, 4, 400, 0, 0);
    stream_goodbye(s);
}

/* A complete, valid stream of pid with I/O sites:
 *   site 1: recvmsg on an inet datagram socket, called at 0x401000:
 *           150 calls, 3000 ns, 9000 bytes, 140 messages, 4 errors
 *           (3 ECONNREFUSED=111, 1 EINTR=4), 6 EAGAIN (errno 11);
 *           sampled stacks 1 (5 samples) and 3 (2), both leaf 0x401000
 *   site 2: read on a file at 0x402000: 7 calls, no stack sampled
 *   site 3: epoll_wait, no descriptor class, defined but never called */
static void stream_valid_io(struct stream *s, uint32_t pid, uint64_t start_ns)
{
    stream_hello(s, pid, start_ns, 524288, 64, "/usr/bin/server");
    stream_mapping(s, 1, WIRE_MAPPING_MAIN, 0x400000, 0x500000, "/usr/bin/server");
    stream_stack(s, 1, 3, 0x401000);
    stream_stack(s, 3, 2, 0x401000);
    stream_io_site(s, 1, WIRE_IO_RECVMSG, WIRE_FD_SOCKET, WIRE_FAMILY_INET, WIRE_SOCK_DGRAM,
                   0x401000);
    stream_io_site(s, 2, WIRE_IO_READ, WIRE_FD_FILE, 0, 0, 0x402000);
    stream_io_site(s, 3, WIRE_IO_EPOLL_WAIT, WIRE_FD_NONE, 0, 0, 0x403000);
    stream_io_delta1(s, 1, 100, 2000, 6000, 90, 3, 4);
    stream_io_delta1(s, 2, 7, 70, 700, 7, 0, 0);
    stream_io_errno1(s, 1, 111, 2);
    stream_io_errno1(s, 1, 11, 4);
    stream_io_stacks1(s, 1, 1, 3);
    stream_io_site(s, 1, WIRE_IO_RECVMSG, WIRE_FD_SOCKET, WIRE_FAMILY_INET, WIRE_SOCK_DGRAM,
                   0x401000); /* a resend: same contents */
    stream_io_delta1(s, 1, 50, 1000, 3000, 50, 1, 2);
    stream_io_errno1(s, 1, 111, 1);
    stream_io_errno1(s, 1, 4, 1);
    stream_io_errno1(s, 1, 11, 2);
    stream_io_stacks1(s, 1, 1, 2);
    stream_io_stacks1(s, 1, 3, 2);
    stream_goodbye(s);
}

#endif
