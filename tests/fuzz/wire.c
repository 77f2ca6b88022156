/* libFuzzer target for the wire stream decoder (collector/wire_decode.c).
 *
 * The first input byte picks the chunk size the stream is fed in; the rest
 * is the stream. It is fed twice into one process table, the second time
 * while the first connection is still open, which drives the reconnect,
 * supersede and refusal paths too. After each run the table must satisfy
 * the decoder's promises, checked below; ASan/UBSan/LSan catch the rest.
 *
 * With PPX_FUZZ_SEEDS=DIR in the environment, LLVMFuzzerInitialize writes
 * a few valid streams into DIR as a seed corpus (tests/fuzz/wire.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include "model/model.h"
#include "unit/wire_stream.h"
#include "ingest/ingest.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every I/O site as the decoder promises: enums in range, socket detail
 * only on sockets, errnos named 1..4095, stacks that exist and start at
 * the site's caller, all within the limits. */
static void check_io_invariants(const struct proc *p)
{
    if (HASH_COUNT(p->io_sites) > PROC_MAX_IO_SITES)
        abort();
    const struct proc_io_site *site;
    for (site = p->io_sites; site; site = site->hh.next) {
        if (site->call < 1 || site->call >= WIRE_IO_CALL_MAX || site->fd_type > WIRE_FD_OTHER ||
            site->family > WIRE_FAMILY_OTHER || site->socktype > WIRE_SOCK_OTHER)
            abort();
        if (site->fd_type != WIRE_FD_SOCKET && (site->family || site->socktype))
            abort();
        if (site->n_errnos > PROC_MAX_IO_ERRNOS || site->n_stacks > PROC_MAX_IO_SITE_STACKS)
            abort();
        for (size_t i = 0; i < site->n_errnos; i++) {
            if (site->errnos[i].err < 1 || site->errnos[i].err > 4095)
                abort();
            for (size_t j = 0; j < i; j++)
                if (site->errnos[j].err == site->errnos[i].err)
                    abort();
        }
        for (size_t i = 0; i < site->n_stacks; i++) {
            const struct proc_stack *st;
            HASH_FIND(hh, p->stacks, &site->stacks[i].stack_id, sizeof(uint32_t), st);
            if (!st || st->pcs[0] != site->caller_pc)
                abort();
            for (size_t j = 0; j < i; j++)
                if (site->stacks[j].stack_id == site->stacks[i].stack_id)
                    abort();
        }
    }
}

/* Threads and CPU samples as the decoder promises: valid ids, flags and
 * names, stacks and threads that exist, within the limits. */
static void check_cpu_invariants(const struct proc *p)
{
    if (HASH_COUNT(p->threads) > PROC_MAX_THREADS ||
        HASH_COUNT(p->cpu_samples) > PROC_MAX_CPU_ENTRIES || p->cpu_hz > WIRE_MAX_CPU_HZ)
        abort();
    const struct proc_thread *t;
    for (t = p->threads; t; t = t->hh.next) {
        if (t->id == WIRE_NO_ID || t->tid == 0 || t->creator_id == t->id ||
            (t->flags & ~(WIRE_THREAD_MAIN | WIRE_THREAD_PREEXISTING)) ||
            ((t->flags & WIRE_THREAD_MAIN) && t->tid != p->pid) ||
            !memchr(t->name, 0, sizeof t->name))
            abort();
        if (t->stack_id != WIRE_NO_ID) {
            const struct proc_stack *st;
            HASH_FIND(hh, p->stacks, &t->stack_id, sizeof t->stack_id, st);
            if (!st || (t->flags & WIRE_THREAD_PREEXISTING))
                abort();
        }
    }
    const struct proc_cpu_sample *cs;
    for (cs = p->cpu_samples; cs; cs = cs->hh.next) {
        const struct proc_stack *st;
        HASH_FIND(hh, p->stacks, &cs->key.stack_id, sizeof cs->key.stack_id, st);
        HASH_FIND(hh, p->threads, &cs->key.thread_id, sizeof cs->key.thread_id, t);
        if (!st || !t || p->cpu_hz == 0)
            abort();
        /* samples * 1e9 / hz at hz <= WIRE_MAX_CPU_HZ: at least 1e5 ns each */
        if (cs->cpu_ns < UINT64_MAX && cs->cpu_ns / 100000 < cs->samples)
            abort();
    }
}

