#include "pprof/pprof.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct record {
    size_t proc; /* index into procs */
    const struct proc_stack *stack;
    uint32_t first; /* first frame kept: allocator entries at the leaf go */
    uint64_t inuse_objects, inuse_bytes;
};

static int by_inuse_bytes(const void *a, const void *b)
{
    const struct record *x = a, *y = b;
    if (x->inuse_bytes != y->inuse_bytes)
        return x->inuse_bytes > y->inuse_bytes ? -1 : 1;
    return x->stack->id < y->stack->id ? -1 : x->stack->id > y->stack->id;
}

/* The "#" lines of one frame, as Go's printStackRecord: the address inside
 * the call, then function and file:line, each inlined function first.
 * These lines are for people (pprof reads the addresses): C++ names
 * demangled. */
void pprof_print_frame_text(FILE *f, const struct pprof_proc_mappings *pm, uint64_t pc)
{
    uint64_t addr = pc - 1;
    const struct pprof_mapping_ref *r = pprof_find_mapping(pm, addr);
    struct sym_frame frames[SYM_MAX_INLINE];
    int n = r ? sym_lookup_inline(r->m, addr, frames, SYM_MAX_INLINE) : 0;
    if (n <= 0) {
        fprintf(f, "#\t%#" PRIx64 "\n", addr);
        return;
    }
    for (int i = 0; i < n; i++) {
        char *demangled = demangle_name(frames[i].function);
        fprintf(f, "#\t%#" PRIx64 "\t%s\t%s:%d\n", addr, demangled ? demangled : frames[i].function,
                frames[i].file ? frames[i].file : "?", frames[i].line);
        free(demangled);
    }
}

static void print_record(FILE *f, const struct record *r, const struct pprof_proc_mappings *pm)
{
    const struct proc_stack *s = r->stack;
    fprintf(f, "%" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64 "] @", r->inuse_objects,
            r->inuse_bytes, s->alloc_objects, s->alloc_bytes);
    for (uint32_t i = r->first; i < s->depth; i++)
        fprintf(f, " %#" PRIx64, s->pcs[i]);
    fputc('\n', f);
    for (uint32_t i = r->first; i < s->depth; i++)
        pprof_print_frame_text(f, pm, s->pcs[i]);
    fputc('\n', f);
}

static bool plain_path(const char *path)
{
    return path && *path && !strpbrk(path, " \t\n\r");
}

/* Mappings in the brief format of pprof's legacy parser (briefMapsRE). */
static void print_memory_map(FILE *f, const struct proc *p)
{
    fprintf(f, "--- Memory map: ---\n");
    for (size_t i = 0; i < p->n_mappings; i++) {
        const struct proc_mapping *m = &p->mappings[i];
        if (!plain_path(m->path))
            continue;
        fprintf(f, "%08" PRIx64 "-%08" PRIx64 " r-xp %s (@%" PRIx64 ")", m->start, m->limit,
                m->path, m->offset);
        if (m->build_id_len > 0 && m->build_id_len <= sizeof m->build_id) {
            fputc(' ', f);
            for (size_t k = 0; k < m->build_id_len; k++)
                fprintf(f, "%02x", m->build_id[k]);
        }
        fputc('\n', f);
    }
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

struct text_state {
    struct pprof_builder *b; /* only to look mappings up (pprof.h) */
    struct pprof_proc_mappings *pms;
    size_t n_pms;
    struct record *records;
    size_t n_records;
};

static int collect(struct text_state *st, struct proc *const *procs, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += HASH_COUNT(procs[i]->stacks);
    st->records = calloc(total ? total : 1, sizeof *st->records);
    st->pms = calloc(n ? n : 1, sizeof *st->pms);
    st->b = pprof_builder_new();
    if (!st->records || !st->pms || !st->b)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (pprof_proc_mappings_init(&st->pms[i], st->b, procs[i]) < 0)
            return -1;
        st->n_pms = i + 1;
        for (const struct proc_stack *s = procs[i]->stacks; s; s = s->hh.next) {
            if (s->depth == 0 || (s->alloc_objects == 0 && s->alloc_bytes == 0))
                continue;
            struct record *r = &st->records[st->n_records++];
            r->proc = i;
            r->stack = s;
            r->first = pprof_heap_first_frame(&st->pms[i], s);
            r->inuse_objects =
                s->alloc_objects > s->free_objects ? s->alloc_objects - s->free_objects : 0;
            r->inuse_bytes = s->alloc_bytes > s->free_bytes ? s->alloc_bytes - s->free_bytes : 0;
        }
    }
    return 0;
}

static void print_header(FILE *f, const struct text_state *st, uint64_t rate)
{
    uint64_t io = 0, ib = 0, ao = 0, ab = 0;
    for (size_t i = 0; i < st->n_records; i++) {
        io = sat_add(io, st->records[i].inuse_objects);
        ib = sat_add(ib, st->records[i].inuse_bytes);
        ao = sat_add(ao, st->records[i].stack->alloc_objects);
        ab = sat_add(ab, st->records[i].stack->alloc_bytes);
    }
    /* As Go: pprof takes alloc == inuse for a two-column profile. */
    if (ab == ib)
        ab++;
    fprintf(
        f, "heap profile: %" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64 "] @ heap/%" PRIu64 "\n",
        io, ib, ao, ab, 2 * rate);
}

int heap_text_write(struct proc *const *procs, size_t n, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    struct text_state st = {0};
    FILE *f = NULL;
    int rc = collect(&st, procs, n);
    if (rc == 0)
        f = open_memstream(out, len);
    if (rc == 0 && f) {
        qsort(st.records, st.n_records, sizeof *st.records, by_inuse_bytes);
        /* One rate per text, as per profile: each process's own would need
         * one header each. */
        uint64_t rate = n > 0 && procs[0]->sample_rate ? procs[0]->sample_rate : 1;
        print_header(f, &st, rate);
        for (size_t i = 0; i < st.n_records; i++)
            print_record(f, &st.records[i], &st.pms[st.records[i].proc]);
        fprintf(f, "\n# ppx\n");
        for (size_t i = 0; i < n; i++)
            fprintf(f, "# pid %u exe %s sample_rate %" PRIu64 "\n", procs[i]->pid,
                    procs[i]->exe ? procs[i]->exe : "?", procs[i]->sample_rate);
        /* Addresses of several processes overlap: one map only for one. */
        if (n == 1)
            print_memory_map(f, procs[0]);
    }
    if (f && fclose(f) != 0)
        rc = -1;
    if (!f)
        rc = -1;
    for (size_t i = 0; i < st.n_pms; i++)
        pprof_proc_mappings_free(&st.pms[i]);
    free(st.pms);
    free(st.records);
    if (st.b)
        pprof_builder_free(st.b);
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *len = 0;
    }
    return rc;
}
