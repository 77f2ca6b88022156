/* The live collector's pieces that need no running target:
 *  - proc_copy / proc_copy_subtract: a copy shares nothing with its
 *    original; the difference of two copies holds the window's heap, I/O
 *    and CPU figures and the threads created in it, with negative in-use
 *    figures where the window freed older blocks, as Go's delta heap has;
 *  - profiles built into memory (a pprof_sink without path) are the gzipped profiles
 *    the file writer would write;
 *  - the legacy text heap profile (pprof.h): Go's header, records by
 *    in-use bytes, symbolized "#" lines of this binary's own functions;
 *  - control requests (ingest.h) are validated like every other input;
 *  - a timeline keeps the latest TIMELINE_MAX_POINTS points, oldest
 *    first, across its growth and once full;
 *  - heap totals move as the heap profile's scaled figures do;
 *  - live_flush: a target that lets a flush request pass unanswered costs
 *    one wait, not one per request, until it answers or reconnects (and
 *    one that reconnects during the wait is not late). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#include "ingest/ingest.h"
#include "pprof/pprof.h"
#include "live/live.h"
#include "model/model.h"
#include "support.h"

static uint64_t site_pc, root_pc;

NOINLINE void ppx_collect_test_site(void)
{
    site_pc = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

NOINLINE void ppx_collect_test_root(void)
{
    ppx_collect_test_site();
    root_pc = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

static void set_heap(struct proc_stack *s, uint64_t ao, uint64_t ab, uint64_t fo, uint64_t fb)
{
    s->alloc_objects = ao;
    s->alloc_bytes = ab;
    s->free_objects = fo;
    s->free_bytes = fb;
}

static struct proc_io_site *add_site(struct proc *p, uint32_t id, uint64_t calls)
{
    struct proc_io_site *s = calloc(1, sizeof *s);
    s->id = id;
    s->call = WIRE_IO_READ;
    s->caller_pc = site_pc;
    s->calls = calls;
    s->bytes = 10 * calls;
    s->errnos = calloc(1, sizeof *s->errnos);
    s->errnos[0] = (struct proc_io_errno){.err = EAGAIN, .calls = calls / 2};
    s->n_errnos = 1;
    s->stacks = calloc(1, sizeof *s->stacks);
    s->stacks[0] = (struct proc_io_stack){.stack_id = 1, .samples = calls};
    s->n_stacks = 1;
    HASH_ADD(hh, p->io_sites, id, sizeof s->id, s);
    return s;
}

static void add_thread(struct proc *p, uint32_t id, uint64_t cpu_ns)
{
    struct proc_thread *t = calloc(1, sizeof *t);
    t->id = id;
    t->tid = 1000 + id;
    t->creator_id = WIRE_NO_ID;
    t->stack_id = WIRE_NO_ID;
    t->cpu_ns = cpu_ns;
    snprintf(t->name, sizeof t->name, "t%u", id);
    HASH_ADD(hh, p->threads, id, sizeof t->id, t);
}

static struct proc_cpu_sample *add_cpu(struct proc *p, uint32_t stack, uint32_t thread,
                                       uint64_t samples)
{
    struct proc_cpu_sample *c = calloc(1, sizeof *c);
    c->key.stack_id = stack;
    c->key.thread_id = thread;
    c->samples = samples;
    c->cpu_ns = samples * 10000000u;
    HASH_ADD(hh, p->cpu_samples, key, sizeof c->key, c);
    return c;
}

static struct proc_stack *stack_of(struct proc *p, uint32_t id)
{
    struct proc_stack *s;
    HASH_FIND(hh, p->stacks, &id, sizeof id, s);
    return s;
}

static void test_copy_and_delta(void)
{
    const uint64_t pcs[] = {site_pc, root_pc};
    struct proc *p = unit_proc_new(42, 1, 1000, true);
    p->exe = strdup("/bin/test");
    set_heap(unit_proc_add_stack(p, 1, pcs, 2), 10, 1000, 0, 0);
    set_heap(unit_proc_add_stack(p, 2, pcs + 1, 1), 5, 500, 0, 0);
    struct proc_io_site *site = add_site(p, 7, 100);
    add_thread(p, 1, 5000);
    struct proc_cpu_sample *cpu = add_cpu(p, 1, 1, 3);
    p->cpu_lost = 2;

    struct proc *base = proc_copy(p, PROC_COPY_COUNTERS);
    CHECK(base != NULL, "counters copy");
    if (!base)
        return;
    CHECK(base->n_mappings == 0 && base->exe == NULL, "a counters copy has no mappings or names");
    CHECK(stack_of(base, 1) && stack_of(base, 1)->pcs == NULL &&
              stack_of(base, 1)->alloc_objects == 10,
          "a counters copy keeps counters, not frames");

    /* The window: stack 1 allocates 3 more; stack 2 frees 4 blocks made
     * before; the site makes 20 calls; a thread is created; 4 more ticks. */
    set_heap(stack_of(p, 1), 13, 1300, 0, 0);
    set_heap(stack_of(p, 2), 5, 500, 4, 400);
    site->calls = 120;
    site->bytes = 1200;
    site->errnos[0].calls = 60;
    site->stacks[0].samples = 120;
    add_thread(p, 2, 100);
    cpu->samples = 7;
    cpu->cpu_ns = 70000000u;
    add_cpu(p, 2, 2, 1);
    p->cpu_lost = 3;

    struct proc *now = proc_copy(p, PROC_COPY_FULL);
    CHECK(now != NULL, "full copy");
    if (!now)
        return;
    CHECK(now->exe && now->exe != p->exe && strcmp(now->exe, "/bin/test") == 0, "exe copied");
    CHECK(now->mappings != p->mappings && now->n_mappings == p->n_mappings, "mappings copied");
    CHECK(stack_of(now, 1)->pcs != stack_of(p, 1)->pcs &&
              memcmp(stack_of(now, 1)->pcs, pcs, sizeof pcs) == 0,
          "frames copied");
    /* The original changes later: the copy does not. */
    set_heap(stack_of(p, 1), 99, 9900, 0, 0);
    CHECK(stack_of(now, 1)->alloc_objects == 13, "the copy is its own");

    proc_copy_subtract(now, base, 5000);
    CHECK(now->start_ns == 5000, "a delta starts with its window: %llu",
          (unsigned long long)now->start_ns);
    struct proc_stack *s1 = stack_of(now, 1), *s2 = stack_of(now, 2);
    CHECK(s1->alloc_objects == 3 && s1->alloc_bytes == 300 && s1->free_objects == 0,
          "stack 1 delta: %llu %llu", (unsigned long long)s1->alloc_objects,
          (unsigned long long)s1->alloc_bytes);
    CHECK(s2->alloc_objects == 0 && s2->free_objects == 4 && s2->free_bytes == 400,
          "stack 2 delta: frees only");
    struct proc_io_site *ds;
    uint32_t sid = 7;
    HASH_FIND(hh, now->io_sites, &sid, sizeof sid, ds);
    CHECK(ds && ds->calls == 20 && ds->bytes == 200 && ds->errnos[0].calls == 10 &&
              ds->stacks[0].samples == 20,
          "I/O site delta");
    struct proc_cpu_key k1 = {1, 1}, k2 = {2, 2};
    struct proc_cpu_sample *c1, *c2;
    HASH_FIND(hh, now->cpu_samples, &k1, sizeof k1, c1);
    HASH_FIND(hh, now->cpu_samples, &k2, sizeof k2, c2);
    CHECK(c1 && c1->samples == 4 && c1->cpu_ns == 40000000u, "CPU delta of an old pair");
    CHECK(c2 && c2->samples == 1, "CPU of a new pair whole");
    CHECK(now->cpu_lost == 1, "lost ticks delta: %llu", (unsigned long long)now->cpu_lost);
    CHECK(HASH_COUNT(now->threads) == 1 && now->threads->id == 2, "threads of the window only: %u",
          HASH_COUNT(now->threads));

    /* The delta heap profile, into memory: stack 2 is negative. The sink
     * is named like a file, which must not appear. */
    struct pprof_sink cap = {.name = unit_tmp_path("heap.pb.gz")};
    char err[256] = "";
    int rc = pprof_heap_write(&now, 1, PPROF_HEAP, false, 6000, &cap, err, sizeof err);
    CHECK(rc == 0 && cap.data && cap.len > 20, "capture: %s", err);
    CHECK(cap.data && cap.data[0] == 0x1f && cap.data[1] == 0x8b, "the capture is gzip");
    FILE *f = fopen(unit_tmp_path("delta.pb.gz"), "w");
    CHECK(f && fwrite(cap.data, 1, cap.len, f) == cap.len, "write the capture");
    if (f)
        fclose(f);
    free(cap.data);
    CHECK(access(unit_tmp_path("heap.pb.gz"), F_OK) != 0, "capturing wrote no file");
    Profile *prof = unit_read_profile(unit_tmp_path("delta.pb.gz"));
    CHECK(prof != NULL, "the captured profile decodes");
    bool negative = false, positive = false;
    for (size_t i = 0; prof && i < prof->n_sample; i++) {
        const int64_t *v = prof->sample[i]->value;
        if (v[2] == -4 && v[3] == -400 && v[0] == 0)
            negative = true;
        if (v[0] == 3 && v[1] == 300 && v[2] == 3 && v[3] == 300)
            positive = true;
    }
    CHECK(negative, "a stack that freed older blocks has negative in-use figures");
    CHECK(positive, "a stack that allocated has its window's figures");
    CHECK(prof && prof->duration_nanos == 1000, "duration is the window's: %lld",
          prof ? (long long)prof->duration_nanos : -1LL);
    if (prof)
        perftools__profiles__profile__free_unpacked(prof, NULL);

    proc_copy_free(now);
    proc_copy_free(base);
    unit_proc_free(p);
}

