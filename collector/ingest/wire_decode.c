#include "ingest/ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>
#include <ppx/wire.h>

#define HEADER_SIZE sizeof(struct wire_header)
#define HELLO_MAX (sizeof(struct wire_hello) + 2 * WIRE_MAX_PATH)
#define MAPPING_MAX (sizeof(struct wire_mapping) + WIRE_MAX_BUILD_ID + WIRE_MAX_PATH)
#define STACK_MAX (sizeof(struct wire_stack) + WIRE_MAX_DEPTH * sizeof(uint64_t))
#define TASK_MAX (sizeof(struct wire_task) + WIRE_MAX_DEPTH * sizeof(uint64_t))
/* A partial record buffer larger than this is released once the record is
 * done, so an idle connection does not sit on megabytes. */
#define KEEP_BUFFER (64u << 10)

enum state {
    EXPECT_HELLO,
    RECORDS,
    GOODBYE_SEEN,
    FAILED,
};

/* Mapping id -> index in proc->mappings, to deduplicate in O(1). */
struct mapping_id {
    uint32_t id;
    size_t index;
    UT_hash_handle hh;
};

/* Frees reported beyond what was allocated, per stack. The target reads its
 * alloc and free counters without stopping its threads, so one delta can
 * carry a free whose allocation only arrives with the next delta. Such
 * frees are clamped (the stored free figures never exceed the alloc ones,
 * so in-use is never negative) and the excess is carried here and applied
 * as soon as the allocations catch up, so no figure is lost. */
struct free_excess {
    uint32_t stack_id;
    uint64_t objects, bytes;
    UT_hash_handle hh;
};

/* (site id, stack id) -> index in the site's stacks array: a site may
 * collect thousands of stacks, and every IO_STACKS entry looks one up. */
struct io_stack_key {
    uint32_t site_id, stack_id;
};
struct io_stack_index {
    struct io_stack_key key;
    size_t index;
    UT_hash_handle hh;
};

struct wire_decoder {
    struct proc_table *table;
    struct proc *proc;
    uint32_t peer_pid;
    enum state state;

    uint8_t header[HEADER_SIZE];
    size_t header_have;
    bool in_payload;
    uint32_t type, length;
    uint8_t *buf;
    size_t have, cap;

    struct mapping_id *mapping_ids;
    struct free_excess *excess;
    size_t n_stacks;
    uint64_t n_frames;
    struct io_stack_index *io_stack_index; /* its count: the (site, stack) pairs held */

    char err[320];
    bool broke_protocol; /* failed on bad data, not on a cut stream */
    unsigned hello_seq;  /* proc_table_hellos() after our HELLO */
    uint64_t order;      /* wire_decoder_set_order(); 0: none */
};

static const char *type_name(uint32_t type)
{
    switch (type) {
    case WIRE_HELLO:
        return "HELLO";
    case WIRE_MAPPING:
        return "MAPPING";
    case WIRE_STACK:
        return "STACK";
    case WIRE_HEAP_DELTA:
        return "HEAP_DELTA";
    case WIRE_GOODBYE:
        return "GOODBYE";
    case WIRE_IO_SITE:
        return "IO_SITE";
    case WIRE_IO_DELTA:
        return "IO_DELTA";
    case WIRE_IO_ERRNO:
        return "IO_ERRNO";
    case WIRE_IO_STACKS:
        return "IO_STACKS";
    case WIRE_THREAD:
        return "THREAD";
    case WIRE_CPU_SAMPLES:
        return "CPU_SAMPLES";
    case WIRE_FLUSHED:
        return "FLUSHED";
    case WIRE_BLOCK_DELTA:
        return "BLOCK_DELTA";
    case WIRE_MUTEX_DELTA:
        return "MUTEX_DELTA";
    case WIRE_TASK:
        return "TASK";
    case WIRE_TASKS_END:
        return "TASKS_END";
    default:
        return "unknown";
    }
}

static void who(const struct wire_decoder *d, char *out, size_t outlen)
{
    if (d->proc)
        snprintf(out, outlen, "pid %u", d->proc->pid);
    else if (d->peer_pid)
        snprintf(out, outlen, "pid %u", d->peer_pid);
    else
        snprintf(out, outlen, "connection");
}

static void stop_feeding(struct wire_decoder *d)
{
    if (d->proc && proc_table_owner(d->proc) == d) {
        d->proc->connected = false;
        proc_table_set_owner(d->proc, NULL);
    }
}

static void vfail(struct wire_decoder *d, bool broke_protocol, const char *fmt, va_list ap)
{
    char w[32], msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    who(d, w, sizeof w);
    snprintf(d->err, sizeof d->err, "ppx: %s: %s", w, msg);
    d->broke_protocol = broke_protocol;
    /* A process whose streams keep breaking (a program that writes into
     * every descriptor now and then) is said once, not at every reconnection. */
    if (broke_protocol && d->proc && proc_table_owner(d->proc) == d &&
        !proc_table_first_corruption(d->proc))
        d->err[0] = '\0';
    stop_feeding(d);
    d->state = FAILED;
}

/* Fails the stream with "ppx: <who>: <message>". The process keeps what it
 * sent before, and may reconnect: a new connection starts with HELLO and
 * resends its whole state, so whatever garbage broke this one (a program
 * that wrote into our socket, say) is left behind. Returns -1. */
static int protocol_error(struct wire_decoder *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(d, true, fmt, ap);
    va_end(ap);
    return -1;
}

/* A stream that is no longer the process's: closed, nothing of it
 * applied, neither a protocol error nor the process's end, and nothing
 * to say (the process's newer stream says what there is). */
static int stale_stream(struct wire_decoder *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(d, false, fmt, ap);
    va_end(ap);
    d->err[0] = '\0';
    return -1;
}

