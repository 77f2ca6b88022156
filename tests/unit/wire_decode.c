/* The wire stream decoder: valid streams in any chunking give the right
 * figures; every kind of malformed stream is refused with its message,
 * keeps what came before, and neither crashes nor leaks (run it under
 * valgrind or ASan to check the latter). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include "model/model.h"
#include "ingest/ingest.h"
#include "wire_stream.h"

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
    check(p->cmdline_len == 11 && memcmp(p->cmdline, "prog\0--flag", 11) == 0, "%s: cmdline", how);
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

    /* HELLO problems: its fixed part alone, one field wrong */
    static const struct {
        const char *name;
        uint32_t magic, version, max_depth, exe_len;
        const char *want;
    } hellos[] = {
        {"bad magic", 0x12345678, 1, 8, 0, "ppx: pid 999: bad HELLO record: bad magic 0x12345678"},
        {"bad version", WIRE_MAGIC, 2, 8, 0, "bad HELLO record: protocol version 2"},
        {"hello depth 0", WIRE_MAGIC, 1, 0, 0, "bad HELLO record: max depth 0"},
        /* exe_len promised, not sent: length disagrees */
        {"hello lengths", WIRE_MAGIC, 1, 8, 5, "bad HELLO record: length 48, but"},
    };
    struct wire_hello h = {.pid = 7, .sample_rate = 1};
    for (size_t i = 0; i < sizeof hellos / sizeof hellos[0]; i++) {
        h.magic = hellos[i].magic;
        h.version = hellos[i].version;
        h.max_depth = hellos[i].max_depth;
        h.exe_len = hellos[i].exe_len;
        b.len = 0;
        stream_header(&b, WIRE_HELLO, sizeof h);
        stream_put(&b, &h, sizeof h);
        expect_error(hellos[i].name, NULL, &b, false, hellos[i].want);
    }
    b.len = 0;
    h.exe_len = WIRE_MAX_PATH + 1;
    stream_header(&b, WIRE_HELLO, sizeof h + WIRE_MAX_PATH + 1);
    stream_put(&b, &h, sizeof h);
    for (unsigned i = 0; i < WIRE_MAX_PATH + 1; i++)
        stream_put(&b, "a", 1);
    expect_error("hello long exe", NULL, &b, false,
                 "bad HELLO record: executable path of 4097 bytes exceeds 4096");
    b.len = 0;
    stream_stack(&b, 1, 1, 0x10);
    expect_error("no hello", NULL, &b, false, "ppx: pid 999: STACK record before HELLO");
    b.len = 0;
    stream_hello(&b, 1234, 5, 1, 8, "/bin/x");
    expect_error("second hello", &good, &b, false, "second HELLO on one connection");

    /* framing: a record header alone, refused for its type or length */
    static const struct {
        const char *name;
        bool after_hello;
        uint32_t type, length;
        const char *want;
    } headers[] = {
        {"hello oversize", false, WIRE_HELLO, 9000, "bad HELLO record: length 9000 exceeds 8240"},
        {"unknown type", true, 99, 0, "ppx: pid 1234: unknown record type 99"},
        /* a command, sent the wrong way */
        {"command type", true, WIRE_CMD_FLUSH, 8, "ppx: pid 1234: unknown record type 256"},
        {"type 0", true, 0, 0, "ppx: pid 1234: unknown record type 0"},
        {"oversize record", true, WIRE_HEAP_DELTA, WIRE_MAX_RECORD + 1,
         "HEAP_DELTA record of 16777217 bytes exceeds the 16777216-byte limit"},
        {"oversize stack", true, WIRE_STACK, 0x10000, "bad STACK record: length 65536 exceeds"},
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        b.len = 0;
        stream_header(&b, headers[i].type, headers[i].length);
        expect_error(headers[i].name, headers[i].after_hello ? &good : NULL, &b, false,
                     headers[i].want);
    }

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
    check(wire_decoder_broke_protocol(d), "kept: a bad record is not a broken protocol");
    check(strstr(wire_decoder_error(d), "ppx: pid 10: bad HEAP_DELTA record") != NULL,
          "kept: message \"%s\"", wire_decoder_error(d));
    wire_decoder_free(d);
    struct proc *p = proc_table_find(t, 10, 1);
    struct proc_stack *st = p ? stack_of(p, 1) : NULL;
    check(st && st->alloc_objects == 5 && st->alloc_bytes == 50 && st->free_bytes == 10,
          "kept: figures before the bad record lost");

    /* The same process reconnecting after a protocol error (garbage the
     * program wrote into our socket) is welcome: its HELLO starts afresh,
     * and the state it resends is the profile from then on. */
    s.len = 0;
    stream_hello(&s, 10, 1, 1, 8, "/bin/x");
    stream_stack(&s, 1, 1, 0x10);
    stream_delta1(&s, 1, 7, 70, 0, 0);
    d = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d, s.data, s.len) == 0,
          "kept: reconnection after a bad record refused");
    check(*wire_decoder_error(d) == 0, "kept: reconnection: \"%s\"", wire_decoder_error(d));
    p = proc_table_find(t, 10, 1);
    st = p ? stack_of(p, 1) : NULL;
    check(st && st->alloc_objects == 7 && st->alloc_bytes == 70 && st->free_bytes == 0,
          "kept: the reconnection's state is not the profile");
    /* Its stream breaking again: closed again, said only the first time. */
    s.len = 0;
    stream_delta1(&s, 99, 1, 1, 0, 0);
    check(wire_decoder_feed(d, s.data, s.len) == -1, "kept: second bad record accepted");
    check(wire_decoder_broke_protocol(d), "kept: a bad record is not a broken protocol");
    check(*wire_decoder_error(d) == 0, "kept: said twice: \"%s\"", wire_decoder_error(d));
    wire_decoder_free(d);
    check(st && st->alloc_objects == 7, "kept: figures before the second bad record lost");
    proc_table_free(t);
    free(s.data);
}

/* Two connections of one process read out of order (the newer one whole
 * first): the older one's HELLO is ignored, quietly, and does not wipe
 * the newer state; a spool file's stream (no order) is always taken. */
static void test_stale_connection(void)
{
    struct proc_table *t = proc_table_new();
    struct stream s = {0};
    stream_hello(&s, 30, 1, 1, 8, "/bin/a");
    stream_stack(&s, 1, 1, 0x10);
    stream_delta1(&s, 1, 7, 70, 0, 0);
    stream_goodbye(&s);
    struct wire_decoder *newer = wire_decoder_new(t, 0);
    wire_decoder_set_order(newer, 2);
    check(wire_decoder_feed(newer, s.data, s.len) == 0, "stale: newer stream");
    s.len = 0;
    stream_hello(&s, 30, 1, 1, 8, "/bin/a");
    stream_stack(&s, 1, 1, 0x10);
    stream_delta1(&s, 1, 5, 50, 0, 0);
    struct wire_decoder *older = wire_decoder_new(t, 0);
    wire_decoder_set_order(older, 1);
    check(wire_decoder_feed(older, s.data, s.len) == -1, "stale: older stream taken");
    check(*wire_decoder_error(older) == 0, "stale: said \"%s\"", wire_decoder_error(older));
    check(!wire_decoder_broke_protocol(older), "stale: counted as a protocol error");
    check(wire_decoder_ended_proc(older) == NULL, "stale: its end is the process's");
    struct proc *p = proc_table_find(t, 30, 1);
    check(p && stack_of(p, 1) && stack_of(p, 1)->alloc_objects == 7,
          "stale: the older state replaced the newer");
    struct wire_decoder *spooled = wire_decoder_new(t, 0);
    check(wire_decoder_feed(spooled, s.data, s.len) == 0, "stale: a spool file's stream refused");
    check(p && stack_of(p, 1) && stack_of(p, 1)->alloc_objects == 5, "stale: spool not applied");
    wire_decoder_free(newer);
    wire_decoder_free(older);
    wire_decoder_free(spooled);
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
    check(wire_decoder_ended_proc(d1) == NULL, "reconnect: superseded stream ends the process");
    s.len = 0;
    stream_delta1(&s, 1, 1, 1, 0, 0);
    check(wire_decoder_feed(d1, s.data, s.len) == -1, "reconnect: old connection still fed");
    check(strstr(wire_decoder_error(d1), "superseded") != NULL, "reconnect: message \"%s\"",
          wire_decoder_error(d1));
    check(wire_decoder_ended_proc(d1) == NULL, "reconnect: refused stream ends the process");
    check(p && p->connected && stack_of(p, 1)->alloc_objects == 7,
          "reconnect: old connection disturbed the new one");
    /* Once a newer connection said GOODBYE, the old one's end is still not
     * the process's (it ended with the newer one). */
    struct wire_decoder *d_late = wire_decoder_new(t, 0);
    s.len = 0;
    stream_hello(&s, 20, 100, 1, 8, "/bin/a");
    stream_goodbye(&s);
    check(wire_decoder_feed(d_late, s.data, s.len) == 0, "reconnect: third stream");
    check(wire_decoder_ended_proc(d_late) == p, "reconnect: the latest stream's end is not the "
                                                "process's");
    check(wire_decoder_ended_proc(d1) == NULL, "reconnect: a stale stream ends the process");
    wire_decoder_free(d_late);
    wire_decoder_free(d1);

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
          "clamp: excess not carried: free %llu, want 3", (unsigned long long)st->free_objects);
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

