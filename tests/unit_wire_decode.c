/* The wire stream decoder: valid streams in any chunking give the right
 * figures; every kind of malformed stream is refused with its message,
 * keeps what came before, and neither crashes nor leaks (run it under
 * valgrind or ASan to check the latter). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include "proc_table.h"
#include "wire_decode.h"
#include "unit_wire_stream.h"

static int failures;

static void check(int ok, const char *fmt, ...)
{
    if (ok)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures++;
}

static struct proc_stack *stack_of(const struct proc *p, uint32_t id)
{
    struct proc_stack *s;
    HASH_FIND(hh, p->stacks, &id, sizeof id, s);
    return s;
}

/* Feeds s in chunks of `chunk` bytes (0: all at once); returns the decoder
 * result of the last call (the feed, or the end of stream). */
static int feed_chunked(struct wire_decoder *d, const struct stream *s, size_t chunk, bool end)
{
    size_t step = chunk ? chunk : s->len;
    int rc = 0;
    for (size_t at = 0; at < s->len && rc == 0; at += step) {
        size_t n = s->len - at < step ? s->len - at : step;
        rc = wire_decoder_feed(d, s->data + at, n);
    }
    if (rc == 0 && end)
        rc = wire_decoder_end(d);
    return rc;
}

static void check_valid_figures(const struct proc *p, const char *how)
{
    check(p != NULL, "%s: no process", how);
    if (!p)
        return;
    check(p->pid == 4242 && p->ppid == 1 && p->start_ns == 77, "%s: identity", how);
    check(p->sample_rate == 524288 && p->max_depth == 64, "%s: rate/depth", how);
    check(p->exe && strcmp(p->exe, "/usr/bin/prog") == 0, "%s: exe", how);
    check(p->cmdline_len == 11 && memcmp(p->cmdline, "prog\0--flag", 11) == 0, "%s: cmdline",
          how);
    check(p->n_mappings == 2, "%s: %zu mappings, want 2", how, p->n_mappings);
    if (p->n_mappings == 2) {
        check(p->mappings[0].is_main && !p->mappings[1].is_main, "%s: main flag", how);
        check(strcmp(p->mappings[1].path, "/lib/libc.so.6") == 0, "%s: mapping path", how);
        check(p->mappings[0].build_id_len == 20 && p->mappings[0].build_id[0] == 0xde,
              "%s: build id", how);
        check(p->mappings[0].start == 0x400000 && p->mappings[0].limit == 0x500000,
              "%s: mapping range", how);
    }
    check(HASH_COUNT(p->stacks) == 2, "%s: %u stacks, want 2", how, HASH_COUNT(p->stacks));
    const struct proc_stack *s1 = stack_of(p, 1), *s2 = stack_of(p, 2);
    check(s1 && s1->depth == 3 && s1->pcs[0] == 0x401000 && s1->pcs[2] == 0x401020,
          "%s: stack 1 frames", how);
    check(s1 && s1->alloc_objects == 10 && s1->alloc_bytes == 1000 && s1->free_objects == 4 &&
              s1->free_bytes == 400,
          "%s: stack 1 figures", how);
    check(s2 && s2->depth == 64 && s2->alloc_objects == 3 && s2->alloc_bytes == 3u << 20 &&
              s2->free_objects == 0,
          "%s: stack 2 figures", how);
    check(p->said_goodbye && !p->connected, "%s: goodbye/connected", how);
}

static void test_valid_stream(void)
{
    struct stream s = {0};
    stream_valid(&s, 4242, 77);
    static const size_t chunks[] = {0, 1, 2, 3, 7, 8, 9, 64, 1000};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        char how[64];
        snprintf(how, sizeof how, "valid stream in chunks of %zu", chunks[i]);
        struct proc_table *t = proc_table_new();
        struct wire_decoder *d = wire_decoder_new(t, 0);
        int rc = feed_chunked(d, &s, chunks[i], true);
        check(rc == 0, "%s: rc %d (%s)", how, rc, wire_decoder_error(d));
        check(wire_decoder_said_goodbye(d), "%s: goodbye", how);
        check(proc_table_count(t) == 1, "%s: process count", how);
        check_valid_figures(proc_table_find(t, 4242, 77), how);
        wire_decoder_free(d);
        proc_table_free(t);
    }
    free(s.data);
}