/* "bad <TYPE> record: <reason>" */
static int record_error(struct wire_decoder *d, const char *fmt, ...)
{
    char reason[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return protocol_error(d, "bad %s record: %s", type_name(d->type), reason);
}

/* A record's payload of exactly size bytes, into out; -1 (said) else. */
static int read_exact(struct wire_decoder *d, const uint8_t *p, size_t len, void *out, size_t size)
{
    if (len != size) {
        record_error(d, "length %zu, not %zu", len, size);
        return -1;
    }
    memcpy(out, p, size);
    return 0;
}

/* A record's fixed part, the first size bytes of its payload, into out;
 * -1 (said) when the payload is shorter. */
static inline __attribute__((always_inline)) int
read_fixed_part(struct wire_decoder *d, const uint8_t *p, size_t len, void *out, size_t size)
{
    if (len < size) {
        record_error(d, "length %zu is shorter than the fixed part (%zu)", len, size);
        return -1;
    }
    memcpy(out, p, size);
    return 0;
}

struct wire_decoder *wire_decoder_new(struct proc_table *t, uint32_t peer_pid)
{
    struct wire_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->table = t;
    d->peer_pid = peer_pid;
    d->state = EXPECT_HELLO;
    return d;
}

void wire_decoder_set_order(struct wire_decoder *d, uint64_t order)
{
    d->order = order;
}

static void free_side_tables(struct wire_decoder *d)
{
    struct mapping_id *m, *mtmp;
    HASH_ITER(hh, d->mapping_ids, m, mtmp)
    {
        HASH_DEL(d->mapping_ids, m);
        free(m);
    }
    struct free_excess *x, *xtmp;
    HASH_ITER(hh, d->excess, x, xtmp)
    {
        HASH_DEL(d->excess, x);
        free(x);
    }
    struct io_stack_index *ix, *ixtmp;
    HASH_ITER(hh, d->io_stack_index, ix, ixtmp)
    {
        HASH_DEL(d->io_stack_index, ix);
        free(ix);
    }
}

void wire_decoder_free(struct wire_decoder *d)
{
    if (!d)
        return;
    stop_feeding(d);
    free_side_tables(d);
    free(d->buf);
    free(d);
}

const char *wire_decoder_error(const struct wire_decoder *d)
{
    return d->err;
}

struct proc *wire_decoder_proc(const struct wire_decoder *d)
{
    return d->proc;
}

struct proc *wire_decoder_ended_proc(const struct wire_decoder *d)
{
    if (!d->proc)
        return NULL;
    const void *owner = proc_table_owner(d->proc);
    /* (unowned, but fed by a newer connection since ours: that one's end
     * was the process's) */
    return owner == d || (owner == NULL && proc_table_hellos(d->proc) == d->hello_seq) ? d->proc
                                                                                       : NULL;
}

bool wire_decoder_failed(const struct wire_decoder *d)
{
    return d->state == FAILED;
}

bool wire_decoder_broke_protocol(const struct wire_decoder *d)
{
    return d->state == FAILED && d->broke_protocol;
}

bool wire_decoder_said_goodbye(const struct wire_decoder *d)
{
    return d->state == GOODBYE_SEEN;
}

static bool has_nul(const uint8_t *p, size_t n)
{
    return memchr(p, 0, n) != NULL;
}

static char *dup_string(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* Validates a HELLO record into *h: 0, or the record error. */
static int check_hello(struct wire_decoder *d, const uint8_t *p, size_t len, struct wire_hello *out)
{
    struct wire_hello h;
    if (read_fixed_part(d, p, len, &h, sizeof h) < 0)
        return -1;
    if (h.magic != WIRE_MAGIC)
        return record_error(d, "bad magic 0x%08x (not a ppx stream)", h.magic);
    if (h.version != WIRE_VERSION)
        return record_error(d, "protocol version %u, this ppx speaks version %u", h.version,
                            WIRE_VERSION);
    if (h.pid == 0)
        return record_error(d, "pid 0");
    if (h.sample_rate == 0)
        return record_error(d, "sample rate 0");
    if (h.max_depth < 1 || h.max_depth > WIRE_MAX_DEPTH)
        return record_error(d, "max depth %u outside 1..%u", h.max_depth, WIRE_MAX_DEPTH);
    if (h.exe_len > WIRE_MAX_PATH)
        return record_error(d, "executable path of %u bytes exceeds %u", h.exe_len, WIRE_MAX_PATH);
    if (h.cmdline_len > WIRE_MAX_PATH)
        return record_error(d, "command line of %u bytes exceeds %u", h.cmdline_len, WIRE_MAX_PATH);
    if (h.flags & ~WIRE_HELLO_CPU_FIXED)
        return record_error(d, "unknown flags 0x%x", h.flags & ~WIRE_HELLO_CPU_FIXED);
    if ((uint64_t)sizeof h + h.exe_len + h.cmdline_len != len)
        return record_error(
            d, "length %zu, but the fixed part, exe_len %u and cmdline_len %u make %zu", len,
            h.exe_len, h.cmdline_len, sizeof h + h.exe_len + h.cmdline_len);
    if (has_nul(p + sizeof h, h.exe_len))
        return record_error(d, "executable path contains a NUL byte");
    *out = h;
    return 0;
}

static int apply_hello(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    struct wire_hello h = {0}; /* set by check_hello; GCC 12 cannot always tell */
    if (check_hello(d, p, len, &h) < 0)
        return -1;
    const uint8_t *exe = p + sizeof h, *cmdline = exe + h.exe_len;
    d->peer_pid = h.pid; /* name it by its own pid from here on */
    struct proc *known = proc_table_find(d->table, h.pid, h.start_ns);
    if (known && d->order != 0 && proc_table_hello_order(known) > d->order)
        return stale_stream(d, "an older connection of the process, read after its newer one: "
                               "ignored");
    char *exe_s = dup_string(exe, h.exe_len);
    char *cmdline_s = dup_string(cmdline, h.cmdline_len);
    bool existed;
    struct proc *proc =
        (exe_s && cmdline_s) ? proc_table_hello(d->table, h.pid, h.start_ns, &existed) : NULL;
    if (!proc) {
        free(exe_s);
        free(cmdline_s);
        return protocol_error(d, "out of memory for a new process");
    }
    /* A reconnect resends everything from zero; the older connection, if
     * still open, is superseded and will be closed on its next record. */
    proc->ppid = h.ppid;
    proc->sample_rate = h.sample_rate;
    proc->max_depth = h.max_depth;
    proc->exe = exe_s;
    proc->cmdline = cmdline_s;
    proc->cmdline_len = h.cmdline_len;
    proc->connected = true;
    proc->said_goodbye = false;
    proc->cpu_fixed = (h.flags & WIRE_HELLO_CPU_FIXED) != 0;
    proc_table_set_owner(proc, d);
    if (d->order != 0)
        proc_table_set_hello_order(proc, d->order);
    d->proc = proc;
    d->hello_seq = proc_table_hellos(proc);
    d->state = RECORDS;
    return 0;
}

static bool same_mapping(const struct proc_mapping *m, const struct wire_mapping *w,
                         const uint8_t *build_id, const uint8_t *path)
{
    return m->is_main == ((w->flags & WIRE_MAPPING_MAIN) != 0) && m->start == w->start &&
           m->limit == w->limit && m->offset == w->offset && m->load_bias == w->load_bias &&
           m->build_id_len == w->build_id_len &&
           memcmp(m->build_id, build_id, w->build_id_len) == 0 && strlen(m->path) == w->path_len &&
           memcmp(m->path, path, w->path_len) == 0;
}

/* Validates a MAPPING record into *out: 0, or the record error. */
static int check_mapping(struct wire_decoder *d, const uint8_t *p, size_t len,
                         struct wire_mapping *out)
{
    struct wire_mapping w;
    if (read_fixed_part(d, p, len, &w, sizeof w) < 0)
        return -1;
    if (w.build_id_len > WIRE_MAX_BUILD_ID)
        return record_error(d, "build id of %u bytes exceeds %u", w.build_id_len,
                            WIRE_MAX_BUILD_ID);
    if (w.path_len < 1 || w.path_len > WIRE_MAX_PATH)
        return record_error(d, "path length %u outside 1..%u", w.path_len, WIRE_MAX_PATH);
    if ((uint64_t)sizeof w + w.build_id_len + w.path_len != len)
        return record_error(
            d, "length %zu, but the fixed part, build_id_len %u and path_len %u make %zu", len,
            w.build_id_len, w.path_len, sizeof w + w.build_id_len + w.path_len);
    if (w.flags & ~WIRE_MAPPING_MAIN)
        return record_error(d, "unknown flags 0x%x", w.flags);
    if (w.start >= w.limit)
        return record_error(d, "mapping %u has an empty range 0x%llx..0x%llx", w.id,
                            (unsigned long long)w.start, (unsigned long long)w.limit);
    if (has_nul(p + sizeof w + w.build_id_len, w.path_len))
        return record_error(d, "path contains a NUL byte");
    *out = w;
    return 0;
}

/* Room for one more mapping in p: 0, or -1 when out of memory. */
static int grow_mappings(struct proc *p)
{
    if (p->n_mappings < p->cap_mappings)
        return 0;
    size_t cap = p->cap_mappings ? 2 * p->cap_mappings : 16;
    struct proc_mapping *grown = realloc(p->mappings, cap * sizeof *grown);
    if (!grown)
        return -1;
    p->mappings = grown;
    p->cap_mappings = cap;
    return 0;
}

static int apply_mapping(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    struct wire_mapping w;
    if (check_mapping(d, p, len, &w) < 0)
        return -1;
    const uint8_t *build_id = p + sizeof w, *path = build_id + w.build_id_len;
    struct proc *proc = d->proc;
    struct mapping_id *known;
    HASH_FIND(hh, d->mapping_ids, &w.id, sizeof w.id, known);
    if (known) {
        if (same_mapping(&proc->mappings[known->index], &w, build_id, path))
            return 0;
        return record_error(d, "mapping id %u redefined with different contents", w.id);
    }
    if (proc->n_mappings >= PROC_MAX_MAPPINGS)
        return protocol_error(d, "more than %u mappings; closing the connection",
                              PROC_MAX_MAPPINGS);
    if (grow_mappings(proc) < 0)
        return protocol_error(d, "out of memory for mappings");
    known = calloc(1, sizeof *known);
    char *path_s = dup_string(path, w.path_len);
    if (!known || !path_s) {
        free(known);
        free(path_s);
        return protocol_error(d, "out of memory for mappings");
    }
    struct proc_mapping *m = &proc->mappings[proc->n_mappings];
    memset(m, 0, sizeof *m);
    m->id = w.id;
    m->is_main = (w.flags & WIRE_MAPPING_MAIN) != 0;
    m->start = w.start;
    m->limit = w.limit;
    m->offset = w.offset;
    m->load_bias = w.load_bias;
    m->path = path_s;
    memcpy(m->build_id, build_id, w.build_id_len);
    m->build_id_len = w.build_id_len;
    known->id = w.id;
    known->index = proc->n_mappings++;
    HASH_ADD(hh, d->mapping_ids, id, sizeof known->id, known);
    return 0;
}

static int apply_stack(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    struct wire_stack w;
    if (read_fixed_part(d, p, len, &w, sizeof w) < 0)
        return -1;
    if (w.depth < 1 || w.depth > WIRE_MAX_DEPTH)
        return record_error(d, "depth %u", w.depth);
    if (w.depth > d->proc->max_depth)
        return record_error(d, "depth %u exceeds the max depth %u announced in HELLO", w.depth,
                            d->proc->max_depth);
    if (sizeof w + (uint64_t)w.depth * sizeof(uint64_t) != len)
        return record_error(d, "length %zu does not match depth %u (%zu bytes)", len, w.depth,
                            sizeof w + w.depth * sizeof(uint64_t));
    const uint8_t *pcs = p + sizeof w;

    struct proc_stack *s;
    HASH_FIND(hh, d->proc->stacks, &w.id, sizeof w.id, s);
    if (s) {
        if (s->depth == w.depth && memcmp(s->pcs, pcs, w.depth * sizeof(uint64_t)) == 0)
            return 0;
        return record_error(d, "stack id %u redefined with different frames", w.id);
    }
    if (d->n_stacks >= PROC_MAX_STACKS || d->n_frames + w.depth > PROC_MAX_FRAMES)
        return protocol_error(d, "more than %u stacks or %u frames; closing the connection",
                              PROC_MAX_STACKS, PROC_MAX_FRAMES);
    s = calloc(1, sizeof *s);
    uint64_t *copy = malloc(w.depth * sizeof(uint64_t));
    if (!s || !copy) {
        free(s);
        free(copy);
        return protocol_error(d, "out of memory for stacks");
    }
    memcpy(copy, pcs, w.depth * sizeof(uint64_t));
    s->id = w.id;
    s->depth = w.depth;
    s->pcs = copy;
    HASH_ADD(hh, d->proc->stacks, id, sizeof s->id, s);
    d->n_stacks++;
    d->n_frames += w.depth;
    return 0;
}

/* Counters saturate: real figures cannot reach 2^64, and refusing the
 * record halfway would leave half of it applied. */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

static void add_clamped(uint64_t *alloc, uint64_t *freed, uint64_t *excess, uint64_t d_alloc,
                        uint64_t d_free)
{
    *alloc = add_sat(*alloc, d_alloc);
    uint64_t want = add_sat(add_sat(*freed, *excess), d_free);
    *freed = want < *alloc ? want : *alloc;
    *excess = want - *freed;
}

/* s's counters once e is applied, and the excess of frees kept for it. */
static void entry_result(const struct wire_decoder *d, const struct proc_stack *s,
                         const struct wire_heap_entry *e, struct proc_heap_counts *after,
                         struct free_excess *excess)
{
    const struct free_excess *x;
    HASH_FIND(hh, d->excess, &s->id, sizeof s->id, x);
    excess->objects = x ? x->objects : 0;
    excess->bytes = x ? x->bytes : 0;
    *after =
        (struct proc_heap_counts){s->alloc_objects, s->alloc_bytes, s->free_objects, s->free_bytes};
    add_clamped(&after->alloc_objects, &after->free_objects, &excess->objects, e->alloc_objects,
                e->free_objects);
    add_clamped(&after->alloc_bytes, &after->free_bytes, &excess->bytes, e->alloc_bytes,
                e->free_bytes);
}

/* What e would move the heap in use by (scaled). */
static double entry_inuse_change(const struct wire_decoder *d, const struct proc_stack *s,
                                 const struct wire_heap_entry *e)
{
    struct proc_heap_counts before = {s->alloc_objects, s->alloc_bytes, s->free_objects,
                                      s->free_bytes};
    struct proc_heap_counts after;
    struct free_excess excess;
    entry_result(d, s, e, &after, &excess);
    return proc_heap_inuse_change(d->proc, &before, &after);
}

static int apply_entry(struct wire_decoder *d, struct proc_stack *s,
                       const struct wire_heap_entry *e)
{
    struct free_excess *x;
    HASH_FIND(hh, d->excess, &s->id, sizeof s->id, x);
    struct proc_heap_counts before = {s->alloc_objects, s->alloc_bytes, s->free_objects,
                                      s->free_bytes};
    struct proc_heap_counts after;
    struct free_excess none = {0};
    entry_result(d, s, e, &after, &none);
    s->alloc_objects = after.alloc_objects;
    s->alloc_bytes = after.alloc_bytes;
    s->free_objects = after.free_objects;
    s->free_bytes = after.free_bytes;
    proc_totals_heap(d->proc, &before, &after);
    if (x) {
        x->objects = none.objects;
        x->bytes = none.bytes;
        return 0;
    }
    if (none.objects == 0 && none.bytes == 0)
        return 0;
    x = malloc(sizeof *x);
    if (!x)
        return -1;
    *x = none;
    x->stack_id = s->id;
    HASH_ADD(hh, d->excess, stack_id, sizeof x->stack_id, x);
    return 0;
}

/* The count header shared by HEAP_DELTA and the IO_* records: a uint32_t
 * count, 4 bytes of zero, then count entries of esize bytes. */
static int counted_entries(struct wire_decoder *d, const uint8_t *p, size_t len, size_t esize,
                           uint32_t *count)
{
    struct wire_heap_delta h;
    if (read_fixed_part(d, p, len, &h, sizeof h) < 0)
        return -1;
    if (h.reserved != 0)
        return record_error(d, "reserved field is %u, not 0", h.reserved);
    if (sizeof h + (uint64_t)h.count * esize != len)
        return record_error(d, "length %zu does not match count %u (%llu bytes)", len, h.count,
                            (unsigned long long)(sizeof h + (uint64_t)h.count * esize));
    *count = h.count;
    return 0;
}

#define ENTRY(p, i, esize) ((p) + sizeof(struct wire_heap_delta) + (size_t)(i) * (esize))

static int apply_heap_delta(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    const size_t esize = sizeof(struct wire_heap_entry);
    uint32_t count;
    if (counted_entries(d, p, len, esize, &count) < 0)
        return -1;

    /* Check every entry before applying any, so a bad record changes nothing;
     * and, when a peak is pending, sum what they do to the heap in use: a
     * fall makes the peak's copy first (model.h). */
    bool peak_pending = proc_peak_pending(d->proc);
    double change = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct wire_heap_entry e;
        memcpy(&e, ENTRY(p, i, esize), esize);
        if (e.reserved != 0)
            return record_error(d, "entry %u: reserved field is %u, not 0", i, e.reserved);
        struct proc_stack *s;
        HASH_FIND(hh, d->proc->stacks, &e.stack_id, sizeof e.stack_id, s);
        if (!s)
            return record_error(d, "entry %u: unknown stack id %u", i, e.stack_id);
        if (peak_pending)
            change += entry_inuse_change(d, s, &e);
    }
    if (peak_pending)
        proc_peak_before_delta(d->proc, change);
    for (uint32_t i = 0; i < count; i++) {
        struct wire_heap_entry e;
        memcpy(&e, ENTRY(p, i, esize), esize);
        struct proc_stack *s;
        HASH_FIND(hh, d->proc->stacks, &e.stack_id, sizeof e.stack_id, s);
        if (apply_entry(d, s, &e) < 0)
            return protocol_error(d, "out of memory for counters");
    }
    proc_peak_after_delta(d->proc, realtime_ns());
    return 0;
}

/* ---- contention: the block and mutex profiles ---------------------------- */

static int apply_contention_delta(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    const size_t esize = sizeof(struct wire_contention_entry);
    uint32_t count;
    if (counted_entries(d, p, len, esize, &count) < 0)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        struct wire_contention_entry e;
        memcpy(&e, ENTRY(p, i, esize), esize);
        if (e.reserved != 0)
            return record_error(d, "entry %u: reserved field is %u, not 0", i, e.reserved);
        struct proc_stack *s;
        HASH_FIND(hh, d->proc->stacks, &e.stack_id, sizeof e.stack_id, s);
        if (!s)
            return record_error(d, "entry %u: unknown stack id %u", i, e.stack_id);
    }
    bool block = d->type == WIRE_BLOCK_DELTA;
    for (uint32_t i = 0; i < count; i++) {
        struct wire_contention_entry e;
        memcpy(&e, ENTRY(p, i, esize), esize);
        struct proc_stack *s;
        HASH_FIND(hh, d->proc->stacks, &e.stack_id, sizeof e.stack_id, s);
        struct proc_contention *c = block ? &s->block : &s->mutex;
        c->contentions = add_sat(c->contentions, e.contentions);
        c->delay_ns = add_sat(c->delay_ns, e.delay_ns);
    }
    return 0;
}