/* A dump held is whole and within the limits; its tasks are valid. */
static void check_dump_invariants(const struct proc_dump *d, uint32_t max_depth)
{
    if (d->n > PROC_MAX_DUMP_TASKS || d->frames > PROC_MAX_DUMP_FRAMES || d->n > d->cap)
        abort();
    uint64_t frames = 0;
    for (size_t i = 0; i < d->n; i++) {
        const struct proc_task *t = &d->tasks[i];
        if ((t->kind != WIRE_TASK_THREAD && t->kind != WIRE_TASK_COROUTINE) ||
            t->depth > max_depth || (t->depth && !t->pcs) || t->stack > WIRE_TASK_STACK_MAX ||
            !memchr(t->name, 0, sizeof t->name))
            abort();
        frames += t->depth;
    }
    if (frames != d->frames)
        abort();
}

static void check_invariants(struct proc_table *t)
{
    size_t n;
    struct proc **list = proc_table_list(t, &n);
    for (size_t i = 0; i < n; i++) {
        const struct proc *p = list[i];
        if (p->max_depth > WIRE_MAX_DEPTH || (p->exe && strlen(p->exe) > WIRE_MAX_PATH))
            abort();
        for (size_t m = 0; m < p->n_mappings; m++)
            if (p->mappings[m].start >= p->mappings[m].limit ||
                p->mappings[m].build_id_len > sizeof p->mappings[m].build_id ||
                strlen(p->mappings[m].path) == 0)
                abort();
        const struct proc_stack *s;
        for (s = p->stacks; s; s = s->hh.next) {
            if (s->depth < 1 || s->depth > p->max_depth)
                abort();
            if (s->free_objects > s->alloc_objects || s->free_bytes > s->alloc_bytes)
                abort();
        }
        check_io_invariants(p);
        check_cpu_invariants(p);
        check_dump_invariants(&p->dump, p->max_depth);
        check_dump_invariants(&p->dump_partial, p->max_depth);
    }
    free(list);
}

