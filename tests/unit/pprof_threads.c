/* pprof_threads_write on synthetic processes whose creation stacks are real
 * return addresses inside this test binary (and one inside libc); the
 * profile is read back with `go tool pprof` (-raw through
 * tests/lib/pprof_raw.py, -top, -tagfocus) and summarized with
 * `ppx threads`, whose table is checked too.
 *
 * The process (pid 5000, first thread seen at 1 s, profile written at 5 s;
 * times in seconds, CPU in seconds):
 *   id tid  name      created by                      start end  cpu
 *   1  5000 server    main thread (preexisting)       1.0   -    2.0
 *   2  5003 pool-1    1, at ppx_thr_spawn_pool        1.5   3.5  1.5
 *   3  5004 pool-2    1, at ppx_thr_spawn_pool        1.6   -    0.5
 *   4  5005 acceptor  2, at ppx_thr_start_server      2.0   4.0  1.0
 *   5  5001 gc        preexisting, not main           1.0   -    0
 *   6  5006 ""        unknown creator, no stack       3.0   -    0
 *   7  5007 cb        1, inside libc's qsort, called  3.0   3.2  0
 *                     from ppx_thr_via_libc */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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

#define S 1000000000ll /* ns per second */

/* ---- call sites with known return addresses ---------------------------- */

static uint64_t pc_spawn_pool, pc_start_server, pc_via_libc, pc_in_libc, pc_root;