/* ---- I/O call audits ---------------------------------------------------- */

static struct proc_io_site *find_site(const struct proc *proc, uint32_t id)
{
    struct proc_io_site *site;
    HASH_FIND(hh, proc->io_sites, &id, sizeof id, site);
    return site;
}

static bool same_site(const struct proc_io_site *s, const struct wire_io_site *w)
{
    return s->call == w->call && s->fd_type == w->fd_type && s->family == w->family &&
           s->socktype == w->socktype && s->caller_pc == w->caller_pc;
}

static int apply_io_site(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    struct wire_io_site w;
    if (read_exact(d, p, len, &w, sizeof w) < 0)
        return -1;
    if (w.call < 1 || w.call >= WIRE_IO_CALL_MAX)
        return record_error(d, "site %u: call %u outside 1..%u", w.id, w.call,
                            WIRE_IO_CALL_MAX - 1);
    if (w.fd_type > WIRE_FD_OTHER)
        return record_error(d, "site %u: descriptor type %u outside 0..%u", w.id, w.fd_type,
                            WIRE_FD_OTHER);
    if (w.family > WIRE_FAMILY_OTHER)
        return record_error(d, "site %u: socket family %u outside 0..%u", w.id, w.family,
                            WIRE_FAMILY_OTHER);
    if (w.socktype > WIRE_SOCK_OTHER)
        return record_error(d, "site %u: socket type %u outside 0..%u", w.id, w.socktype,
                            WIRE_SOCK_OTHER);
    if (w.fd_type != WIRE_FD_SOCKET && (w.family != 0 || w.socktype != 0))
        return record_error(d,
                            "site %u: socket family %u and type %u on a descriptor of type %u, "
                            "not a socket",
                            w.id, w.family, w.socktype, w.fd_type);

    struct proc_io_site *site = find_site(d->proc, w.id);
    if (site) {
        if (same_site(site, &w))
            return 0;
        return record_error(d, "site id %u redefined with different contents", w.id);
    }
    if (HASH_COUNT(d->proc->io_sites) >= PROC_MAX_IO_SITES)
        return protocol_error(d, "more than %u I/O sites; closing the connection",
                              PROC_MAX_IO_SITES);
    site = calloc(1, sizeof *site);
    if (!site)
        return protocol_error(d, "out of memory for I/O sites");
    site->id = w.id;
    site->call = w.call;
    site->fd_type = w.fd_type;
    site->family = w.family;
    site->socktype = w.socktype;
    site->caller_pc = w.caller_pc;
    HASH_ADD(hh, d->proc->io_sites, id, sizeof site->id, site);
    return 0;
}