static void feed(struct wire_decoder *d, const uint8_t *data, size_t size, size_t chunk)
{
    for (size_t at = 0; at < size; at += chunk) {
        size_t n = size - at < chunk ? size - at : chunk;
        if (wire_decoder_feed(d, data + at, n) < 0)
            return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = data[0] ? data[0] : size;
    data++;
    size--;
    if (chunk == 0)
        chunk = 1;
    struct proc_table *t = proc_table_new();
    struct wire_decoder *a = wire_decoder_new(t, 1);
    struct wire_decoder *b = wire_decoder_new(t, 2);
    feed(a, data, size, chunk);
    feed(b, data, size, chunk > 1 ? chunk - 1 : 1);
    feed(a, data, size, size ? size : 1);
    wire_decoder_end(a);
    wire_decoder_end(b);
    check_invariants(t);
    wire_decoder_free(a);
    wire_decoder_free(b);
    check_invariants(t);
    proc_table_free(t);
    return 0;
}

static void write_seed(const char *dir, const char *name, uint8_t chunk, const struct stream *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite(&chunk, 1, 1, f);
    fwrite(s->data, 1, s->len, f);
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("PPX_FUZZ_SEEDS");
    if (!dir || !*dir)
        return 0;
    struct stream s = {0};
    stream_valid(&s, 1234, 1);
    write_seed(dir, "valid", 0, &s);
    write_seed(dir, "valid-bytewise", 1, &s);
    s.len = 0;
    stream_hello(&s, 99, 5, 1, 4, "/bin/true");
    stream_stack(&s, 7, 4, 0x1000);
    stream_delta1(&s, 7, 1, 8, 2, 16);
    stream_delta1(&s, 7, 2, 16, 0, 0);
    write_seed(dir, "clamp", 13, &s);
    s.len = 0;
    stream_hello(&s, 99, 5, 1, 4, "/bin/true");
    stream_mapping(&s, 3, 0, 0x1000, 0x2000, "/lib/x.so");
    stream_mapping(&s, 3, 0, 0x1000, 0x2000, "/lib/x.so");
    stream_goodbye(&s);
    write_seed(dir, "mappings", 7, &s);
    s.len = 0;
    stream_valid_io(&s, 4321, 3);
    write_seed(dir, "io", 0, &s);
    write_seed(dir, "io-chunked", 11, &s);
    s.len = 0;
    stream_hello(&s, 98, 5, 1, 2, "/bin/cat");
    stream_stack(&s, 2, 2, 0x7000);
    stream_io_site(&s, 4, WIRE_IO_SPLICE, WIRE_FD_PIPE, 0, 0, 0x7000);
    stream_io_site(&s, 5, WIRE_IO_ACCEPT4, WIRE_FD_SOCKET, WIRE_FAMILY_INET6, WIRE_SOCK_STREAM,
                   0x7100);
    stream_io_delta1(&s, 4, 3, 30, 300, 3, 1, 1);
    stream_io_errno1(&s, 4, 32, 1);
    stream_io_errno1(&s, 5, 11, 9);
    stream_io_stacks1(&s, 4, 2, 1);
    stream_io_stacks1(&s, 4, 2, 1);
    write_seed(dir, "io-small", 3, &s);
    s.len = 0;
    stream_valid_cpu(&s, 4444, 9);
    write_seed(dir, "cpu", 0, &s);
    write_seed(dir, "cpu-chunked", 17, &s);
    s.len = 0;
    stream_hello(&s, 97, 5, 1, 3, "/bin/sh");
    stream_stack(&s, 1, 3, 0x9000);
    stream_thread(&s, 0, 97, WIRE_NO_ID, WIRE_NO_ID, 5, 0, 1, WIRE_THREAD_MAIN, "sh");
    stream_thread(&s, 1, 98, 0, 1, 6, 0, 0, 0, "fifteen-chars-x");
    stream_cpu1(&s, 10000, 1, 1, 1, 2);
    stream_cpu1(&s, 1, 0, 1, 0, 1);
    stream_thread(&s, 1, 98, 0, 1, 6, 8, 9, 0, "");
    write_seed(dir, "cpu-small", 5, &s);
    s.len = 0;
    stream_hello(&s, 96, 5, 1, 3, "/bin/sleep");
    stream_stack(&s, 1, 3, 0xa000);
    stream_stack(&s, 2, 2, 0xb000);
    stream_contention1(&s, WIRE_BLOCK_DELTA, 1, WIRE_CONTENTION_ONE, 50000000);
    stream_contention1(&s, WIRE_MUTEX_DELTA, 2, 10 * WIRE_CONTENTION_ONE, 500000000);
    stream_contention1(&s, WIRE_BLOCK_DELTA, 1, 3, UINT64_MAX);
    stream_goodbye(&s);
    write_seed(dir, "contention", 6, &s);
    /* a dump: a thread with a stack, one without, a coroutine, its end */
    s.len = 0;
    stream_hello(&s, 98, 5, 1, 4, "/bin/st");
    for (unsigned i = 0; i < 3; i++) {
        struct wire_task w = {.seq = 1,
                              .id = 98 + i,
                              .tid = 98,
                              .thread_id = WIRE_NO_ID,
                              .depth = i == 1 ? 0 : 2,
                              .fd = i == 0 ? 7 : -1,
                              .kind = i == 2 ? WIRE_TASK_COROUTINE : WIRE_TASK_THREAD,
                              .state = i == 2 ? WIRE_CO_IO_WAIT : 'S',
                              .stack = i == 1 ? WIRE_TASK_STACK_BLOCKED : WIRE_TASK_STACK_OK,
                              .wait_call = i == 0 ? WIRE_IO_READ : 0,
                              .fd_type = i == 0 ? WIRE_FD_PIPE : 0,
                              .name = "st"};
        stream_header(&s, WIRE_TASK, (uint32_t)(sizeof w + w.depth * sizeof(uint64_t)));
        stream_put(&s, &w, sizeof w);
        for (uint64_t pc = 0x9000; pc < 0x9000 + w.depth; pc++)
            stream_put(&s, &pc, sizeof pc);
    }
    struct wire_tasks_end end = {1, 3, 0, 1000};
    stream_header(&s, WIRE_TASKS_END, sizeof end);
    stream_put(&s, &end, sizeof end);
    write_seed(dir, "tasks", 0, &s);
    write_seed(dir, "tasks-chunked", 9, &s);
    free(s.data);
    return 0;
}