NOINLINE void ppx_thr_spawn_pool(void)
{
    pc_spawn_pool = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

NOINLINE void ppx_thr_start_server(void)
{
    pc_start_server = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

/* qsort calls it from inside libc: its return address is a libc frame. */
static int record_libc_caller(const void *a, const void *b)
{
    pc_in_libc = (uint64_t)(uintptr_t)__builtin_return_address(0);
    return *(const int *)a - *(const int *)b;
}

NOINLINE void ppx_thr_via_libc(void)
{
    int v[2] = {2, 1};
    qsort(v, 2, sizeof v[0], record_libc_caller);
    pc_via_libc = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

NOINLINE void ppx_thr_root(void)
{
    ppx_thr_spawn_pool();
    ppx_thr_start_server();
    ppx_thr_via_libc();
    pc_root = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

/* ---- synthetic process ---------------------------------------------------- */

static void add_thread(struct proc *p, uint32_t id, uint32_t tid, uint32_t creator_id,
                       uint32_t stack_id, uint32_t flags, const char *name, int64_t start_ns,
                       int64_t end_ns, int64_t cpu_ns)
{
    struct proc_thread *t = calloc(1, sizeof *t);
    t->id = id;
    t->tid = tid;
    t->creator_id = creator_id;
    t->stack_id = stack_id;
    t->flags = flags;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->start_ns = (uint64_t)start_ns;
    t->end_ns = (uint64_t)end_ns;
    t->cpu_ns = (uint64_t)cpu_ns;
    HASH_ADD(hh, p->threads, id, sizeof t->id, t);
}

/* The process at the top of this file, its pid and times shifted by
 * `shift` (a second process of the merged test). */
static struct proc *threads_proc(uint32_t pid, int64_t shift)
{
    struct proc *p = unit_proc_new(pid, 1, (uint64_t)(S + shift), false);
    const uint64_t pool[] = {pc_spawn_pool, pc_root};
    const uint64_t server[] = {pc_start_server, pc_root};
    const uint64_t libc[] = {pc_in_libc, pc_via_libc, pc_root};
    unit_proc_add_stack(p, 10, pool, 2);
    unit_proc_add_stack(p, 11, server, 2);
    unit_proc_add_stack(p, 12, libc, 3);
    const uint32_t main_flags = WIRE_THREAD_MAIN | WIRE_THREAD_PREEXISTING;
    add_thread(p, 1, pid, WIRE_NO_ID, WIRE_NO_ID, main_flags, "server", S + shift, 0, 2 * S);
    add_thread(p, 2, pid + 3, 1, 10, 0, "pool-1", S * 3 / 2 + shift, S * 7 / 2 + shift, S * 3 / 2);
    add_thread(p, 3, pid + 4, 1, 10, 0, "pool-2", S * 16 / 10 + shift, 0, S / 2);
    add_thread(p, 4, pid + 5, 2, 11, 0, "acceptor", 2 * S + shift, 4 * S + shift, S);
    add_thread(p, 5, pid + 1, WIRE_NO_ID, WIRE_NO_ID, WIRE_THREAD_PREEXISTING, "gc", S + shift, 0,
               0);
    add_thread(p, 6, pid + 6, 99, WIRE_NO_ID, 0, "", 3 * S + shift, 0, 0);
    add_thread(p, 7, pid + 7, 1, 12, 0, "cb", 3 * S + shift, S * 32 / 10 + shift, 0);
    return p;
}

/* ---- reading it back ------------------------------------------------------- */

static char *ppx_threads(const char *args, int *status)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "'%s' threads %s 2>&1", unit_ppx_bin(), args);
    return unit_run(cmd, status);
}

/* The line of text that starts with prefix once leading spaces are gone
 * and runs of spaces squeezed to one, so squeezed, in one of 4 static
 * buffers used in turn; NULL if none. */
static const char *row(const char *text, const char *prefix)
{
    static char bufs[4][512];
    static int next;
    char *buf = bufs[next++ % 4];
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        size_t o = 0;
        for (const char *p = l; *p && *p != '\n' && o + 1 < sizeof bufs[0]; p++)
            if (*p != ' ' || (o > 0 && buf[o - 1] != ' '))
                buf[o++] = *p;
        while (o > 0 && buf[o - 1] == ' ')
            o--;
        buf[o] = 0;
        if (strncmp(buf, prefix, strlen(prefix)) == 0)
            return buf;
    }
    return NULL;
}

/* ---- tests -------------------------------------------------------------- */

static void check_layout(const char *path)
{
    Profile *prof = unit_read_profile(path);
    CHECK(prof, "cannot decode %s", path);
    if (!prof)
        return;
    const char *const *st = (const char *const *)prof->string_table;
    CHECK(prof->n_sample_type == 1 && strcmp(st[prof->sample_type[0]->type], "threadcreate") == 0 &&
              strcmp(st[prof->sample_type[0]->unit], "count") == 0,
          "sample type");
    CHECK(prof->period_type && strcmp(st[prof->period_type->type], "threadcreate") == 0 &&
              strcmp(st[prof->period_type->unit], "count") == 0 && prof->period == 1,
          "period");
    CHECK(prof->n_sample == 7, "%zu samples, want one per thread (7)", prof->n_sample);
    for (size_t i = 0; i < prof->n_sample; i++) {
        const Perftools__Profiles__Sample *s = prof->sample[i];
        CHECK(s->n_value == 1 && s->value[0] == 1, "sample %zu: value", i);
        bool has_cpu_unit = false;
        for (size_t l = 0; l < s->n_label; l++)
            if (strcmp(st[s->label[l]->key], "cpu") == 0)
                has_cpu_unit = strcmp(st[s->label[l]->num_unit], "nanoseconds") == 0;
        CHECK(has_cpu_unit, "sample %zu: no cpu label in nanoseconds", i);
    }
    perftools__profiles__profile__free_unpacked(prof, NULL);
}

static void check_through_pprof(const char *path)
{
    int st;
    char *header = unit_pprof_query(path, "--header", &st);
    CHECK(st == 0 && strstr(header, "sample_types\tthreadcreate\n") &&
              strstr(header, "period_type\tthreadcreate count\n") &&
              strstr(header, "period\t1\n") && strstr(header, "samples\t7\n"),
          "pprof_raw --header:\n%s", header);
    free(header);

    /* pprof counts threads per creation site. */
    char *top = unit_go_pprof("-top", path, &st);
    CHECK(st == 0 && strstr(top, "Type: threadcreate") &&
              strstr(top, "Showing nodes accounting for 7, 100% of 7 total"),
          "-top:\n%s", top);
    free(top);
    static const struct {
        const char *leaf;
        long long count;
    } leaves[] = {
        {"ppx_thr_spawn_pool", 2},        {"ppx_thr_start_server", 1},
        {PPROF_THREADS_MAIN_FRAME, 1},    {PPROF_THREADS_PREEXISTING_FRAME, 1},
        {PPROF_THREADS_UNKNOWN_FRAME, 1},
    };
    for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, "--flat '%s'", leaves[i].leaf);
        char *v = unit_pprof_query(path, args, &st);
        CHECK(st == 0 && atoll(v) == leaves[i].count, "threads created at %s: %s, want %lld",
              leaves[i].leaf, v, leaves[i].count);
        free(v);
    }
    char *v = unit_pprof_query(path, "--cum ppx_thr_root", &st);
    CHECK(st == 0 && atoll(v) == 4, "threads created under ppx_thr_root: %s", v);
    free(v);
    v = unit_pprof_query(path, "--cum ppx_thr_via_libc", &st);
    CHECK(st == 0 && atoll(v) == 1, "threads created under ppx_thr_via_libc: %s", v);
    free(v);

    /* Labels. */
    char *labels = unit_pprof_query(path, "--labels --leaf ppx_thr_spawn_pool", &st);
    CHECK(st == 0 && strstr(labels, "thread\tpool-1\n") && strstr(labels, "thread\tpool-2\n") &&
              strstr(labels, "tid\t5003\n") && strstr(labels, "tid\t5004\n") &&
              strstr(labels, "creator_tid\t5000\n") && strstr(labels, "start_ns\t1500000000\n") &&
              strstr(labels, "end_ns\t3500000000\n"),
          "labels of the pool threads:\n%s", labels);
    free(labels);
    labels = unit_pprof_query(path, "--labels --label thread=acceptor", &st);
    CHECK(st == 0 && strstr(labels, "creator_tid\t5003\n") && strstr(labels, "tid\t5005\n"),
          "acceptor's creator is pool-1 (tid 5003):\n%s", labels);
    free(labels);
    labels = unit_pprof_query(path, "--labels --leaf '" PPROF_THREADS_UNKNOWN_FRAME "'", &st);
    CHECK(st == 0 && strstr(labels, "thread\t(unnamed)\n") && !strstr(labels, "creator_tid"),
          "unnamed thread of an unknown creator:\n%s", labels);
    free(labels);
    v = unit_pprof_query(path, "--unlabeled end_ns", &st);
    CHECK(st == 0 && atoll(v) == 4, "threads without end_ns: %s, want the 4 running", v);
    free(v);
    v = unit_pprof_query(path, "--unlabeled tid", &st);
    CHECK(st == 0 && atoll(v) == 0, "threads without tid: %s", v);
    free(v);

    /* -tagfocus: by name, and on the cpu label with its unit. */
    top = unit_go_pprof("-top -tagfocus=thread=pool", path, &st);
    CHECK(st == 0 && strstr(top, "Showing nodes accounting for 2, 28.57% of 7 total") &&
              strstr(top, "ppx_thr_spawn_pool"),
          "-tagfocus=thread=pool:\n%s", top);
    free(top);
    top = unit_go_pprof("-top -tagfocus=cpu=1s:", path, &st);
    CHECK(st == 0 && strstr(top, "Showing nodes accounting for 3, 42.86% of 7 total"),
          "-tagfocus=cpu=1s: (threads with at least 1 s of CPU):\n%s", top);
    free(top);
}