static void test_heap_text(void)
{
    const uint64_t pcs[] = {site_pc, root_pc};
    struct proc *p = unit_proc_new(7, 512, 1000, true);
    p->exe = strdup("/bin/x");
    set_heap(unit_proc_add_stack(p, 1, pcs, 2), 10, 640, 2, 128);
    set_heap(unit_proc_add_stack(p, 2, pcs + 1, 1), 4, 4096, 0, 0);
    unit_proc_add_stack(p, 3, pcs, 1); /* nothing counted: no record */
    char *text = NULL;
    size_t len = 0;
    CHECK(heap_text_write(&p, 1, &text, &len) == 0 && text, "heap_text_write");
    if (text) {
        static const char header[] = "heap profile: 12: 4608 [14: 4736] @ heap/1024\n";
        CHECK(strncmp(text, header, strlen(header)) == 0, "header: %.60s", text);
        char first[128], second[128];
        snprintf(first, sizeof first, "4: 4096 [4: 4096] @ %#llx\n", (unsigned long long)root_pc);
        snprintf(second, sizeof second, "8: 512 [10: 640] @ %#llx %#llx\n",
                 (unsigned long long)site_pc, (unsigned long long)root_pc);
        char *a = strstr(text, first), *b = strstr(text, second);
        CHECK(a && b && a < b, "records sorted by in-use bytes:\n%s", text);
        CHECK(strstr(text, "\tppx_collect_test_site\t") != NULL, "symbolized frames:\n%s", text);
        CHECK(strstr(text, "\n# pid 7 exe /bin/x sample_rate 512\n") != NULL, "ppx section");
        CHECK(strstr(text, "\n--- Memory map: ---\n") != NULL, "memory map");
        CHECK(strlen(text) == len, "NUL-terminated, len bytes");
    }
    free(text);
    unit_proc_free(p);
}

