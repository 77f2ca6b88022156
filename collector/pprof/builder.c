#include "pprof/pprof.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

typedef Perftools__Profiles__Profile Profile;
typedef Perftools__Profiles__ValueType ValueType;
typedef Perftools__Profiles__Sample Sample;
typedef Perftools__Profiles__Label Label;
typedef Perftools__Profiles__Mapping Mapping;
typedef Perftools__Profiles__Location Location;
typedef Perftools__Profiles__Line Line;
typedef Perftools__Profiles__Function Function;

struct string_entry {
    int64_t index;
    UT_hash_handle hh; /* keyed by the string_table entry */
};

struct mapping_entry {
    char *key; /* start, limit, offset, build id, path */
    uint64_t id;
    UT_hash_handle hh;
};

struct location_key {
    uint64_t mapping_id, address;
};
struct location_entry {
    struct location_key key;
    uint64_t id;
    UT_hash_handle hh;
};

struct function_key {
    int64_t name, filename;
};
struct function_entry {
    struct function_key key;
    uint64_t id;
    UT_hash_handle hh;
};

/* A growable array of pointers, as protobuf-c's repeated fields are. */
struct ptr_array {
    void **items;
    size_t n, cap;
};

struct pprof_builder {
    Profile profile;
    ValueType period_type;
    bool failed;

    char **strings;
    size_t n_strings, cap_strings;
    struct string_entry *string_index;

    struct ptr_array sample_types, samples, mappings, locations, functions;
    struct mapping_entry *mapping_index;
    struct location_entry *location_index;
    struct function_entry *function_index;
};

static bool ptr_array_push(struct ptr_array *a, void *item)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        void **items = realloc(a->items, cap * sizeof *items);
        if (!items)
            return false;
        a->items = items;
        a->cap = cap;
    }
    a->items[a->n++] = item;
    return true;
}

/* Pushes item, or frees it and marks the builder failed. */
static bool push_or_fail(struct pprof_builder *b, struct ptr_array *a, void *item)
{
    if (item && ptr_array_push(a, item))
        return true;
    free(item);
    b->failed = true;
    return false;
}

struct pprof_builder *pprof_builder_new(void)
{
    struct pprof_builder *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    Profile profile = PERFTOOLS__PROFILES__PROFILE__INIT;
    ValueType vt = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
    b->profile = profile;
    b->period_type = vt;
    pprof_string(b, "");
    if (b->failed) {
        pprof_builder_free(b);
        return NULL;
    }
    return b;
}

int64_t pprof_string(struct pprof_builder *b, const char *s)
{
    if (!s)
        s = "";
    struct string_entry *e;
    HASH_FIND_STR(b->string_index, s, e);
    if (e)
        return e->index;
    if (b->n_strings == b->cap_strings) {
        size_t cap = b->cap_strings ? 2 * b->cap_strings : 256;
        char **strings = realloc(b->strings, cap * sizeof *strings);
        if (!strings)
            goto fail;
        b->strings = strings;
        b->cap_strings = cap;
    }
    e = calloc(1, sizeof *e);
    char *copy = strdup(s);
    if (!e || !copy) {
        free(e);
        free(copy);
        goto fail;
    }
    e->index = (int64_t)b->n_strings;
    b->strings[b->n_strings++] = copy;
    HASH_ADD_KEYPTR(hh, b->string_index, copy, strlen(copy), e);
    return e->index;
fail:
    b->failed = true;
    return 0;
}

static ValueType *value_type_new(struct pprof_builder *b, const char *type, const char *unit)
{
    ValueType *vt = malloc(sizeof *vt);
    if (!vt)
        return NULL;
    ValueType init = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
    *vt = init;
    vt->type = pprof_string(b, type);
    vt->unit = pprof_string(b, unit);
    return vt;
}

void pprof_add_sample_type(struct pprof_builder *b, const char *type, const char *unit)
{
    push_or_fail(b, &b->sample_types, value_type_new(b, type, unit));
}

void pprof_set_period(struct pprof_builder *b, const char *type, const char *unit, int64_t period)
{
    b->period_type.type = pprof_string(b, type);
    b->period_type.unit = pprof_string(b, unit);
    b->profile.period_type = &b->period_type;
    b->profile.period = period;
}

void pprof_set_default_sample_type(struct pprof_builder *b, const char *type)
{
    b->profile.default_sample_type = pprof_string(b, type);
}

void pprof_set_time(struct pprof_builder *b, int64_t time_nanos, int64_t duration_nanos)
{
    b->profile.time_nanos = time_nanos;
    b->profile.duration_nanos = duration_nanos;
}

