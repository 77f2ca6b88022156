/* pprof_cpu_write on synthetic processes whose stacks are real addresses
 * inside this test binary; the profile is decoded with protobuf-c and read
 * back with `go tool pprof` (-raw through tests/lib/pprof_raw.py, -top with
 * -tagfocus, -tags), as a user would.
 *
 * The process (pid 4242, 100 Hz):
 *   thread 1  tid 4242 "cpu_main"  stack C (spin_a <- root):          7 samples
 *   thread 2  tid 4243 "worker-a"  stack A (spin_a <- caller_a <- root): 300
 *   thread 3  tid 4244 "worker-b"  stack B (spin_b <- caller_b <- root): 100
 *   thread 3 on stack A: 0 samples (no sample written)
 *   lost: 5 ticks */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ppx/wire.h>

#include "pprof/pprof.h"
#include "symbol/symbol.h"
#include "support.h"

/* ---- code with known addresses ------------------------------------------- */

static uint64_t pc_caller_a, pc_caller_b, pc_root;
static volatile uint64_t spin_sink;

/* The interrupted instructions: these functions' first bytes. */
NOINLINE void ppx_cpu_spin_a(void)
{
    spin_sink++;
}

NOINLINE void ppx_cpu_spin_b(void)
{
    spin_sink += 2;
}

