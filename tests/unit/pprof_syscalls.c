/* pprof_syscalls_write on synthetic processes whose I/O sites and stacks are
 * real return addresses inside this test binary; the profile is read back
 * with `go tool pprof -raw` (tests/lib/pprof_raw.py) and summarized with
 * `ppx audit`, whose table figures and hints are checked too.
 *
 * The sites, with figures chosen so that every division has a remainder:
 *   A recvfrom  inet/dgram   ppx_io_udp_loop      10001 calls, 3 stacks (3:1:0 samples
 *               + one with 0), small datagrams          -> recvmmsg hint
 *   B read      inet/stream  ppx_io_conn_read      1000 calls, 400 EAGAIN, 10 errors
 *               (6 ECONNRESET, 4 unnamed), no stack     -> EAGAIN hint
 *   C write     inet6/stream ppx_io_send_reply     5000 calls of 40 bytes -> writev hint
 *   D sendto    unix/dgram   ppx_io_unix_sender    2000 calls of 64 bytes -> sendmmsg hint
 *   E epoll_wait anon        ppx_io_event_loop      100 calls, 3 equal stacks
 *   F read      file         ppx_io_load_config      50 calls       -> no hint */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <ppx/wire.h>

#include "pprof/pprof.h"
#include "symbol/symbol.h"
#include "support.h"

/* ---- call sites with known return addresses ---------------------------- */

static uint64_t pc_udp_loop, pc_worker_a, pc_worker_b, pc_worker_c, pc_root;
static uint64_t pc_conn_read, pc_send_reply, pc_unix_sender, pc_event_loop, pc_load_config;

/* Each stores a return address into itself, as the I/O call's would be;
 * the barrier after the call keeps it from becoming a tail call. */
#define SITE(fn, var)                                                                              \
    NOINLINE void fn(void)                                                                         \
    {                                                                                              \
        var = unit_return_address();                                                               \
        __asm__ volatile("" ::: "memory");                                                         \
    }
SITE(ppx_io_udp_loop, pc_udp_loop)
SITE(ppx_io_conn_read, pc_conn_read)
SITE(ppx_io_send_reply, pc_send_reply)
SITE(ppx_io_unix_sender, pc_unix_sender)
SITE(ppx_io_event_loop, pc_event_loop)
SITE(ppx_io_load_config, pc_load_config)

#define CALLER(fn, var)                                                                            \
    NOINLINE void fn(void)                                                                         \
    {                                                                                              \
        ppx_io_udp_loop();                                                                         \
        var = unit_return_address();                                                               \
        __asm__ volatile("" ::: "memory");                                                         \
    }
CALLER(ppx_io_worker_a, pc_worker_a)
CALLER(ppx_io_worker_b, pc_worker_b)
CALLER(ppx_io_worker_c, pc_worker_c)