static int apply_io_delta(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    const size_t esize = sizeof(struct wire_io_entry);
    uint32_t count;
    if (counted_entries(d, p, len, esize, &count) < 0)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        struct wire_io_entry e;
        memcpy(&e, ENTRY(p, i, esize), esize);
        if (e.reserved != 0)
            return record_error(d, "entry %u: reserved field is %u, not 0", i, e.reserved);
        if (!find_site(d->proc, e.site_id))
            return record_error(d, "entry %u: unknown site id %u", i, e.site_id);
    }
    /* No check that errors + eagain <= calls: the target reads its counters
     * without stopping its threads, so an increment may show up one delta
     * before another; the cumulative figures agree in the end. */
    for (uint32_t i = 0; i < count; i++) {
        struct wire_io_entry e;
        memcpy(&e, ENTRY(p, i, esize), esize);
        struct proc_io_site *s = find_site(d->proc, e.site_id);
        s->calls = add_sat(s->calls, e.calls);
        s->time_ns = add_sat(s->time_ns, e.time_ns);
        s->bytes = add_sat(s->bytes, e.bytes);
        d->proc->totals.io_calls = add_sat(d->proc->totals.io_calls, e.calls);
        d->proc->totals.io_bytes = add_sat(d->proc->totals.io_bytes, e.bytes);
        s->messages = add_sat(s->messages, e.messages);
        s->errors = add_sat(s->errors, e.errors);
        s->eagain = add_sat(s->eagain, e.eagain);
    }
    return 0;
}

