/* pprof_heap_write on synthetic processes whose stacks are real return
 * addresses inside this test binary: the written profiles are decoded with
 * protobuf-c and, when Go is installed, read back with `go tool pprof -raw`. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pprof/pprof.h"
#include "symbol/symbol.h"
#include "support.h"

/* ---- call sites with known return addresses ---------------------------- */

static uint64_t leaf_pc, mid_pc, root_pc;
static int leaf_line;

/* Each stores a return address into itself; the store after the call keeps
 * the call from becoming a tail call. */
NOINLINE void ppx_test_alloc_site(void)
{
    /* __LINE__ must be the call's own line. */
    /* clang-format off */
    leaf_pc = unit_return_address(); leaf_line = __LINE__;
    /* clang-format on */
    __asm__ volatile("" ::: "memory");
}

NOINLINE void ppx_test_caller(void)
{
    ppx_test_alloc_site();
    mid_pc = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

NOINLINE void ppx_test_root(void)
{
    ppx_test_caller();
    root_pc = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

/* An inlined call site: the location should carry two lines, the inlined
 * function first, then the function it was inlined into. */
static uint64_t inlined_pc;
static int inlined_line, inlined_call_line;

static inline __attribute__((always_inline)) void ppx_test_inlined(void)
{
    /* __LINE__ must be the call's own line. */
    /* clang-format off */
    inlined_pc = unit_return_address(); inlined_line = __LINE__;
    /* clang-format on */
}

NOINLINE void ppx_test_inline_outer(void)
{
    /* __LINE__ must be the call's own line. */
    /* clang-format off */
    ppx_test_inlined(); inlined_call_line = __LINE__;
    /* clang-format on */
    __asm__ volatile("" ::: "memory");
}

/* ---- synthetic process from this process's own mappings ---------------- */

/* Every object's executable mappings: the leaf of one test lies in libstdc++. */
static struct proc *proc_new(uint32_t pid, uint64_t sample_rate, uint64_t start_ns)
{
    return unit_proc_new(pid, sample_rate, start_ns, false);
}

static struct proc_mapping *proc_add_mapping(struct proc *p, const char *path, uint64_t start,
                                             uint64_t limit, uint64_t load_bias)
{
    if (p->n_mappings == p->cap_mappings) {
        p->cap_mappings = 2 * p->cap_mappings + 1;
        p->mappings = realloc(p->mappings, p->cap_mappings * sizeof *p->mappings);
    }
    struct proc_mapping *m = &p->mappings[p->n_mappings++];
    memset(m, 0, sizeof *m);
    m->id = (uint32_t)p->n_mappings;
    m->start = start;
    m->limit = limit;
    m->load_bias = load_bias;
    m->path = strdup(path);
    return m;
}

static struct proc_mapping *main_mapping(struct proc *p)
{
    for (size_t i = 0; i < p->n_mappings; i++)
        if (p->mappings[i].is_main)
            return &p->mappings[i];
    return NULL;
}

static void proc_add_stack(struct proc *p, uint32_t id, const uint64_t *pcs, uint32_t depth,
                           uint64_t alloc_objects, uint64_t alloc_bytes, uint64_t free_objects,
                           uint64_t free_bytes)
{
    struct proc_stack *s = unit_proc_add_stack(p, id, pcs, depth);
    s->alloc_objects = alloc_objects;
    s->alloc_bytes = alloc_bytes;
    s->free_objects = free_objects;
    s->free_bytes = free_bytes;
}

/* ---- reading profiles back --------------------------------------------- */

static const char *str(const Profile *p, int64_t i)
{
    return i >= 0 && (size_t)i < p->n_string_table ? p->string_table[i] : "<bad index>";
}

static const Perftools__Profiles__Location *location(const Profile *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_location; i++)
        if (p->location[i]->id == id)
            return p->location[i];
    return NULL;
}

static const Perftools__Profiles__Function *function(const Profile *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_function; i++)
        if (p->function[i]->id == id)
            return p->function[i];
    return NULL;
}

/* Name of the function whose symbol holds location id (its last line). */
static const char *location_function(const Profile *p, uint64_t id)
{
    const Perftools__Profiles__Location *loc = location(p, id);
    if (!loc || loc->n_line == 0)
        return NULL;
    const Perftools__Profiles__Function *f = function(p, loc->line[loc->n_line - 1]->function_id);
    return f ? str(p, f->name) : NULL;
}