NOINLINE void ppx_io_root(void)
{
    ppx_io_worker_a();
    ppx_io_worker_b();
    ppx_io_worker_c();
    ppx_io_conn_read();
    ppx_io_send_reply();
    ppx_io_unix_sender();
    ppx_io_event_loop();
    ppx_io_load_config();
    pc_root = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

/* ---- synthetic process from this process's own mappings ---------------- */

/* The executable segments of the main program only: enough to symbolize. */
static struct proc *proc_new(uint32_t pid, uint64_t start_ns)
{
    return unit_proc_new(pid, 1, start_ns, true);
}

struct site_spec {
    uint32_t id;
    uint8_t call, fd_type, family, socktype;
    uint64_t caller_pc;
    uint64_t calls, time_ns, bytes, messages, errors, eagain;
};

static struct proc_io_site *add_site(struct proc *p, const struct site_spec *spec)
{
    struct proc_io_site *s = calloc(1, sizeof *s);
    s->id = spec->id;
    s->call = spec->call;
    s->fd_type = spec->fd_type;
    s->family = spec->family;
    s->socktype = spec->socktype;
    s->caller_pc = spec->caller_pc;
    s->calls = spec->calls;
    s->time_ns = spec->time_ns;
    s->bytes = spec->bytes;
    s->messages = spec->messages;
    s->errors = spec->errors;
    s->eagain = spec->eagain;
    HASH_ADD(hh, p->io_sites, id, sizeof s->id, s);
    return s;
}

static void site_stack(struct proc_io_site *s, uint32_t stack_id, uint64_t samples)
{
    s->stacks = realloc(s->stacks, (s->n_stacks + 1) * sizeof *s->stacks);
    s->stacks[s->n_stacks++] = (struct proc_io_stack){.stack_id = stack_id, .samples = samples};
}

static void site_errno(struct proc_io_site *s, uint32_t err, uint64_t calls)
{
    s->errnos = realloc(s->errnos, (s->n_errnos + 1) * sizeof *s->errnos);
    s->errnos[s->n_errnos++] = (struct proc_io_errno){.err = err, .calls = calls};
}

/* The process described at the top of this file; scale multiplies every
 * figure (a second process of the merged test). */
static struct proc *audit_proc(uint32_t pid, uint64_t start_ns, uint64_t scale)
{
    struct proc *p = proc_new(pid, start_ns);
    const uint64_t s1[] = {pc_udp_loop, pc_worker_a, pc_root};
    const uint64_t s2[] = {pc_udp_loop, pc_worker_b, pc_root};
    const uint64_t s3[] = {pc_udp_loop, pc_worker_c, pc_root};
    const uint64_t s4[] = {pc_send_reply, pc_root};
    const uint64_t s5[] = {pc_event_loop, pc_worker_a};
    const uint64_t s6[] = {pc_event_loop, pc_worker_b};
    const uint64_t s7[] = {pc_event_loop, pc_worker_c};
    unit_proc_add_stack(p, 1, s1, 3);
    unit_proc_add_stack(p, 2, s2, 3);
    unit_proc_add_stack(p, 3, s3, 3);
    unit_proc_add_stack(p, 4, s4, 2);
    unit_proc_add_stack(p, 5, s5, 2);
    unit_proc_add_stack(p, 6, s6, 2);
    unit_proc_add_stack(p, 7, s7, 2);

    const uint64_t k = scale;
    struct site_spec a = {1,
                          WIRE_IO_RECVFROM,
                          WIRE_FD_SOCKET,
                          WIRE_FAMILY_INET,
                          WIRE_SOCK_DGRAM,
                          pc_udp_loop,
                          10001 * k,
                          20000001 * k,
                          1000100 * k,
                          10001 * k,
                          0,
                          0};
    struct proc_io_site *sa = add_site(p, &a);
    site_stack(sa, 1, 3);
    site_stack(sa, 2, 1);
    site_stack(sa, 3, 0); /* sampled never: gets nothing */

    struct site_spec b = {
        2,        WIRE_IO_READ, WIRE_FD_SOCKET, WIRE_FAMILY_INET, WIRE_SOCK_STREAM, pc_conn_read,
        1000 * k, 3000000 * k,  590000 * k,     590 * k,          10 * k,           400 * k};
    struct proc_io_site *sb = add_site(p, &b);
    site_errno(sb, ECONNRESET, 6 * k);
    site_errno(sb, EAGAIN, 400 * k);

    struct site_spec c = {3,
                          WIRE_IO_WRITE,
                          WIRE_FD_SOCKET,
                          WIRE_FAMILY_INET6,
                          WIRE_SOCK_STREAM,
                          pc_send_reply,
                          5000 * k,
                          5000000 * k,
                          200000 * k,
                          5000 * k,
                          0,
                          0};
    site_stack(add_site(p, &c), 4, 17);

    struct site_spec d = {4,
                          WIRE_IO_SENDTO,
                          WIRE_FD_SOCKET,
                          WIRE_FAMILY_UNIX,
                          WIRE_SOCK_DGRAM,
                          pc_unix_sender,
                          2000 * k,
                          1000000 * k,
                          128000 * k,
                          2000 * k,
                          0,
                          0};
    add_site(p, &d);

    struct site_spec e = {
        5, WIRE_IO_EPOLL_WAIT, WIRE_FD_ANON, 0, 0, pc_event_loop, 100 * k, 900000000 * k, 0, 0, 0,
        0};
    struct proc_io_site *se = add_site(p, &e);
    site_stack(se, 5, 2);
    site_stack(se, 6, 2);
    site_stack(se, 7, 2);

    struct site_spec f = {6,      WIRE_IO_READ, WIRE_FD_FILE, 0,      0, pc_load_config,
                          50 * k, 50000 * k,    204800 * k,   50 * k, 0, 0};
    add_site(p, &f);

    struct site_spec unused = {7,
                               WIRE_IO_CONNECT,
                               WIRE_FD_SOCKET,
                               WIRE_FAMILY_INET,
                               WIRE_SOCK_STREAM,
                               pc_root,
                               0,
                               0,
                               0,
                               0,
                               0,
                               0};
    add_site(p, &unused); /* defined, never called: no sample */
    return p;
}

/* ---- reading it back ---------------------------------------------------- */

/* ---- tests -------------------------------------------------------------- */

/* What only the protobuf shows: the synthetic leaves' layout. */
static void check_layout(const char *path)
{
    Profile *prof = unit_read_profile(path);
    CHECK(prof, "cannot decode %s", path);
    if (!prof)
        return;
    CHECK(prof->period == 1, "period %lld", (long long)prof->period);
    CHECK(prof->duration_nanos == 10000000000ll, "duration %lld", (long long)prof->duration_nanos);
    size_t leaves = 0;
    for (size_t i = 0; i < prof->n_location; i++) {
        const Perftools__Profiles__Location *l = prof->location[i];
        if (l->mapping_id != 0)
            continue;
        leaves++;
        CHECK(l->address == 0 && l->n_line == 1,
              "synthetic location %llu: address %llx, %zu "
              "lines",
              (unsigned long long)l->id, (unsigned long long)l->address, l->n_line);
    }
    CHECK(leaves == 5,
          "%zu synthetic locations, expected 5 (recvfrom read write sendto "
          "epoll_wait)",
          leaves);
    /* Every sample: a synthetic leaf, then frames in a mapping. */
    for (size_t i = 0; i < prof->n_sample; i++) {
        const Perftools__Profiles__Sample *s = prof->sample[i];
        CHECK(s->n_location_id >= 2 && s->n_value == 6, "sample %zu: %zu locations", i,
              s->n_location_id);
    }
    perftools__profiles__profile__free_unpacked(prof, NULL);
}

static void check_through_pprof(const char *path)
{
    int st;
    char *header = unit_pprof_query(path, "--header", &st);
    CHECK(st == 0, "pprof_raw --header: %s", header);
    CHECK(strstr(header, "sample_types\tcalls time bytes messages errors eagain\n"),
          "sample types:\n%s", header);
    CHECK(strstr(header, "default_type\tcalls\n"), "default type:\n%s", header);
    CHECK(strstr(header, "period_type\tcalls count\n") && strstr(header, "period\t1\n"),
          "period:\n%s", header);
    free(header);
    char *dflt = unit_pprof_query(path, "--default-type", &st);
    CHECK(st == 0 && strcmp(dflt, "calls\n") == 0, "go tool pprof -top Type: %s", dflt);
    free(dflt);

    /* Exact per-call totals: the synthetic leaf groups by call. */
    char *flat = unit_pprof_query(path, "--flat-table", &st);
    CHECK(st == 0, "pprof_raw --flat-table: %s", flat);
    static const struct {
        const char *call;
        long long calls, time, bytes, messages, errors, eagain;
    } want[] = {
        {"recvfrom", 10001, 20000001, 1000100, 10001, 0, 0},
        {"read", 1050, 3050000, 794800, 640, 10, 400},
        {"write", 5000, 5000000, 200000, 5000, 0, 0},
        {"sendto", 2000, 1000000, 128000, 2000, 0, 0},
        {"epoll_wait", 100, 900000000, 0, 0, 0, 0},
        {"connect", 0, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *c = want[i].call;
        long long got[6] = {unit_table_get(flat, c, "calls"),  unit_table_get(flat, c, "time"),
                            unit_table_get(flat, c, "bytes"),  unit_table_get(flat, c, "messages"),
                            unit_table_get(flat, c, "errors"), unit_table_get(flat, c, "eagain")};
        CHECK(got[0] == want[i].calls && got[1] == want[i].time && got[2] == want[i].bytes &&
                  got[3] == want[i].messages && got[4] == want[i].errors &&
                  got[5] == want[i].eagain,
              "%s: %lld %lld %lld %lld %lld %lld, expected %lld %lld %lld %lld %lld %lld", c,
              got[0], got[1], got[2], got[3], got[4], got[5], want[i].calls, want[i].time,
              want[i].bytes, want[i].messages, want[i].errors, want[i].eagain);
    }
    free(flat);

    /* The proportional split: 3:1:0 samples, largest remainders round up. */
    char *cum = unit_pprof_query(path, "--cum-table", &st);
    CHECK(st == 0, "pprof_raw --cum-table: %s", cum);
    CHECK(unit_table_get(cum, "ppx_io_worker_a", "calls") == 7501 + 34,
          "worker_a calls %lld, expected 7501 (recvfrom) + 34 (epoll_wait)",
          unit_table_get(cum, "ppx_io_worker_a", "calls"));
    CHECK(unit_table_get(cum, "ppx_io_worker_b", "calls") == 2500 + 33,
          "worker_b calls %lld, expected 2500 + 33",
          unit_table_get(cum, "ppx_io_worker_b", "calls"));
    CHECK(unit_table_get(cum, "ppx_io_worker_c", "calls") == 33,
          "worker_c calls %lld, expected 0 + 33", unit_table_get(cum, "ppx_io_worker_c", "calls"));
    CHECK(unit_table_get(cum, "ppx_io_worker_a", "time") == 15000001 + 300000000 &&
              unit_table_get(cum, "ppx_io_worker_b", "time") == 5000000 + 300000000,
          "worker time %lld %lld", unit_table_get(cum, "ppx_io_worker_a", "time"),
          unit_table_get(cum, "ppx_io_worker_b", "time"));
    CHECK(unit_table_get(cum, "ppx_io_worker_a", "bytes") == 750075 &&
              unit_table_get(cum, "ppx_io_worker_b", "bytes") == 250025,
          "worker bytes %lld %lld", unit_table_get(cum, "ppx_io_worker_a", "bytes"),
          unit_table_get(cum, "ppx_io_worker_b", "bytes"));
    /* A site without a stack: its caller alone; with one, the whole stack. */
    CHECK(unit_table_get(cum, "ppx_io_conn_read", "calls") == 1000, "conn_read %lld",
          unit_table_get(cum, "ppx_io_conn_read", "calls"));
    CHECK(unit_table_get(cum, "ppx_io_udp_loop", "calls") == 10001, "udp_loop %lld",
          unit_table_get(cum, "ppx_io_udp_loop", "calls"));
    CHECK(unit_table_get(cum, "ppx_io_root", "calls") == 10001 + 5000,
          "root %lld, expected recvfrom's and write's",
          unit_table_get(cum, "ppx_io_root", "calls"));
    free(cum);

    /* Labels. */
    char *labels = unit_pprof_query(path, "--labels --leaf sendto", &st);
    CHECK(st == 0 && strstr(labels, "fd\tsocket") && strstr(labels, "family\tunix") &&
              strstr(labels, "socktype\tdgram") && !strstr(labels, "pid\t"),
          "sendto labels:\n%s", labels);
    free(labels);
    labels = unit_pprof_query(path, "--labels --leaf epoll_wait", &st);
    CHECK(st == 0 && strstr(labels, "fd\tanon") && !strstr(labels, "family") &&
              !strstr(labels, "socktype"),
          "epoll_wait labels:\n%s", labels);
    free(labels);
    char *errs = unit_pprof_query(path, "--type errors --label errno=ECONNRESET --flat read", &st);
    CHECK(st == 0 && atoll(errs) == 6, "ECONNRESET errors %s", errs);
    free(errs);
    errs = unit_pprof_query(path, "--type eagain --label errno=EAGAIN --flat read", &st);
    CHECK(st == 0 && atoll(errs) == 400, "EAGAIN %s", errs);
    free(errs);
    errs = unit_pprof_query(path, "--type calls --label errno=EAGAIN --flat read", &st);
    CHECK(st == 0 && atoll(errs) == 0, "errno samples carry calls: %s", errs);
    free(errs);
}

/* Expects line containing every one of the NULL-terminated needles. */
static bool has_line_with(const char *text, ...)
{
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *copy = strndup(line, len);
        bool all = true;
        va_list ap;
        va_start(ap, text);
        for (const char *needle; (needle = va_arg(ap, const char *));)
            all = all && strstr(copy, needle);
        va_end(ap);
        free(copy);
        if (all)
            return true;
        line = end ? end + 1 : NULL;
    }
    return false;
}

static void check_audit(const char *dir)
{
    if (access(unit_ppx_bin(), X_OK) != 0) {
        CHECK(!getenv("top_builddir"), "%s not built", unit_ppx_bin());
        fprintf(stderr, "%s not built: ppx audit checks skipped\n", unit_ppx_bin());
        return;
    }
    char cmd[9000];
    int st;
    snprintf(cmd, sizeof cmd, "'%s' audit '%s' 2>&1", unit_ppx_bin(), dir);
    char *out = unit_run(cmd, &st);
    CHECK(st == 0, "ppx audit exit %d:\n%s", st, out);
    /* total 18151 calls over 10 s */
    CHECK(strstr(out, "18151 I/O calls in 10.000 s, 410 failed (400 EAGAIN)"), "summary:\n%s", out);
    CHECK(has_line_with(out, "recvfrom ", "inet/dgram", " 10001 ", " 1000.1 ", " 55.1% ", " 2.00 ",
                        " 100.0 ", " 0.0% ", "ppx_io_udp_loop 100%", (const char *)NULL),
          "recvfrom row:\n%s", out);
    CHECK(has_line_with(out, "read ", "inet/stream", " 1000 ", " 100.0 ", " 3.00 ", " 590.0 ",
                        " 10 ", " 40.0% ", "ppx_io_conn_read 100%", (const char *)NULL),
          "read row:\n%s", out);
    CHECK(has_line_with(out, "read ", " file ", " 50 ", " 5.0 ", " 4096.0 ",
                        "ppx_io_load_config 100%", (const char *)NULL),
          "file read row:\n%s", out);
    CHECK(has_line_with(out, "epoll_wait ", " anon ", " 100 ", " 9000.00 ", " - ",
                        "ppx_io_event_loop 100%", (const char *)NULL),
          "epoll_wait row:\n%s", out);
    /* sorted by calls: recvfrom, write, sendto, read, epoll_wait, read file */
    const char *order[] = {"\nrecvfrom ", "\nwrite ",      "\nsendto ",
                           "\nread  ",    "\nepoll_wait ", "\nread  "};
    const char *at = out;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *next = strstr(at, order[i]);
        CHECK(next, "row %zu (%s) out of order:\n%s", i, order[i] + 1, out);
        at = next ? next + 1 : at;
    }
    CHECK(!strstr(out, "connect"), "a site without calls got a row:\n%s", out);

    CHECK(has_line_with(out, "recvfrom at ppx_io_udp_loop (pprof_syscalls.c:", "recvmmsg",
                        (const char *)NULL),
          "recvmmsg hint:\n%s", out);
    CHECK(has_line_with(out, "sendto at ppx_io_unix_sender", "sendmmsg", (const char *)NULL),
          "sendmmsg hint:\n%s", out);
    CHECK(has_line_with(out, "write at ppx_io_send_reply", "40 bytes each",
                        "merging writes (writev)", (const char *)NULL),
          "writev hint:\n%s", out);
    CHECK(has_line_with(out, "40% of read calls at ppx_io_conn_read", "returned EAGAIN",
                        "check readiness handling", (const char *)NULL),
          "EAGAIN hint:\n%s", out);
    CHECK(!has_line_with(out, "ppx_io_load_config", "consider", (const char *)NULL) &&
              !has_line_with(out, "ppx_io_event_loop (", (const char *)NULL),
          "hint for a quiet site:\n%s", out);
    if (getenv("PPX_TEST_VERBOSE"))
        fputs(out, stderr);
    free(out);

    snprintf(cmd, sizeof cmd, "'%s' audit --top 2 '%s/syscalls.pb.gz' 2>&1", unit_ppx_bin(), dir);
    out = unit_run(cmd, &st);
    CHECK(st == 0 && strstr(out, "\nwrite ") && !strstr(out, "\nsendto ") &&
              strstr(out, "(4 more rows: --top 6 shows them)"),
          "--top 2:\n%s", out);
    free(out);
}