/* The arrays of a site grow by doubling from 4; their capacity follows
 * from their length, so model.h needs no capacity fields. */
static bool needs_growth(size_t n)
{
    return n == 0 || (n >= 4 && (n & (n - 1)) == 0);
}

static void *grow(void *array, size_t n, size_t size)
{
    return realloc(array, (n == 0 ? 4 : 2 * n) * size);
}

/* Adds calls to err's count at site s. Beyond PROC_MAX_IO_ERRNOS
 * distinct errnos the calls stay counted in the site's errors, unnamed. */
static int add_io_errno(struct wire_decoder *d, struct proc_io_site *s, uint32_t err,
                        uint64_t calls)
{
    for (size_t i = 0; i < s->n_errnos; i++)
        if (s->errnos[i].err == err) {
            s->errnos[i].calls = add_sat(s->errnos[i].calls, calls);
            return 0;
        }
    if (s->n_errnos >= PROC_MAX_IO_ERRNOS) {
        proc_table_count_io_drops(d->proc, 0, calls);
        return 0;
    }
    if (needs_growth(s->n_errnos)) {
        struct proc_io_errno *grown = grow(s->errnos, s->n_errnos, sizeof *grown);
        if (!grown)
            return -1;
        s->errnos = grown;
    }
    s->errnos[s->n_errnos++] = (struct proc_io_errno){.err = err, .calls = calls};
    return 0;
}

static int apply_io_errno(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    const size_t esize = sizeof(struct wire_io_errno_entry);
    uint32_t count;
    if (counted_entries(d, p, len, esize, &count) < 0)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        struct wire_io_errno_entry e;
        memcpy(&e, ENTRY(p, i, esize), esize);
        if (!find_site(d->proc, e.site_id))
            return record_error(d, "entry %u: unknown site id %u", i, e.site_id);
        if (e.err < 1 || e.err > 4095)
            return record_error(d, "entry %u: errno %u outside 1..4095", i, e.err);
    }
    for (uint32_t i = 0; i < count; i++) {
        struct wire_io_errno_entry e;
        memcpy(&e, ENTRY(p, i, esize), esize);
        if (add_io_errno(d, find_site(d->proc, e.site_id), e.err, e.calls) < 0)
            return protocol_error(d, "out of memory for I/O errno counts");
    }
    return 0;
}

/* Adds samples to stack_id's count at site s. Beyond the limits the
 * samples are dropped: the site's exact figures are then divided among
 * the stacks it has. */
static int add_io_stack(struct wire_decoder *d, struct proc_io_site *s, uint32_t stack_id,
                        uint64_t samples)
{
    struct io_stack_key key = {.site_id = s->id, .stack_id = stack_id};
    struct io_stack_index *ix;
    HASH_FIND(hh, d->io_stack_index, &key, sizeof key, ix);
    if (ix) {
        s->stacks[ix->index].samples = add_sat(s->stacks[ix->index].samples, samples);
        return 0;
    }
    if (s->n_stacks >= PROC_MAX_IO_SITE_STACKS ||
        HASH_COUNT(d->io_stack_index) >= PROC_MAX_IO_STACK_ENTRIES) {
        proc_table_count_io_drops(d->proc, samples, 0);
        return 0;
    }
    if (needs_growth(s->n_stacks)) {
        struct proc_io_stack *grown = grow(s->stacks, s->n_stacks, sizeof *grown);
        if (!grown)
            return -1;
        s->stacks = grown;
    }
    ix = malloc(sizeof *ix);
    if (!ix)
        return -1;
    ix->key = key;
    ix->index = s->n_stacks;
    HASH_ADD(hh, d->io_stack_index, key, sizeof ix->key, ix);
    s->stacks[s->n_stacks++] = (struct proc_io_stack){.stack_id = stack_id, .samples = samples};
    return 0;
}

static int apply_io_stacks(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    const size_t esize = sizeof(struct wire_io_stack_entry);
    uint32_t count;
    if (counted_entries(d, p, len, esize, &count) < 0)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        struct wire_io_stack_entry e;
        memcpy(&e, ENTRY(p, i, esize), esize);
        const struct proc_io_site *site = find_site(d->proc, e.site_id);
        if (!site)
            return record_error(d, "entry %u: unknown site id %u", i, e.site_id);
        struct proc_stack *st;
        HASH_FIND(hh, d->proc->stacks, &e.stack_id, sizeof e.stack_id, st);
        if (!st)
            return record_error(d, "entry %u: unknown stack id %u", i, e.stack_id);
        if (st->pcs[0] != site->caller_pc)
            return record_error(d,
                                "entry %u: stack %u starts at 0x%llx, not at site %u's caller "
                                "0x%llx",
                                i, e.stack_id, (unsigned long long)st->pcs[0], e.site_id,
                                (unsigned long long)site->caller_pc);
    }
    for (uint32_t i = 0; i < count; i++) {
        struct wire_io_stack_entry e;
        memcpy(&e, ENTRY(p, i, esize), esize);
        if (add_io_stack(d, find_site(d->proc, e.site_id), e.stack_id, e.samples) < 0)
            return protocol_error(d, "out of memory for I/O stacks");
    }
    return 0;
}

/* ---- threads and CPU ------------------------------------------------------ */

static struct proc_thread *find_thread(const struct proc *proc, uint32_t id)
{
    struct proc_thread *t;
    HASH_FIND(hh, proc->threads, &id, sizeof id, t);
    return t;
}