/* `ppx threads` on the same profile. */
static void check_report(const char *dir)
{
    int st;
    char args[4400];
    snprintf(args, sizeof args, "'%s'", dir);
    char *out = ppx_threads(args, &st);
    CHECK(st == 0, "ppx threads (%d):\n%s", st, out);
    CHECK(strstr(out, "threadcreate.pb.gz: 7 threads\n"), "first line:\n%s", out);
    const char *h = row(out, "pid 5000:");
    CHECK(h && strcmp(h, "pid 5000: 7 threads (4 still running), 5.000 s CPU in 4.000 s") == 0,
          "process header \"%s\":\n%s", h ? h : "", out);
    h = row(out, "TID ");
    CHECK(h && strcmp(h, "TID NAME CREATED BY START LIFETIME CPU SHARE") == 0, "columns: %s",
          h ? h : "");
    static const struct {
        const char *tid, *want;
    } rows[] = {
        {"5000 ", "5000 server main thread 0.000 4.000+ 2.000 40.0%"},
        {"5003 ", "5003 pool-1 ppx_thr_spawn_pool 0.500 2.000 1.500 30.0%"},
        {"5005 ", "5005 acceptor ppx_thr_start_server 1.000 2.000 1.000 20.0%"},
        {"5004 ", "5004 pool-2 ppx_thr_spawn_pool 0.600 3.400+ 0.500 10.0%"},
        {"5001 ", "5001 gc thread started before ppx 0.000 4.000+ 0.000 0.0%"},
        {"5006 ", "5006 (unnamed) creation stack unknown 2.000 2.000+ 0.000 0.0%"},
        {"5007 ", "5007 cb ppx_thr_via_libc 2.000 0.200 0.000 0.0%"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *r = row(out, rows[i].tid);
        CHECK(r && strcmp(r, rows[i].want) == 0, "row \"%s\", want \"%s\"", r ? r : "(none)",
              rows[i].want);
    }
    /* Most CPU first. */
    const char *a = strstr(out, "pool-1"), *b = strstr(out, "acceptor"), *c = strstr(out, "pool-2");
    CHECK(a && b && c && strstr(out, " server ") < a && a < b && b < c, "order:\n%s", out);
    if (getenv("PPX_TEST_VERBOSE"))
        fputs(out, stderr);
    free(out);

    snprintf(args, sizeof args, "--top 2 '%s/threadcreate.pb.gz'", dir);
    out = ppx_threads(args, &st);
    CHECK(st == 0 && row(out, "5003 ") && !row(out, "5005 ") &&
              strstr(out, "(5 more threads: --top 7 shows them)"),
          "--top 2:\n%s", out);
    free(out);
}

/* The process started before its first thread record (the target finds
 * its main thread a little after it starts): START counts from the
 * process's start, which a one-process profile's duration tells. */
static void check_process_start(void)
{
    struct proc *p = threads_proc(5000, 0);
    p->start_ns = S / 2;
    struct proc *procs[] = {p};
    char err[512] = "";
    const char *path = unit_tmp_path("early.pb.gz");
    int rc = pprof_threads_write(procs, 1, false, 5 * S, PPROF_TO_FILE(path), err, sizeof err);
    CHECK(rc == 0, "early write: %s", err);
    char args[4400];
    snprintf(args, sizeof args, "'%s'", path);
    int st;
    char *out = ppx_threads(args, &st);
    CHECK(st == 0 && row(out, "pid 5000: 7 threads (4 still running), 5.000 s CPU in 4.500 s") &&
              row(out, "5000 server main thread 0.500 4.000+") &&
              row(out, "5003 pool-1 ppx_thr_spawn_pool 1.000 2.000 "),
          "process started at 0.5 s:\n%s", out);
    free(out);
    unit_proc_free(p);
}

static void check_merged(void)
{
    struct proc *p1 = threads_proc(5000, 0);
    struct proc *p2 = threads_proc(6000, S);
    struct proc *procs[] = {p1, p2};
    char err[512] = "";
    const char *path = unit_tmp_path("merged.pb.gz");
    int rc = pprof_threads_write(procs, 2, true, 6 * S, PPROF_TO_FILE(path), err, sizeof err);
    CHECK(rc == 0, "merged write: %s", err);
    int st;
    char *v = unit_pprof_query(path, "--unlabeled pid", &st);
    CHECK(st == 0 && atoll(v) == 0, "merged: threads without pid: %s", v);
    free(v);
    v = unit_pprof_query(path, "--label pid=6000 --flat ppx_thr_spawn_pool", &st);
    CHECK(st == 0 && atoll(v) == 2, "merged: pid 6000's pool threads: %s", v);
    free(v);
    char args[4400];
    snprintf(args, sizeof args, "'%s'", path);
    char *out = ppx_threads(args, &st);
    /* The second process runs a second later: same START, its running
     * threads one second less old at 6 s. */
    CHECK(st == 0 && strstr(out, ": 14 threads of 2 processes\n") &&
              row(out, "pid 5000: 7 threads (4 still running), 5.000 s CPU in 5.000 s") &&
              row(out, "pid 6000: 7 threads (4 still running), 5.000 s CPU in 4.000 s") &&
              row(out, "6004 pool-2 ppx_thr_spawn_pool 0.600 3.400+"),
          "merged report:\n%s", out);
    free(out);
    snprintf(args, sizeof args, "--pid 6000 '%s'", path);
    out = ppx_threads(args, &st);
    CHECK(st == 0 && strstr(out, ": 7 threads\n") && row(out, "pid 6000:") &&
              !row(out, "pid 5000:"),
          "--pid 6000:\n%s", out);
    free(out);
    snprintf(args, sizeof args, "--pid 7000 '%s'", path);
    out = ppx_threads(args, &st);
    CHECK(st == 1 && strstr(out, "has no threads of pid 7000"), "--pid 7000 (%d):\n%s", st, out);
    free(out);
    unit_proc_free(p1);
    unit_proc_free(p2);
}

/* ---- a hand-made profile: C++ names, std::thread, libstdc++ -------------- */

typedef Perftools__Profiles__Sample Sample;
typedef Perftools__Profiles__Label Label;
typedef Perftools__Profiles__Location Location;
typedef Perftools__Profiles__Line Line;
typedef Perftools__Profiles__Function Function;
typedef Perftools__Profiles__Mapping Mapping;
typedef Perftools__Profiles__ValueType ValueType;

static void write_gz(const char *path, const Profile *p)
{
    size_t len = perftools__profiles__profile__get_packed_size(p);
    uint8_t *buf = malloc(len ? len : 1);
    perftools__profiles__profile__pack(p, buf);
    gzFile gz = gzopen(path, "wb");
    gzwrite(gz, buf, (unsigned)len);
    gzclose(gz);
    free(buf);
}

/* One thread created by std::thread inside ns::Pool::spawn(int):
 *   _ZNSt6thread15_M_start_thread...  in /usr/lib/.../libstdc++.so.6
 *   std::thread::thread<...> (inlined) + ns::Pool::spawn(int)  in /opt/app/bin/app
 * and, with labels, a thread created by an anonymous-namespace function of
 * a templated class. With labels false: no labels at all, as in a Go
 * program's threadcreate profile. */
static void write_cxx_profile(const char *path, bool labels)
{
    static char *strings[] = {
        "",
        "threadcreate",
        "count",
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/opt/app/bin/app",
        "_ZNSt6thread15_M_start_threadESt10unique_ptrINS_6_StateESt14default_deleteIS1_EEPFvvE",
        "_ZNSt6threadC2IRFviEJRiEvEEOT_DpOT0_",
        "_ZN2ns4Pool5spawnEi",
        "_ZN12_GLOBAL__N_16WorkerIiE5startEv",
        "thread",
        "tid",
        "worker",
        "anon"};
    enum {
        S_TC = 1,
        S_COUNT,
        S_LIBSTDCXX,
        S_APP,
        S_START,
        S_CTOR,
        S_SPAWN,
        S_ANON,
        S_THREAD,
        S_TID,
        S_WORKER,
        S_ANONNAME
    };
    ValueType vt = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
    vt.type = S_TC;
    vt.unit = S_COUNT;
    ValueType *vts[] = {&vt};
    Mapping m[2] = {PERFTOOLS__PROFILES__MAPPING__INIT, PERFTOOLS__PROFILES__MAPPING__INIT};
    m[0].id = 1;
    m[0].memory_start = 0x400000;
    m[0].memory_limit = 0x500000;
    m[0].filename = S_APP;
    m[1].id = 2;
    m[1].memory_start = 0x7f0000000000;
    m[1].memory_limit = 0x7f0000100000;
    m[1].filename = S_LIBSTDCXX;
    Mapping *ms[] = {&m[0], &m[1]};
    Function f[4];
    Function *fs[4];
    const int64_t fnames[4] = {S_START, S_CTOR, S_SPAWN, S_ANON};
    for (int i = 0; i < 4; i++) {
        Function init = PERFTOOLS__PROFILES__FUNCTION__INIT;
        f[i] = init;
        f[i].id = (uint64_t)i + 1;
        f[i].name = f[i].system_name = fnames[i];
        fs[i] = &f[i];
    }
    Line lines[4];
    for (int i = 0; i < 4; i++) {
        Line init = PERFTOOLS__PROFILES__LINE__INIT;
        lines[i] = init;
        lines[i].function_id = (uint64_t)i + 1;
    }
    Line *l0[] = {&lines[0]}, *l1[] = {&lines[1], &lines[2]}, *l2[] = {&lines[3]};
    Location loc[3] = {PERFTOOLS__PROFILES__LOCATION__INIT, PERFTOOLS__PROFILES__LOCATION__INIT,
                       PERFTOOLS__PROFILES__LOCATION__INIT};
    loc[0].id = 1, loc[0].mapping_id = 2, loc[0].address = 0x7f0000001000;
    loc[0].n_line = 1, loc[0].line = l0;
    loc[1].id = 2, loc[1].mapping_id = 1, loc[1].address = 0x401000;
    loc[1].n_line = 2, loc[1].line = l1;
    loc[2].id = 3, loc[2].mapping_id = 1, loc[2].address = 0x402000;
    loc[2].n_line = 1, loc[2].line = l2;
    Location *locs[] = {&loc[0], &loc[1], &loc[2]};
    uint64_t stack1[] = {1, 2}, stack2[] = {1, 3};
    int64_t one = 1;
    Label lab[4] = {PERFTOOLS__PROFILES__LABEL__INIT, PERFTOOLS__PROFILES__LABEL__INIT,
                    PERFTOOLS__PROFILES__LABEL__INIT, PERFTOOLS__PROFILES__LABEL__INIT};
    lab[0].key = S_THREAD, lab[0].str = S_WORKER;
    lab[1].key = S_TID, lab[1].num = 71;
    lab[2].key = S_THREAD, lab[2].str = S_ANONNAME;
    lab[3].key = S_TID, lab[3].num = 72;
    Label *labs1[] = {&lab[0], &lab[1]}, *labs2[] = {&lab[2], &lab[3]};
    Sample s[2] = {PERFTOOLS__PROFILES__SAMPLE__INIT, PERFTOOLS__PROFILES__SAMPLE__INIT};
    s[0].n_location_id = 2, s[0].location_id = stack1, s[0].n_value = 1, s[0].value = &one;
    s[1].n_location_id = 2, s[1].location_id = stack2, s[1].n_value = 1, s[1].value = &one;
    if (labels) {
        s[0].n_label = 2, s[0].label = labs1;
        s[1].n_label = 2, s[1].label = labs2;
    }
    Sample *ss[] = {&s[0], &s[1]};
    Profile p = PERFTOOLS__PROFILES__PROFILE__INIT;
    p.n_sample_type = 1, p.sample_type = vts;
    p.n_sample = 2, p.sample = ss;
    p.n_mapping = 2, p.mapping = ms;
    p.n_location = 3, p.location = locs;
    p.n_function = 4, p.function = fs;
    p.n_string_table = sizeof strings / sizeof strings[0], p.string_table = strings;
    write_gz(path, &p);
}

static void check_cxx_names(void)
{
    const char *path = unit_tmp_path("cxx.pb.gz");
    write_cxx_profile(path, true);
    char args[4400];
    snprintf(args, sizeof args, "'%s'", path);
    int st;
    char *out = ppx_threads(args, &st);
    /* Without libstdc++'s demangler the names stay mangled: then only the
     * choice of frame is checked. */
    bool demangled = !strstr(out, "_ZN2ns4Pool5spawnEi");
    const char *worker = row(out, "71 ");
    const char *anon = row(out, "72 ");
    CHECK(st == 0 && worker &&
              strstr(worker,
                     demangled ? "71 worker ns::Pool::spawn " : "71 worker _ZN2ns4Pool5spawnEi "),
          "std::thread created in ns::Pool::spawn: \"%s\"\n%s", worker ? worker : "", out);
    CHECK(st == 0 && anon &&
              strstr(anon, demangled ? "72 anon {anonymous}::Worker::start "
                                     : "72 anon _ZN12_GLOBAL__N_16WorkerIiE5startEv "),
          "anonymous namespace: \"%s\"\n%s", anon ? anon : "", out);
    CHECK(worker && strstr(worker, " - - 0.000 -"), "a profile without times or CPU: \"%s\"",
          worker ? worker : "");
    free(out);

    write_cxx_profile(path, false);
    out = ppx_threads(args, &st);
    CHECK(st == 1 && strstr(out, "ppx threads: ") && strstr(out, "sample 0 has no tid label") &&
              strstr(out, "a Go program's threadcreate profile has no labels"),
          "unlabeled profile (%d):\n%s", st, out);
    free(out);
}

/* Bad input: exit 1 with a message; usage errors: 2. */
static void check_errors(const char *cpu_like)
{
    FILE *f = fopen(unit_tmp_path("text.txt"), "w");
    fputs("hello\n", f);
    fclose(f);
    gzFile gz = gzopen(unit_tmp_path("junk.pb.gz"), "wb");
    gzputs(gz, "\xff\xff\xff\xff not a protobuf message at all");
    gzclose(gz);
    mkdir(unit_tmp_path("emptydir"), 0755);
    static const struct {
        const char *args;
        int status;
        const char *message;
    } cases[] = {
        {"'%s/none.pb.gz'", 1, "cannot open"},
        {"'%s/emptydir'", 1, "emptydir/threadcreate.pb.gz: No such file"},
        {"'%s/text.txt'", 1, "is not gzip-compressed"},
        {"'%s/junk.pb.gz'", 1, "not a pprof profile"},
        {"'%s/heapish.pb.gz'", 1,
         "is a pprof profile, but not of threads: it has no "
         "threadcreate/count sample type (it has: samples/count, "
         "cpu/nanoseconds)"},
        {"--top 0 '%s'", 2, "--top takes"},
        {"--pid", 2, "needs a value"},
        {"--pid x '%s'", 2, "--pid takes"},
        {"--bogus '%s'", 2, "unknown option '--bogus'"},
        {"", 2, "no profile given"},
        {"'%s' '%s'", 2, "one profile at a time"},
    };
    if (rename(cpu_like, unit_tmp_path("heapish.pb.gz")) != 0)
        perror("rename");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[4400], cmd[9000];
        snprintf(args, sizeof args, cases[i].args, unit_tmpdir, unit_tmpdir);
        snprintf(cmd, sizeof cmd, "'%s' threads %s 2>&1 >/dev/null", unit_ppx_bin(), args);
        int st;
        char *out = unit_run(cmd, &st);
        CHECK(st == cases[i].status && strstr(out, cases[i].message) &&
                  strncmp(out, "ppx threads: ", 13) == 0,
              "ppx threads %s: status %d, expected %d; message \"%s\", expected \"%s\"", args, st,
              cases[i].status, out, cases[i].message);
        free(out);
    }
    int st;
    char *out = ppx_threads("--help", &st);
    CHECK(st == 0 && strstr(out, "--top N") && strstr(out, "--pid N") &&
              strstr(out, "CREATED BY") && strstr(out, "SHARE"),
          "ppx threads --help (%d):\n%s", st, out);
    free(out);
}