/* A request through a socketpair, as the collector's worker reads it;
 * first bytes of it already read (after the magic). */
static int read_request(const void *req, size_t len, size_t already, struct control_snapshot *out,
                        char *err, size_t errlen)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        return -2;
    if (len > already && write(sv[1], (const char *)req + already, len - already) < 0)
        return -2;
    shutdown(sv[1], SHUT_WR);
    int rc = control_read_request(sv[0], req, already, out, err, errlen);
    close(sv[0]);
    close(sv[1]);
    return rc;
}

static size_t make_request(uint8_t *buf, uint32_t version, uint32_t command, uint32_t pid,
                           uint32_t dir_len, const char *dir, size_t dir_bytes)
{
    struct control_request r = {version, command, pid, dir_len};
    memcpy(buf, &r, sizeof r); /* little-endian host */
    memcpy(buf + sizeof r, dir, dir_bytes);
    return sizeof r + dir_bytes;
}

static void test_control(void)
{
    static struct control_snapshot req;
    uint8_t buf[sizeof(struct control_request) + CONTROL_MAX_DIR + 16];
    char err[256];
    size_t n = make_request(buf, CONTROL_VERSION, CONTROL_SNAPSHOT, 42, 8, "/tmp/dir", 8);
    for (size_t already = 0; already <= n; already += 5) {
        err[0] = 0;
        memset(&req, 0, sizeof req);
        CHECK(read_request(buf, n, already, &req, err, sizeof err) == 0 && req.pid == 42 &&
                  strcmp(req.dir, "/tmp/dir") == 0,
              "a good request (%zu bytes read already): %s", already, err);
    }
    static const struct {
        uint32_t version, command, dir_len;
        const char *dir;
        size_t bytes;
        const char *why;
    } bad[] = {
        {2, CONTROL_SNAPSHOT, 4, "/tmp", 4, "version 2 is not supported"},
        {CONTROL_VERSION, 9, 4, "/tmp", 4, "unknown command 9"},
        {CONTROL_VERSION, CONTROL_SNAPSHOT, 0, "", 0, "directory of 0 bytes"},
        {CONTROL_VERSION, CONTROL_SNAPSHOT, CONTROL_MAX_DIR + 1, "/", 1, "directory of 4097 bytes"},
        {CONTROL_VERSION, CONTROL_SNAPSHOT, 3, "tmp", 3, "not an absolute path"},
        {CONTROL_VERSION, CONTROL_SNAPSHOT, 4, "/t\0p", 4, "not an absolute path"},
        {CONTROL_VERSION, CONTROL_SNAPSHOT, 10, "/tmp", 4, "ended early"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = make_request(buf, bad[i].version, bad[i].command, 0, bad[i].dir_len, bad[i].dir,
                         bad[i].bytes);
        err[0] = 0;
        CHECK(read_request(buf, n, 0, &req, err, sizeof err) == -1 && strstr(err, bad[i].why),
              "bad request %zu: expected '%s', got '%s'", i, bad[i].why, err);
    }
    /* More bytes than the request already read: refused. */
    n = make_request(buf, CONTROL_VERSION, CONTROL_SNAPSHOT, 0, 4, "/tmpXYZ", 7);
    err[0] = 0;
    CHECK(read_request(buf, n, n, &req, err, sizeof err) == -1 && strstr(err, "after its end"),
          "trailing bytes: '%s'", err);
}

/* The fake connection: FLUSH commands per pid; pid 1 answers at once
 * (as if its FLUSHED had been decoded), pid 2 never does. */
struct fake_targets {
    struct proc_table *table;
    unsigned flushes[3];
    uint64_t last_seq[3];
};

static int fake_send(void *arg, const struct proc *p, uint32_t type, const void *payload,
                     size_t len)
{
    struct fake_targets *f = arg;
    struct wire_cmd_flush cmd;
    if (type != WIRE_CMD_FLUSH || len != sizeof cmd || p->pid > 2)
        return 0;
    memcpy(&cmd, payload, sizeof cmd);
    f->flushes[p->pid]++;
    f->last_seq[p->pid] = cmd.seq;
    if (p->pid == 1)
        proc_table_find(f->table, p->pid, p->start_ns)->flushed_seq = cmd.seq;
    return 0;
}

static long long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)(now.tv_sec - since->tv_sec) * 1000 +
           (now.tv_nsec - since->tv_nsec) / 1000000;
}