/* ---- I/O call audits ----------------------------------------------------- */

static struct proc_io_site *site_of(const struct proc *p, uint32_t id)
{
    struct proc_io_site *s;
    HASH_FIND(hh, p->io_sites, &id, sizeof id, s);
    return s;
}

static uint64_t errno_calls(const struct proc_io_site *s, uint32_t err)
{
    for (size_t i = 0; i < s->n_errnos; i++)
        if (s->errnos[i].err == err)
            return s->errnos[i].calls;
    return 0;
}

static uint64_t stack_samples(const struct proc_io_site *s, uint32_t stack_id)
{
    for (size_t i = 0; i < s->n_stacks; i++)
        if (s->stacks[i].stack_id == stack_id)
            return s->stacks[i].samples;
    return 0;
}

static void check_io_figures(const struct proc *p, const char *how)
{
    check(p != NULL, "%s: no process", how);
    if (!p)
        return;
    check(HASH_COUNT(p->io_sites) == 3, "%s: %u sites, want 3", how, HASH_COUNT(p->io_sites));
    const struct proc_io_site *s1 = site_of(p, 1), *s2 = site_of(p, 2), *s3 = site_of(p, 3);
    check(s1 && s1->call == WIRE_IO_RECVMSG && s1->fd_type == WIRE_FD_SOCKET &&
              s1->family == WIRE_FAMILY_INET && s1->socktype == WIRE_SOCK_DGRAM &&
              s1->caller_pc == 0x401000,
          "%s: site 1 definition", how);
    check(s1 && s1->calls == 150 && s1->time_ns == 3000 && s1->bytes == 9000 &&
              s1->messages == 140 && s1->errors == 4 && s1->eagain == 6,
          "%s: site 1 figures", how);
    check(s1 && s1->n_errnos == 3 && errno_calls(s1, 111) == 3 && errno_calls(s1, 4) == 1 &&
              errno_calls(s1, 11) == 6,
          "%s: site 1 errnos", how);
    check(s1 && s1->n_stacks == 2 && stack_samples(s1, 1) == 5 && stack_samples(s1, 3) == 2,
          "%s: site 1 stacks", how);
    check(s2 && s2->call == WIRE_IO_READ && s2->fd_type == WIRE_FD_FILE && s2->calls == 7 &&
              s2->bytes == 700 && s2->n_errnos == 0 && s2->n_stacks == 0,
          "%s: site 2", how);
    check(s3 && s3->call == WIRE_IO_EPOLL_WAIT && s3->calls == 0, "%s: site 3", how);
    check(proc_has_io(p), "%s: proc_has_io", how);
    uint64_t dropped_samples = 1, dropped_errnos = 1;
    proc_table_io_drops(p, &dropped_samples, &dropped_errnos);
    check(dropped_samples == 0 && dropped_errnos == 0, "%s: drops", how);
}

static void test_io_valid(void)
{
    struct stream s = {0};
    stream_valid_io(&s, 555, 9);
    static const size_t chunks[] = {0, 1, 5, 8, 17, 24, 1000};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        char how[64];
        snprintf(how, sizeof how, "I/O stream in chunks of %zu", chunks[i]);
        struct proc_table *t = proc_table_new();
        struct wire_decoder *d = wire_decoder_new(t, 0);
        int rc = feed_chunked(d, &s, chunks[i], true);
        check(rc == 0, "%s: rc %d (%s)", how, rc, wire_decoder_error(d));
        check_io_figures(proc_table_find(t, 555, 9), how);
        wire_decoder_free(d);
        proc_table_free(t);
    }
    free(s.data);
}

/* A prefix with two stacks and two sites for the error cases. */
static void io_prefix(struct stream *s)
{
    stream_hello(s, 1234, 5, 1, 8, "/bin/x");
    stream_stack(s, 1, 2, 0x1000);
    stream_stack(s, 2, 2, 0x2000);
    stream_io_site(s, 1, WIRE_IO_READ, WIRE_FD_PIPE, 0, 0, 0x1000);
    stream_io_site(s, 2, WIRE_IO_SENDMSG, WIRE_FD_SOCKET, WIRE_FAMILY_UNIX, WIRE_SOCK_STREAM,
                   0x3000);
}

static void test_io_errors(void)
{
    struct stream good = {0}, b = {0};
    io_prefix(&good);

    /* IO_SITE */
    struct wire_io_site w = {.id = 5, .call = WIRE_IO_READ, .caller_pc = 0x10};
    stream_header(&b, WIRE_IO_SITE, sizeof w - 1);
    stream_put(&b, &w, sizeof w - 1);
    expect_error("site short", &good, &b, false, "bad IO_SITE record: length 15, not 16");
    b.len = 0;
    stream_header(&b, WIRE_IO_SITE, sizeof w + 8);
    expect_error("site long", &good, &b, false, "bad IO_SITE record: length 24 exceeds 16");
    /* IO_SITE records, one field wrong */
    static const struct {
        const char *name;
        bool after_prefix;
        uint32_t id;
        uint8_t call, fd_type, family, socktype;
        uint64_t caller_pc;
        const char *want;
    } sites[] = {
        {"call 0", true, 5, 0, WIRE_FD_FILE, 0, 0, 0x10,
         "ppx: pid 1234: bad IO_SITE record: site 5: call 0 outside 1..30"},
        {"call max", true, 5, WIRE_IO_CALL_MAX, WIRE_FD_FILE, 0, 0, 0x10,
         "site 5: call 31 outside 1..30"},
        {"fd type", true, 5, WIRE_IO_READ, WIRE_FD_OTHER + 1, 0, 0, 0x10,
         "site 5: descriptor type 7 outside 0..6"},
        {"family", true, 5, WIRE_IO_RECV, WIRE_FD_SOCKET, WIRE_FAMILY_OTHER + 1, 0, 0x10,
         "site 5: socket family 5 outside 0..4"},
        {"socktype", true, 5, WIRE_IO_RECV, WIRE_FD_SOCKET, 0, WIRE_SOCK_OTHER + 1, 0x10,
         "site 5: socket type 6 outside 0..5"},
        {"family on a file", true, 5, WIRE_IO_READ, WIRE_FD_FILE, WIRE_FAMILY_INET, 0, 0x10,
         "site 5: socket family 2 and type 0 on a descriptor of type 1, not a socket"},
        {"site redefined", true, 1, WIRE_IO_READ, WIRE_FD_PIPE, 0, 0, 0x1001,
         "bad IO_SITE record: site id 1 redefined with different contents"},
        {"site class redefined", true, 1, WIRE_IO_READ, WIRE_FD_SOCKET, 0, 0, 0x1000,
         "site id 1 redefined"},
        {"site before hello", false, 1, WIRE_IO_READ, WIRE_FD_PIPE, 0, 0, 0x1000,
         "ppx: pid 999: IO_SITE record before HELLO"},
    };
    for (size_t i = 0; i < sizeof sites / sizeof sites[0]; i++) {
        b.len = 0;
        stream_io_site(&b, sites[i].id, sites[i].call, sites[i].fd_type, sites[i].family,
                       sites[i].socktype, sites[i].caller_pc);
        expect_error(sites[i].name, sites[i].after_prefix ? &good : NULL, &b, false, sites[i].want);
    }

    /* IO_DELTA */
    b.len = 0;
    stream_io_delta1(&b, 9, 1, 1, 1, 1, 0, 0);
    expect_error("delta unknown site", &good, &b, false,
                 "ppx: pid 1234: bad IO_DELTA record: entry 0: unknown site id 9");
    b.len = 0;
    struct wire_heap_delta h = {.count = 1, .reserved = 0};
    struct wire_io_entry e = {.site_id = 1, .reserved = 3, .calls = 1};
    stream_header(&b, WIRE_IO_DELTA, sizeof h + sizeof e);
    stream_put(&b, &h, sizeof h);
    stream_put(&b, &e, sizeof e);
    expect_error("delta entry reserved", &good, &b, false,
                 "bad IO_DELTA record: entry 0: reserved field is 3, not 0");
    b.len = 0;
    h.reserved = 1;
    e.reserved = 0;
    stream_header(&b, WIRE_IO_DELTA, sizeof h + sizeof e);
    stream_put(&b, &h, sizeof h);
    stream_put(&b, &e, sizeof e);
    expect_error("delta reserved", &good, &b, false, "bad IO_DELTA record: reserved field is 1");
    b.len = 0;
    h.reserved = 0;
    h.count = 2;
    stream_header(&b, WIRE_IO_DELTA, sizeof h + sizeof e);
    stream_put(&b, &h, sizeof h);
    stream_put(&b, &e, sizeof e);
    expect_error("delta count", &good, &b, false,
                 "bad IO_DELTA record: length 64 does not match count 2 (120 bytes)");
    b.len = 0;
    stream_header(&b, WIRE_IO_DELTA, 4);
    stream_put(&b, &h, 4);
    expect_error("delta short", &good, &b, false,
                 "bad IO_DELTA record: length 4 is shorter than the fixed part (8)");
    b.len = 0;
    stream_io_delta1(&b, 1, 1, 1, 1, 1, 0, 0);
    b.len -= 10;
    expect_error("delta truncated", &good, &b, true,
                 "stream ended inside a IO_DELTA record (54 of 64 payload bytes)");

    /* IO_ERRNO and IO_STACKS records of one entry, one field wrong */
    static const struct {
        const char *name;
        bool stacks; /* IO_STACKS (site, stack, samples), else IO_ERRNO (site, errno, calls) */
        uint32_t site, what;
        const char *want;
    } entries[] = {
        {"errno unknown site", false, 7, 4, "bad IO_ERRNO record: entry 0: unknown site id 7"},
        {"errno 0", false, 1, 0, "bad IO_ERRNO record: entry 0: errno 0 outside 1..4095"},
        {"errno 4096", false, 1, 4096, "entry 0: errno 4096 outside 1..4095"},
        {"stacks unknown site", true, 8, 1, "bad IO_STACKS record: entry 0: unknown site id 8"},
        {"stacks unknown stack", true, 1, 42, "bad IO_STACKS record: entry 0: unknown stack id 42"},
        {"stacks other leaf", true, 1, 2,
         "bad IO_STACKS record: entry 0: stack 2 starts at 0x2000, not at site 1's caller "
         "0x1000"},
    };
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++) {
        b.len = 0;
        if (entries[i].stacks)
            stream_io_stacks1(&b, entries[i].site, entries[i].what, 1);
        else
            stream_io_errno1(&b, entries[i].site, entries[i].what, 1);
        expect_error(entries[i].name, &good, &b, false, entries[i].want);
    }
    b.len = 0;
    h.count = 3;
    stream_header(&b, WIRE_IO_ERRNO, sizeof h + 2 * sizeof(struct wire_io_errno_entry));
    stream_put(&b, &h, sizeof h);
    stream_put(&b, &e, 2 * sizeof(struct wire_io_errno_entry));
    expect_error("errno count", &good, &b, false,
                 "bad IO_ERRNO record: length 40 does not match count 3 (56 bytes)");

    /* IO_STACKS */
    b.len = 0;
    h.count = 1;
    stream_header(&b, WIRE_IO_STACKS, sizeof h + sizeof(struct wire_io_stack_entry) + 1);
    stream_put(&b, &h, sizeof h);
    stream_put(&b, &e, sizeof(struct wire_io_stack_entry) + 1);
    expect_error("stacks length", &good, &b, false,
                 "bad IO_STACKS record: length 25 does not match count 1 (24 bytes)");

    free(good.data);
    free(b.data);
}