/* No threads at all: a valid empty profile, and ppx threads says so. */
static void check_empty(void)
{
    struct proc *p = unit_proc_new(5, 1, 1, true);
    struct proc *procs[] = {p};
    char err[512] = "";
    mkdir(unit_tmp_path("empty"), 0755);
    const char *path = unit_tmp_path("empty/threadcreate.pb.gz");
    int rc = pprof_threads_write(procs, 1, false, 2, PPROF_TO_FILE(path), err, sizeof err);
    CHECK(rc == 0, "empty write: %s", err);
    int st;
    char *header = unit_pprof_query(path, "--header", &st);
    CHECK(st == 0 && strstr(header, "samples\t0\n") &&
              strstr(header, "sample_types\tthreadcreate\n"),
          "empty profile:\n%s", header);
    free(header);
    char args[4400];
    snprintf(args, sizeof args, "'%s'", unit_tmp_path("empty"));
    char *out = ppx_threads(args, &st);
    CHECK(st == 0 && strstr(out, ": 0 threads\nno threads recorded\n"), "empty report:\n%s", out);
    free(out);
    unit_proc_free(p);
}

/* A profile of another kind for the error cases: sample types of a CPU
 * profile. */
static void write_cpu_like(const char *path)
{
    static char *strings[] = {"", "samples", "count", "cpu", "nanoseconds"};
    ValueType a = PERFTOOLS__PROFILES__VALUE_TYPE__INIT, b = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
    a.type = 1, a.unit = 2, b.type = 3, b.unit = 4;
    ValueType *vts[] = {&a, &b};
    Profile p = PERFTOOLS__PROFILES__PROFILE__INIT;
    p.n_sample_type = 2, p.sample_type = vts;
    p.n_string_table = 5, p.string_table = strings;
    write_gz(path, &p);
}