/* Runs the stream `good` followed by `bad`, expects an error containing
 * want, and the figures of `good` kept. */
static void expect_error(const char *name, const struct stream *good, const struct stream *bad,
                         bool at_end, const char *want)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct proc_table *t = proc_table_new();
        struct wire_decoder *d = wire_decoder_new(t, 999);
        int rc = good ? feed_chunked(d, good, bytewise, false) : 0;
        check(rc == 0, "%s: prefix refused: %s", name, wire_decoder_error(d));
        rc = feed_chunked(d, bad, bytewise, at_end);
        const char *err = wire_decoder_error(d);
        check(rc == -1, "%s: accepted", name);
        check(strstr(err, want) != NULL, "%s: error \"%s\", want \"%s\"", name, err, want);
        check(wire_decoder_feed(d, "x", 1) == -1, "%s: decoder recovered", name);
        struct proc *p = wire_decoder_proc(d);
        if (p)
            check(!p->connected, "%s: still connected after the error", name);
        wire_decoder_free(d);
        proc_table_free(t);
    }
}

static void prefix(struct stream *s)
{
    stream_hello(s, 1234, 5, 1, 8, "/bin/x");
    stream_stack(s, 1, 2, 0x1000);
}

static void test_errors(void)
{
    struct stream good = {0}, b = {0};
    prefix(&good);

    /* HELLO problems */
    struct wire_hello h = {.magic = 0x12345678, .version = 1, .pid = 7, .sample_rate = 1,
                           .max_depth = 8};
    stream_header(&b, WIRE_HELLO, sizeof h);
    stream_put(&b, &h, sizeof h);
    expect_error("bad magic", NULL, &b, false,
                 "ppx: pid 999: bad HELLO record: bad magic 0x12345678");
    b.len = 0;
    h.magic = WIRE_MAGIC;
    h.version = 2;
    stream_header(&b, WIRE_HELLO, sizeof h);
    stream_put(&b, &h, sizeof h);
    expect_error("bad version", NULL, &b, false, "bad HELLO record: protocol version 2");
    b.len = 0;
    h.version = 1;
    h.max_depth = 0;
    stream_header(&b, WIRE_HELLO, sizeof h);
    stream_put(&b, &h, sizeof h);
    expect_error("hello depth 0", NULL, &b, false, "bad HELLO record: max depth 0");
    b.len = 0;
    h.max_depth = 8;
    h.exe_len = 5; /* promised, not sent: length disagrees */
    stream_header(&b, WIRE_HELLO, sizeof h);
    stream_put(&b, &h, sizeof h);
    expect_error("hello lengths", NULL, &b, false, "bad HELLO record: length 48, but");
    b.len = 0;
    h.exe_len = WIRE_MAX_PATH + 1;
    stream_header(&b, WIRE_HELLO, sizeof h + WIRE_MAX_PATH + 1);
    stream_put(&b, &h, sizeof h);
    for (unsigned i = 0; i < WIRE_MAX_PATH + 1; i++)
        stream_put(&b, "a", 1);
    expect_error("hello long exe", NULL, &b, false,
                 "bad HELLO record: executable path of 4097 bytes exceeds 4096");
    b.len = 0;
    stream_header(&b, WIRE_HELLO, 9000);
    expect_error("hello oversize", NULL, &b, false, "bad HELLO record: length 9000 exceeds 8240");
    b.len = 0;
    stream_stack(&b, 1, 1, 0x10);
    expect_error("no hello", NULL, &b, false, "ppx: pid 999: STACK record before HELLO");
    b.len = 0;
    stream_hello(&b, 1234, 5, 1, 8, "/bin/x");
    expect_error("second hello", &good, &b, false, "second HELLO on one connection");

    /* framing */
    b.len = 0;
    stream_header(&b, 9, 0);
    expect_error("unknown type", &good, &b, false, "ppx: pid 1234: unknown record type 9");
    b.len = 0;
    stream_header(&b, WIRE_HEAP_DELTA, WIRE_MAX_RECORD + 1);
    expect_error("oversize record", &good, &b, false,
                 "HEAP_DELTA record of 16777217 bytes exceeds the 16777216-byte limit");
    b.len = 0;
    stream_header(&b, WIRE_STACK, 0x10000);
    expect_error("oversize stack", &good, &b, false, "bad STACK record: length 65536 exceeds");

    /* STACK */
    b.len = 0;
    struct wire_stack st = {.id = 3, .depth = 0};
    stream_header(&b, WIRE_STACK, sizeof st);
    stream_put(&b, &st, sizeof st);
    expect_error("depth 0", &good, &b, false, "ppx: pid 1234: bad STACK record: depth 0");
    b.len = 0;
    stream_stack(&b, 3, 9, 0x10);
    expect_error("depth over hello", &good, &b, false,
                 "bad STACK record: depth 9 exceeds the max depth 8 announced in HELLO");
    b.len = 0;
    st.depth = WIRE_MAX_DEPTH + 1;
    stream_header(&b, WIRE_STACK, sizeof st);
    stream_put(&b, &st, sizeof st);
    expect_error("depth over limit", &good, &b, false, "bad STACK record: depth 257");
    b.len = 0;
    st.depth = 2;
    stream_header(&b, WIRE_STACK, sizeof st + 8); /* one pc for depth 2 */
    stream_put(&b, &st, sizeof st);
    stream_put(&b, "12345678", 8);
    expect_error("stack length", &good, &b, false,
                 "bad STACK record: length 16 does not match depth 2");
    b.len = 0;
    stream_stack(&b, 1, 2, 0x2000);
    expect_error("stack redefined", &good, &b, false,
                 "bad STACK record: stack id 1 redefined with different frames");

    /* HEAP_DELTA */
    b.len = 0;
    stream_delta1(&b, 77, 1, 1, 0, 0);
    expect_error("unknown stack", &good, &b, false,
                 "ppx: pid 1234: bad HEAP_DELTA record: entry 0: unknown stack id 77");
    b.len = 0;
    struct wire_heap_delta hd = {.count = 2};
    struct wire_heap_entry e = {.stack_id = 1, .alloc_objects = 1};
    stream_header(&b, WIRE_HEAP_DELTA, sizeof hd + sizeof e);
    stream_put(&b, &hd, sizeof hd);
    stream_put(&b, &e, sizeof e);
    expect_error("count vs length", &good, &b, false,
                 "bad HEAP_DELTA record: length 48 does not match count 2");
    b.len = 0;
    hd.count = 0xffffffffu;
    stream_header(&b, WIRE_HEAP_DELTA, sizeof hd);
    stream_put(&b, &hd, sizeof hd);
    expect_error("huge count", &good, &b, false, "does not match count 4294967295");

    /* MAPPING */
    b.len = 0;
    stream_mapping(&b, 1, 0, 0x5000, 0x5000, "/lib/x.so");
    expect_error("empty mapping", &good, &b, false, "bad MAPPING record: mapping 1 has an empty");
    b.len = 0;
    struct wire_mapping m = {.id = 1, .start = 1, .limit = 2, .path_len = 0};
    stream_header(&b, WIRE_MAPPING, sizeof m);
    stream_put(&b, &m, sizeof m);
    expect_error("mapping no path", &good, &b, false, "bad MAPPING record: path length 0");
    b.len = 0;
    m.path_len = 1;
    m.build_id_len = WIRE_MAX_BUILD_ID + 1;
    stream_header(&b, WIRE_MAPPING, sizeof m + 1 + m.build_id_len);
    stream_put(&b, &m, sizeof m);
    for (unsigned i = 0; i < 1 + m.build_id_len; i++)
        stream_put(&b, "a", 1);
    expect_error("build id too long", &good, &b, false, "build id of 65 bytes exceeds 64");

    /* after GOODBYE, truncation */
    b.len = 0;
    stream_goodbye(&b);
    stream_goodbye(&b);
    expect_error("after goodbye", &good, &b, false, "ppx: pid 1234: data after GOODBYE");
    b.len = 0;
    stream_stack(&b, 2, 2, 0x10);
    b.len -= 3;
    expect_error("truncated payload", &good, &b, true,
                 "stream ended inside a STACK record (21 of 24 payload bytes)");
    b.len = 0;
    stream_header(&b, WIRE_STACK, 24);
    b.len = 5;
    expect_error("truncated header", &good, &b, true,
                 "stream ended inside a record header (5 of 8 bytes)");

    free(good.data);
    free(b.data);
}

