/* Heap and allocs profiles laid out as Go's runtime/pprof writes them
 * (protomem.go, writeHeapProto): four sample types, period_type space/bytes,
 * period = the sampling rate, values scaled like scaleHeapSample.
 *
 * Unlike Go, no numeric label "bytes": Go's buckets are per stack and block
 * size, so its label is a constant of the sample. Ours are per stack only
 * (wire.h's HEAP_DELTA), so the label could only be an average, which
 * changes as the program runs: two snapshots would then hold the same
 * stack as two different samples (pprof merges samples by stack and
 * labels), and `go tool pprof -base` would show both, one negative, with a
 * total that counts each. */
#include "pprof/pprof.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool pprof_is_allocator_entry(const char *name)
{
    static const char *const exact[] = {
        "malloc",
        "calloc",
        "realloc",
        "reallocarray",
        "free",
        "cfree",
        "posix_memalign",
        "aligned_alloc",
        "memalign",
        "valloc",
        "pvalloc",
        "malloc_usable_size",
        /* jemalloc's non-standard API */
        "mallocx",
        "rallocx",
        "xallocx",
        "sdallocx",
        "dallocx",
        /* tcmalloc's own names (its operator new is _Znwm like libstdc++'s) */
        "tc_malloc",
        "tc_calloc",
        "tc_realloc",
        "tc_free",
        "tc_cfree",
        "tc_memalign",
        "tc_posix_memalign",
        "tc_valloc",
        "tc_pvalloc",
        "tc_malloc_skip_new_handler",
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(name, exact[i]) == 0)
            return true;
    /* operator new / new[] / delete / delete[], every variant (nothrow,
     * align_val_t, sized): _Znwm, _Znam, _ZnwmRKSt9nothrow_t, _ZdlPvm, ...;
     * jemalloc built with a prefix (je_malloc); tcmalloc's tc_new*,
     * tc_delete*; glibc's internal aliases. */
    static const char *const prefixes[] = {"_Znw", "_Zna",   "_ZdlPv",    "_ZdaPv",
                                           "je_",  "tc_new", "tc_delete", "__GI___libc_"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (has_prefix(name, prefixes[i]))
            return true;
    if (has_prefix(name, "__libc_")) /* __libc_malloc, __libc_memalign, ... */
        return strstr(name, "alloc") || strstr(name, "memalign") || strstr(name, "free");
    return false;
}

uint32_t pprof_heap_first_frame(const struct pprof_proc_mappings *pm, const struct proc_stack *s)
{
    uint32_t first = 0;
    for (; first + 1 < s->depth; first++) {
        uint64_t addr = s->pcs[first] - 1;
        const struct pprof_mapping_ref *r = pprof_find_mapping(pm, addr);
        struct sym_frame f;
        if (!r || sym_lookup(r->m, addr, &f) != 0 || !pprof_is_allocator_entry(f.function))
            break;
    }
    return first;
}

static int64_t to_int64(double v)
{
    if (!(v > 0))
        return 0;
    if (v >= 9.2e18)
        return INT64_MAX;
    return (int64_t)v; /* truncates, as Go's int64() does */
}

/* A sampled figure scaled (model.h, proc_heap_scale), as Go's int64(). */
static void scale_heap_sample(uint64_t count, uint64_t size, uint64_t rate, int64_t *out_count,
                              int64_t *out_size)
{
    if (count == 0 || size == 0) {
        *out_count = *out_size = 0;
        return;
    }
    if (rate <= 1) {
        *out_count = pprof_clamp_int64(count);
        *out_size = pprof_clamp_int64(size);
        return;
    }
    double scale = proc_heap_scale(count, size, rate);
    *out_count = to_int64((double)count * scale);
    *out_size = to_int64((double)size * scale);
}

struct heap_writer {
    struct pprof_builder *b;
    bool pid_labels;
    struct pprof_location_ids loc; /* one sample's location ids */
};

static int write_stack(struct heap_writer *w, const struct proc *p, const struct proc_stack *s,
                       const struct pprof_proc_mappings *pm)
{
    int64_t values[4];
    scale_heap_sample(s->alloc_objects, s->alloc_bytes, p->sample_rate, &values[0], &values[1]);
    /* Frees are charged to the allocating stack, so over a whole run they
     * never exceed its allocations. Over a window (a delta profile,
     * model.h) they may: blocks allocated before it and freed in it
     * make the stack's in-use figures negative, as in Go's delta heap
     * profiles. */
    if (s->alloc_objects >= s->free_objects && s->alloc_bytes >= s->free_bytes) {
        scale_heap_sample(s->alloc_objects - s->free_objects, s->alloc_bytes - s->free_bytes,
                          p->sample_rate, &values[2], &values[3]);
    } else if (s->free_objects >= s->alloc_objects && s->free_bytes >= s->alloc_bytes) {
        scale_heap_sample(s->free_objects - s->alloc_objects, s->free_bytes - s->alloc_bytes,
                          p->sample_rate, &values[2], &values[3]);
        values[2] = -values[2];
        values[3] = -values[3];
    } else {
        values[2] = values[3] = 0; /* fewer objects but more bytes: no consistent sign */
    }
    if ((values[0] | values[1] | values[2] | values[3]) == 0 || s->depth == 0)
        return 0;

    if (pprof_location_ids_reserve(&w->loc, s->depth) < 0)
        return -1;

    /* Allocator entry points at the leaf end go, as Go drops its runtime
     * frames. */
    uint32_t first = pprof_heap_first_frame(pm, s);
    size_t n = s->depth - first;
    if (pprof_stack_locations(pm, s->pcs + first, n, w->loc.ids) < 0)
        return -1;

    struct pprof_label labels[1];
    size_t n_labels = 0;
    if (w->pid_labels)
        labels[n_labels++] = (struct pprof_label){.key = "pid", .num = (int64_t)p->pid};
    pprof_add_sample(w->b, w->loc.ids, n, values, 4, labels, n_labels);
    return 0;
}

static int write_proc(void *writer, const struct proc *p, const struct pprof_proc_mappings *pm)
{
    struct heap_writer *w = writer;
    int rc = 0;
    for (const struct proc_stack *s = p->stacks; s && rc == 0; s = s->hh.next)
        rc = write_stack(w, p, s, pm);
    return rc;
}

int pprof_heap_write(struct proc *const *procs, size_t n, enum pprof_heap_kind kind,
                     bool pid_labels, uint64_t now_ns, struct pprof_sink *out, char *err,
                     size_t errlen)
{
    static const char *const types[][2] = {{"alloc_objects", "count"},
                                           {"alloc_space", "bytes"},
                                           {"inuse_objects", "count"},
                                           {"inuse_space", "bytes"}};
    /* With processes sampled at different rates each is scaled with its
     * own; the profile can state only one. */
    const struct pprof_profile_type type = {
        .sample_types = types,
        .n_sample_types = 4,
        .period_type = "space",
        .period_unit = "bytes",
        .period = n > 0 ? pprof_clamp_int64(procs[0]->sample_rate) : 0,
        .default_type = kind == PPROF_ALLOCS ? "alloc_space" : "inuse_space",
    };
    struct heap_writer w = {.pid_labels = pid_labels};
    w.b = pprof_builder_start(&type, procs, n, now_ns, out, err, errlen);
    if (!w.b)
        return -1;
    int rc = pprof_each_proc(w.b, procs, n, write_proc, &w);
    free(w.loc.ids);
    return pprof_builder_finish(w.b, rc, out, err, errlen);
}