static bool is_function(const Profile *p, uint64_t location_id, const char *name)
{
    const char *f = location_function(p, location_id);
    return f && strcmp(f, name) == 0;
}

/* The sample whose leaf is in function leaf and whose label pid (when
 * pid != 0) matches. */
static const Perftools__Profiles__Sample *find_sample(const Profile *p, const char *leaf,
                                                      int64_t pid)
{
    for (size_t i = 0; i < p->n_sample; i++) {
        const Perftools__Profiles__Sample *s = p->sample[i];
        if (s->n_location_id == 0)
            continue;
        const char *name = location_function(p, s->location_id[0]);
        if (!name || strcmp(name, leaf) != 0)
            continue;
        bool pid_ok = pid == 0;
        for (size_t j = 0; j < s->n_label; j++)
            if (strcmp(str(p, s->label[j]->key), "pid") == 0 && s->label[j]->num == pid)
                pid_ok = true;
        if (pid_ok)
            return s;
    }
    return NULL;
}

static int64_t label_num(const Profile *p, const Perftools__Profiles__Sample *s, const char *key)
{
    for (size_t j = 0; j < s->n_label; j++)
        if (strcmp(str(p, s->label[j]->key), key) == 0)
            return s->label[j]->num;
    return -1;
}

static void check_values(const Perftools__Profiles__Sample *s, int64_t a0, int64_t a1, int64_t a2,
                         int64_t a3, const char *what)
{
    CHECK(s != NULL, "%s: sample missing", what);
    if (!s)
        return;
    CHECK(s->n_value == 4, "%s: %zu values", what, s->n_value);
    if (s->n_value != 4)
        return;
    CHECK(s->value[0] == a0 && s->value[1] == a1 && s->value[2] == a2 && s->value[3] == a3,
          "%s: values %lld %lld %lld %lld, expected %lld %lld %lld %lld", what,
          (long long)s->value[0], (long long)s->value[1], (long long)s->value[2],
          (long long)s->value[3], (long long)a0, (long long)a1, (long long)a2, (long long)a3);
}

static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp."))
            n++;
    closedir(d);
    return n;
}

/* ---- tests ------------------------------------------------------------- */