/* What came before a bad record stays: figures applied, process kept. */
static void test_data_kept(void)
{
    struct stream s = {0};
    stream_hello(&s, 10, 1, 1, 8, "/bin/x");
    stream_stack(&s, 1, 1, 0x10);
    stream_delta1(&s, 1, 5, 50, 1, 10);
    stream_delta1(&s, 99, 1, 1, 0, 0); /* bad */
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d, s.data, s.len) == -1, "kept: bad record accepted");
    wire_decoder_free(d);
    struct proc *p = proc_table_find(t, 10, 1);
    struct proc_stack *st = p ? stack_of(p, 1) : NULL;
    check(st && st->alloc_objects == 5 && st->alloc_bytes == 50 && st->free_bytes == 10,
          "kept: figures before the bad record lost");

    /* The same process reconnecting after a protocol error is refused,
     * once loudly, then quietly, and its data stays. */
    s.len = 0;
    stream_hello(&s, 10, 1, 1, 8, "/bin/x");
    for (int i = 0; i < 2; i++) {
        d = wire_decoder_new(t, 0);
        check(wire_decoder_feed(d, s.data, s.len) == -1, "kept: broken process reconnected");
        const char *err = wire_decoder_error(d);
        check(i == 0 ? strstr(err, "pid 10: refusing its reconnections") != NULL : *err == 0,
              "kept: refusal message %d: \"%s\"", i, err);
        wire_decoder_free(d);
    }
    check(st && st->alloc_objects == 5, "kept: refused reconnect wiped data");
    proc_table_free(t);
    free(s.data);
}

