/* pprof_contention_write (block.pb.gz, mutex.pb.gz) on synthetic processes
 * whose stacks are real return addresses inside this test binary, decoded
 * with protobuf-c: Go's layout (printCountCycleProfile), one sample per
 * stack with figures of the profile asked for, contentions in whole counts
 * (the target's 1/65536ths truncated, as Go truncates its float counts),
 * pid labels when merging, and a profile without samples.
 *
 * The process (pid 5151):
 *   stack 1 (waiter <- root): block 20.5 contentions, 1 s; mutex none
 *   stack 2 (holder <- root): block none; mutex 20 contentions, 0.99 s
 *   stack 3 (root): nothing */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <ppx/wire.h>

#include "pprof/pprof.h"
#include "support.h"

static uint64_t pc_waiter, pc_holder, pc_root;

NOINLINE void ppx_contention_waiter(void)
{
    pc_waiter = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

NOINLINE void ppx_contention_holder(void)
{
    pc_holder = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

NOINLINE void ppx_contention_root(void)
{
    ppx_contention_waiter();
    ppx_contention_holder();
    pc_root = unit_return_address();
    __asm__ volatile("" ::: "memory");
}

static struct proc *contention_proc(uint32_t pid)
{
    struct proc *p = unit_proc_new(pid, 1, 1000000000ull, true);
    const uint64_t w[] = {pc_waiter, pc_root}, h[] = {pc_holder, pc_root}, r[] = {pc_root};
    struct proc_stack *s1 = unit_proc_add_stack(p, 1, w, 2);
    struct proc_stack *s2 = unit_proc_add_stack(p, 2, h, 2);
    unit_proc_add_stack(p, 3, r, 1);
    s1->block =
        (struct proc_contention){20 * WIRE_CONTENTION_ONE + WIRE_CONTENTION_ONE / 2, 1000000000};
    s2->mutex = (struct proc_contention){20 * WIRE_CONTENTION_ONE, 990000000};
    return p;
}

static bool has_label(const Profile *prof, const Perftools__Profiles__Sample *s, const char *key,
                      int64_t num)
{
    for (size_t i = 0; i < s->n_label; i++)
        if (strcmp(prof->string_table[s->label[i]->key], key) == 0 && s->label[i]->num == num)
            return true;
    return false;
}

/* path holds n_samples samples of values (count, delay) each, and Go's header. */
static void check_profile(const char *path, size_t n_samples, int64_t count, int64_t delay,
                          bool pid_labels)
{
    Profile *prof = unit_read_profile(path);
    CHECK(prof, "cannot decode %s", path);
    if (!prof)
        return;
    const char *const *st = (const char *const *)prof->string_table;
    CHECK(prof->n_sample_type == 2 && strcmp(st[prof->sample_type[0]->type], "contentions") == 0 &&
              strcmp(st[prof->sample_type[0]->unit], "count") == 0 &&
              strcmp(st[prof->sample_type[1]->type], "delay") == 0 &&
              strcmp(st[prof->sample_type[1]->unit], "nanoseconds") == 0,
          "%s: sample types", path);
    CHECK(prof->period_type && strcmp(st[prof->period_type->type], "contentions") == 0 &&
              strcmp(st[prof->period_type->unit], "count") == 0 && prof->period == 1,
          "%s: period", path);
    CHECK(prof->default_sample_type == 0, "%s: a default sample type (Go sets none)", path);
    CHECK(prof->n_sample == n_samples, "%s: %zu samples, want %zu", path, prof->n_sample,
          n_samples);
    for (size_t i = 0; i < prof->n_sample; i++) {
        const Perftools__Profiles__Sample *s = prof->sample[i];
        CHECK(s->n_value == 2 && s->value[0] == count && s->value[1] == delay,
              "%s: sample %zu: values %lld %lld, want %lld %lld", path, i, (long long)s->value[0],
              (long long)s->value[1], (long long)count, (long long)delay);
        CHECK(s->n_location_id == 2, "%s: sample %zu: %zu locations, want 2", path, i,
              s->n_location_id);
        CHECK(has_label(prof, s, "pid", 5151) || has_label(prof, s, "pid", 5152) || !pid_labels,
              "%s: sample %zu: no pid label", path, i);
        CHECK(pid_labels || s->n_label == 0, "%s: sample %zu: labels", path, i);
    }
    perftools__profiles__profile__free_unpacked(prof, NULL);
}

int main(void)
{
    ppx_contention_root();
    if (!unit_tmpdir_make("contention"))
        return 99;
    struct proc *p = contention_proc(5151), *q = contention_proc(5152);
    struct proc *one[] = {p}, *two[] = {p, q};
    char err[512] = "";
    const char *block = unit_tmp_path("block.pb.gz");
    CHECK(pprof_contention_write(one, 1, false, false, 9000000000ull, PPROF_TO_FILE(block), err,
                                 sizeof err) == 0,
          "block: %s", err);
    check_profile(block, 1, 20, 1000000000, false);
    const char *mutex = unit_tmp_path("mutex.pb.gz");
    CHECK(pprof_contention_write(two, 2, true, true, 9000000000ull, PPROF_TO_FILE(mutex), err,
                                 sizeof err) == 0,
          "mutex: %s", err);
    check_profile(mutex, 2, 20, 990000000, true);
    /* a process without contention: a profile all the same, without samples */
    struct proc *none = unit_proc_new(6161, 1, 1, true);
    const char *empty = unit_tmp_path("empty.pb.gz");
    CHECK(pprof_contention_write(&none, 1, true, false, 2, PPROF_TO_FILE(empty), err, sizeof err) ==
              0,
          "empty: %s", err);
    check_profile(empty, 0, 0, 0, false);
    unit_proc_free(p);
    unit_proc_free(q);
    unit_proc_free(none);
    return unit_finish("all pprof contention checks passed");
}