/* Sampled mode: Go's scaling, labels, layout, frame dropping, unknown pcs. */
static void test_sampled(uint64_t znwm_pc)
{
    const uint64_t start_ns = 1000000000ull, now_ns = 3500000000ull;
    struct proc *p = proc_new(4242, 524288, start_ns);
    const uint64_t stack_a[] = {leaf_pc, mid_pc, root_pc};
    const uint64_t stack_b[] = {mid_pc, root_pc};
    const uint64_t stack_new[] = {znwm_pc, znwm_pc, root_pc}; /* new called twice in a row */
    const uint64_t stack_only_new[] = {znwm_pc};
    const uint64_t stack_unknown[] = {0x10, root_pc};
    proc_add_stack(p, 1, stack_a, 3, 4, 4096, 1, 1024);
    proc_add_stack(p, 2, stack_b, 2, 2, 2097152, 0, 0);
    proc_add_stack(p, 3, stack_new, 3, 7, 700, 0, 0);
    proc_add_stack(p, 4, stack_only_new, 1, 5, 500, 5, 500);
    proc_add_stack(p, 5, stack_unknown, 2, 1, 64, 1, 64);
    proc_add_stack(p, 6, stack_a, 3, 0, 0, 0, 0); /* all zero: not written */
    const uint64_t stack_inlined[] = {inlined_pc, root_pc};
    proc_add_stack(p, 7, stack_inlined, 2, 1, 1 << 20, 0, 0);

    char err[512] = "";
    struct proc *procs[] = {p};
    int rc = pprof_heap_write(procs, 1, PPROF_HEAP, false, now_ns,
                              PPROF_TO_FILE(unit_tmp_path("heap.pb.gz")), err, sizeof err);
    CHECK(rc == 0, "heap write: %s", err);
    rc = pprof_heap_write(procs, 1, PPROF_ALLOCS, false, now_ns,
                          PPROF_TO_FILE(unit_tmp_path("allocs.pb.gz")), err, sizeof err);
    CHECK(rc == 0, "allocs write: %s", err);

    Profile *heap = unit_read_profile(unit_tmp_path("heap.pb.gz"));
    Profile *allocs = unit_read_profile(unit_tmp_path("allocs.pb.gz"));
    CHECK(heap && allocs, "cannot decode the written profiles");
    if (!heap || !allocs)
        goto out;

    static const char *const types[4][2] = {{"alloc_objects", "count"},
                                            {"alloc_space", "bytes"},
                                            {"inuse_objects", "count"},
                                            {"inuse_space", "bytes"}};
    CHECK(heap->n_sample_type == 4, "%zu sample types", heap->n_sample_type);
    for (size_t i = 0; i < 4 && i < heap->n_sample_type; i++)
        CHECK(strcmp(str(heap, heap->sample_type[i]->type), types[i][0]) == 0 &&
                  strcmp(str(heap, heap->sample_type[i]->unit), types[i][1]) == 0,
              "sample type %zu is %s/%s", i, str(heap, heap->sample_type[i]->type),
              str(heap, heap->sample_type[i]->unit));
    CHECK(heap->period == 524288, "period %lld", (long long)heap->period);
    CHECK(heap->period_type && strcmp(str(heap, heap->period_type->type), "space") == 0 &&
              strcmp(str(heap, heap->period_type->unit), "bytes") == 0,
          "period type");
    CHECK(strcmp(str(heap, heap->default_sample_type), "inuse_space") == 0,
          "heap default sample type %s", str(heap, heap->default_sample_type));
    CHECK(strcmp(str(allocs, allocs->default_sample_type), "alloc_space") == 0,
          "allocs default sample type %s", str(allocs, allocs->default_sample_type));
    CHECK(heap->time_nanos == (int64_t)now_ns, "time_nanos %lld", (long long)heap->time_nanos);
    CHECK(heap->duration_nanos == (int64_t)(now_ns - start_ns), "duration_nanos %lld",
          (long long)heap->duration_nanos);
    CHECK(heap->n_string_table > 0 && heap->string_table[0][0] == '\0', "string_table[0]");
    CHECK(heap->n_sample == 6, "%zu samples, expected 6 (the all-zero stack skipped)",
          heap->n_sample);

    /* Mapping 1 is this executable, with its build id, fully symbolized. */
    const struct proc_mapping *pm = main_mapping(p);
    CHECK(heap->n_mapping > 0 && pm, "no mappings");
    if (heap->n_mapping > 0 && pm) {
        const Perftools__Profiles__Mapping *m0 = heap->mapping[0];
        char hex[130] = "";
        for (size_t i = 0; i < pm->build_id_len; i++)
            sprintf(hex + 2 * i, "%02x", pm->build_id[i]);
        CHECK(m0->id == 1 && m0->memory_start == pm->start && m0->memory_limit == pm->limit &&
                  m0->file_offset == pm->offset,
              "mapping[0] range %llx-%llx", (unsigned long long)m0->memory_start,
              (unsigned long long)m0->memory_limit);
        CHECK(strcmp(str(heap, m0->filename), pm->path) == 0, "mapping[0] file %s",
              str(heap, m0->filename));
        CHECK(pm->build_id_len > 0 && strcmp(str(heap, m0->build_id), hex) == 0,
              "mapping[0] build id %s, expected %s", str(heap, m0->build_id), hex);
        CHECK(m0->has_functions && m0->has_filenames && m0->has_line_numbers,
              "mapping[0] flags %d %d %d", m0->has_functions, m0->has_filenames,
              m0->has_line_numbers);
    }

    /* Stack a: Go's scaling at rate 524288, values computed independently. */
    const Perftools__Profiles__Sample *sa = find_sample(heap, "ppx_test_alloc_site", 0);
    check_values(sa, 2050, 2099200, 1537, 1574400, "stack a");
    if (sa) {
        /* No block-size label: it would be an average (pprof_heap.c). */
        CHECK(label_num(heap, sa, "bytes") == -1, "stack a bytes label %lld",
              (long long)label_num(heap, sa, "bytes"));
        CHECK(label_num(heap, sa, "pid") == -1, "pid label without pid_labels");
        CHECK(sa->n_location_id == 3, "stack a depth %zu", sa->n_location_id);
        const Perftools__Profiles__Location *leaf = location(heap, sa->location_id[0]);
        CHECK(leaf && leaf->address == leaf_pc - 1 && leaf->mapping_id == 1,
              "leaf location address %llx, expected %llx",
              leaf ? (unsigned long long)leaf->address : 0ull, (unsigned long long)leaf_pc - 1);
        if (leaf && leaf->n_line > 0) {
            const Perftools__Profiles__Function *f =
                function(heap, leaf->line[leaf->n_line - 1]->function_id);
            CHECK(leaf->line[0]->line == leaf_line, "leaf line %lld, expected %d",
                  (long long)leaf->line[0]->line, leaf_line);
            CHECK(f && strstr(str(heap, f->filename), "unit/pprof_heap.c") &&
                      f->system_name == f->name,
                  "leaf function file %s", f ? str(heap, f->filename) : "?");
        }
        if (sa->n_location_id == 3) {
            const char *mid = location_function(heap, sa->location_id[1]);
            const char *root = location_function(heap, sa->location_id[2]);
            CHECK(mid && strcmp(mid, "ppx_test_caller") == 0, "frame 1 is %s", mid ? mid : "?");
            CHECK(root && strcmp(root, "ppx_test_root") == 0, "frame 2 is %s", root ? root : "?");
        }
    }
    /* Stack b: large blocks, scale close to 1. */
    check_values(find_sample(heap, "ppx_test_caller", 0), 2, 2425393, 2, 2425393, "stack b");
    /* The same figures land in the allocs profile. */
    check_values(find_sample(allocs, "ppx_test_alloc_site", 0), 2050, 2099200, 1537, 1574400,
                 "allocs stack a");

    /* Stack new: both operator new frames dropped, the leaf is the caller. */
    const Perftools__Profiles__Sample *sn = find_sample(heap, "ppx_test_root", 0);
    check_values(sn, 36703, 3670366, 36703, 3670366, "stack behind operator new");
    if (sn)
        CHECK(sn->n_location_id == 1 && label_num(heap, sn, "bytes") == -1,
              "stack behind operator new: depth %zu", sn->n_location_id);
    /* A stack of nothing but operator new keeps its last frame. */
    const Perftools__Profiles__Sample *so = find_sample(heap, "_Znwm", 0);
    check_values(so, 26216, 2621690, 0, 0, "operator new alone"); /* all freed */
    for (size_t i = 0; i < heap->n_sample; i++)
        if (heap->sample[i] != so && heap->sample[i]->n_location_id > 0) {
            const char *leaf = location_function(heap, heap->sample[i]->location_id[0]);
            CHECK(!leaf || strcmp(leaf, "_Znwm") != 0, "operator new left as a leaf");
        }

    /* Unknown pc: a location without mapping or lines, the rest intact. */
    bool found_unknown = false;
    for (size_t i = 0; i < heap->n_sample; i++) {
        const Perftools__Profiles__Sample *s = heap->sample[i];
        const Perftools__Profiles__Location *l0 =
            s->n_location_id ? location(heap, s->location_id[0]) : NULL;
        if (l0 && l0->address == 0x10 - 1) {
            found_unknown = true;
            CHECK(l0->mapping_id == 0 && l0->n_line == 0, "unknown pc has mapping %llu",
                  (unsigned long long)l0->mapping_id);
            CHECK(s->n_location_id == 2 && is_function(heap, s->location_id[1], "ppx_test_root"),
                  "caller of the unknown pc");
            check_values(s, 8192, 524320, 0, 0, "unknown pc");
        }
    }
    CHECK(found_unknown, "sample with the unknown pc missing");

    /* The inlined call site: two lines, innermost first. */
    const Perftools__Profiles__Sample *si = find_sample(heap, "ppx_test_inline_outer", 0);
    const Perftools__Profiles__Location *li = si ? location(heap, si->location_id[0]) : NULL;
    CHECK(li && li->n_line == 2, "inlined location has %zu lines", li ? li->n_line : 0);
    if (li && li->n_line == 2) {
        const Perftools__Profiles__Function *inner = function(heap, li->line[0]->function_id);
        CHECK(inner && strcmp(str(heap, inner->name), "ppx_test_inlined") == 0 &&
                  li->line[0]->line == inlined_line,
              "inner line %s:%lld, expected ppx_test_inlined:%d",
              inner ? str(heap, inner->name) : "?", (long long)li->line[0]->line, inlined_line);
        CHECK(li->line[1]->line == inlined_call_line, "outer line %lld, expected %d",
              (long long)li->line[1]->line, inlined_call_line);
    }

    /* Location ids are unique and every sample's ids resolve. */
    for (size_t i = 0; i < heap->n_location; i++)
        CHECK(heap->location[i]->id == i + 1, "location %zu has id %llu", i,
              (unsigned long long)heap->location[i]->id);
    for (size_t i = 0; i < heap->n_sample; i++)
        for (size_t j = 0; j < heap->sample[i]->n_location_id; j++)
            CHECK(location(heap, heap->sample[i]->location_id[j]), "dangling location id");
out:
    if (heap)
        perftools__profiles__profile__free_unpacked(heap, NULL);
    if (allocs)
        perftools__profiles__profile__free_unpacked(allocs, NULL);
    unit_proc_free(p);
}

