#include "pprof/pprof.h"

#include <stdlib.h>

static int mapping_ref_cmp(const void *a, const void *b)
{
    const struct pprof_mapping_ref *x = a, *y = b;
    return x->m->start < y->m->start ? -1 : x->m->start > y->m->start;
}

int pprof_proc_mappings_init(struct pprof_proc_mappings *pm, struct pprof_builder *b,
                             const struct proc *p)
{
    pm->b = b;
    pm->n_refs = 0;
    pm->refs = calloc(p->n_mappings ? p->n_mappings : 1, sizeof *pm->refs);
    if (!pm->refs)
        return -1;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < p->n_mappings; i++) {
            const struct proc_mapping *m = &p->mappings[i];
            if (m->is_main != (pass == 0) || m->limit <= m->start)
                continue;
            pm->refs[pm->n_refs].m = m;
            pm->refs[pm->n_refs].pprof_id = pprof_mapping(b, m);
            pm->n_refs++;
        }
    }
    qsort(pm->refs, pm->n_refs, sizeof *pm->refs, mapping_ref_cmp);
    return 0;
}

void pprof_proc_mappings_free(struct pprof_proc_mappings *pm)
{
    free(pm->refs);
    pm->refs = NULL;
    pm->n_refs = 0;
}

const struct pprof_mapping_ref *pprof_find_mapping(const struct pprof_proc_mappings *pm,
                                                   uint64_t addr)
{
    size_t lo = 0, hi = pm->n_refs; /* first ref with start > addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pm->refs[mid].m->start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || addr >= pm->refs[lo - 1].m->limit)
        return NULL;
    return &pm->refs[lo - 1];
}

int pprof_stack_locations(const struct pprof_proc_mappings *pm, const uint64_t *pcs, size_t n,
                          uint64_t *out)
{
    for (size_t i = 0; i < n; i++) {
        /* Call sites: a return address minus one lies inside the call. */
        uint64_t addr = pcs[i] ? pcs[i] - 1 : 0;
        const struct pprof_mapping_ref *r = pprof_find_mapping(pm, addr);
        out[i] = r ? pprof_location(pm->b, r->m, r->pprof_id, addr)
                   : pprof_location(pm->b, NULL, 0, addr);
        if (out[i] == 0)
            return -1;
    }
    return 0;
}

int pprof_each_proc(struct pprof_builder *b, struct proc *const *procs, size_t n, pprof_proc_fn fn,
                    void *writer)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct pprof_proc_mappings pm;
        if (pprof_proc_mappings_init(&pm, b, procs[i]) < 0)
            return -1;
        rc = fn(writer, procs[i], &pm);
        pprof_proc_mappings_free(&pm);
    }
    return rc;
}

int pprof_location_ids_reserve(struct pprof_location_ids *l, size_t n)
{
    if (n <= l->cap)
        return 0;
    uint64_t *grown = realloc(l->ids, n * sizeof *grown);
    if (!grown)
        return -1;
    l->ids = grown;
    l->cap = n;
    return 0;
}