uint64_t pprof_mapping(struct pprof_builder *b, const struct proc_mapping *m)
{
    char build_id[2 * sizeof m->build_id + 1];
    hex_encode(build_id, m->build_id, m->build_id_len <= sizeof m->build_id ? m->build_id_len : 0);
    const char *path = m->path ? m->path : "";
    size_t klen = 3 * 17 + strlen(build_id) + 1 + strlen(path) + 1;
    char *key = malloc(klen);
    if (!key) {
        b->failed = true;
        return 0;
    }
    int kn = snprintf(key, klen, "%016llx%016llx%016llx %s %s", (unsigned long long)m->start,
                      (unsigned long long)m->limit, (unsigned long long)m->offset, build_id, path);
    struct mapping_entry *e;
    HASH_FIND(hh, b->mapping_index, key, (size_t)kn, e);
    if (e) {
        free(key);
        return e->id;
    }

    Mapping *pm = malloc(sizeof *pm);
    e = calloc(1, sizeof *e);
    if (!pm || !e) {
        free(pm);
        free(e);
        free(key);
        b->failed = true;
        return 0;
    }
    Mapping init = PERFTOOLS__PROFILES__MAPPING__INIT;
    *pm = init;
    pm->id = b->mappings.n + 1;
    pm->memory_start = m->start;
    pm->memory_limit = m->limit;
    pm->file_offset = m->offset;
    pm->filename = pprof_string(b, path);
    pm->build_id = pprof_string(b, build_id);
    if (!push_or_fail(b, &b->mappings, pm)) {
        free(e);
        free(key);
        return 0;
    }
    e->key = key;
    e->id = pm->id;
    HASH_ADD_KEYPTR(hh, b->mapping_index, e->key, (size_t)kn, e);
    return e->id;
}

static uint64_t function_id(struct pprof_builder *b, const char *name, const char *file)
{
    struct function_key key;
    memset(&key, 0, sizeof key);
    key.name = pprof_string(b, name);
    key.filename = pprof_string(b, file);
    struct function_entry *e;
    HASH_FIND(hh, b->function_index, &key, sizeof key, e);
    if (e)
        return e->id;
    Function *f = malloc(sizeof *f);
    e = calloc(1, sizeof *e);
    if (!f || !e) {
        free(f);
        free(e);
        b->failed = true;
        return 0;
    }
    Function init = PERFTOOLS__PROFILES__FUNCTION__INIT;
    *f = init;
    f->id = b->functions.n + 1;
    /* name == system_name: pprof demangles C++ names itself. */
    f->name = key.name;
    f->system_name = key.name;
    f->filename = key.filename;
    if (!push_or_fail(b, &b->functions, f)) {
        free(e);
        return 0;
    }
    e->key = key;
    e->id = f->id;
    HASH_ADD(hh, b->function_index, key, sizeof e->key, e);
    return e->id;
}

/* Fills loc's lines from the symbolizer; records on the mapping what the
 * symbolizer found, so pprof knows not to redo it. */
/* glibc's _FORTIFY_SOURCE wrappers (read, recv, poll, ... in
 * /usr/include/<arch>/bits/ headers) are inlined into every caller of those
 * functions in a distribution-built program; as frames they would name the
 * libc call instead of the code that made it, so they are left out, the way
 * the allocator's own entry points are. */
static bool is_libc_header_wrapper(const struct sym_frame *f)
{
    return f->file != NULL && strncmp(f->file, "/usr/include/", 13) == 0 &&
           strstr(f->file, "/bits/") != NULL && strstr(f->file, "/c++/") == NULL;
}

static void symbolize_location(struct pprof_builder *b, Location *loc, const struct proc_mapping *m,
                               uint64_t address)
{
    struct sym_frame frames[SYM_MAX_INLINE];
    int n = sym_lookup_inline(m, address, frames, SYM_MAX_INLINE);
    /* Only inlined frames (innermost first, never the enclosing function). */
    int skip = 0;
    while (skip < n - 1 && is_libc_header_wrapper(&frames[skip]))
        skip++;
    if (skip > 0) {
        memmove(frames, frames + skip, (size_t)(n - skip) * sizeof frames[0]);
        n -= skip;
    }
    if (n <= 0)
        return;
    loc->line = calloc((size_t)n, sizeof *loc->line);
    Line *lines = calloc((size_t)n, sizeof *lines);
    if (!loc->line || !lines) {
        free(loc->line);
        free(lines);
        loc->line = NULL;
        b->failed = true;
        return;
    }
    Mapping *pm = b->mappings.items[loc->mapping_id - 1];
    for (int i = 0; i < n; i++) {
        Line init = PERFTOOLS__PROFILES__LINE__INIT;
        lines[i] = init;
        lines[i].function_id = function_id(b, frames[i].function, frames[i].file);
        lines[i].line = frames[i].line;
        loc->line[i] = &lines[i];
        pm->has_functions = true;
        if (frames[i].file)
            pm->has_filenames = true;
        if (frames[i].line > 0)
            pm->has_line_numbers = pm->has_inline_frames = true;
    }
    loc->n_line = (size_t)n;
}