/* Two processes at different rates merged, each sample labelled by pid. */
static void test_merged_pids(void)
{
    struct proc *p1 = proc_new(111, 524288, 2000);
    struct proc *p2 = proc_new(222, 1, 1000);
    const uint64_t stack_a[] = {leaf_pc, mid_pc, root_pc};
    proc_add_stack(p1, 1, stack_a, 3, 4, 4096, 1, 1024);
    proc_add_stack(p2, 1, stack_a, 3, 4, 4096, 1, 1024);
    struct proc *procs[] = {p1, p2};
    char err[512] = "";
    int rc = pprof_heap_write(procs, 2, PPROF_HEAP, true, 5000,
                              PPROF_TO_FILE(unit_tmp_path("merged.pb.gz")), err, sizeof err);
    CHECK(rc == 0, "merged write: %s", err);
    Profile *prof = unit_read_profile(unit_tmp_path("merged.pb.gz"));
    CHECK(prof, "cannot decode merged profile");
    if (prof) {
        CHECK(prof->period == 524288, "merged period %lld", (long long)prof->period);
        CHECK(prof->duration_nanos == 4000, "merged duration %lld",
              (long long)prof->duration_nanos);
        CHECK(prof->n_sample == 2, "merged samples %zu", prof->n_sample);
        check_values(find_sample(prof, "ppx_test_alloc_site", 111), 2050, 2099200, 1537, 1574400,
                     "pid 111 (sampled)");
        check_values(find_sample(prof, "ppx_test_alloc_site", 222), 4, 4096, 3, 3072,
                     "pid 222 (exact)");
        /* Same binary, same addresses: one mapping, one set of locations. */
        if (prof->n_sample == 2)
            CHECK(prof->sample[0]->location_id[0] == prof->sample[1]->location_id[0],
                  "forked processes got different locations for the same pc");
        perftools__profiles__profile__free_unpacked(prof, NULL);
    }
    unit_proc_free(p1);
    unit_proc_free(p2);
}