static struct proc_stack *find_stack(const struct proc *proc, uint32_t id)
{
    struct proc_stack *s;
    HASH_FIND(hh, proc->stacks, &id, sizeof id, s);
    return s;
}

/* The fields of a THREAD record that hold without reference to what came
 * before it. */
static int check_thread(struct wire_decoder *d, const struct wire_thread *w)
{
    if (w->id == WIRE_NO_ID)
        return record_error(d, "thread id 0x%x is reserved for \"no thread\"", w->id);
    if (w->reserved != 0)
        return record_error(d, "thread %u: reserved field is %u, not 0", w->id, w->reserved);
    if (w->flags & ~(WIRE_THREAD_MAIN | WIRE_THREAD_PREEXISTING))
        return record_error(d, "thread %u: unknown flags 0x%x", w->id, w->flags);
    if (w->tid == 0)
        return record_error(d, "thread %u: tid 0", w->id);
    if ((w->flags & WIRE_THREAD_MAIN) && w->tid != d->proc->pid)
        return record_error(d, "thread %u: main thread with tid %u, not the pid %u", w->id, w->tid,
                            d->proc->pid);
    const char *nul = memchr(w->name, 0, sizeof w->name);
    size_t name_len = nul ? (size_t)(nul - w->name) : sizeof w->name;
    if (!nul)
        return record_error(d, "thread %u: name not NUL-terminated within %u bytes", w->id,
                            WIRE_THREAD_NAME);
    for (size_t i = name_len + 1; i < sizeof w->name; i++)
        if (w->name[i] != 0)
            return record_error(d, "thread %u: byte %zu after the name's NUL is not 0", w->id, i);
    if (w->creator_id == w->id)
        return record_error(d, "thread %u names itself as its creator", w->id);
    if (w->stack_id != WIRE_NO_ID) {
        if (w->flags & WIRE_THREAD_PREEXISTING)
            return record_error(d,
                                "thread %u existed before ppx started, yet has creation stack %u",
                                w->id, w->stack_id);
        if (!find_stack(d->proc, w->stack_id))
            return record_error(d, "thread %u: unknown creation stack id %u", w->id, w->stack_id);
    }
    return 0;
}

/* THREAD: the full state of one thread, sent again whenever it changes;
 * the latest wins. What cannot change (tid, creator, start, flags, a
 * creation stack once given) must not. The creator need not be known:
 * the target may describe a new thread before the one that created it.
 * Times are not checked against each other: CLOCK_REALTIME may step. */
static int apply_thread(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    struct wire_thread w;
    if (read_exact(d, p, len, &w, sizeof w) < 0)
        return -1;
    if (check_thread(d, &w) < 0)
        return -1;

    struct proc_thread *t = find_thread(d->proc, w.id);
    if (t) {
        if (t->tid != w.tid || t->creator_id != w.creator_id || t->start_ns != w.start_ns ||
            t->flags != w.flags)
            return record_error(d,
                                "thread id %u redefined with a different tid, creator, start time "
                                "or flags",
                                w.id);
        if (t->stack_id != WIRE_NO_ID && t->stack_id != w.stack_id)
            return record_error(d, "thread id %u redefined with creation stack %u, was %u", w.id,
                                w.stack_id, t->stack_id);
    } else {
        /* A server that starts a thread per request passes any bound in
         * time: past it, new threads go undescribed (their CPU samples are
         * counted without thread), and profiling goes on. */
        if (HASH_COUNT(d->proc->threads) >= PROC_MAX_THREADS) {
            d->proc->threads_full = true;
            return 0;
        }
        t = calloc(1, sizeof *t);
        if (!t)
            return protocol_error(d, "out of memory for threads");
        t->id = w.id;
        t->tid = w.tid;
        t->creator_id = w.creator_id;
        t->start_ns = w.start_ns;
        t->flags = w.flags;
        t->stack_id = WIRE_NO_ID;
        HASH_ADD(hh, d->proc->threads, id, sizeof t->id, t);
    }
    t->stack_id = w.stack_id;
    memcpy(t->name, w.name, sizeof t->name);
    /* The target reads a thread's CPU clock from two places (the flusher,
     * the thread's own exit): an older reading may be sent after a newer
     * one. An end, once seen, stays. */
    struct proc_totals *totals = &d->proc->totals;
    if (w.cpu_ns > t->cpu_ns) {
        totals->cpu_ns = add_sat(totals->cpu_ns, w.cpu_ns - t->cpu_ns);
        t->cpu_ns = w.cpu_ns;
    }
    if (t->end_ns == 0 && w.end_ns == 0 && !t->counted_running) {
        totals->threads++;
        t->counted_running = true;
    }
    if (w.end_ns != 0) {
        if (t->counted_running)
            totals->threads--;
        t->counted_running = false;
        t->end_ns = w.end_ns;
    }
    return 0;
}

typedef unsigned __int128 u128;