/* A reconnect (second connection, same pid and start_ns) resets the
 * process; a new start_ns for the same pid is a new incarnation. */
static void test_reconnect_and_exec(void)
{
    struct proc_table *t = proc_table_new();
    struct stream s = {0};
    stream_hello(&s, 20, 100, 1, 8, "/bin/a");
    stream_stack(&s, 1, 1, 0x10);
    stream_delta1(&s, 1, 5, 50, 0, 0);
    struct wire_decoder *d1 = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d1, s.data, s.len) == 0, "reconnect: first stream");

    /* The old connection is still open when the new one says HELLO. */
    s.len = 0;
    stream_hello(&s, 20, 100, 1, 8, "/bin/a");
    stream_stack(&s, 1, 1, 0x10);
    stream_delta1(&s, 1, 7, 70, 0, 0);
    struct wire_decoder *d2 = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d2, s.data, s.len) == 0, "reconnect: second stream: %s",
          wire_decoder_error(d2));
    struct proc *p = proc_table_find(t, 20, 100);
    check(proc_table_count(t) == 1, "reconnect: %zu processes", proc_table_count(t));
    check(p && stack_of(p, 1) && stack_of(p, 1)->alloc_objects == 7,
          "reconnect: figures not reset to the resent state");
    check(p && p->incarnation == 0 && p->connected, "reconnect: incarnation/connected");

    /* The superseded connection is refused on its next record; the
     * process stays connected through the new one. */
    s.len = 0;
    stream_delta1(&s, 1, 1, 1, 0, 0);
    check(wire_decoder_feed(d1, s.data, s.len) == -1, "reconnect: old connection still fed");
    check(strstr(wire_decoder_error(d1), "superseded") != NULL, "reconnect: message \"%s\"",
          wire_decoder_error(d1));
    wire_decoder_free(d1);
    check(p && p->connected && stack_of(p, 1)->alloc_objects == 7,
          "reconnect: old connection disturbed the new one");

    /* exec: same pid, new start_ns */
    s.len = 0;
    stream_hello(&s, 20, 200, 1, 8, "/bin/b");
    struct wire_decoder *d3 = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d3, s.data, s.len) == 0, "exec: hello");
    struct proc *q = proc_table_find(t, 20, 200);
    check(q && q != p && q->incarnation == 1, "exec: incarnation %u", q ? q->incarnation : 99);
    check(proc_table_count(t) == 2, "exec: %zu processes", proc_table_count(t));
    size_t n;
    struct proc **list = proc_table_list(t, &n);
    check(n == 2 && list[0] == p && list[1] == q, "exec: list order");
    free(list);
    wire_decoder_free(d2);
    wire_decoder_free(d3);
    check(!p->connected && !q->connected, "exec: connected after free");
    proc_table_free(t);
    free(s.data);
}