/* A sink naming the default sample type (?sample_index= over HTTP): one of
 * the profile's, else the writer fails, says why and writes nothing;
 * pprof_describe() tells the types as the writers state them. */
static void test_default_type(void)
{
    struct proc *p = proc_new(333, 1, 1000);
    const uint64_t stack_a[] = {leaf_pc, mid_pc, root_pc};
    proc_add_stack(p, 1, stack_a, 3, 4, 4096, 1, 1024);
    struct proc *procs[] = {p};
    char err[512] = "";
    struct pprof_sink chosen = {.path = unit_tmp_path("chosen.pb.gz"),
                                .default_type = "alloc_objects"};
    int rc = pprof_heap_write(procs, 1, PPROF_HEAP, false, 5000, &chosen, err, sizeof err);
    CHECK(rc == 0, "write with a default type: %s", err);
    Profile *prof = unit_read_profile(unit_tmp_path("chosen.pb.gz"));
    CHECK(prof, "cannot decode the profile with a default type");
    if (prof) {
        CHECK(strcmp(str(prof, prof->default_sample_type), "alloc_objects") == 0,
              "default sample type %s, asked alloc_objects", str(prof, prof->default_sample_type));
        CHECK(prof->n_sample_type == 4, "%zu sample types", prof->n_sample_type);
        perftools__profiles__profile__free_unpacked(prof, NULL);
    }
    struct pprof_sink bogus = {.path = unit_tmp_path("bogus.pb.gz"), .default_type = "bogus"};
    rc = pprof_heap_write(procs, 1, PPROF_HEAP, false, 5000, &bogus, err, sizeof err);
    CHECK(rc < 0 && strstr(err, "has no sample type \"bogus\""),
          "an unknown default type: rc %d, %s", rc, err);
    CHECK(access(unit_tmp_path("bogus.pb.gz"), F_OK) != 0, "a file written with a bad default");
    unit_proc_free(p);

    const char *const(*types)[2];
    size_t n;
    const char *own;
    rc = pprof_describe(PPROF_PROFILE_ALLOCS, &types, &n, &own);
    CHECK(rc == 0 && n == 4 && own && strcmp(own, "alloc_space") == 0 &&
              strcmp(types[2][0], "inuse_objects") == 0 && strcmp(types[2][1], "count") == 0,
          "allocs described: rc %d, %zu types, default %s", rc, n, own ? own : "(none)");
    rc = pprof_describe(PPROF_PROFILE_CPU, &types, &n, &own);
    CHECK(rc == 0 && n == 2 && own && strcmp(own, "cpu") == 0 &&
              strcmp(types[1][1], "nanoseconds") == 0,
          "cpu described: rc %d, %zu types, default %s", rc, n, own ? own : "(none)");
}