int main(void)
{
    ppx_thr_root();
    if (!unit_tmpdir_make("threads"))
        return 99;
    struct proc *p = threads_proc(5000, 0);
    struct proc *procs[] = {p};
    char err[512] = "";
    mkdir(unit_tmp_path("out"), 0755);
    const char *path = unit_tmp_path("out/threadcreate.pb.gz");
    int rc = pprof_threads_write(procs, 1, false, 5 * S, PPROF_TO_FILE(path), err, sizeof err);
    CHECK(rc == 0, "write: %s", err);
    check_layout(path);
    bool have_go = system("go version >/dev/null 2>&1 && python3 --version >/dev/null 2>&1") == 0;
    if (have_go)
        check_through_pprof(path);
    else
        fprintf(stderr, "go or python3 missing: go tool pprof checks skipped\n");
    if (access(unit_ppx_bin(), X_OK) == 0) {
        check_report(unit_tmp_path("out"));
        check_process_start();
        if (have_go) {
            check_merged();
            check_empty();
        }
        check_cxx_names();
        write_cpu_like(unit_tmp_path("cpu_like.pb.gz"));
        check_errors(unit_tmp_path("cpu_like.pb.gz"));
    } else {
        fprintf(stderr, "%s not built: ppx threads checks skipped\n", unit_ppx_bin());
    }
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
    return unit_finish("all pprof threadcreate checks passed");
}