/* Frees reported ahead of their allocations are clamped, then caught up. */
static void test_free_clamp(void)
{
    struct stream s = {0};
    stream_hello(&s, 30, 1, 1, 8, "/bin/x");
    stream_stack(&s, 1, 1, 0x10);
    stream_delta1(&s, 1, 2, 20, 3, 30); /* one free ahead */
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d, s.data, s.len) == 0, "clamp: refused");
    struct proc_stack *st = stack_of(proc_table_find(t, 30, 1), 1);
    check(st->free_objects == 2 && st->free_bytes == 20, "clamp: free %llu/%llu, want 2/20",
          (unsigned long long)st->free_objects, (unsigned long long)st->free_bytes);
    s.len = 0;
    stream_delta1(&s, 1, 1, 10, 0, 0); /* the allocation arrives */
    check(wire_decoder_feed(d, s.data, s.len) == 0, "clamp: second delta refused");
    check(st->alloc_objects == 3 && st->free_objects == 3 && st->free_bytes == 30,
          "clamp: excess not carried: free %llu, want 3",
          (unsigned long long)st->free_objects);
    /* saturation instead of wrap-around */
    s.len = 0;
    stream_delta1(&s, 1, UINT64_MAX, UINT64_MAX, 0, 0);
    check(wire_decoder_feed(d, s.data, s.len) == 0, "saturate: refused");
    check(st->alloc_objects == UINT64_MAX, "saturate: wrapped");
    wire_decoder_free(d);
    proc_table_free(t);
    free(s.data);
}

/* Duplicates with the same content are fine (a target may resend). */
static void test_duplicates(void)
{
    struct stream s = {0};
    stream_hello(&s, 40, 1, 1, 8, "/bin/x");
    stream_mapping(&s, 1, 0, 0x1000, 0x2000, "/lib/a.so");
    stream_mapping(&s, 1, 0, 0x1000, 0x2000, "/lib/a.so");
    stream_stack(&s, 1, 2, 0x10);
    stream_stack(&s, 1, 2, 0x10);
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d, s.data, s.len) == 0, "duplicates refused: %s",
          wire_decoder_error(d));
    struct proc *p = proc_table_find(t, 40, 1);
    check(p->n_mappings == 1 && HASH_COUNT(p->stacks) == 1, "duplicates stored twice");
    s.len = 0;
    stream_mapping(&s, 1, 0, 0x1000, 0x3000, "/lib/a.so");
    check(wire_decoder_feed(d, s.data, s.len) == -1 &&
              strstr(wire_decoder_error(d), "mapping id 1 redefined") != NULL,
          "mapping redefinition accepted");
    check(wire_decoder_end(d) == -1, "end after failure");
    wire_decoder_free(d);
    proc_table_free(t);
    free(s.data);
}

/* An empty connection is no error and creates no process. */
static void test_empty(void)
{
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(wire_decoder_end(d) == 0 && *wire_decoder_error(d) == 0, "empty stream refused");
    check(proc_table_count(t) == 0, "empty stream made a process");
    wire_decoder_free(d);
    proc_table_free(t);
}

int main(void)
{
    test_valid_stream();
    test_errors();
    test_data_kept();
    test_reconnect_and_exec();
    test_free_clamp();
    test_duplicates();
    test_empty();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("unit_wire_decode: all checks passed\n");
    return 0;
}