/* A bad entry changes nothing: the entries before it in the same record
 * are not applied either; what earlier records brought stays. */
static void test_io_atomic_records(void)
{
    struct stream s = {0};
    io_prefix(&s);
    stream_io_delta1(&s, 1, 5, 50, 500, 5, 0, 0);
    struct wire_heap_delta h = {.count = 2};
    struct wire_io_entry e[2] = {{.site_id = 1, .calls = 1}, {.site_id = 77, .calls = 1}};
    stream_header(&s, WIRE_IO_DELTA, sizeof h + sizeof e);
    stream_put(&s, &h, sizeof h);
    stream_put(&s, e, sizeof e);
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d, s.data, s.len) == -1, "atomic: bad delta accepted");
    struct proc_io_site *site = site_of(proc_table_find(t, 1234, 5), 1);
    check(site && site->calls == 5 && site->bytes == 500, "atomic: calls %llu, want 5",
          site ? (unsigned long long)site->calls : 0ull);
    wire_decoder_free(d);
    proc_table_free(t);
    free(s.data);
}

/* A reconnect (HELLO again) resets the I/O sites, like everything else. */
static void test_io_reconnect(void)
{
    struct proc_table *t = proc_table_new();
    struct stream s = {0};
    stream_valid_io(&s, 66, 1);
    s.len -= sizeof(struct wire_header); /* no GOODBYE: the connection breaks */
    struct wire_decoder *d1 = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d1, s.data, s.len) == 0, "io reconnect: first stream: %s",
          wire_decoder_error(d1));
    wire_decoder_free(d1);

    s.len = 0;
    stream_hello(&s, 66, 1, 1, 8, "/usr/bin/server");
    stream_stack(&s, 1, 3, 0x401000);
    stream_io_site(&s, 1, WIRE_IO_RECVMSG, WIRE_FD_SOCKET, WIRE_FAMILY_INET, WIRE_SOCK_DGRAM,
                   0x401000);
    stream_io_delta1(&s, 1, 9, 0, 0, 0, 0, 0);
    stream_io_stacks1(&s, 1, 1, 1);
    struct wire_decoder *d2 = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d2, s.data, s.len) == 0, "io reconnect: second stream: %s",
          wire_decoder_error(d2));
    struct proc *p = proc_table_find(t, 66, 1);
    struct proc_io_site *site = p ? site_of(p, 1) : NULL;
    check(p && HASH_COUNT(p->io_sites) == 1, "io reconnect: sites not reset");
    check(site && site->calls == 9 && site->n_errnos == 0 && site->n_stacks == 1 &&
              site->stacks[0].samples == 1,
          "io reconnect: site 1 not reset to the resent state");
    wire_decoder_free(d2);
    proc_table_free(t);
    free(s.data);
}

/* Beyond the per-site limits, errnos and stacks are dropped and counted;
 * the site's own figures stay whole. */
static void test_io_limits(void)
{
    struct stream s = {0};
    stream_hello(&s, 77, 1, 1, 2, "/bin/x");
    stream_io_site(&s, 1, WIRE_IO_WRITE, WIRE_FD_PIPE, 0, 0, 0x5000);
    stream_io_delta1(&s, 1, 10000, 0, 0, 0, 10000, 0);
    const uint32_t n_errnos = PROC_MAX_IO_ERRNOS + 3;
    for (uint32_t err = 1; err <= n_errnos; err++)
        stream_io_errno1(&s, 1, err, 2);
    stream_io_errno1(&s, 1, 1, 5); /* a known errno still counts */
    const uint32_t n_stacks = PROC_MAX_IO_SITE_STACKS + 2;
    for (uint32_t id = 1; id <= n_stacks; id++) {
        struct wire_stack st = {.id = id, .depth = 2};
        uint64_t pcs[2] = {0x5000, 0x100000 + id};
        stream_header(&s, WIRE_STACK, sizeof st + sizeof pcs);
        stream_put(&s, &st, sizeof st);
        stream_put(&s, pcs, sizeof pcs);
        stream_io_stacks1(&s, 1, id, 3);
    }
    stream_io_stacks1(&s, 1, 1, 4);
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d, s.data, s.len) == 0, "limits: refused: %s", wire_decoder_error(d));
    struct proc *p = proc_table_find(t, 77, 1);
    struct proc_io_site *site = p ? site_of(p, 1) : NULL;
    check(site && site->n_errnos == PROC_MAX_IO_ERRNOS && errno_calls(site, 1) == 7,
          "limits: %zu errnos kept", site ? site->n_errnos : 0);
    check(site && site->n_stacks == PROC_MAX_IO_SITE_STACKS && stack_samples(site, 1) == 7,
          "limits: %zu stacks kept", site ? site->n_stacks : 0);
    check(site && site->calls == 10000 && site->errors == 10000, "limits: site figures");
    uint64_t dropped_samples = 0, dropped_errnos = 0;
    if (p)
        proc_table_io_drops(p, &dropped_samples, &dropped_errnos);
    check(dropped_samples == 6 && dropped_errnos == 6,
          "limits: drops %llu samples, %llu errno "
          "calls, want 6 and 6",
          (unsigned long long)dropped_samples, (unsigned long long)dropped_errnos);

    /* One site more than PROC_MAX_IO_SITES closes the connection. */
    s.len = 0;
    for (uint32_t id = 2; id <= PROC_MAX_IO_SITES + 1; id++)
        stream_io_site(&s, id, WIRE_IO_READ, WIRE_FD_FILE, 0, 0, id);
    check(wire_decoder_feed(d, s.data, s.len) == -1 &&
              strstr(wire_decoder_error(d), "more than 65536 I/O sites"),
          "limits: site limit: \"%s\"", wire_decoder_error(d));
    check(p && HASH_COUNT(p->io_sites) == PROC_MAX_IO_SITES, "limits: %u sites kept",
          p ? HASH_COUNT(p->io_sites) : 0);
    wire_decoder_free(d);

    /* A new HELLO clears the drop counts too. */
    s.len = 0;
    stream_hello(&s, 77, 1, 1, 2, "/bin/x");
    d = wire_decoder_new(t, 0);
    /* (the connection broke the site limit: the process is welcome back) */
    check(wire_decoder_feed(d, s.data, s.len) == 0, "limits: reconnection refused");
    dropped_samples = dropped_errnos = 1;
    if (p)
        proc_table_io_drops(p, &dropped_samples, &dropped_errnos);
    check(dropped_samples == 0 && dropped_errnos == 0,
          "limits: drops %llu and %llu after a "
          "new HELLO",
          (unsigned long long)dropped_samples, (unsigned long long)dropped_errnos);
    wire_decoder_free(d);
    proc_table_free(t);
    free(s.data);
}

