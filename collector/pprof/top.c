/* The flat/cum table of a profile (pprof.h), as `go tool pprof -top`
 * computes it at its default granularity (functions): for the sample type
 * pprof shows by default, each function's own value (flat: the samples
 * whose leaf it is) and its value with callees (cum: the samples it is
 * anywhere in, each sample once). */
#include "pprof/pprof.h"

#include <inttypes.h>
#include <string.h>
#include <uthash.h>

typedef Perftools__Profiles__Profile Profile;
typedef Perftools__Profiles__Sample Sample;
typedef Perftools__Profiles__Location Location;
typedef Perftools__Profiles__Function Function;

struct node {
    char *name;
    size_t row;
    UT_hash_handle hh;
};

/* A function's row, by its id: names are demangled once, not at every
 * frame of every sample. */
struct function_row {
    uint64_t id;
    size_t row;
    UT_hash_handle hh;
};

struct building {
    const struct pprof_index *ix;
    struct pprof_top *t;
    struct node *nodes;
    struct function_row *functions;
    size_t cap;
    size_t *seen; /* per row: 1 + the last sample counted in its cum */
};

/* The type pprof shows: default_sample_type, else the last (as pprof). */
static int shown_type(const Profile *p, const struct pprof_index *ix)
{
    const char *def = pprof_index_string(ix, p->default_sample_type);
    for (size_t i = 0; *def && i < p->n_sample_type; i++)
        if (strcmp(pprof_index_string(ix, p->sample_type[i]->type), def) == 0)
            return (int)i;
    return (int)p->n_sample_type - 1;
}

/* The row of function name, made on first sight; SIZE_MAX when out of
 * memory. */
static size_t row_of(struct building *b, const char *name)
{
    struct node *n;
    HASH_FIND_STR(b->nodes, name, n);
    if (n)
        return n->row;
    struct pprof_top *t = b->t;
    if (t->n_rows == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        struct pprof_top_row *rows = realloc(t->rows, cap * sizeof *rows);
        if (rows)
            t->rows = rows;
        size_t *seen = realloc(b->seen, cap * sizeof *seen);
        if (seen)
            b->seen = seen;
        if (!rows || !seen)
            return SIZE_MAX;
        b->cap = cap;
    }
    n = calloc(1, sizeof *n);
    char *copy = strdup(name);
    if (!n || !copy) {
        free(n);
        free(copy);
        return SIZE_MAX;
    }
    n->name = copy;
    n->row = t->n_rows++;
    t->rows[n->row] = (struct pprof_top_row){.name = copy};
    b->seen[n->row] = 0;
    HASH_ADD_KEYPTR(hh, b->nodes, n->name, strlen(n->name), n);
    return n->row;
}

/* The row of the function at line l of loc (NULL: a location without
 * lines, named by its address); SIZE_MAX when out of memory. */
static size_t frame_row(struct building *b, const Location *loc, size_t l)
{
    uint64_t id = loc && loc->n_line ? loc->line[l]->function_id : 0;
    struct function_row *fr = NULL;
    if (id)
        HASH_FIND(hh, b->functions, &id, sizeof id, fr);
    if (fr)
        return fr->row;
    char name[1024];
    const Function *f = id ? pprof_index_function(b->ix, id) : NULL;
    const char *raw = f ? pprof_index_string(b->ix, f->name) : "";
    if (*raw)
        demangle_short(raw, name, sizeof name);
    else
        snprintf(name, sizeof name, "0x%" PRIx64, loc ? loc->address : 0);
    size_t row = row_of(b, name);
    if (row == SIZE_MAX || !id)
        return row;
    if (!(fr = calloc(1, sizeof *fr)))
        return SIZE_MAX;
    fr->id = id;
    fr->row = row;
    HASH_ADD(hh, b->functions, id, sizeof fr->id, fr);
    return row;
}

/* Adds value v of sample number i to every function of its stack: flat to
 * the leaf (the innermost function inlined at the first location), cum
 * once to each. */
static int add_sample(struct building *b, const Sample *s, size_t i, int64_t v)
{
    bool leaf = true;
    for (size_t k = 0; k < s->n_location_id; k++) {
        const Location *loc = pprof_index_location(b->ix, s->location_id[k]);
        size_t n_names = loc && loc->n_line ? loc->n_line : 1;
        for (size_t l = 0; l < n_names; l++) {
            size_t row = frame_row(b, loc, l);
            if (row == SIZE_MAX)
                return -1;
            struct pprof_top_row *r = &b->t->rows[row];
            if (leaf)
                r->flat += v;
            leaf = false;
            if (b->seen[row] != i + 1) {
                b->seen[row] = i + 1;
                r->cum += v;
            }
        }
    }
    return 0;
}

static int by_flat(const void *x, const void *y)
{
    const struct pprof_top_row *a = x, *b = y;
    if (a->flat != b->flat)
        return a->flat > b->flat ? -1 : 1;
    if (a->cum != b->cum)
        return a->cum > b->cum ? -1 : 1;
    return strcmp(a->name, b->name);
}

int pprof_top_make(const Profile *p, struct pprof_top *t)
{
    memset(t, 0, sizeof *t);
    struct pprof_index ix;
    if (pprof_index_init(&ix, p) < 0)
        return -1;
    int type = shown_type(p, &ix);
    if (type < 0) { /* no sample type: nothing to show */
        pprof_index_free(&ix);
        return 0;
    }
    t->type = strdup(pprof_index_string(&ix, p->sample_type[type]->type));
    t->unit = strdup(pprof_index_string(&ix, p->sample_type[type]->unit));
    struct building b = {.ix = &ix, .t = t};
    int rc = t->type && t->unit ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < p->n_sample; i++) {
        const Sample *s = p->sample[i];
        int64_t v = (size_t)type < s->n_value ? s->value[type] : 0;
        if (v == 0)
            continue;
        t->total += v;
        t->n_samples++;
        rc = add_sample(&b, s, i, v);
    }
    struct node *n, *tmp;
    HASH_ITER(hh, b.nodes, n, tmp)
    {
        HASH_DEL(b.nodes, n);
        free(n); /* its name belongs to its row */
    }
    struct function_row *fr, *fr_tmp;
    HASH_ITER(hh, b.functions, fr, fr_tmp)
    {
        HASH_DEL(b.functions, fr);
        free(fr);
    }
    free(b.seen);
    pprof_index_free(&ix);
    if (rc < 0) {
        pprof_top_free(t);
        return -1;
    }
    if (t->n_rows)
        qsort(t->rows, t->n_rows, sizeof *t->rows, by_flat);
    return 0;
}

void pprof_top_free(struct pprof_top *t)
{
    for (size_t i = 0; i < t->n_rows; i++)
        free(t->rows[i].name);
    free(t->rows);
    free(t->type);
    free(t->unit);
    memset(t, 0, sizeof *t);
}