/* Missing, non-ELF, stripped and replaced files: unknown frames, no crash. */
static void test_unreadable_files(void)
{
    struct proc *p = proc_new(7, 1, 1);
    const struct proc_mapping *exe = main_mapping(p);
    uint64_t exe_start = exe ? exe->start : 0, exe_limit = exe ? exe->limit : 0;
    uint64_t exe_offset = exe ? exe->offset : 0, exe_bias = exe ? exe->load_bias : 0;

    const uint64_t base = 0x7e0000000000ull;
    proc_add_mapping(p, "/nonexistent/libgone.so", base, base + 0x10000, base);
    FILE *f = fopen(unit_tmp_path("not-an-elf.so"), "w");
    if (f) {
        fputs("this is not an ELF file\n", f);
        fclose(f);
    }
    proc_add_mapping(p, unit_tmp_path("not-an-elf.so"), base + 0x100000, base + 0x110000,
                     base + 0x100000);
    const uint64_t s1[] = {base + 0x123, root_pc};
    const uint64_t s2[] = {base + 0x100456, root_pc};
    proc_add_stack(p, 1, s1, 2, 1, 10, 0, 0);
    proc_add_stack(p, 2, s2, 2, 1, 20, 0, 0);

    char err[512] = "";
    struct proc *procs[] = {p};
    int rc = pprof_heap_write(procs, 1, PPROF_HEAP, false, 2,
                              PPROF_TO_FILE(unit_tmp_path("unreadable.pb.gz")), err, sizeof err);
    CHECK(rc == 0, "write with unreadable files: %s", err);
    Profile *prof = unit_read_profile(unit_tmp_path("unreadable.pb.gz"));
    CHECK(prof && prof->n_sample == 2, "unreadable: samples");
    for (size_t i = 0; prof && i < prof->n_sample; i++) {
        const Perftools__Profiles__Sample *s = prof->sample[i];
        const Perftools__Profiles__Location *l0 = location(prof, s->location_id[0]);
        CHECK(l0 && l0->mapping_id != 0 && l0->n_line == 0, "unreadable file leaf has lines");
        CHECK(s->n_location_id == 2 && is_function(prof, s->location_id[1], "ppx_test_root"),
              "frame below an unreadable file");
    }
    if (prof)
        perftools__profiles__profile__free_unpacked(prof, NULL);

    /* The executable with a build id that is not the file's: unknown. */
    struct proc_mapping fake = {.start = exe_start,
                                .limit = exe_limit,
                                .offset = exe_offset,
                                .load_bias = exe_bias,
                                .build_id_len = 20};
    fake.path = exe ? exe->path : "/proc/self/exe";
    memset(fake.build_id, 0xab, 20);
    struct sym_frame frame;
    CHECK(sym_lookup(&fake, leaf_pc - 1, &frame) == -1 && frame.function == NULL,
          "build id mismatch still symbolized as %s", frame.function);

    /* A stripped copy of this executable: whatever dynsym says, not our
     * function (its name lives in .symtab only), and no crash. */
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "strip -o '%s' '%s' 2>/dev/null", unit_tmp_path("stripped"),
             fake.path);
    if (exe && system(cmd) == 0) {
        struct proc_mapping stripped = *exe;
        stripped.path = unit_tmp_path("stripped");
        stripped.build_id_len = 0;
        int r = sym_lookup(&stripped, leaf_pc - 1, &frame);
        CHECK(r == -1 || strcmp(frame.function, "ppx_test_alloc_site") != 0,
              "stripped file named the function");
        unlink(unit_tmp_path("stripped"));
    }
    unlink(unit_tmp_path("not-an-elf.so"));
    unit_proc_free(p);
}