/* ---- threads and CPU -------------------------------------------------------- */

static struct proc_thread *thread_of(const struct proc *p, uint32_t id)
{
    struct proc_thread *t;
    HASH_FIND(hh, p->threads, &id, sizeof id, t);
    return t;
}

static const struct proc_cpu_sample *cpu_of(const struct proc *p, uint32_t stack_id,
                                            uint32_t thread_id)
{
    struct proc_cpu_key key;
    memset(&key, 0, sizeof key);
    key.stack_id = stack_id;
    key.thread_id = thread_id;
    struct proc_cpu_sample *s;
    HASH_FIND(hh, p->cpu_samples, &key, sizeof key, s);
    return s;
}

static bool cpu_is(const struct proc *p, uint32_t stack_id, uint32_t thread_id, uint64_t samples,
                   uint64_t ns)
{
    const struct proc_cpu_sample *s = cpu_of(p, stack_id, thread_id);
    return s && s->samples == samples && s->cpu_ns == ns;
}

/* The figures of stream_valid_cpu(s, pid, start_ns). */
static void check_cpu_figures(const struct proc *p, uint32_t pid, uint64_t start_ns,
                              const char *how)
{
    check(p != NULL, "%s: no process", how);
    if (!p)
        return;
    check(HASH_COUNT(p->threads) == 3, "%s: %u threads, want 3", how, HASH_COUNT(p->threads));
    const struct proc_thread *t1 = thread_of(p, 1), *t2 = thread_of(p, 2), *t7 = thread_of(p, 7);
    check(t1 && t1->tid == pid && t1->creator_id == WIRE_NO_ID && t1->stack_id == WIRE_NO_ID &&
              t1->flags == (WIRE_THREAD_MAIN | WIRE_THREAD_PREEXISTING) &&
              strcmp(t1->name, "prog") == 0 && t1->start_ns == start_ns && t1->end_ns == 0 &&
              t1->cpu_ns == 40000000,
          "%s: thread 1", how);
    check(t2 && t2->tid == pid + 1 && t2->creator_id == 1 && t2->stack_id == 5 && t2->flags == 0 &&
              strcmp(t2->name, "worker") == 0 && t2->start_ns == start_ns + 200 &&
              t2->end_ns == start_ns + 900 && t2->cpu_ns == 30000000,
          "%s: thread 2", how);
    check(t7 && t7->tid == pid + 2 && t7->creator_id == 2 && t7->stack_id == 5 &&
              strcmp(t7->name, "io") == 0 && t7->end_ns == 0 && t7->cpu_ns == 10000000,
          "%s: thread 7 (renamed, more CPU)", how);
    check(p->threads == t1 && t1->hh.next == t7 && t7 && t7->hh.next == t2,
          "%s: threads not in the order first described", how);
    check(HASH_COUNT(p->cpu_samples) == 3, "%s: %u (stack, thread) pairs, want 3", how,
          HASH_COUNT(p->cpu_samples));
    check(cpu_is(p, 6, 2, 5, 50000000) && cpu_is(p, 6, 1, 4, 40000000) &&
              cpu_is(p, 5, 7, 1, 10000000),
          "%s: CPU samples", how);
    check(p->cpu_hz == 100 && p->cpu_lost == 5 && p->cpu_lost_ns == 50000000,
          "%s: hz %u, lost %llu (%llu ns), want 100, 5 (50000000)", how, p->cpu_hz,
          (unsigned long long)p->cpu_lost, (unsigned long long)p->cpu_lost_ns);
    check(p->cpu_dropped == 0 && p->cpu_dropped_ns == 0, "%s: dropped", how);
    check(proc_has_cpu(p) && proc_has_threads(p), "%s: proc_has_cpu/threads", how);
}

static void test_cpu_valid(void)
{
    struct stream s = {0};
    stream_valid_cpu(&s, 4242, 1000);
    static const size_t chunks[] = {0, 1, 3, 8, 16, 63, 64, 65, 1000};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        char how[64];
        snprintf(how, sizeof how, "CPU stream in chunks of %zu", chunks[i]);
        struct proc_table *t = proc_table_new();
        struct wire_decoder *d = wire_decoder_new(t, 0);
        int rc = feed_chunked(d, &s, chunks[i], true);
        check(rc == 0, "%s: rc %d (%s)", how, rc, wire_decoder_error(d));
        check_cpu_figures(proc_table_find(t, 4242, 1000), 4242, 1000, how);
        wire_decoder_free(d);
        proc_table_free(t);
    }
    free(s.data);

    /* A process without threads or CPU has neither. */
    s = (struct stream){0};
    stream_valid(&s, 7, 7);
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(feed_chunked(d, &s, 0, true) == 0, "no CPU: refused");
    struct proc *p = proc_table_find(t, 7, 7);
    check(p && !proc_has_cpu(p) && !proc_has_threads(p) && p->cpu_hz == 0,
          "no CPU: has CPU or threads");
    wire_decoder_free(d);
    proc_table_free(t);
    free(s.data);
}

/* Each record's samples are converted at its own rate; lost ticks too. */
static void test_cpu_rates(void)
{
    struct stream s = {0};
    stream_hello(&s, 50, 1, 1, 8, "/bin/x");
    stream_stack(&s, 1, 2, 0x1000);
    stream_thread(&s, 0, 50, WIRE_NO_ID, WIRE_NO_ID, 1, 0, 0, WIRE_THREAD_MAIN, "x");
    stream_cpu1(&s, 100, 1, 1, 0, 2);   /* 20 ms, lost 10 ms */
    stream_cpu1(&s, 1000, 4, 1, 0, 3);  /* 3 ms, lost 4 ms */
    stream_cpu1(&s, 3, 0, 1, 0, 1);     /* 333333333 ns */
    stream_cpu1(&s, 10000, 0, 1, 0, 0); /* nothing, but the rate */
    stream_cpu(&s, 7, 0, NULL, 0);      /* no entry at all */
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(feed_chunked(d, &s, 0, false) == 0, "rates: refused: %s", wire_decoder_error(d));
    struct proc *p = proc_table_find(t, 50, 1);
    check(p && cpu_is(p, 1, 0, 6, 20000000 + 3000000 + 333333333), "rates: samples/ns of (1, 0)");
    check(p && p->cpu_lost == 5 && p->cpu_lost_ns == 14000000 && p->cpu_hz == 7,
          "rates: lost %llu (%llu ns), hz %u", p ? (unsigned long long)p->cpu_lost : 0ull,
          p ? (unsigned long long)p->cpu_lost_ns : 0ull, p ? p->cpu_hz : 0);

    /* Saturation instead of wrap-around. */
    s.len = 0;
    stream_cpu1(&s, 1, UINT64_MAX, 1, 0, UINT64_MAX);
    check(wire_decoder_feed(d, s.data, s.len) == 0, "saturate: refused");
    const struct proc_cpu_sample *cs = p ? cpu_of(p, 1, 0) : NULL;
    check(cs && cs->samples == UINT64_MAX && cs->cpu_ns == UINT64_MAX &&
              p->cpu_lost == UINT64_MAX && p->cpu_lost_ns == UINT64_MAX,
          "saturate: wrapped");
    wire_decoder_free(d);
    proc_table_free(t);
    free(s.data);
}

/* THREAD: the latest record wins, except that CPU time never goes back
 * (two readers in the target) and an end stays; a creation stack may come
 * with a later record. */
static void test_thread_updates(void)
{
    struct stream s = {0};
    stream_hello(&s, 60, 1, 1, 8, "/bin/x");
    stream_stack(&s, 4, 1, 0x1000);
    stream_thread(&s, 3, 61, WIRE_NO_ID, WIRE_NO_ID, 10, 0, 500, 0, "a");
    stream_thread(&s, 3, 61, WIRE_NO_ID, 4, 10, 0, 700, 0, "bb");
    stream_thread(&s, 3, 61, WIRE_NO_ID, 4, 10, 90, 600, 0, "ccc");
    stream_thread(&s, 3, 61, WIRE_NO_ID, 4, 10, 0, 800, 0, "");
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(feed_chunked(d, &s, 0, false) == 0, "updates: refused: %s", wire_decoder_error(d));
    struct proc *p = proc_table_find(t, 60, 1);
    const struct proc_thread *th = p ? thread_of(p, 3) : NULL;
    check(th && th->stack_id == 4 && th->cpu_ns == 800 && th->end_ns == 90 && th->name[0] == 0,
          "updates: stack %u, cpu %llu, end %llu, name \"%s\"", th ? th->stack_id : 0,
          th ? (unsigned long long)th->cpu_ns : 0ull, th ? (unsigned long long)th->end_ns : 0ull,
          th ? th->name : "");
    check(th && strcmp(proc_thread_name(th), "(unnamed)") == 0, "updates: unnamed thread");
    /* A full 15-byte name is fine. */
    s.len = 0;
    stream_thread(&s, 5, 62, 3, 4, 20, 0, 0, 0, "fifteen-chars-x");
    check(feed_chunked(d, &s, 0, false) == 0, "15-byte name refused: %s", wire_decoder_error(d));
    check(p && thread_of(p, 5) && strcmp(thread_of(p, 5)->name, "fifteen-chars-x") == 0,
          "15-byte name");
    wire_decoder_free(d);
    proc_table_free(t);
    free(s.data);
}