NOINLINE void ppx_cpu_caller_a(void)
{
    ppx_cpu_spin_a();
    pc_caller_a = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

NOINLINE void ppx_cpu_caller_b(void)
{
    ppx_cpu_spin_b();
    pc_caller_b = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

NOINLINE void ppx_cpu_root(void)
{
    ppx_cpu_caller_a();
    ppx_cpu_caller_b();
    pc_root = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

static uint64_t entry_of(void (*fn)(void))
{
    return (uint64_t)(uintptr_t)fn;
}

/* ---- synthetic process ---------------------------------------------------- */

static struct proc_thread *add_thread(struct proc *p, uint32_t id, uint32_t tid, uint32_t flags,
                                      const char *name)
{
    struct proc_thread *t = calloc(1, sizeof *t);
    t->id = id;
    t->tid = tid;
    t->creator_id = WIRE_NO_ID;
    t->stack_id = WIRE_NO_ID;
    t->flags = flags;
    snprintf(t->name, sizeof t->name, "%s", name);
    HASH_ADD(hh, p->threads, id, sizeof t->id, t);
    return t;
}

static void add_cpu(struct proc *p, uint32_t stack_id, uint32_t thread_id, uint64_t samples,
                    uint32_t hz)
{
    struct proc_cpu_sample *s = calloc(1, sizeof *s);
    s->key.stack_id = stack_id;
    s->key.thread_id = thread_id;
    s->samples = samples;
    s->cpu_ns = samples * (1000000000u / hz);
    HASH_ADD(hh, p->cpu_samples, key, sizeof s->key, s);
}

/* The process at the top of this file; scale multiplies the samples, hz
 * is its rate. The leaf of a CPU stack is the interrupted pc + 1. */
static struct proc *cpu_proc(uint32_t pid, uint64_t start_ns, uint64_t scale, uint32_t hz)
{
    struct proc *p = unit_proc_new(pid, 1, start_ns, true);
    const uint64_t a[] = {entry_of(ppx_cpu_spin_a) + 1, pc_caller_a, pc_root};
    const uint64_t b[] = {entry_of(ppx_cpu_spin_b) + 1, pc_caller_b, pc_root};
    const uint64_t c[] = {entry_of(ppx_cpu_spin_a) + 1, pc_root};
    unit_proc_add_stack(p, 1, a, 3);
    unit_proc_add_stack(p, 2, b, 3);
    unit_proc_add_stack(p, 3, c, 2);
    add_thread(p, 1, pid, WIRE_THREAD_MAIN | WIRE_THREAD_PREEXISTING, "cpu_main");
    add_thread(p, 2, pid + 1, 0, "worker-a");
    add_thread(p, 3, pid + 2, 0, "worker-b");
    add_cpu(p, 3, 1, 7 * scale, hz);
    add_cpu(p, 1, 2, 300 * scale, hz);
    add_cpu(p, 2, 3, 100 * scale, hz);
    add_cpu(p, 1, 3, 0, hz);
    p->cpu_hz = hz;
    p->cpu_lost = 5 * scale;
    p->cpu_lost_ns = p->cpu_lost * (1000000000u / hz);
    return p;
}

/* ---- reading it back ------------------------------------------------------- */

static const char *label_str(const Profile *prof, const Perftools__Profiles__Sample *s,
                             const char *key)
{
    for (size_t i = 0; i < s->n_label; i++)
        if (strcmp(prof->string_table[s->label[i]->key], key) == 0 && s->label[i]->str)
            return prof->string_table[s->label[i]->str];
    return NULL;
}

static bool label_num(const Profile *prof, const Perftools__Profiles__Sample *s, const char *key,
                      int64_t *out)
{
    for (size_t i = 0; i < s->n_label; i++)
        if (strcmp(prof->string_table[s->label[i]->key], key) == 0 && !s->label[i]->str) {
            *out = s->label[i]->num;
            return true;
        }
    return false;
}

static const Perftools__Profiles__Location *find_location(const Profile *prof, uint64_t id)
{
    for (size_t i = 0; i < prof->n_location; i++)
        if (prof->location[i]->id == id)
            return prof->location[i];
    return NULL;
}

/* ---- tests -------------------------------------------------------------- */

/* What only the protobuf shows: header fields, labels, the leaf address. */
static void check_layout(const char *path, uint64_t now_ns, uint64_t start_ns)
{
    Profile *prof = unit_read_profile(path);
    CHECK(prof, "cannot decode %s", path);
    if (!prof)
        return;
    const char *const *st = (const char *const *)prof->string_table;
    CHECK(prof->n_sample_type == 2 && strcmp(st[prof->sample_type[0]->type], "samples") == 0 &&
              strcmp(st[prof->sample_type[0]->unit], "count") == 0 &&
              strcmp(st[prof->sample_type[1]->type], "cpu") == 0 &&
              strcmp(st[prof->sample_type[1]->unit], "nanoseconds") == 0,
          "sample types");
    CHECK(prof->period_type && strcmp(st[prof->period_type->type], "cpu") == 0 &&
              strcmp(st[prof->period_type->unit], "nanoseconds") == 0,
          "period type");
    CHECK(prof->period == 10000000, "period %lld, want 1e9/100", (long long)prof->period);
    CHECK(strcmp(st[prof->default_sample_type], "cpu") == 0, "default sample type");
    CHECK(prof->time_nanos == (int64_t)now_ns &&
              prof->duration_nanos == (int64_t)(now_ns - start_ns),
          "time %lld, duration %lld", (long long)prof->time_nanos, (long long)prof->duration_nanos);
    CHECK(prof->n_sample == 4, "%zu samples, want 3 stacks and the lost one", prof->n_sample);
    size_t lost = 0, labeled = 0;
    for (size_t i = 0; i < prof->n_sample; i++) {
        const Perftools__Profiles__Sample *s = prof->sample[i];
        const Perftools__Profiles__Location *leaf =
            s->n_location_id ? find_location(prof, s->location_id[0]) : NULL;
        CHECK(leaf && s->n_value == 2, "sample %zu: no leaf, or %zu values", i, s->n_value);
        if (!leaf)
            continue;
        if (leaf->mapping_id == 0) {
            lost++;
            CHECK(s->n_location_id == 1 && s->n_label == 0 && s->value[0] == 5 &&
                      s->value[1] == 50000000,
                  "lost sample: %zu locations, %zu labels, values %lld %lld", s->n_location_id,
                  s->n_label, (long long)s->value[0], (long long)s->value[1]);
            continue;
        }
        /* The leaf is the interrupted instruction: the function's entry. */
        CHECK(leaf->address == entry_of(ppx_cpu_spin_a) ||
                  leaf->address == entry_of(ppx_cpu_spin_b),
              "sample %zu: leaf address 0x%llx is no spin function's entry", i,
              (unsigned long long)leaf->address);
        const char *thread = label_str(prof, s, "thread");
        int64_t tid = 0, pid = 0;
        CHECK(thread && label_num(prof, s, "tid", &tid) && !label_num(prof, s, "pid", &pid),
              "sample %zu: labels", i);
        CHECK(s->value[1] == s->value[0] * 10000000, "sample %zu: %lld samples, %lld ns", i,
              (long long)s->value[0], (long long)s->value[1]);
        if (thread && strcmp(thread, "worker-a") == 0)
            CHECK(tid == 4243 && s->value[0] == 300, "worker-a: tid %lld, %lld samples",
                  (long long)tid, (long long)s->value[0]);
        labeled++;
    }
    CHECK(lost == 1 && labeled == 3, "%zu lost and %zu labeled samples", lost, labeled);
    perftools__profiles__profile__free_unpacked(prof, NULL);
}

static void check_through_pprof(const char *path)
{
    int st;
    char *header = unit_pprof_query(path, "--header", &st);
    CHECK(st == 0 && strstr(header, "sample_types\tsamples cpu\n") &&
              strstr(header, "period_type\tcpu nanoseconds\n") &&
              strstr(header, "period\t10000000\n") && strstr(header, "samples\t4\n"),
          "pprof_raw --header:\n%s", header);
    free(header);
    char *dflt = unit_pprof_query(path, "--default-type", &st);
    CHECK(st == 0 && strcmp(dflt, "cpu\n") == 0, "go tool pprof -top Type: %s", dflt);
    free(dflt);

    char *flat = unit_pprof_query(path, "--flat-table", &st);
    CHECK(st == 0, "pprof_raw --flat-table: %s", flat);
    CHECK(unit_table_get(flat, "ppx_cpu_spin_a", "samples") == 307 &&
              unit_table_get(flat, "ppx_cpu_spin_a", "cpu") == 3070000000ll,
          "spin_a: %lld samples, %lld ns", unit_table_get(flat, "ppx_cpu_spin_a", "samples"),
          unit_table_get(flat, "ppx_cpu_spin_a", "cpu"));
    CHECK(unit_table_get(flat, "ppx_cpu_spin_b", "samples") == 100 &&
              unit_table_get(flat, "ppx_cpu_spin_b", "cpu") == 1000000000ll,
          "spin_b: %lld samples", unit_table_get(flat, "ppx_cpu_spin_b", "samples"));
    CHECK(unit_table_get(flat, PPROF_CPU_LOST_FRAME, "samples") == 5 &&
              unit_table_get(flat, PPROF_CPU_LOST_FRAME, "cpu") == 50000000,
          "lost samples: %lld", unit_table_get(flat, PPROF_CPU_LOST_FRAME, "samples"));
    free(flat);
    char *cum = unit_pprof_query(path, "--cum-table", &st);
    CHECK(st == 0 && unit_table_get(cum, "ppx_cpu_root", "cpu") == 4070000000ll &&
              unit_table_get(cum, "ppx_cpu_caller_a", "cpu") == 3000000000ll &&
              unit_table_get(cum, "ppx_cpu_caller_b", "cpu") == 1000000000ll,
          "cumulative:\n%s", cum);
    free(cum);

    /* Per thread, by name and by tid. */
    char *v = unit_pprof_query(path, "--label thread=worker-a --cum ppx_cpu_root", &st);
    CHECK(st == 0 && atoll(v) == 3000000000ll, "worker-a's CPU: %s", v);
    free(v);
    v = unit_pprof_query(path, "--label tid=4244 --type samples --flat ppx_cpu_spin_b", &st);
    CHECK(st == 0 && atoll(v) == 100, "tid 4244's samples: %s", v);
    free(v);
    v = unit_pprof_query(path, "--label thread=cpu_main --flat ppx_cpu_spin_a", &st);
    CHECK(st == 0 && atoll(v) == 70000000, "cpu_main's CPU: %s", v);
    free(v);
    v = unit_pprof_query(path, "--unlabeled thread", &st);
    CHECK(st == 0 && atoll(v) == 1, "samples without thread label: %s (want the lost one)", v);
    free(v);

    /* What a user types: -tagfocus on the thread name and the tid. */
    char *top = unit_go_pprof("-top -tagfocus=thread=worker-b", path, &st);
    CHECK(st == 0 && strstr(top, "Type: cpu") && strstr(top, "Showing nodes accounting for 1s") &&
              strstr(top, "ppx_cpu_spin_b") && !strstr(top, "ppx_cpu_spin_a"),
          "-tagfocus=thread=worker-b:\n%s", top);
    free(top);
    top = unit_go_pprof("-top -tagfocus=tid=4243", path, &st);
    CHECK(st == 0 && strstr(top, "Showing nodes accounting for 3s") &&
              strstr(top, "ppx_cpu_spin_a") && !strstr(top, "ppx_cpu_spin_b"),
          "-tagfocus=tid=4243:\n%s", top);
    free(top);
    char *tags = unit_go_pprof("-tags", path, &st);
    CHECK(st == 0 && strstr(tags, "thread:") && strstr(tags, "worker-a") &&
              strstr(tags, "worker-b") && strstr(tags, "cpu_main") && strstr(tags, "tid:"),
          "-tags:\n%s", tags);
    if (getenv("PPX_TEST_VERBOSE"))
        fputs(tags, stderr);
    free(tags);
}

/* Two processes: pid labels on every sample, lost ticks per process; the
 * second at 1000 Hz keeps its own nanoseconds under the first one's period. */
static void check_merged(void)
{
    struct proc *p1 = cpu_proc(111, 2000000000ull, 1, 100);
    struct proc *p2 = cpu_proc(222, 1000000000ull, 2, 1000);
    struct proc *procs[] = {p1, p2};
    char err[512] = "";
    const char *path = unit_tmp_path("merged.pb.gz");
    int rc = pprof_cpu_write(procs, 2, true, 11000000000ull, PPROF_TO_FILE(path), err, sizeof err);
    CHECK(rc == 0, "merged write: %s", err);
    int st;
    char *header = unit_pprof_query(path, "--header", &st);
    CHECK(st == 0 && strstr(header, "period\t10000000\n") && strstr(header, "samples\t8\n"),
          "merged header:\n%s", header);
    free(header);
    char *v = unit_pprof_query(path, "--unlabeled pid", &st);
    CHECK(st == 0 && atoll(v) == 0, "merged: samples without pid: %s", v);
    free(v);
    v = unit_pprof_query(path, "--label pid=222 --type samples --flat ppx_cpu_spin_a", &st);
    CHECK(st == 0 && atoll(v) == 614, "pid 222 spin_a samples: %s", v);
    free(v);
    v = unit_pprof_query(path, "--label pid=222 --flat ppx_cpu_spin_a", &st);
    CHECK(st == 0 && atoll(v) == 614000000, "pid 222 spin_a ns at 1000 Hz: %s", v);
    free(v);
    v = unit_pprof_query(path, "--label pid=111 --flat '" PPROF_CPU_LOST_FRAME "'", &st);
    CHECK(st == 0 && atoll(v) == 50000000, "pid 111 lost: %s", v);
    free(v);
    v = unit_pprof_query(path, "--label pid=222 --type samples --flat '" PPROF_CPU_LOST_FRAME "'",
                         &st);
    CHECK(st == 0 && atoll(v) == 10, "pid 222 lost: %s", v);
    free(v);
    unit_proc_free(p1);
    unit_proc_free(p2);
}

/* No CPU sample at all: a valid profile without samples, at 100 Hz; a
 * dropped count alone shows on its own frame. */
static void check_empty_and_dropped(void)
{
    struct proc *p = unit_proc_new(5, 1, 1, true);
    struct proc *procs[] = {p};
    char err[512] = "";
    const char *path = unit_tmp_path("empty.pb.gz");
    int rc = pprof_cpu_write(procs, 1, false, 2, PPROF_TO_FILE(path), err, sizeof err);
    CHECK(rc == 0, "empty write: %s", err);
    int st;
    char *header = unit_pprof_query(path, "--header", &st);
    CHECK(st == 0 && strstr(header, "samples\t0\n") && strstr(header, "period\t10000000\n") &&
              strstr(header, "sample_types\tsamples cpu\n"),
          "empty profile:\n%s", header);
    free(header);

    p->cpu_hz = 250;
    p->cpu_dropped = 3;
    p->cpu_dropped_ns = 12000000;
    path = unit_tmp_path("dropped.pb.gz");
    rc = pprof_cpu_write(procs, 1, false, 2, PPROF_TO_FILE(path), err, sizeof err);
    CHECK(rc == 0, "dropped write: %s", err);
    char *flat = unit_pprof_query(path, "--flat-table", &st);
    CHECK(st == 0 && unit_table_get(flat, PPROF_CPU_DROPPED_FRAME, "samples") == 3 &&
              unit_table_get(flat, PPROF_CPU_DROPPED_FRAME, "cpu") == 12000000,
          "dropped samples:\n%s", flat);
    free(flat);
    header = unit_pprof_query(path, "--header", &st);
    CHECK(st == 0 && strstr(header, "period\t4000000\n"), "250 Hz period:\n%s", header);
    free(header);
    unit_proc_free(p);
}

int main(void)
{
    ppx_cpu_root();
    if (!unit_tmpdir_make("cpu"))
        return 99;
    struct proc *p = cpu_proc(4242, 1000000000ull, 1, 100);
    struct proc *procs[] = {p};
    char err[512] = "";
    const char *path = unit_tmp_path("cpu.pb.gz");
    int rc = pprof_cpu_write(procs, 1, false, 11000000000ull, PPROF_TO_FILE(path), err, sizeof err);
    CHECK(rc == 0, "write: %s", err);
    check_layout(path, 11000000000ull, 1000000000ull);
    if (system("go version >/dev/null 2>&1 && python3 --version >/dev/null 2>&1") == 0) {
        check_through_pprof(path);
        check_merged();
        check_empty_and_dropped();
    } else {
        fprintf(stderr, "go or python3 missing: go tool pprof checks skipped\n");
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
    return unit_finish("all pprof CPU checks passed");
}