/* Output errors: -1, a message naming the file, nothing left behind. */
static void test_write_errors(void)
{
    struct proc *p = proc_new(9, 1, 1);
    const uint64_t stack_a[] = {leaf_pc, mid_pc, root_pc};
    proc_add_stack(p, 1, stack_a, 3, 1, 16, 0, 0);
    struct proc *procs[] = {p};
    char err[512] = "";

    const char *missing = unit_tmp_path("no-such-dir/heap.pb.gz");
    int rc =
        pprof_heap_write(procs, 1, PPROF_HEAP, false, 2, PPROF_TO_FILE(missing), err, sizeof err);
    CHECK(rc == -1, "write into a missing directory returned %d", rc);
    CHECK(strstr(err, missing) && strstr(err, strerror(ENOENT)), "message: %s", err);

    /* The temporary file gets written, the rename onto a directory fails. */
    const char *dir_target = unit_tmp_path("a-directory");
    mkdir(dir_target, 0755);
    char inside[4300];
    snprintf(inside, sizeof inside, "%s/keep", dir_target);
    fclose(fopen(inside, "w"));
    err[0] = '\0';
    rc = pprof_heap_write(procs, 1, PPROF_HEAP, false, 2, PPROF_TO_FILE(dir_target), err,
                          sizeof err);
    CHECK(rc == -1, "write onto a directory returned %d", rc);
    CHECK(strstr(err, dir_target) != NULL, "message: %s", err);
    CHECK(count_temp_files(unit_tmpdir) == 0, "temporary file left behind");
    fprintf(stderr, "expected error messages:\n  %s\n", err);
    unlink(inside);
    rmdir(dir_target);
    unit_proc_free(p);
}

static void test_allocator_names(void)
{
    static const char *const allocators[] = {
        "_Znwm",
        "_Znam",
        "_ZnwmRKSt9nothrow_t",
        "_ZnamRKSt9nothrow_t",
        "_ZnwmSt11align_val_t",
        "_ZnamSt11align_val_t",
        "_ZnwmSt11align_val_tRKSt9nothrow_t",
        "_Znwj",
        "_ZdlPv",
        "_ZdlPvm",
        "_ZdaPv",
        "malloc",
        "calloc",
        "realloc",
        "reallocarray",
        "posix_memalign",
        "aligned_alloc",
        "memalign",
        "valloc",
        "pvalloc",
        "free",
        "__libc_malloc",
        "__libc_calloc",
        "__libc_realloc",
        "__libc_memalign",
        "__libc_free",
        "je_malloc",
        "je_mallocx",
        "mallocx",
        "rallocx",
        "tc_malloc",
        "tc_new",
        "tc_newarray_nothrow",
        "tc_delete",
    };
    static const char *const users[] = {
        "main",
        "zmalloc",
        "strdup",
        "my_malloc_wrapper",
        "_ZN3foo3newEv",
        "freelist_pop",
        "__libc_start_main",
        "__libc_start_call_main",
        "tc_parse",
        "mallocate",
        "_ZNSt6vectorIiSaIiEE9push_backERKi",
    };
    for (size_t i = 0; i < sizeof allocators / sizeof allocators[0]; i++)
        CHECK(pprof_is_allocator_entry(allocators[i]), "%s not taken for an allocator",
              allocators[i]);
    for (size_t i = 0; i < sizeof users / sizeof users[0]; i++)
        CHECK(!pprof_is_allocator_entry(users[i]), "%s taken for an allocator", users[i]);
}

/* ---- go tool pprof ----------------------------------------------------- */

struct raw_location {
    unsigned id;
    char name[256];
};

/* Runs `go tool pprof -raw path`; returns its output (malloc'ed) or NULL. */
static char *pprof_raw(const char *path)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "go tool pprof -raw '%s' 2>&1", path);
    int status;
    char *out = unit_run(cmd, &status);
    if (status != 0) {
        if (status != -1) /* -1: not started, so no output to show */
            fprintf(stderr, "go tool pprof failed:\n%s\n", out);
        free(out);
        return NULL;
    }
    return out;
}

/* Finds, in -raw output, the sample whose leaf location names leaf, and
 * reads its four values. */