static void cpu_prefix(struct stream *s)
{
    stream_hello(s, 1234, 5, 1, 8, "/bin/x");
    stream_stack(s, 1, 2, 0x1000);
    stream_stack(s, 3, 2, 0x3000);
    stream_thread(s, 1, 1234, WIRE_NO_ID, WIRE_NO_ID, 5, 0, 0,
                  WIRE_THREAD_MAIN | WIRE_THREAD_PREEXISTING, "x");
    stream_thread(s, 2, 1235, 1, 1, 6, 0, 0, 0, "w");
}

/* A THREAD record built by hand, for the fields stream_thread keeps right. */
static void raw_thread(struct stream *b, const struct wire_thread *w, uint32_t length)
{
    stream_header(b, WIRE_THREAD, length);
    stream_put(b, w, length < sizeof *w ? length : sizeof *w);
    for (uint32_t i = sizeof *w; i < length; i++)
        stream_put(b, "", 1);
}

/* Past PROC_MAX_THREADS threads (a server starting one per request
 * gets there in time) the stream goes on: new threads are not described,
 * their CPU samples are counted without thread, the described ones keep
 * their updates. */
static void test_thread_limit(void)
{
    struct stream s = {0};
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    stream_hello(&s, 88, 1, 524288, 64, "/usr/bin/server");
    stream_mapping(&s, 1, WIRE_MAPPING_MAIN, 0x400000, 0x500000, "/usr/bin/server");
    stream_stack(&s, 5, 2, 0x401000);
    bool ok = true;
    for (uint32_t id = 1; id <= PROC_MAX_THREADS + 10 && ok; id++) {
        stream_thread(&s, id, 1000 + id, WIRE_NO_ID, WIRE_NO_ID, 1, 2, 0, 0, "req");
        if (s.len >= (1u << 20) || id == PROC_MAX_THREADS + 10) {
            ok = wire_decoder_feed(d, s.data, s.len) == 0;
            s.len = 0;
        }
    }
    check(ok, "thread limit: refused: %s", wire_decoder_error(d));
    struct proc *p = proc_table_find(t, 88, 1);
    check(p && p->threads_full && HASH_COUNT(p->threads) == PROC_MAX_THREADS,
          "thread limit: %u threads kept, full %d", p ? HASH_COUNT(p->threads) : 0,
          p ? p->threads_full : -1);
    /* CPU of a described thread, and of one past the limit */
    stream_cpu1(&s, 100, 0, 5, 1, 3);
    stream_cpu1(&s, 100, 0, 5, PROC_MAX_THREADS + 5, 4);
    stream_thread(&s, 1, 1001, WIRE_NO_ID, WIRE_NO_ID, 1, 2, 7000000, 0, "renamed");
    check(wire_decoder_feed(d, s.data, s.len) == 0, "thread limit: CPU refused: %s",
          wire_decoder_error(d));
    struct proc_cpu_key key;
    memset(&key, 0, sizeof key);
    key.stack_id = 5;
    key.thread_id = 1;
    struct proc_cpu_sample *c = NULL;
    if (p)
        HASH_FIND(hh, p->cpu_samples, &key, sizeof key, c);
    check(c && c->samples == 3, "thread limit: described thread's CPU %llu",
          c ? (unsigned long long)c->samples : 0);
    check(p && p->cpu_dropped == 4 && HASH_COUNT(p->cpu_samples) == 1,
          "thread limit: %llu samples counted without thread (want 4)",
          p ? (unsigned long long)p->cpu_dropped : 0);
    uint32_t one = 1;
    struct proc_thread *th = NULL;
    if (p)
        HASH_FIND(hh, p->threads, &one, sizeof one, th);
    check(th && strcmp(th->name, "renamed") == 0 && th->cpu_ns == 7000000,
          "thread limit: a described thread's update");
    /* Still a protocol error without the limit: a thread never described. */
    struct wire_decoder *d2 = wire_decoder_new(t, 0);
    s.len = 0;
    stream_hello(&s, 89, 1, 524288, 64, "/usr/bin/server");
    stream_mapping(&s, 1, WIRE_MAPPING_MAIN, 0x400000, 0x500000, "/usr/bin/server");
    stream_stack(&s, 5, 2, 0x401000);
    stream_cpu1(&s, 100, 0, 5, 3, 1);
    check(wire_decoder_feed(d2, s.data, s.len) == -1 &&
              strstr(wire_decoder_error(d2), "unknown thread id 3"),
          "thread limit: an unknown thread below the limit: \"%s\"", wire_decoder_error(d2));
    wire_decoder_free(d2);
    wire_decoder_free(d);
    proc_table_free(t);
    free(s.data);
}