static void check_merged(void)
{
    struct proc *p1 = audit_proc(111, 2000000000ull, 1);
    struct proc *p2 = audit_proc(222, 1000000000ull, 2);
    struct proc *procs[] = {p1, p2};
    char err[512] = "";
    const char *path = unit_tmp_path("merged.pb.gz");
    int rc =
        pprof_syscalls_write(procs, 2, true, 11000000000ull, PPROF_TO_FILE(path), err, sizeof err);
    CHECK(rc == 0, "merged write: %s", err);
    int st;
    char *flat = unit_pprof_query(path, "--label pid=222 --type calls --flat recvfrom", &st);
    CHECK(st == 0 && atoll(flat) == 20002, "pid 222 recvfrom calls %s", flat);
    free(flat);
    char *unlabeled = unit_pprof_query(path, "--unlabeled pid", &st);
    CHECK(st == 0 && atoll(unlabeled) == 0, "samples without pid: %s", unlabeled);
    free(unlabeled);

    if (access(unit_ppx_bin(), X_OK) == 0) {
        char cmd[9000];
        snprintf(cmd, sizeof cmd, "'%s' audit --pid 222 '%s' 2>&1", unit_ppx_bin(), path);
        char *out = unit_run(cmd, &st);
        CHECK(st == 0 && strstr(out, "36302 I/O calls of pid 222") &&
                  has_line_with(out, "recvfrom ", " 20002 ", (const char *)NULL),
              "audit --pid 222:\n%s", out);
        free(out);
        snprintf(cmd, sizeof cmd, "'%s' audit --pid 333 '%s' 2>&1", unit_ppx_bin(), path);
        out = unit_run(cmd, &st);
        CHECK(st == 1 && strstr(out, "no calls of pid 333"), "audit --pid 333 (%d):\n%s", st, out);
        free(out);
        snprintf(cmd, sizeof cmd, "'%s' audit '%s' 2>&1", unit_ppx_bin(), path);
        out = unit_run(cmd, &st);
        CHECK(st == 0 && strstr(out, "54453 I/O calls in 10.000 s"), "audit merged:\n%s", out);
        free(out);
    }
    unit_proc_free(p1);
    unit_proc_free(p2);
}