uint64_t pprof_location(struct pprof_builder *b, const struct proc_mapping *m, uint64_t mapping_id,
                        uint64_t address)
{
    if (mapping_id > b->mappings.n)
        mapping_id = 0;
    struct location_key key;
    memset(&key, 0, sizeof key);
    key.mapping_id = mapping_id;
    key.address = address;
    struct location_entry *e;
    HASH_FIND(hh, b->location_index, &key, sizeof key, e);
    if (e)
        return e->id;
    Location *loc = malloc(sizeof *loc);
    e = calloc(1, sizeof *e);
    if (!loc || !e) {
        free(loc);
        free(e);
        b->failed = true;
        return 0;
    }
    Location init = PERFTOOLS__PROFILES__LOCATION__INIT;
    *loc = init;
    loc->id = b->locations.n + 1;
    loc->mapping_id = mapping_id;
    loc->address = address;
    if (mapping_id != 0 && m)
        symbolize_location(b, loc, m, address);
    if (!ptr_array_push(&b->locations, loc)) {
        if (loc->n_line)
            free(loc->line[0]);
        free(loc->line);
        free(loc);
        free(e);
        b->failed = true;
        return 0;
    }
    e->key = key;
    e->id = loc->id;
    HASH_ADD(hh, b->location_index, key, sizeof e->key, e);
    return e->id;
}

uint64_t pprof_function_location(struct pprof_builder *b, const char *function, uint64_t address)
{
    Location *loc = malloc(sizeof *loc);
    Line *line = malloc(sizeof *line);
    Line **lines = malloc(sizeof *lines);
    if (!loc || !line || !lines || !ptr_array_push(&b->locations, loc)) {
        free(loc);
        free(line);
        free(lines);
        b->failed = true;
        return 0;
    }
    Location init = PERFTOOLS__PROFILES__LOCATION__INIT;
    *loc = init;
    loc->id = b->locations.n; /* pushed already */
    loc->address = address;
    Line line_init = PERFTOOLS__PROFILES__LINE__INIT;
    *line = line_init;
    line->function_id = function_id(b, function, NULL);
    lines[0] = line;
    loc->line = lines;
    loc->n_line = 1;
    return loc->id;
}

void pprof_add_sample(struct pprof_builder *b, const uint64_t *location_ids, size_t n_locations,
                      const int64_t *values, size_t n_values, const struct pprof_label *labels,
                      size_t n_labels)
{
    Sample *s = malloc(sizeof *s);
    uint64_t *ids = malloc((n_locations ? n_locations : 1) * sizeof *ids);
    int64_t *vals = malloc((n_values ? n_values : 1) * sizeof *vals);
    Label **label_ptrs = n_labels ? calloc(n_labels, sizeof *label_ptrs) : NULL;
    Label *label_store = n_labels ? calloc(n_labels, sizeof *label_store) : NULL;
    if (!s || !ids || !vals || (n_labels && (!label_ptrs || !label_store)) ||
        !ptr_array_push(&b->samples, s)) {
        free(s);
        free(ids);
        free(vals);
        free(label_ptrs);
        free(label_store);
        b->failed = true;
        return;
    }
    Sample init = PERFTOOLS__PROFILES__SAMPLE__INIT;
    *s = init;
    memcpy(ids, location_ids, n_locations * sizeof *ids);
    memcpy(vals, values, n_values * sizeof *vals);
    s->location_id = ids;
    s->n_location_id = n_locations;
    s->value = vals;
    s->n_value = n_values;
    for (size_t i = 0; i < n_labels; i++) {
        Label init_label = PERFTOOLS__PROFILES__LABEL__INIT;
        label_store[i] = init_label;
        label_store[i].key = pprof_string(b, labels[i].key);
        if (labels[i].str) {
            label_store[i].str = pprof_string(b, labels[i].str);
            label_ptrs[i] = &label_store[i];
            continue;
        }
        label_store[i].num = labels[i].num;
        if (labels[i].num_unit)
            label_store[i].num_unit = pprof_string(b, labels[i].num_unit);
        label_ptrs[i] = &label_store[i];
    }
    s->label = label_ptrs;
    s->n_label = n_labels;
}

int pprof_builder_encode(struct pprof_builder *b, uint8_t **out, size_t *len)
{
    if (b->failed)
        return -1;
    Profile *p = &b->profile;
    p->sample_type = (ValueType **)b->sample_types.items;
    p->n_sample_type = b->sample_types.n;
    p->sample = (Sample **)b->samples.items;
    p->n_sample = b->samples.n;
    p->mapping = (Mapping **)b->mappings.items;
    p->n_mapping = b->mappings.n;
    p->location = (Location **)b->locations.items;
    p->n_location = b->locations.n;
    p->function = (Function **)b->functions.items;
    p->n_function = b->functions.n;
    p->string_table = b->strings;
    p->n_string_table = b->n_strings;
    size_t size = perftools__profiles__profile__get_packed_size(p);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return -1;
    *len = perftools__profiles__profile__pack(p, buf);
    *out = buf;
    return 0;
}