static void test_thread_errors(void)
{
    struct stream good = {0}, b = {0};
    cpu_prefix(&good);
    const struct wire_thread base = {
        .id = 9, .tid = 1300, .creator_id = 1, .stack_id = 3, .start_ns = 7, .name = "t"};
    struct wire_thread w = base;

    raw_thread(&b, &w, sizeof w - 1);
    expect_error("thread short", &good, &b, false, "bad THREAD record: length 63, not 64");
    b.len = 0;
    raw_thread(&b, &w, sizeof w + 1);
    expect_error("thread long", &good, &b, false, "bad THREAD record: length 65 exceeds 64");
    /* The fixed fields, one wrong */
    enum thread_field { T_ID, T_RESERVED, T_FLAGS, T_TID, T_CREATOR, T_STACK };
    static const struct {
        const char *name;
        enum thread_field field;
        uint32_t value;
        const char *want;
    } fields[] = {
        {"thread id none", T_ID, WIRE_NO_ID,
         "ppx: pid 1234: bad THREAD record: thread id 0xffffffff is reserved"},
        {"thread reserved", T_RESERVED, 5, "thread 9: reserved field is 5, not 0"},
        {"thread flags", T_FLAGS, 4, "thread 9: unknown flags 0x4"},
        {"thread tid 0", T_TID, 0, "thread 9: tid 0"},
        {"main not pid", T_FLAGS, WIRE_THREAD_MAIN,
         "thread 9: main thread with tid 1300, not the pid 1234"},
        {"own creator", T_CREATOR, 9, "thread 9 names itself as its creator"},
        {"preexisting with stack", T_FLAGS, WIRE_THREAD_PREEXISTING,
         "thread 9 existed before ppx started, yet has creation stack 3"},
        {"unknown creation stack", T_STACK, 77, "thread 9: unknown creation stack id 77"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        w = base;
        uint32_t v = fields[i].value;
        switch (fields[i].field) {
        case T_ID:
            w.id = v;
            break;
        case T_RESERVED:
            w.reserved = v;
            break;
        case T_FLAGS:
            w.flags = v;
            break;
        case T_TID:
            w.tid = v;
            break;
        case T_CREATOR:
            w.creator_id = v;
            break;
        case T_STACK:
            w.stack_id = v;
            break;
        }
        b.len = 0;
        raw_thread(&b, &w, sizeof w);
        expect_error(fields[i].name, &good, &b, false, fields[i].want);
    }
    /* The name */
    b.len = 0;
    w = base;
    memset(w.name, 'a', sizeof w.name);
    raw_thread(&b, &w, sizeof w);
    expect_error("name unterminated", &good, &b, false,
                 "thread 9: name not NUL-terminated within 16 bytes");
    b.len = 0;
    w = base;
    memcpy(w.name, "ab\0c", 4);
    raw_thread(&b, &w, sizeof w);
    expect_error("name padding", &good, &b, false,
                 "thread 9: byte 3 after the name's NUL is not 0");
    /* Whole records: a thread described again differently, or too early */
    static const struct {
        const char *name;
        bool after_prefix;
        uint32_t id, tid, creator_id, stack_id;
        uint64_t start_ns;
        uint32_t flags;
        const char *thread_name, *want;
    } records[] = {
        {"tid redefined", true, 2, 1236, 1, 1, 6, 0, "w",
         "bad THREAD record: thread id 2 redefined with a different tid, creator, start time "
         "or flags"},
        {"creator redefined", true, 2, 1235, WIRE_NO_ID, 1, 6, 0, "w", "thread id 2 redefined"},
        {"flags redefined", true, 1, 1234, WIRE_NO_ID, WIRE_NO_ID, 5, WIRE_THREAD_MAIN, "x",
         "thread id 1 redefined"},
        {"stack redefined", true, 2, 1235, 1, 3, 6, 0, "w",
         "thread id 2 redefined with creation stack 3, was 1"},
        {"stack withdrawn", true, 2, 1235, 1, WIRE_NO_ID, 6, 0, "w",
         "thread id 2 redefined with creation stack 4294967295, was 1"},
        {"thread before hello", false, 1, 1234, WIRE_NO_ID, WIRE_NO_ID, 5, 0, "x",
         "ppx: pid 999: THREAD record before HELLO"},
    };
    for (size_t i = 0; i < sizeof records / sizeof records[0]; i++) {
        b.len = 0;
        stream_thread(&b, records[i].id, records[i].tid, records[i].creator_id, records[i].stack_id,
                      records[i].start_ns, 0, 0, records[i].flags, records[i].thread_name);
        expect_error(records[i].name, records[i].after_prefix ? &good : NULL, &b, false,
                     records[i].want);
    }
    b.len = 0;
    stream_thread(&b, 3, 1300, 1, 1, 6, 0, 0, 0, "w");
    b.len -= 20;
    expect_error("thread truncated", &good, &b, true,
                 "stream ended inside a THREAD record (44 of 64 payload bytes)");
    free(good.data);
    free(b.data);
}

static void test_cpu_errors(void)
{
    struct stream good = {0}, b = {0};
    cpu_prefix(&good);
    struct wire_cpu_samples h = {.count = 0, .hz = 100};
    stream_header(&b, WIRE_CPU_SAMPLES, 8);
    stream_put(&b, &h, 8);
    expect_error("cpu short", &good, &b, false,
                 "bad CPU_SAMPLES record: length 8 is shorter than the fixed part (16)");
    /* One entry of one sample, one field wrong */
    static const struct {
        const char *name;
        bool after_prefix;
        uint32_t hz, stack_id, thread_id;
        const char *want;
    } entries[] = {
        {"cpu hz 0", true, 0, 1, 1,
         "ppx: pid 1234: bad CPU_SAMPLES record: rate 0 Hz outside 1..10000"},
        {"cpu hz high", true, WIRE_MAX_CPU_HZ + 1, 1, 1, "rate 10001 Hz outside 1..10000"},
        {"cpu unknown stack", true, 100, 2, 1,
         "bad CPU_SAMPLES record: entry 0: unknown stack id 2"},
        {"cpu no thread", true, 100, 1, WIRE_NO_ID, "entry 0: unknown thread id 4294967295"},
        {"cpu before hello", false, 100, 1, 1, "ppx: pid 999: CPU_SAMPLES record before HELLO"},
    };
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++) {
        b.len = 0;
        stream_cpu1(&b, entries[i].hz, 0, entries[i].stack_id, entries[i].thread_id, 1);
        expect_error(entries[i].name, entries[i].after_prefix ? &good : NULL, &b, false,
                     entries[i].want);
    }
    b.len = 0;
    h.count = 2;
    struct wire_cpu_entry e = {.stack_id = 1, .thread_id = 1, .samples = 1};
    stream_header(&b, WIRE_CPU_SAMPLES, sizeof h + sizeof e);
    stream_put(&b, &h, sizeof h);
    stream_put(&b, &e, sizeof e);
    expect_error("cpu count", &good, &b, false,
                 "bad CPU_SAMPLES record: length 32 does not match count 2 (48 bytes)");
    b.len = 0;
    h.count = 0xffffffffu;
    stream_header(&b, WIRE_CPU_SAMPLES, sizeof h);
    stream_put(&b, &h, sizeof h);
    expect_error("cpu huge count", &good, &b, false, "does not match count 4294967295");
    b.len = 0;
    const struct wire_cpu_entry two[] = {{.stack_id = 1, .thread_id = 1, .samples = 1},
                                         {.stack_id = 1, .thread_id = 8, .samples = 1}};
    stream_cpu(&b, 100, 0, two, 2);
    expect_error("cpu unknown thread", &good, &b, false,
                 "bad CPU_SAMPLES record: entry 1: unknown thread id 8");
    b.len = 0;
    stream_cpu1(&b, 100, 0, 1, 1, 1);
    b.len -= 1;
    expect_error("cpu truncated", &good, &b, true,
                 "stream ended inside a CPU_SAMPLES record (31 of 32 payload bytes)");

    /* A bad entry changes nothing: not the entries before it, not the
     * lost count, not the rate. */
    struct stream s = {0};
    cpu_prefix(&s);
    stream_cpu1(&s, 100, 1, 1, 2, 5);
    stream_cpu(&s, 1000, 9, two, 2);
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d, s.data, s.len) == -1, "cpu atomic: bad record accepted");
    struct proc *p = proc_table_find(t, 1234, 5);
    check(p && cpu_is(p, 1, 2, 5, 50000000) && !cpu_of(p, 1, 1) && p->cpu_lost == 1 &&
              p->cpu_hz == 100,
          "cpu atomic: the bad record was applied in part");
    wire_decoder_free(d);
    proc_table_free(t);
    free(s.data);
    free(good.data);
    free(b.data);
}

/* HELLO again resets threads, CPU samples, lost ticks and the rate. */
static void test_cpu_reconnect(void)
{
    struct proc_table *t = proc_table_new();
    struct stream s = {0};
    stream_valid_cpu(&s, 80, 3);
    s.len -= sizeof(struct wire_header); /* no GOODBYE: the connection breaks */
    struct wire_decoder *d1 = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d1, s.data, s.len) == 0, "cpu reconnect: first stream: %s",
          wire_decoder_error(d1));
    wire_decoder_free(d1);

    s.len = 0;
    stream_hello(&s, 80, 3, 1, 8, "/usr/bin/prog");
    stream_stack(&s, 6, 2, 0x402000);
    stream_thread(&s, 2, 81, WIRE_NO_ID, 6, 3, 0, 7, 0, "again");
    stream_cpu1(&s, 1000, 0, 6, 2, 1);
    struct wire_decoder *d2 = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d2, s.data, s.len) == 0, "cpu reconnect: second stream: %s",
          wire_decoder_error(d2));
    struct proc *p = proc_table_find(t, 80, 3);
    const struct proc_thread *th = p ? thread_of(p, 2) : NULL;
    check(p && HASH_COUNT(p->threads) == 1 && th && th->end_ns == 0 && th->cpu_ns == 7 &&
              strcmp(th->name, "again") == 0,
          "cpu reconnect: threads not reset to the resent state");
    check(p && HASH_COUNT(p->cpu_samples) == 1 && cpu_is(p, 6, 2, 1, 1000000) && p->cpu_lost == 0 &&
              p->cpu_lost_ns == 0 && p->cpu_hz == 1000,
          "cpu reconnect: CPU samples not reset");
    wire_decoder_free(d2);

    /* A HELLO without any CPU: no rate, nothing. */
    s.len = 0;
    stream_hello(&s, 80, 3, 1, 8, "/usr/bin/prog");
    struct wire_decoder *d3 = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d3, s.data, s.len) == 0, "cpu reconnect: third stream");
    check(p && p->threads == NULL && p->cpu_samples == NULL && p->cpu_hz == 0 && !proc_has_cpu(p) &&
              !proc_has_threads(p),
          "cpu reconnect: third HELLO kept threads or samples");
    wire_decoder_free(d3);
    proc_table_free(t);
    free(s.data);
}

static void stream_flushed(struct stream *s, uint64_t seq)
{
    struct wire_flushed f = {seq};
    stream_header(s, WIRE_FLUSHED, sizeof f);
    stream_put(s, &f, sizeof f);
}

/* HELLO with flags: the fixed part only, no exe, no command line. */
static void stream_hello_flags(struct stream *s, uint32_t pid, uint32_t flags)
{
    struct wire_hello h = {.magic = WIRE_MAGIC,
                           .version = WIRE_VERSION,
                           .pid = pid,
                           .start_ns = 1,
                           .sample_rate = 1,
                           .max_depth = 8,
                           .flags = flags};
    stream_header(s, WIRE_HELLO, sizeof h);
    stream_put(s, &h, sizeof h);
}

/* FLUSHED: the latest seq is kept (a stale, smaller one does not lower it);
 * HELLO's CPU flag. */
static void test_flushed(void)
{
    struct stream s = {0};
    stream_hello(&s, 4242, 77, 1, 8, "/bin/x");
    stream_flushed(&s, 5);
    stream_flushed(&s, 3);
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct proc_table *t = proc_table_new();
        struct wire_decoder *d = wire_decoder_new(t, 0);
        int rc = feed_chunked(d, &s, bytewise, false);
        check(rc == 0, "flushed: rc %d (%s)", rc, wire_decoder_error(d));
        struct proc *p = proc_table_find(t, 4242, 77);
        check(p && p->flushed_seq == 5, "flushed: seq %llu, want 5",
              p ? (unsigned long long)p->flushed_seq : 0ull);
        check(p && !p->cpu_fixed, "flushed: CPU fixed without the flag");
        struct stream more = {0};
        stream_flushed(&more, 9);
        check(feed_chunked(d, &more, bytewise, false) == 0, "flushed 9: %s", wire_decoder_error(d));
        check(p && p->flushed_seq == 9, "flushed: seq %llu, want 9",
              p ? (unsigned long long)p->flushed_seq : 0ull);
        free(more.data);
        wire_decoder_free(d);
        proc_table_free(t);
    }
    s.len = 0;
    stream_hello_flags(&s, 77, WIRE_HELLO_CPU_FIXED);
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(feed_chunked(d, &s, 0, false) == 0, "hello CPU fixed: %s", wire_decoder_error(d));
    struct proc *p = proc_table_find(t, 77, 1);
    check(p && p->cpu_fixed, "hello CPU fixed: flag not kept");
    wire_decoder_free(d);
    proc_table_free(t);
    free(s.data);

    struct stream good = {0}, b = {0};
    prefix(&good);
    stream_flushed(&b, 0);
    expect_error("flushed seq 0", &good, &b, false, "ppx: pid 1234: bad FLUSHED record: seq 0");
    b.len = 0;
    stream_header(&b, WIRE_FLUSHED, 4);
    stream_put(&b, "abcd", 4);
    expect_error("flushed short", &good, &b, false, "bad FLUSHED record: length 4, not 8");
    b.len = 0;
    stream_header(&b, WIRE_FLUSHED, 16);
    expect_error("flushed long", &good, &b, false, "bad FLUSHED record: length 16 exceeds 8");
    b.len = 0;
    stream_flushed(&b, 1);
    expect_error("flushed first", NULL, &b, false, "ppx: pid 999: FLUSHED record before HELLO");
    b.len = 0;
    stream_hello_flags(&b, 77, 2);
    expect_error("hello flags", NULL, &b, false, "bad HELLO record: unknown flags 0x2");
    free(good.data);
    free(b.data);
}

