/* libFuzzer target for the wire stream decoder (collector/wire_decode.c).
 *
 * The first input byte picks the chunk size the stream is fed in; the rest
 * is the stream. It is fed twice into one process table, the second time
 * while the first connection is still open, which drives the reconnect,
 * supersede and refusal paths too. After each run the table must satisfy
 * the decoder's promises, checked below; ASan/UBSan/LSan catch the rest.
 *
 * With PPX_FUZZ_SEEDS=DIR in the environment, LLVMFuzzerInitialize writes
 * a few valid streams into DIR as a seed corpus (tests/fuzz_wire.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include "proc_table.h"
#include "unit_wire_stream.h"
#include "wire_decode.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    free(s.data);
    return 0;
}