static bool raw_sample(const char *raw, const char *leaf, long long v[4])
{
    /* Locations: "     7: 0x1234 M=1 name file:line s=0". */
    const char *locs = strstr(raw, "\nLocations\n");
    if (!locs)
        return false;
    unsigned leaf_id = 0;
    for (const char *l = locs + 1; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        unsigned id;
        char addr[64], mapping[64], name[256];
        if (sscanf(l, " %u: %63s %63s %255s", &id, addr, mapping, name) == 4 &&
            strcmp(name, leaf) == 0) {
            leaf_id = id;
            break;
        }
    }
    if (!leaf_id)
        return false;
    /* Samples: "   4   4096   3   3072: 1 2 3 " */
    const char *samples = strstr(raw, "\nSamples:\n");
    for (const char *l = samples; l && l < locs; l = strchr(l + 1, '\n')) {
        unsigned first;
        int used = 0;
        if (sscanf(l + 1, " %lld %lld %lld %lld: %u%n", &v[0], &v[1], &v[2], &v[3], &first,
                   &used) == 5 &&
            first == leaf_id)
            return true;
    }
    return false;
}

static void test_go_pprof(void)
{
    if (system("go version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "go not on PATH: go tool pprof checks skipped\n");
        return;
    }
    struct proc *p = proc_new(31337, 1, 1);
    const uint64_t stack_a[] = {leaf_pc, mid_pc, root_pc};
    const uint64_t stack_b[] = {mid_pc, root_pc};
    proc_add_stack(p, 1, stack_a, 3, 4, 4096, 1, 1024);
    proc_add_stack(p, 2, stack_b, 2, 10, 1000, 10, 1000);
    struct proc *procs[] = {p};
    char err[512] = "";
    int rc = pprof_heap_write(procs, 1, PPROF_HEAP, false, 2,
                              PPROF_TO_FILE(unit_tmp_path("exact.pb.gz")), err, sizeof err);
    CHECK(rc == 0, "exact write: %s", err);
    char *raw = pprof_raw(unit_tmp_path("exact.pb.gz"));
    CHECK(raw, "go tool pprof -raw failed");
    if (raw) {
        long long v[4];
        CHECK(strstr(raw, "PeriodType: space bytes") && strstr(raw, "Period: 1\n"),
              "pprof header:\n%s", raw);
        CHECK(strstr(raw, "inuse_space/bytes[dflt]"), "default sample type:\n%s", raw);
        CHECK(raw_sample(raw, "ppx_test_alloc_site", v) && v[0] == 4 && v[1] == 4096 && v[2] == 3 &&
                  v[3] == 3072,
              "ppx_test_alloc_site sample in pprof -raw:\n%s", raw);
        CHECK(raw_sample(raw, "ppx_test_caller", v) && v[0] == 10 && v[1] == 1000 && v[2] == 0 &&
                  v[3] == 0,
              "ppx_test_caller sample in pprof -raw:\n%s", raw);
        CHECK(strstr(raw, "ppx_test_root"), "ppx_test_root missing:\n%s", raw);
        CHECK(!strstr(raw, "bytes:["), "a bytes label:\n%s", raw);
        printf("go tool pprof -raw: names and values checked\n");
        if (getenv("PPX_TEST_VERBOSE"))
            fputs(raw, stderr);
        free(raw);
    }
    unit_proc_free(p);
}

int main(void)
{
    ppx_test_root();
    ppx_test_inline_outer();
    if (!unit_tmpdir_make("pprof"))
        return 99;
    /* operator new's address, to stand for an allocator frame. */
    void *libstdcxx = dlopen("libstdc++.so.6", RTLD_NOW);
    void *znwm = libstdcxx ? dlsym(libstdcxx, "_Znwm") : NULL;
    if (!znwm) {
        fprintf(stderr, "libstdc++.so.6 or _Znwm not found: %s\n", dlerror());
        return 99;
    }

    test_sampled((uint64_t)(uintptr_t)znwm + 5);
    test_merged_pids();
    test_default_type();
    test_unreadable_files();
    test_write_errors();
    test_allocator_names();
    test_go_pprof();

    sym_cache_free();
    if (getenv("PPX_TEST_KEEP")) {
        fprintf(stderr, "profiles kept in %s\n", unit_tmpdir);
        return unit_failures ? 1 : 0;
    }
    const char *files[] = {"heap.pb.gz",   "allocs.pb.gz",     "merged.pb.gz",
                           "chosen.pb.gz", "unreadable.pb.gz", "exact.pb.gz"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(unit_tmp_path(files[i]));
    if (rmdir(unit_tmpdir) != 0)
        fprintf(stderr, "cannot remove %s: %s\n", unit_tmpdir, strerror(errno));
    return unit_finish("all pprof heap checks passed");
}