/* BLOCK_DELTA and MUTEX_DELTA: increments per stack, each profile its own
 * figures; a bad record (one field wrong) is refused and changes nothing;
 * a copy's subtraction leaves the window's figures. */
static void test_contention(void)
{
    const uint64_t one = WIRE_CONTENTION_ONE;
    struct stream s = {0};
    prefix(&s);
    stream_stack(&s, 2, 3, 0x2000);
    stream_contention1(&s, WIRE_BLOCK_DELTA, 1, 20 * one, 1000000000);
    stream_contention1(&s, WIRE_MUTEX_DELTA, 2, 10 * one, 500000000);
    stream_contention1(&s, WIRE_BLOCK_DELTA, 1, one / 2, 7);
    stream_goodbye(&s);
    for (size_t chunk = 0; chunk < 3; chunk++) {
        struct proc_table *t = proc_table_new();
        struct wire_decoder *d = wire_decoder_new(t, 0);
        check(feed_chunked(d, &s, chunk, true) == 0, "contention chunk %zu: refused: %s", chunk,
              wire_decoder_error(d));
        struct proc *p = proc_table_find(t, 1234, 5);
        const struct proc_stack *s1 = p ? stack_of(p, 1) : NULL, *s2 = p ? stack_of(p, 2) : NULL;
        check(s1 && s1->block.contentions == 20 * one + one / 2 &&
                  s1->block.delay_ns == 1000000007 && s1->mutex.contentions == 0,
              "contention chunk %zu: stack 1's figures", chunk);
        check(s2 && s2->mutex.contentions == 10 * one && s2->mutex.delay_ns == 500000000 &&
                  s2->block.delay_ns == 0,
              "contention chunk %zu: stack 2's figures", chunk);
        check(p && proc_has_contention(p, false) && proc_has_contention(p, true),
              "contention chunk %zu: proc_has_contention", chunk);
        if (p && chunk == 0) {
            struct proc *base = proc_copy(p, PROC_COPY_COUNTERS);
            struct proc *now = proc_copy(p, PROC_COPY_FULL);
            check(base && now, "contention: copies");
            if (base && now) {
                struct proc_stack *n1 = stack_of(now, 1);
                n1->block.contentions += one;
                n1->block.delay_ns += 5;
                proc_copy_subtract(now, base, 0);
                check(n1->block.contentions == one && n1->block.delay_ns == 5 &&
                          stack_of(now, 2)->mutex.delay_ns == 0,
                      "contention: the window's figures after subtraction");
            }
            proc_copy_free(base);
            proc_copy_free(now);
        }
        wire_decoder_free(d);
        proc_table_free(t);
    }

    struct stream good = {0}, b = {0};
    prefix(&good);
    static const struct {
        const char *name;
        bool after_prefix;
        uint32_t type, stack_id, reserved;
        const char *want;
    } entries[] = {
        {"block unknown stack", true, WIRE_BLOCK_DELTA, 2, 0,
         "ppx: pid 1234: bad BLOCK_DELTA record: entry 0: unknown stack id 2"},
        {"mutex unknown stack", true, WIRE_MUTEX_DELTA, 9, 0,
         "bad MUTEX_DELTA record: entry 0: unknown stack id 9"},
        {"mutex reserved", true, WIRE_MUTEX_DELTA, 1, 3,
         "bad MUTEX_DELTA record: entry 0: reserved field is 3, not 0"},
        {"block before hello", false, WIRE_BLOCK_DELTA, 1, 0,
         "ppx: pid 999: BLOCK_DELTA record before HELLO"},
    };
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++) {
        b.len = 0;
        struct wire_contention_delta h = {.count = 1};
        struct wire_contention_entry e = {.stack_id = entries[i].stack_id,
                                          .reserved = entries[i].reserved,
                                          .contentions = 1,
                                          .delay_ns = 1};
        stream_header(&b, entries[i].type, sizeof h + sizeof e);
        stream_put(&b, &h, sizeof h);
        stream_put(&b, &e, sizeof e);
        expect_error(entries[i].name, entries[i].after_prefix ? &good : NULL, &b, false,
                     entries[i].want);
    }
    b.len = 0;
    struct wire_contention_delta h = {.count = 2};
    struct wire_contention_entry e = {.stack_id = 1, .contentions = 1, .delay_ns = 1};
    stream_header(&b, WIRE_BLOCK_DELTA, sizeof h + sizeof e);
    stream_put(&b, &h, sizeof h);
    stream_put(&b, &e, sizeof e);
    expect_error("block count", &good, &b, false, "bad BLOCK_DELTA record: length 32 does not");
    b.len = 0;
    stream_contention1(&b, WIRE_MUTEX_DELTA, 1, 1, 1);
    b.len -= 1;
    expect_error("mutex truncated", &good, &b, true,
                 "stream ended inside a MUTEX_DELTA record (31 of 32 payload bytes)");

    /* A bad second entry: the first one is not applied either. */
    struct stream a = {0};
    prefix(&a);
    h.count = 2;
    const struct wire_contention_entry two[] = {{.stack_id = 1, .contentions = 1, .delay_ns = 1},
                                                {.stack_id = 5, .contentions = 1, .delay_ns = 1}};
    stream_header(&a, WIRE_BLOCK_DELTA, sizeof h + sizeof two);
    stream_put(&a, &h, sizeof h);
    stream_put(&a, two, sizeof two);
    struct proc_table *t = proc_table_new();
    struct wire_decoder *d = wire_decoder_new(t, 0);
    check(wire_decoder_feed(d, a.data, a.len) == -1, "contention atomic: bad record accepted");
    struct proc *p = proc_table_find(t, 1234, 5);
    check(p && stack_of(p, 1) && stack_of(p, 1)->block.delay_ns == 0,
          "contention atomic: the bad record was applied in part");
    wire_decoder_free(d);
    proc_table_free(t);
    free(a.data);
    free(s.data);
}

/* ---- thread dumps: TASK, TASKS_END ---- */

static struct wire_task task_of(uint64_t seq, uint8_t kind, uint32_t tid, uint32_t depth)
{
    struct wire_task w;
    memset(&w, 0, sizeof w);
    w.seq = seq;
    w.kind = kind;
    w.tid = tid;
    w.id = kind == WIRE_TASK_THREAD ? tid : 0x7f0000001000ull + tid;
    w.thread_id = WIRE_NO_ID;
    w.depth = depth;
    w.fd = -1;
    w.state = kind == WIRE_TASK_THREAD ? 'S' : WIRE_CO_SLEEPING;
    w.stack = depth ? WIRE_TASK_STACK_OK : WIRE_TASK_STACK_BLOCKED;
    snprintf(w.name, sizeof w.name, "t%u", tid);
    return w;
}

/* A TASK record of w and w.depth frames 0x1000, 0x1001, ...; length as
 * given (0: the right one). */
static void stream_task(struct stream *s, const struct wire_task *w, uint32_t length)
{
    uint32_t right = (uint32_t)(sizeof *w + w->depth * sizeof(uint64_t));
    stream_header(s, WIRE_TASK, length ? length : right);
    stream_put(s, w, sizeof *w);
    for (uint32_t i = 0; i < w->depth; i++) {
        uint64_t pc = 0x1000 + i;
        stream_put(s, &pc, sizeof pc);
    }
}

static void stream_tasks_end(struct stream *s, uint64_t seq, uint32_t tasks)
{
    struct wire_tasks_end e = {seq, tasks, 0, 1500000};
    stream_header(s, WIRE_TASKS_END, sizeof e);
    stream_put(s, &e, sizeof e);
}

/* A dump is whole at its TASKS_END, and replaces the previous one; a dump
 * cut short (a TASK of another seq) is dropped; an empty dump is one. */