/* ppx audit on what is no I/O profile: exit 1 with a message; usage: 2. */
static void check_audit_errors(const char *good)
{
    if (access(unit_ppx_bin(), X_OK) != 0)
        return;
    FILE *f = fopen(unit_tmp_path("text.txt"), "w");
    fputs("hello\n", f);
    fclose(f);
    gzFile gz = gzopen(unit_tmp_path("junk.pb.gz"), "wb");
    gzputs(gz, "\xff\xff\xff\xff not a protobuf message at all");
    gzclose(gz);
    gz = gzopen(unit_tmp_path("truncated.pb.gz"), "wb");
    for (int i = 0; i < 2000; i++)
        gzprintf(gz, "%d", i);
    gzclose(gz);
    if (truncate(unit_tmp_path("truncated.pb.gz"), 100) != 0)
        perror("truncate");
    /* A real pprof profile of another kind: sample types of a heap profile. */
    gz = gzopen(unit_tmp_path("heap.pb.gz"), "wb");
    static const uint8_t heap_types[] = {
        0x0a, 0x04, 0x08, 0x01, 0x10, 0x02, /* sample_type {1, 2} */
        0x32, 0x00,                         /* "" */
        0x32, 0x0b, 'i',  'n',  'u',  's',  'e', '_', 's', 'p', 'a', 'c', 'e', /* "inuse_space" */
        0x32, 0x05, 'b',  'y',  't',  'e',  's',                               /* "bytes" */
    };
    gzwrite(gz, heap_types, sizeof heap_types);
    gzclose(gz);
    mkdir(unit_tmp_path("emptydir"), 0755);

    static const struct {
        const char *args;
        int status;
        const char *message;
    } cases[] = {
        {"'%s/none.pb.gz'", 1, "cannot open"},
        {"'%s/emptydir'", 1, "emptydir/syscalls.pb.gz: No such file"},
        {"'%s/text.txt'", 1, "is not gzip-compressed"},
        {"'%s/junk.pb.gz'", 1, "not a pprof profile"},
        {"'%s/truncated.pb.gz'", 1, "corrupt or truncated gzip"},
        {"'%s/heap.pb.gz'", 1,
         "not of I/O calls: it has no calls/count sample type (it has: "
         "inuse_space/bytes)"},
        {"--top 0 '%s'", 2, "--top takes"},
        {"--top", 2, "needs a value"},
        {"--pid x '%s'", 2, "--pid takes"},
        {"--bogus '%s'", 2, "unknown option '--bogus'"},
        {"", 2, "no profile given"},
        {"'%s' '%s'", 2, "one profile at a time"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[4400], cmd[9000];
        snprintf(args, sizeof args, cases[i].args, unit_tmpdir, unit_tmpdir);
        snprintf(cmd, sizeof cmd, "'%s' audit %s 2>&1 >/dev/null", unit_ppx_bin(), args);
        int st;
        char *out = unit_run(cmd, &st);
        CHECK(st == cases[i].status && strstr(out, cases[i].message) &&
                  strncmp(out, "ppx audit: ", 11) == 0,
              "ppx audit %s: status %d, expected %d; message \"%s\", expected \"%s\"", args, st,
              cases[i].status, out, cases[i].message);
        free(out);
    }
    char cmd[9000];
    int st;
    snprintf(cmd, sizeof cmd, "'%s' audit --help", unit_ppx_bin());
    char *out = unit_run(cmd, &st);
    CHECK(st == 0 && strstr(out, "--top N") && strstr(out, "--pid N") && strstr(out, "eagain%"),
          "ppx audit --help (%d):\n%s", st, out);
    free(out);
    (void)good;
}

static void check_empty(void)
{
    struct proc *p = proc_new(5, 1);
    struct proc *procs[] = {p};
    char err[512] = "";
    mkdir(unit_tmp_path("empty"), 0755);
    int rc = pprof_syscalls_write(
        procs, 1, false, 2, PPROF_TO_FILE(unit_tmp_path("empty/syscalls.pb.gz")), err, sizeof err);
    CHECK(rc == 0, "empty write: %s", err);
    int st;
    char *header = unit_pprof_query(unit_tmp_path("empty/syscalls.pb.gz"), "--header", &st);
    CHECK(st == 0 && strstr(header, "samples\t0\n") &&
              strstr(header, "sample_types\tcalls time bytes messages errors eagain\n"),
          "empty profile:\n%s", header);
    free(header);
    if (access(unit_ppx_bin(), X_OK) == 0) {
        char cmd[9000];
        snprintf(cmd, sizeof cmd, "'%s' audit '%s' 2>&1", unit_ppx_bin(), unit_tmp_path("empty"));
        char *out = unit_run(cmd, &st);
        CHECK(st == 0 && strstr(out, "no I/O calls recorded"), "audit of empty:\n%s", out);
        free(out);
    }
    unit_proc_free(p);
}

static void check_errno_names(void)
{
    char buf[32];
    CHECK(strcmp(pprof_errno_name(ECONNRESET, buf, sizeof buf), "ECONNRESET") == 0, "%s", buf);
    CHECK(strcmp(pprof_errno_name(EAGAIN, buf, sizeof buf), "EAGAIN") == 0, "%s", buf);
    CHECK(strcmp(pprof_errno_name(4000, buf, sizeof buf), "E4000") == 0, "%s", buf);
    CHECK(strcmp(pprof_io_call_name(WIRE_IO_RECVMMSG), "recvmmsg") == 0, "recvmmsg");
    CHECK(pprof_io_call_name(0) == NULL && pprof_io_call_name(WIRE_IO_CALL_MAX) == NULL,
          "out-of-range call names");
    for (unsigned c = 1; c < WIRE_IO_CALL_MAX; c++)
        CHECK(pprof_io_call_name(c) != NULL, "call %u has no name", c);
}

int main(void)
{
    ppx_io_root();
    if (!unit_tmpdir_make("syscalls"))
        return 99;
    check_errno_names();

    struct proc *p = audit_proc(4242, 1000000000ull, 1);
    struct proc *procs[] = {p};
    char err[512] = "";
    mkdir(unit_tmp_path("out"), 0755);
    const char *path = unit_tmp_path("out/syscalls.pb.gz");
    int rc =
        pprof_syscalls_write(procs, 1, false, 11000000000ull, PPROF_TO_FILE(path), err, sizeof err);
    CHECK(rc == 0, "write: %s", err);
    check_layout(path);
    if (system("go version >/dev/null 2>&1 && python3 --version >/dev/null 2>&1") == 0) {
        check_through_pprof(path);
        check_merged();
        check_empty();
    } else {
        fprintf(stderr, "go or python3 missing: go tool pprof checks skipped\n");
    }
    check_audit(unit_tmp_path("out"));
    check_audit_errors(path);
    unit_proc_free(p);
    sym_cache_free();

    if (getenv("PPX_TEST_KEEP")) {
        fprintf(stderr, "profiles kept in %s\n", unit_tmpdir);
    } else {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", unit_tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", unit_tmpdir);
    }
    return unit_finish("all pprof syscalls checks passed");
}
