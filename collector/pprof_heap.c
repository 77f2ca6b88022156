/* Heap and allocs profiles laid out as Go's runtime/pprof writes them
 * (protomem.go, writeHeapProto): four sample types, period_type space/bytes,
 * period = the sampling rate, values scaled like scaleHeapSample, a numeric
 * label "bytes" with the average block size. */
#include "pprof_heap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pprof_build.h"
#include "pprof_write.h"
#include "symbolize.h"

/* One process mapping with its pprof mapping id, sorted by start. */
struct mapping_ref {
    const struct proc_mapping *m;
    uint64_t pprof_id;
};

static int mapping_ref_cmp(const void *a, const void *b)
{
    const struct mapping_ref *x = a, *y = b;
    return x->m->start < y->m->start ? -1 : x->m->start > y->m->start;
}

static const struct mapping_ref *find_mapping(const struct mapping_ref *refs, size_t n,
                                              uint64_t addr)
{
    size_t lo = 0, hi = n; /* first ref with start > addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (refs[mid].m->start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || addr >= refs[lo - 1].m->limit)
        return NULL;
    return &refs[lo - 1];
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool pprof_is_allocator_entry(const char *name)
{
    static const char *const exact[] = {
        "malloc", "calloc", "realloc", "reallocarray", "free", "cfree", "posix_memalign",
        "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size",
        /* jemalloc's non-standard API */
        "mallocx", "rallocx", "xallocx", "sdallocx", "dallocx",
        /* tcmalloc's own names (its operator new is _Znwm like libstdc++'s) */
        "tc_malloc", "tc_calloc", "tc_realloc", "tc_free", "tc_cfree", "tc_memalign",
        "tc_posix_memalign", "tc_valloc", "tc_pvalloc", "tc_malloc_skip_new_handler",
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(name, exact[i]) == 0)
            return true;
    /* operator new / new[] / delete / delete[], every variant (nothrow,
     * align_val_t, sized): _Znwm, _Znam, _ZnwmRKSt9nothrow_t, _ZdlPvm, ...;
     * jemalloc built with a prefix (je_malloc); tcmalloc's tc_new*,
     * tc_delete*; glibc's internal aliases. */
    static const char *const prefixes[] = {"_Znw", "_Zna", "_ZdlPv", "_ZdaPv", "je_",
                                           "tc_new", "tc_delete", "__GI___libc_"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (has_prefix(name, prefixes[i]))
            return true;
    if (has_prefix(name, "__libc_")) /* __libc_malloc, __libc_memalign, ... */
        return strstr(name, "alloc") || strstr(name, "memalign") || strstr(name, "free");
    return false;
}

static int64_t to_int64(double v)
{
    if (!(v > 0))
        return 0;
    if (v >= 9.2e18)
        return INT64_MAX;
    return (int64_t)v; /* truncates, as Go's int64() does */
}

static int64_t clamp_int64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* Go's scaleHeapSample: an allocation of size S is sampled with probability
 * 1 - exp(-S/rate), so each sampled figure stands for 1/that many. */
static void scale_heap_sample(uint64_t count, uint64_t size, uint64_t rate, int64_t *out_count,
                              int64_t *out_size)
{
    if (count == 0 || size == 0) {
        *out_count = *out_size = 0;
        return;
    }
    if (rate <= 1) {
        *out_count = clamp_int64(count);
        *out_size = clamp_int64(size);
        return;
    }
    double avg = (double)size / (double)count;
    double scale = 1 / (1 - exp(-avg / (double)rate));
    *out_count = to_int64((double)count * scale);
    *out_size = to_int64((double)size * scale);
}

struct heap_writer {
    struct pprof_builder *b;
    bool pid_labels;
    uint64_t *locations; /* scratch for one sample's location ids */
    size_t cap_locations;
};

/* Registers procs' mappings, each process's main executable first so the
 * first process's becomes mapping[0]. Returns the sorted refs, or NULL. */
static struct mapping_ref *register_mappings(struct pprof_builder *b, const struct proc *p,
                                             size_t *n_refs)
{
    struct mapping_ref *refs = calloc(p->n_mappings ? p->n_mappings : 1, sizeof *refs);
    if (!refs)
        return NULL;
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < p->n_mappings; i++) {
            const struct proc_mapping *m = &p->mappings[i];
            if (m->is_main != (pass == 0) || m->limit <= m->start)
                continue;
            refs[n].m = m;
            refs[n].pprof_id = pprof_mapping(b, m);
            n++;
        }
    }
    qsort(refs, n, sizeof *refs, mapping_ref_cmp);
    *n_refs = n;
    return refs;
}