#define LONG_WAIT_MS 20000

static void *flush_pid2(void *arg)
{
    live_flush(arg, 2, 300);
    return NULL;
}

static unsigned flushes_of_pid2(struct live *l, const struct fake_targets *f)
{
    pthread_mutex_lock(live_lock(l));
    unsigned n = f->flushes[2];
    pthread_mutex_unlock(live_lock(l));
    return n;
}

static void test_reconnect_during_flush(struct live *l, struct fake_targets *f, struct proc *p2)
{
    p2->connected = true;
    pthread_mutex_lock(live_lock(l)); /* as the ingest loop calls it */
    live_process_opened(l, p2);
    pthread_mutex_unlock(live_lock(l));
    unsigned asked = f->flushes[2];
    pthread_t t;
    if (pthread_create(&t, NULL, flush_pid2, l) != 0) {
        CHECK(0, "cannot start a thread");
        return;
    }
    for (int i = 0; i < LONG_WAIT_MS && flushes_of_pid2(l, f) == asked; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    pthread_mutex_lock(live_lock(l)); /* as the ingest loop decodes the new HELLO */
    live_process_opened(l, p2);
    pthread_mutex_unlock(live_lock(l));
    pthread_join(t, NULL);
    live_flush(l, 2, 50);
    CHECK(f->flushes[2] == asked + 2,
          "pid 2, reconnected during a flush, was asked %u times after it (expected 1)",
          f->flushes[2] - asked - 1);
}

static void test_flush_late(void)
{
    struct live *l = live_new();
    struct fake_targets f = {.table = live_table(l)};
    struct proc *p[3] = {NULL};
    bool existed;
    for (uint32_t pid = 1; pid <= 2; pid++) {
        p[pid] = proc_table_hello(f.table, pid, 1000 + pid, &existed);
        p[pid]->connected = true;
    }
    live_set_sender(l, fake_send, &f);

    /* The first request waits its whole timeout for pid 2. */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t answered = live_flush(l, 0, 200);
    CHECK(answered == 1, "first flush: %zu answered, expected 1", answered);
    CHECK(elapsed_ms(&t0) >= 150, "first flush returned long before its timeout (%lld ms)",
          elapsed_ms(&t0));
    CHECK(f.flushes[1] == 1 && f.flushes[2] == 1, "first flush asked %u and %u", f.flushes[1],
          f.flushes[2]);

    /* The next ones neither ask nor wait for it (a wait would last
     * LONG_WAIT_MS: far beyond what the calls take). */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 3; i++)
        answered = live_flush(l, 0, LONG_WAIT_MS);
    CHECK(elapsed_ms(&t0) < LONG_WAIT_MS, "later flushes waited for the late target");
    CHECK(answered == 1, "later flush: %zu answered, expected 1", answered);
    CHECK(f.flushes[1] == 4 && f.flushes[2] == 1,
          "later flushes asked pid 1 %u times (4), the late pid 2 %u times (1)", f.flushes[1],
          f.flushes[2]);

    /* Once it answers the request it missed, it is asked again. */
    p[2]->flushed_seq = f.last_seq[2];
    answered = live_flush(l, 2, 200);
    CHECK(f.flushes[2] == 2, "after its answer pid 2 was asked %u times (2)", f.flushes[2]);
    CHECK(answered == 0, "pid 2 cannot have answered the new request (%zu)", answered);

    /* It is late again; a reconnect (a new HELLO) clears that. */
    live_flush(l, 2, LONG_WAIT_MS);
    CHECK(f.flushes[2] == 2, "late again, pid 2 was asked %u times (2)", f.flushes[2]);
    pthread_mutex_lock(live_lock(l));
    live_process_opened(l, p[2]);
    pthread_mutex_unlock(live_lock(l));
    live_flush(l, 2, 50);
    CHECK(f.flushes[2] == 3, "after a reconnect pid 2 was asked %u times (3)", f.flushes[2]);

    /* A target that went away is no longer waited for either. */
    p[2]->connected = false;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    live_flush(l, 0, LONG_WAIT_MS);
    CHECK(elapsed_ms(&t0) < LONG_WAIT_MS, "a flush waited for a disconnected target");
    CHECK(f.flushes[2] == 3, "a disconnected pid 2 was asked (%u)", f.flushes[2]);

    /* It reconnects while a request waits for it: the new connection
     * was never asked, so it is not late. */
    test_reconnect_during_flush(l, &f, p[2]);
    live_set_sender(l, NULL, NULL);
    live_free(l);
}