static void free_ptr_array(struct ptr_array *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->items[i]);
    free(a->items);
}

void pprof_builder_free(struct pprof_builder *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->samples.n; i++) {
        Sample *s = b->samples.items[i];
        free(s->location_id);
        free(s->value);
        if (s->n_label)
            free(s->label[0]); /* the labels are one array */
        free(s->label);
    }
    for (size_t i = 0; i < b->locations.n; i++) {
        Location *loc = b->locations.items[i];
        if (loc->n_line)
            free(loc->line[0]); /* the lines are one array */
        free(loc->line);
    }
    free_ptr_array(&b->samples);
    free_ptr_array(&b->locations);
    free_ptr_array(&b->sample_types);
    free_ptr_array(&b->mappings);
    free_ptr_array(&b->functions);

    struct string_entry *se, *stmp;
    HASH_ITER(hh, b->string_index, se, stmp)
    {
        HASH_DEL(b->string_index, se);
        free(se);
    }
    for (size_t i = 0; i < b->n_strings; i++)
        free(b->strings[i]);
    free(b->strings);
    struct mapping_entry *me, *mtmp;
    HASH_ITER(hh, b->mapping_index, me, mtmp)
    {
        HASH_DEL(b->mapping_index, me);
        free(me->key);
        free(me);
    }
    struct location_entry *le, *ltmp;
    HASH_ITER(hh, b->location_index, le, ltmp)
    {
        HASH_DEL(b->location_index, le);
        free(le);
    }
    struct function_entry *fe, *ftmp;
    HASH_ITER(hh, b->function_index, fe, ftmp)
    {
        HASH_DEL(b->function_index, fe);
        free(fe);
    }
    free(b);
}

void pprof_set_time_since_start(struct pprof_builder *b, struct proc *const *procs, size_t n,
                                uint64_t now_ns)
{
    uint64_t earliest = now_ns;
    for (size_t i = 0; i < n; i++)
        if (procs[i]->start_ns && procs[i]->start_ns < earliest)
            earliest = procs[i]->start_ns;
    pprof_set_time(b, pprof_clamp_int64(now_ns), pprof_clamp_int64(now_ns - earliest));
}

struct pprof_builder *pprof_builder_start(const struct pprof_profile_type *type,
                                          struct proc *const *procs, size_t n, uint64_t now_ns,
                                          struct pprof_sink *out, char *err, size_t errlen)
{
    out->sample_types = type->sample_types;
    out->n_sample_types = type->n_sample_types;
    out->writer_default_type = type->default_type;
    const char *default_type = type->default_type;
    if (out->default_type) {
        size_t i = 0;
        while (i < type->n_sample_types && strcmp(type->sample_types[i][0], out->default_type))
            i++;
        if (i == type->n_sample_types) {
            snprintf(err, errlen, "%s has no sample type \"%s\"", pprof_sink_name(out),
                     out->default_type);
            return NULL;
        }
        default_type = type->sample_types[i][0];
    }
    struct pprof_builder *b = pprof_builder_new();
    if (!b) {
        snprintf(err, errlen, "cannot build %s: out of memory", pprof_sink_name(out));
        return NULL;
    }
    for (size_t i = 0; i < type->n_sample_types; i++)
        pprof_add_sample_type(b, type->sample_types[i][0], type->sample_types[i][1]);
    pprof_set_period(b, type->period_type, type->period_unit, type->period);
    pprof_set_default_sample_type(b, default_type);
    pprof_set_time_since_start(b, procs, n, now_ns);
    return b;
}

int pprof_builder_write(struct pprof_builder *b, struct pprof_sink *out, char *err, size_t errlen)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = pprof_builder_encode(b, &data, &len);
    pprof_builder_free(b);
    if (rc != 0) {
        snprintf(err, errlen, "cannot build %s: out of memory", pprof_sink_name(out));
        return -1;
    }
    rc = pprof_sink_put(out, data, len, err, errlen);
    free(data);
    return rc;
}

int pprof_builder_finish(struct pprof_builder *b, int build_rc, struct pprof_sink *out, char *err,
                         size_t errlen)
{
    if (build_rc != 0) {
        pprof_builder_free(b);
        snprintf(err, errlen, "cannot build %s: out of memory", pprof_sink_name(out));
        return -1;
    }
    return pprof_builder_write(b, out, err, errlen);
}