static void test_tasks(void)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct stream s = {0};
        prefix(&s);
        struct wire_task a = task_of(1, WIRE_TASK_THREAD, 1234, 3);
        a.wait_call = WIRE_IO_READ;
        a.fd = 7;
        a.fd_type = WIRE_FD_PIPE;
        a.wait_ns = 12300000000ull;
        stream_task(&s, &a, 0);
        struct wire_task b = task_of(1, WIRE_TASK_THREAD, 1235, 0);
        stream_task(&s, &b, 0);
        struct wire_task c = task_of(1, WIRE_TASK_COROUTINE, 1234, 2);
        c.wait_ns = 5000;
        stream_task(&s, &c, 0);
        struct proc_table *t = proc_table_new();
        struct wire_decoder *d = wire_decoder_new(t, 0);
        check(feed_chunked(d, &s, bytewise, false) == 0, "tasks: %s", wire_decoder_error(d));
        struct proc *p = wire_decoder_proc(d);
        check(p && p->dump.seq == 0 && p->dump_partial.n == 3,
              "tasks: a dump without its end is not whole");
        s.len = 0;
        stream_tasks_end(&s, 1, 3);
        check(feed_chunked(d, &s, bytewise, false) == 0, "tasks end: %s", wire_decoder_error(d));
        check(p && p->dump.seq == 1 && p->dump.n == 3 && p->dump_partial.n == 0,
              "tasks: dump 1 whole with 3 tasks");
        if (p && p->dump.n == 3) {
            const struct proc_task *x = &p->dump.tasks[0];
            check(x->tid == 1234 && x->depth == 3 && x->pcs[0] == 0x1000 && x->pcs[2] == 0x1002 &&
                      x->wait_call == WIRE_IO_READ && x->fd == 7 && x->fd_type == WIRE_FD_PIPE &&
                      x->wait_ns == 12300000000ull && x->state == 'S' &&
                      strcmp(x->name, "t1234") == 0,
                  "tasks: the first task's fields");
            check(p->dump.tasks[1].depth == 0 && p->dump.tasks[1].pcs == NULL &&
                      p->dump.tasks[1].stack == WIRE_TASK_STACK_BLOCKED,
                  "tasks: a task without stack");
            check(p->dump.tasks[2].kind == WIRE_TASK_COROUTINE &&
                      p->dump.tasks[2].id == 0x7f0000001000ull + 1234 &&
                      p->dump.tasks[2].state == WIRE_CO_SLEEPING,
                  "tasks: the coroutine");
            check(p->dump.took_ns == 1500000 && p->dump.taken_ns != 0, "tasks: times");
        }
        /* a copy holds the dump on its own */
        struct proc *copy = p ? proc_copy(p, PROC_COPY_MAPPINGS) : NULL;
        check(copy && copy->dump.n == 3 && copy->dump.tasks[0].pcs != p->dump.tasks[0].pcs &&
                  copy->dump.tasks[0].pcs[1] == 0x1001,
              "tasks: copied");
        proc_copy_free(copy);
        /* dump 2 cut short by dump 3; dump 3 empty */
        s.len = 0;
        struct wire_task e = task_of(2, WIRE_TASK_THREAD, 1234, 1);
        stream_task(&s, &e, 0);
        stream_tasks_end(&s, 3, 0);
        check(feed_chunked(d, &s, bytewise, false) == 0, "tasks 2, 3: %s", wire_decoder_error(d));
        check(p && p->dump.seq == 3 && p->dump.n == 0, "tasks: the empty dump 3 replaces dump 1");
        wire_decoder_free(d);
        proc_table_free(t);
        free(s.data);
    }

    struct stream good = {0}, b = {0};
    prefix(&good); /* max depth 8 */
    static const struct {
        const char *name;
        uint64_t seq;
        uint8_t kind, state, stack, wait_call, fd_type, reserved;
        uint32_t depth;
        const char *want;
    } bad[] = {
        {"task seq 0", 0, WIRE_TASK_THREAD, 'S', 0, 0, 0, 0, 1, "bad TASK record: seq 0"},
        {"task kind", 1, 3, 'S', 0, 0, 0, 0, 1, "bad TASK record: kind 3"},
        {"task stack status", 1, WIRE_TASK_THREAD, 'S', WIRE_TASK_STACK_MAX + 1, 0, 0, 0, 1,
         "bad TASK record: stack status 7"},
        {"coroutine state 0", 1, WIRE_TASK_COROUTINE, 0, 0, 0, 0, 0, 1,
         "bad TASK record: coroutine state 0"},
        {"coroutine state 7", 1, WIRE_TASK_COROUTINE, 7, 0, 0, 0, 0, 1,
         "bad TASK record: coroutine state 7"},
        {"thread state", 1, WIRE_TASK_THREAD, '1', 0, 0, 0, 0, 1,
         "bad TASK record: thread state byte 49 is neither a letter nor '?'"},
        {"wait call", 1, WIRE_TASK_THREAD, 'S', 0, WIRE_IO_CALL_MAX, 0, 0, 1,
         "bad TASK record: wait call"},
        {"fd type", 1, WIRE_TASK_THREAD, 'S', 0, 0, 7, 0, 1, "bad TASK record: descriptor type 7"},
        {"reserved", 1, WIRE_TASK_THREAD, 'S', 0, 0, 0, 1, 1,
         "bad TASK record: reserved bytes are not 0"},
        {"depth over max", 1, WIRE_TASK_THREAD, 'S', 0, 0, 0, 0, 9,
         "bad TASK record: depth 9 exceeds 8"},
        {"stack without frames", 1, WIRE_TASK_THREAD, 'S', WIRE_TASK_STACK_OK, 0, 0, 0, 0,
         "bad TASK record: a stack taken (status 0) without frames"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct wire_task w = task_of(bad[i].seq, WIRE_TASK_THREAD, 5, bad[i].depth);
        w.kind = bad[i].kind;
        w.state = bad[i].state;
        w.stack = bad[i].stack;
        w.wait_call = bad[i].wait_call;
        w.fd_type = bad[i].fd_type;
        w.reserved[1] = bad[i].reserved;
        b.len = 0;
        stream_task(&b, &w, 0);
        expect_error(bad[i].name, &good, &b, false, bad[i].want);
    }
    struct wire_task w = task_of(1, WIRE_TASK_THREAD, 5, 2);
    b.len = 0;
    stream_header(&b, WIRE_TASK, sizeof w - 1);
    stream_put(&b, &w, sizeof w - 1);
    expect_error("task short", &good, &b, false, "bad TASK record: length 63 is shorter");
    b.len = 0;
    stream_task(&b, &w, sizeof w + 8);
    expect_error("task length", &good, &b, false,
                 "bad TASK record: length 72 does not match depth 2");
    b.len = 0;
    stream_header(&b, WIRE_TASK, 0x10000);
    expect_error("task oversize", &good, &b, false, "bad TASK record: length 65536 exceeds");
    w = task_of(1, WIRE_TASK_THREAD, 5, 1);
    memset(w.name, 'x', sizeof w.name);
    b.len = 0;
    stream_task(&b, &w, 0);
    expect_error("task name", &good, &b, false, "bad TASK record: name not NUL-terminated");
    w = task_of(1, WIRE_TASK_THREAD, 5, 1);
    w.name[10] = 'y';
    b.len = 0;
    stream_task(&b, &w, 0);
    expect_error("task name padding", &good, &b, false,
                 "bad TASK record: byte 10 after the name's NUL is not 0");
    w = task_of(1, WIRE_TASK_THREAD, 5, 1);
    b.len = 0;
    stream_task(&b, &w, 0);
    stream_tasks_end(&b, 1, 2);
    expect_error("tasks end count", &good, &b, false,
                 "bad TASKS_END record: dump 1 announces 2 tasks, 1 came");
    b.len = 0;
    stream_tasks_end(&b, 0, 0);
    expect_error("tasks end seq 0", &good, &b, false, "bad TASKS_END record: seq 0");
    b.len = 0;
    struct wire_tasks_end e = {1, 0, 3, 0};
    stream_header(&b, WIRE_TASKS_END, sizeof e);
    stream_put(&b, &e, sizeof e);
    expect_error("tasks end reserved", &good, &b, false,
                 "bad TASKS_END record: reserved field is 3, not 0");
    b.len = 0;
    stream_header(&b, WIRE_TASKS_END, 8);
    stream_put(&b, &e, 8);
    expect_error("tasks end short", &good, &b, false, "bad TASKS_END record: length 8, not 24");
    b.len = 0;
    stream_tasks_end(&b, 1, 0);
    expect_error("tasks end first", NULL, &b, false, "TASKS_END record before HELLO");
    free(good.data);
    free(b.data);
}

int main(void)
{
    test_valid_stream();
    test_errors();
    test_data_kept();
    test_reconnect_and_exec();
    test_stale_connection();
    test_free_clamp();
    test_duplicates();
    test_empty();
    test_io_valid();
    test_io_errors();
    test_io_atomic_records();
    test_io_reconnect();
    test_io_limits();
    test_cpu_valid();
    test_cpu_rates();
    test_thread_updates();
    test_thread_errors();
    test_thread_limit();
    test_cpu_errors();
    test_cpu_reconnect();
    test_flushed();
    test_contention();
    test_tasks();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("unit_wire_decode: all checks passed\n");
    return 0;
}