static void test_timeline(void)
{
    struct proc *p = unit_proc_new(9, 1, 1000, true);
    struct proc_timeline *tl = NULL;
    size_t n;
    CHECK(proc_timeline_copy(tl, &n) == NULL && n == 0, "no timeline: no points");
    const unsigned total = TIMELINE_MAX_POINTS + 1400;
    bool added = true;
    for (unsigned i = 0; i < total; i++) {
        p->totals.threads = i;
        added &= proc_timeline_add(&tl, p, 1000 + i);
        if (i == 99) { /* growing: every point so far */
            struct timeline_point *pts = proc_timeline_copy(tl, &n);
            CHECK(pts && n == 100 && pts[0].t_ns == 1000 && pts[99].totals.threads == 99,
                  "100 points, oldest first");
            free(pts);
        }
    }
    CHECK(added, "every point added");
    struct timeline_point *pts = proc_timeline_copy(tl, &n);
    CHECK(pts && n == TIMELINE_MAX_POINTS, "full: %zu points", n);
    bool ordered = pts != NULL;
    for (size_t i = 0; pts && i < n; i++)
        ordered &= pts[i].t_ns == 1000 + 1400 + i && pts[i].totals.threads == 1400 + i;
    CHECK(ordered, "the latest points, oldest first");
    free(pts);
    proc_timeline_free(tl);

    /* 4 blocks of 1 MiB at rate 512 KiB: the heap profile's scaling */
    struct proc_heap_counts none = {0, 0, 0, 0}, four = {4, 4 << 20, 0, 0},
                            freed = {4, 4 << 20, 4, 4 << 20};
    p->sample_rate = 512 * 1024;
    proc_totals_heap(p, &none, &four);
    double scale = proc_heap_scale(4, 4 << 20, p->sample_rate);
    CHECK(scale > 1.15 && scale < 1.16, "1 / (1 - e^-2): %f", scale);
    CHECK(p->totals.inuse_bytes == (4 << 20) * scale && p->totals.inuse_objects == 4 * scale &&
              p->totals.alloc_bytes == p->totals.inuse_bytes,
          "in use after the allocations");
    proc_totals_heap(p, &four, &freed);
    CHECK(p->totals.inuse_bytes == 0 && p->totals.alloc_bytes == (4 << 20) * scale,
          "nothing in use after the frees, allocations kept");
    unit_proc_free(p);
}

int main(void)
{
    ppx_collect_test_root();
    if (!unit_tmpdir_make("collect"))
        return 99;
    test_copy_and_delta();
    test_heap_text();
    test_control();
    test_flush_late();
    test_timeline();
    return unit_finish("unit_collect: all checks passed");
}