/* n ticks at hz as nanoseconds, saturating. */
static uint64_t ticks_ns(uint64_t n, uint32_t hz)
{
    u128 ns = (u128)n * 1000000000u / hz;
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

static int add_cpu_entry(struct wire_decoder *d, const struct wire_cpu_entry *e, uint32_t hz)
{
    struct proc *proc = d->proc;
    uint64_t ns = ticks_ns(e->samples, hz);
    struct proc_cpu_key key;
    memset(&key, 0, sizeof key);
    key.stack_id = e->stack_id;
    key.thread_id = e->thread_id;
    struct proc_cpu_sample *s;
    HASH_FIND(hh, proc->cpu_samples, &key, sizeof key, s);
    if (!s && (HASH_COUNT(proc->cpu_samples) >= PROC_MAX_CPU_ENTRIES ||
               !find_thread(proc, e->thread_id))) { /* a thread past the limit */
        proc->cpu_dropped = add_sat(proc->cpu_dropped, e->samples);
        proc->cpu_dropped_ns = add_sat(proc->cpu_dropped_ns, ns);
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1;
        s->key = key;
        HASH_ADD(hh, proc->cpu_samples, key, sizeof s->key, s);
    }
    s->samples = add_sat(s->samples, e->samples);
    s->cpu_ns = add_sat(s->cpu_ns, ns);
    return 0;
}

static int apply_cpu_samples(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    struct wire_cpu_samples h;
    const size_t esize = sizeof(struct wire_cpu_entry);
    if (read_fixed_part(d, p, len, &h, sizeof h) < 0)
        return -1;
    if (h.hz < 1 || h.hz > WIRE_MAX_CPU_HZ)
        return record_error(d, "rate %u Hz outside 1..%u", h.hz, WIRE_MAX_CPU_HZ);
    if (sizeof h + (uint64_t)h.count * esize != len)
        return record_error(d, "length %zu does not match count %u (%llu bytes)", len, h.count,
                            (unsigned long long)(sizeof h + (uint64_t)h.count * esize));
    const uint8_t *entries = p + sizeof h;
    for (uint32_t i = 0; i < h.count; i++) {
        struct wire_cpu_entry e;
        memcpy(&e, entries + (size_t)i * esize, esize);
        if (!find_stack(d->proc, e.stack_id))
            return record_error(d, "entry %u: unknown stack id %u", i, e.stack_id);
        if (!find_thread(d->proc, e.thread_id) && !d->proc->threads_full)
            return record_error(d, "entry %u: unknown thread id %u", i, e.thread_id);
    }
    for (uint32_t i = 0; i < h.count; i++) {
        struct wire_cpu_entry e;
        memcpy(&e, entries + (size_t)i * esize, esize);
        if (add_cpu_entry(d, &e, h.hz) < 0)
            return protocol_error(d, "out of memory for CPU samples");
    }
    d->proc->cpu_lost = add_sat(d->proc->cpu_lost, h.lost);
    d->proc->cpu_lost_ns = add_sat(d->proc->cpu_lost_ns, ticks_ns(h.lost, h.hz));
    d->proc->cpu_hz = h.hz;
    return 0;
}

/* Only seqs the collector asked for mean anything; a smaller one than the
 * last is stale (a reply to a command sent before a later one), kept out. */
static int apply_flushed(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    struct wire_flushed f;
    if (read_exact(d, p, len, &f, sizeof f) < 0)
        return -1;
    if (f.seq == 0)
        return record_error(d, "seq 0 (never asked for)");
    if (f.seq > d->proc->flushed_seq)
        d->proc->flushed_seq = f.seq;
    return 0;
}

/* The fields of a TASK record that hold on their own. */
static int check_task(struct wire_decoder *d, const struct wire_task *w, size_t len)
{
    if (w->seq == 0)
        return record_error(d, "seq 0 (never asked for)");
    if (w->kind != WIRE_TASK_THREAD && w->kind != WIRE_TASK_COROUTINE)
        return record_error(d, "kind %u", w->kind);
    if (w->stack > WIRE_TASK_STACK_MAX)
        return record_error(d, "stack status %u", w->stack);
    if (w->kind == WIRE_TASK_COROUTINE && (w->state < 1 || w->state > WIRE_CO_STATE_MAX))
        return record_error(d, "coroutine state %u", w->state);
    if (w->kind == WIRE_TASK_THREAD && w->state != '?' &&
        !((w->state >= 'A' && w->state <= 'Z') || (w->state >= 'a' && w->state <= 'z')))
        return record_error(d, "thread state byte %u is neither a letter nor '?'", w->state);
    if (w->wait_call != WIRE_WAIT_NONE && w->wait_call != WIRE_WAIT_MUTEX &&
        w->wait_call >= WIRE_IO_CALL_MAX)
        return record_error(d, "wait call %u", w->wait_call);
    if (w->fd_type > WIRE_FD_OTHER)
        return record_error(d, "descriptor type %u", w->fd_type);
    if (w->reserved[0] || w->reserved[1] || w->reserved[2])
        return record_error(d, "reserved bytes are not 0");
    if (w->depth > WIRE_MAX_DEPTH || w->depth > d->proc->max_depth)
        return record_error(d, "depth %u exceeds %u", w->depth,
                            d->proc->max_depth < WIRE_MAX_DEPTH ? d->proc->max_depth
                                                                : WIRE_MAX_DEPTH);
    if (w->depth == 0 && (w->stack == WIRE_TASK_STACK_OK || w->stack == WIRE_TASK_STACK_LEAF))
        return record_error(d, "a stack taken (status %u) without frames", w->stack);
    if (sizeof *w + (uint64_t)w->depth * sizeof(uint64_t) != len)
        return record_error(d, "length %zu does not match depth %u", len, w->depth);
    const char *nul = memchr(w->name, 0, sizeof w->name);
    if (!nul)
        return record_error(d, "name not NUL-terminated within %u bytes", WIRE_THREAD_NAME);
    for (size_t i = (size_t)(nul - w->name) + 1; i < sizeof w->name; i++)
        if (w->name[i] != 0)
            return record_error(d, "byte %zu after the name's NUL is not 0", i);
    return 0;
}

/* A dump arrives as TASKs with its seq; a TASK of another seq starts
 * another (the rest of an older one, cut by a reconnect, never comes). */
static void dump_start(struct proc_dump *partial, uint64_t seq)
{
    if (partial->seq == seq)
        return;
    proc_dump_clear(partial);
    partial->seq = seq;
}

/* TASK: one thread or coroutine of the dump under way. Past the limits
 * (model.h) it is counted, not kept. */
static int apply_task(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    struct wire_task w;
    if (read_fixed_part(d, p, len, &w, sizeof w) < 0)
        return -1;
    if (check_task(d, &w, len) < 0)
        return -1;
    struct proc_dump *dump = &d->proc->dump_partial;
    dump_start(dump, w.seq);
    if (dump->n >= PROC_MAX_DUMP_TASKS || dump->frames + w.depth > PROC_MAX_DUMP_FRAMES) {
        dump->dropped++;
        return 0;
    }
    if (dump->n == dump->cap) {
        size_t cap = dump->cap ? 2 * dump->cap : 64;
        struct proc_task *grown = realloc(dump->tasks, cap * sizeof *grown);
        if (!grown)
            return protocol_error(d, "out of memory for a thread dump");
        dump->tasks = grown;
        dump->cap = cap;
    }
    struct proc_task *t = &dump->tasks[dump->n];
    memset(t, 0, sizeof *t);
    if (w.depth) {
        t->pcs = malloc(w.depth * sizeof(uint64_t));
        if (!t->pcs)
            return protocol_error(d, "out of memory for a thread dump");
        memcpy(t->pcs, p + sizeof w, w.depth * sizeof(uint64_t));
    }
    t->id = w.id;
    t->wait_ns = w.wait_ns;
    t->tid = w.tid;
    t->thread_id = w.thread_id;
    t->depth = w.depth;
    t->fd = w.fd;
    t->kind = w.kind;
    t->state = w.state;
    t->stack = w.stack;
    t->wait_call = w.wait_call;
    t->fd_type = w.fd_type;
    memcpy(t->name, w.name, sizeof t->name);
    dump->n++;
    dump->frames += w.depth;
    return 0;
}

/* TASKS_END: the dump of seq is whole (every TASK it announces came);
 * it replaces the previous one. */
static int apply_tasks_end(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    struct wire_tasks_end e;
    if (read_exact(d, p, len, &e, sizeof e) < 0)
        return -1;
    if (e.seq == 0)
        return record_error(d, "seq 0 (never asked for)");
    if (e.reserved != 0)
        return record_error(d, "reserved field is %u, not 0", e.reserved);
    struct proc_dump *partial = &d->proc->dump_partial;
    dump_start(partial, e.seq);
    if (partial->n + partial->dropped != e.tasks)
        return record_error(d, "dump %llu announces %u tasks, %llu came", (unsigned long long)e.seq,
                            e.tasks, (unsigned long long)(partial->n + partial->dropped));
    partial->took_ns = e.took_ns;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    partial->taken_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    proc_dump_clear(&d->proc->dump);
    d->proc->dump = *partial;
    memset(partial, 0, sizeof *partial);
    return 0;
}

static int apply_record(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    /* check_header() let through a HELLO only first, anything else only
     * after it. */
    PPX_CHECK(d->type == WIRE_HELLO ? d->state == EXPECT_HELLO : d->state == RECORDS && d->proc,
              "a record is applied in the state its header was checked for");
    if (d->state == RECORDS && proc_table_owner(d->proc) != d)
        return protocol_error(d, "connection superseded by a reconnection of the same process");
    if (d->state == RECORDS)
        d->proc->fed_ns = realtime_ns(); /* the timeline's points (live/timeline.c) */
    switch (d->type) {
    case WIRE_HELLO:
        return apply_hello(d, p, len);
    case WIRE_MAPPING:
        return apply_mapping(d, p, len);
    case WIRE_STACK:
        return apply_stack(d, p, len);
    case WIRE_HEAP_DELTA:
        return apply_heap_delta(d, p, len);
    case WIRE_IO_SITE:
        return apply_io_site(d, p, len);
    case WIRE_IO_DELTA:
        return apply_io_delta(d, p, len);
    case WIRE_IO_ERRNO:
        return apply_io_errno(d, p, len);
    case WIRE_IO_STACKS:
        return apply_io_stacks(d, p, len);
    case WIRE_THREAD:
        return apply_thread(d, p, len);
    case WIRE_CPU_SAMPLES:
        return apply_cpu_samples(d, p, len);
    case WIRE_FLUSHED:
        return apply_flushed(d, p, len);
    case WIRE_BLOCK_DELTA:
    case WIRE_MUTEX_DELTA:
        return apply_contention_delta(d, p, len);
    case WIRE_TASK:
        return apply_task(d, p, len);
    case WIRE_TASKS_END:
        return apply_tasks_end(d, p, len);
    case WIRE_GOODBYE:
        d->proc->said_goodbye = true;
        d->state = GOODBYE_SEEN;
        stop_feeding(d);
        return 0;
    }
    return record_error(d, "unknown record type"); /* excluded by check_header() */
}

/* Checks a complete header against the state and the per-type bounds, so
 * that no byte of a payload that could never be valid is buffered. */
static int check_header(struct wire_decoder *d)
{
    struct wire_header h;
    memcpy(&h, d->header, sizeof h);
    d->type = h.type;
    d->length = h.length;
    if (strcmp(type_name(h.type), "unknown") == 0)
        return protocol_error(d, "unknown record type %u (length %u)", h.type, h.length);
    if (h.length > WIRE_MAX_RECORD)
        return protocol_error(d, "%s record of %u bytes exceeds the %u-byte limit",
                              type_name(h.type), h.length, WIRE_MAX_RECORD);
    if (d->state == EXPECT_HELLO && h.type != WIRE_HELLO)
        return protocol_error(d, "%s record before HELLO", type_name(h.type));
    if (d->state == RECORDS && h.type == WIRE_HELLO)
        return protocol_error(d, "second HELLO on one connection");
    size_t max = h.type == WIRE_HELLO       ? HELLO_MAX
                 : h.type == WIRE_MAPPING   ? MAPPING_MAX
                 : h.type == WIRE_STACK     ? STACK_MAX
                 : h.type == WIRE_GOODBYE   ? 0
                 : h.type == WIRE_IO_SITE   ? sizeof(struct wire_io_site)
                 : h.type == WIRE_THREAD    ? sizeof(struct wire_thread)
                 : h.type == WIRE_FLUSHED   ? sizeof(struct wire_flushed)
                 : h.type == WIRE_TASK      ? TASK_MAX
                 : h.type == WIRE_TASKS_END ? sizeof(struct wire_tasks_end)
                                            : WIRE_MAX_RECORD;
    if (h.length > max)
        return record_error(d, "length %u exceeds %zu", h.length, max);
    return 0;
}

static int reserve(struct wire_decoder *d, size_t need)
{
    if (need <= d->cap)
        return 0;
    size_t cap = d->cap ? d->cap : 4096;
    while (cap < need)
        cap *= 2;
    if (cap > d->length)
        cap = d->length;
    uint8_t *grown = realloc(d->buf, cap);
    if (!grown)
        return -1;
    d->buf = grown;
    d->cap = cap;
    return 0;
}

static int finish_record(struct wire_decoder *d, const uint8_t *p, size_t len)
{
    d->in_payload = false;
    d->header_have = 0;
    d->have = 0;
    int rc = apply_record(d, p, len);
    if (d->cap > KEEP_BUFFER) {
        free(d->buf);
        d->buf = NULL;
        d->cap = 0;
    }
    return rc;
}

int wire_decoder_feed(struct wire_decoder *d, const void *bytes, size_t len)
{
    const uint8_t *in = bytes;
    while (len > 0) {
        if (d->state == FAILED)
            return -1;
        if (d->state == GOODBYE_SEEN)
            return protocol_error(d, "data after GOODBYE");
        if (!d->in_payload) {
            size_t take = HEADER_SIZE - d->header_have;
            if (take > len)
                take = len;
            memcpy(d->header + d->header_have, in, take);
            d->header_have += take;
            in += take;
            len -= take;
            if (d->header_have < HEADER_SIZE)
                break;
            if (check_header(d) < 0)
                return -1;
            d->in_payload = true;
            d->have = 0;
            if (d->length == 0 && finish_record(d, NULL, 0) < 0)
                return -1;
            continue;
        }
        if (d->have == 0 && len >= d->length) { /* whole payload at hand: no copy */
            size_t n = d->length;
            if (finish_record(d, in, n) < 0)
                return -1;
            in += n;
            len -= n;
            continue;
        }
        size_t take = d->length - d->have;
        if (take > len)
            take = len;
        if (reserve(d, d->have + take) < 0)
            return protocol_error(d, "out of memory buffering a %u-byte record", d->length);
        memcpy(d->buf + d->have, in, take);
        d->have += take;
        in += take;
        len -= take;
        if (d->have == d->length && finish_record(d, d->buf, d->length) < 0)
            return -1;
    }
    return d->state == FAILED ? -1 : 0;
}

/* A stream cut inside a record is a process that died or gave up while
 * writing: what came before is sound, and a reconnection is welcome. */
static int fail_truncated(struct wire_decoder *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(d, false, fmt, ap);
    va_end(ap);
    return -1;
}

int wire_decoder_end(struct wire_decoder *d)
{
    if (d->state == FAILED)
        return -1;
    if (d->in_payload)
        return fail_truncated(d,
                              "stream ended inside a %s record (%zu of %u payload bytes); "
                              "the data before it is kept",
                              type_name(d->type), d->have, d->length);
    if (d->header_have > 0)
        return fail_truncated(d,
                              "stream ended inside a record header (%zu of %zu bytes); "
                              "the data before it is kept",
                              d->header_have, HEADER_SIZE);
    stop_feeding(d);
    return 0;
}