static int write_stack(struct heap_writer *w, const struct proc *p, const struct proc_stack *s,
                       const struct mapping_ref *refs, size_t n_refs)
{
    int64_t values[4];
    scale_heap_sample(s->alloc_objects, s->alloc_bytes, p->sample_rate, &values[0], &values[1]);
    /* Frees are charged to the allocating stack, so they never exceed its
     * allocations; clamp anyway rather than wrap. */
    uint64_t inuse_objects =
        s->alloc_objects > s->free_objects ? s->alloc_objects - s->free_objects : 0;
    uint64_t inuse_bytes = s->alloc_bytes > s->free_bytes ? s->alloc_bytes - s->free_bytes : 0;
    scale_heap_sample(inuse_objects, inuse_bytes, p->sample_rate, &values[2], &values[3]);
    if ((values[0] | values[1] | values[2] | values[3]) == 0 || s->depth == 0)
        return 0;

    if (s->depth > w->cap_locations) {
        uint64_t *grown = realloc(w->locations, s->depth * sizeof *grown);
        if (!grown)
            return -1;
        w->locations = grown;
        w->cap_locations = s->depth;
    }

    /* Call sites: a return address minus one lies inside the call. */
    uint32_t first = 0;
    for (; first + 1 < s->depth; first++) {
        uint64_t addr = s->pcs[first] - 1;
        const struct mapping_ref *r = find_mapping(refs, n_refs, addr);
        struct sym_frame f;
        if (!r || sym_lookup(r->m, addr, &f) != 0 || !pprof_is_allocator_entry(f.function))
            break;
    }
    size_t n = 0;
    for (uint32_t i = first; i < s->depth; i++) {
        uint64_t addr = s->pcs[i] ? s->pcs[i] - 1 : 0;
        const struct mapping_ref *r = find_mapping(refs, n_refs, addr);
        uint64_t id = r ? pprof_location(w->b, r->m, r->pprof_id, addr)
                        : pprof_location(w->b, NULL, 0, addr);
        if (id == 0)
            return -1;
        w->locations[n++] = id;
    }

    struct pprof_label labels[2];
    size_t n_labels = 0;
    uint64_t block_size = s->alloc_objects ? s->alloc_bytes / s->alloc_objects : 0;
    if (block_size != 0) /* as Go: no label for zero-sized blocks */
        labels[n_labels++] = (struct pprof_label){"bytes", clamp_int64(block_size), NULL};
    if (w->pid_labels)
        labels[n_labels++] = (struct pprof_label){"pid", (int64_t)p->pid, NULL};
    pprof_add_sample(w->b, w->locations, n, values, 4, labels, n_labels);
    return 0;
}

static int write_proc(struct heap_writer *w, const struct proc *p)
{
    size_t n_refs = 0;
    struct mapping_ref *refs = register_mappings(w->b, p, &n_refs);
    if (!refs)
        return -1;
    int rc = 0;
    for (const struct proc_stack *s = p->stacks; s && rc == 0; s = s->hh.next)
        rc = write_stack(w, p, s, refs, n_refs);
    free(refs);
    return rc;
}

int pprof_heap_write(struct proc *const *procs, size_t n, enum pprof_heap_kind kind,
                     bool pid_labels, uint64_t now_ns, const char *path, char *err,
                     size_t errlen)
{
    struct heap_writer w = {.b = pprof_builder_new(), .pid_labels = pid_labels};
    if (!w.b) {
        snprintf(err, errlen, "cannot build %s: out of memory", path);
        return -1;
    }
    pprof_add_sample_type(w.b, "alloc_objects", "count");
    pprof_add_sample_type(w.b, "alloc_space", "bytes");
    pprof_add_sample_type(w.b, "inuse_objects", "count");
    pprof_add_sample_type(w.b, "inuse_space", "bytes");
    /* With processes sampled at different rates each is scaled with its
     * own; the profile can state only one. */
    pprof_set_period(w.b, "space", "bytes", n > 0 ? clamp_int64(procs[0]->sample_rate) : 0);
    pprof_set_default_sample_type(w.b, kind == PPROF_ALLOCS ? "alloc_space" : "inuse_space");
    uint64_t earliest = now_ns;
    for (size_t i = 0; i < n; i++)
        if (procs[i]->start_ns && procs[i]->start_ns < earliest)
            earliest = procs[i]->start_ns;
    pprof_set_time(w.b, clamp_int64(now_ns), clamp_int64(now_ns - earliest));

    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = write_proc(&w, procs[i]);
    uint8_t *data = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = pprof_builder_encode(w.b, &data, &len);
    pprof_builder_free(w.b);
    free(w.locations);
    if (rc != 0) {
        snprintf(err, errlen, "cannot build %s: out of memory", path);
        return -1;
    }
    rc = pprof_write_gzip_atomic(path, data, len, err, errlen);
    free(data);
    return rc;
}
