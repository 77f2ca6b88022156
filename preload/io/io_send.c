/* The I/O audit's records (wire.h IO_*), from the flusher: new sites, then
 * each site's change in its exact counters (the shared ones plus every
 * thread's own, summed), failures by errno, and the sampled stacks. */
#include "io.h"

#include <string.h>

#define SEND_BUFFER (256u * 1024u) /* entries of one IO_* record */

/* The flusher's buffers, one per record type; the flusher's alone. */
static struct {
    struct wire_io_entry *delta;
    struct wire_io_errno_entry *errnos;
    struct wire_io_stack_entry *stacks;
} out;

static bool buffers_ready(void)
{
    if (out.delta == NULL)
        out.delta = ppx_pages_alloc(SEND_BUFFER);
    if (out.errnos == NULL)
        out.errnos = ppx_pages_alloc(SEND_BUFFER);
    if (out.stacks == NULL)
        out.stacks = ppx_pages_alloc(SEND_BUFFER);
    return out.delta != NULL && out.errnos != NULL && out.stacks != NULL;
}

/* A batch of entries of one IO_* record type. */
struct batch {
    uint32_t type;
    void *entries;
    size_t size, n, cap;
};

static bool batch_flush(struct ppx_encoder *enc, struct batch *b)
{
    if (b->n == 0)
        return true;
    struct wire_heap_delta head = {(uint32_t)b->n, 0}; /* the shared count header */
    bool ok = ppx_emit(enc, b->type, &head, sizeof head, b->entries, b->n * b->size, NULL, 0);
    b->n = 0;
    return ok;
}

static void *batch_next(struct ppx_encoder *enc, struct batch *b, bool *ok)
{
    if (b->n == b->cap && !batch_flush(enc, b)) {
        *ok = false;
        return NULL;
    }
    return (char *)b->entries + b->size * b->n++;
}

/* total = the site's shared counters; the blocks are added after. */
static void total_from_shared(struct ppx_io_site *s)
{
    s->total = (struct ppx_io_counts){
        .calls = atomic_load_explicit(&s->calls, memory_order_acquire),
        .time_ns = atomic_load_explicit(&s->time_ns, memory_order_acquire),
        .bytes = atomic_load_explicit(&s->bytes, memory_order_acquire),
        .messages = atomic_load_explicit(&s->messages, memory_order_acquire),
        .errors = atomic_load_explicit(&s->errors, memory_order_acquire),
        .eagain = atomic_load_explicit(&s->eagain, memory_order_acquire),
    };
    for (unsigned i = 0; i < PPX_IO_ERRNO_SLOTS; i++)
        s->total_err_calls[i] = atomic_load_explicit(&s->err_calls[i], memory_order_acquire);
}

static void total_add_local(void *arg, uint32_t site_id, const struct ppx_io_local *e)
{
    (void)arg;
    struct ppx_io_site *s = ppx_io_site_get(site_id);
    if (s == NULL)
        return;
    s->total.calls += atomic_load_explicit(&e->calls, memory_order_relaxed);
    s->total.time_ns += atomic_load_explicit(&e->time, memory_order_relaxed);
    s->total.bytes += atomic_load_explicit(&e->bytes, memory_order_relaxed);
    s->total.messages += atomic_load_explicit(&e->messages, memory_order_relaxed);
    s->total.errors += atomic_load_explicit(&e->errors, memory_order_relaxed);
    s->total.eagain += atomic_load_explicit(&e->eagain, memory_order_relaxed);
    for (unsigned i = 0; i < PPX_IO_ERRNO_SLOTS; i++)
        s->total_err_calls[i] += atomic_load_explicit(&e->err_calls[i], memory_order_relaxed);
}

/* Every site's total, as of now. A total may run ahead of another figure
 * of the same call (bytes counted, calls not yet read): the next flush
 * evens it out, as each record is an increment. */
static void sum_totals(uint32_t n_sites)
{
    for (uint32_t id = 0; id < n_sites; id++) {
        struct ppx_io_site *s = ppx_io_site_get(id);
        if (s != NULL)
            total_from_shared(s);
    }
    ppx_io_local_foreach(n_sites, total_add_local, NULL);
}

static bool send_site(struct ppx_encoder *enc, struct ppx_io_site *s, uint64_t gen)
{
    uint32_t cls = s->key >> 8;
    struct wire_io_site w = {
        .id = s->id,
        .call = (uint8_t)(s->key & 0xff),
        .fd_type = (uint8_t)(cls & 0xf),
        .family = (uint8_t)((cls >> 4) & 0xf),
        .socktype = (uint8_t)((cls >> 8) & 0xf),
        .caller_pc = s->pc,
    };
    if (!ppx_emit(enc, WIRE_IO_SITE, &w, sizeof w, NULL, 0, NULL, 0))
        return false;
    s->sent_generation = gen;
    memset(&s->sent, 0, sizeof s->sent);
    memset(s->sent_err_calls, 0, sizeof s->sent_err_calls);
    return true;
}

static bool encode_site(struct ppx_encoder *enc, struct ppx_io_site *s, uint64_t gen,
                        double ns_per_tick, struct batch *delta, struct batch *errnos)
{
    struct ppx_io_counts c = s->total;
    if (s->sent_generation != gen) {
        if (c.calls == 0)
            return true; /* nothing counted yet: not even the site is sent */
        if (!send_site(enc, s, gen))
            return false;
    }
    bool ok = true;
    if (c.calls != s->sent.calls || c.time_ns != s->sent.time_ns || c.bytes != s->sent.bytes ||
        c.messages != s->sent.messages || c.errors != s->sent.errors ||
        c.eagain != s->sent.eagain) {
        struct wire_io_entry *e = batch_next(enc, delta, &ok);
        if (e == NULL)
            return false;
        *e = (struct wire_io_entry){
            .site_id = s->id,
            .reserved = 0,
            .calls = c.calls - s->sent.calls,
            .time_ns = (uint64_t)((double)(c.time_ns - s->sent.time_ns) * ns_per_tick + 0.5),
            .bytes = c.bytes - s->sent.bytes,
            .messages = c.messages - s->sent.messages,
            .errors = c.errors - s->sent.errors,
            .eagain = c.eagain - s->sent.eagain,
        };
        s->sent = c;
    }
    for (unsigned i = 0; i < PPX_IO_ERRNO_SLOTS; i++) {
        uint32_t err = atomic_load_explicit(&s->err[i], memory_order_acquire);
        if (err == 0)
            break;
        uint64_t n = s->total_err_calls[i];
        if (n == s->sent_err_calls[i])
            continue;
        struct wire_io_errno_entry *e = batch_next(enc, errnos, &ok);
        if (e == NULL)
            return false;
        *e = (struct wire_io_errno_entry){
            .site_id = s->id, .err = err, .calls = n - s->sent_err_calls[i]};
        s->sent_err_calls[i] = n;
    }
    return true;
}

static bool encode_pair(struct ppx_encoder *enc, struct ppx_io_pair *p, uint64_t gen,
                        uint32_t n_sites, uint32_t n_stacks, struct batch *stacks)
{
    uint64_t key = atomic_load_explicit(&p->key, memory_order_acquire);
    if (key == 0)
        return true;
    uint32_t site_id = (uint32_t)((key - 1) >> 32), stack_id = (uint32_t)(key - 1);
    if (site_id >= n_sites || stack_id >= n_stacks)
        return true; /* newer than the mapping scan: next time */
    struct ppx_io_site *site = ppx_io_site_get(site_id);
    if (site == NULL || site->sent_generation != gen)
        return true; /* its IO_SITE is not out yet */
    if (p->sent_generation != gen) {
        p->sent_generation = gen;
        p->sent_samples = 0;
    }
    uint64_t samples = atomic_load_explicit(&p->samples, memory_order_acquire);
    if (samples == p->sent_samples)
        return true;
    struct ppx_stack *s = ppx_stack_get(stack_id);
    if (s == NULL)
        return true;
    if (!ppx_stream_send_stack(enc, s))
        return false;
    bool ok = true;
    struct wire_io_stack_entry *e = batch_next(enc, stacks, &ok);
    if (e == NULL)
        return false;
    *e = (struct wire_io_stack_entry){
        .site_id = site_id, .stack_id = stack_id, .samples = samples - p->sent_samples};
    p->sent_samples = samples;
    return true;
}

bool ppx_io_send(struct ppx_encoder *enc, uint64_t gen, uint32_t n_stacks,
                 const struct ppx_io_snapshot *snap)
{
    if (snap->sites == 0)
        return true;
    if (!buffers_ready())
        return true; /* no memory: the figures wait */
    struct batch delta = {WIRE_IO_DELTA, out.delta, sizeof(struct wire_io_entry), 0,
                          SEND_BUFFER / sizeof(struct wire_io_entry)};
    struct batch errnos = {WIRE_IO_ERRNO, out.errnos, sizeof(struct wire_io_errno_entry), 0,
                           SEND_BUFFER / sizeof(struct wire_io_errno_entry)};
    struct batch stacks = {WIRE_IO_STACKS, out.stacks, sizeof(struct wire_io_stack_entry), 0,
                           SEND_BUFFER / sizeof(struct wire_io_stack_entry)};
    double ns_per_tick = ppx_ns_per_tick(); /* once per flush */
    sum_totals(snap->sites);
    /* IO_SITE records go out as sites are met, before the batches that
     * name them; STACK records likewise before the IO_STACKS batch. */
    for (uint32_t id = 0; id < snap->sites; id++) {
        struct ppx_io_site *s = ppx_io_site_get(id);
        if (s != NULL && !encode_site(enc, s, gen, ns_per_tick, &delta, &errnos))
            return false;
    }
    if (!batch_flush(enc, &delta) || !batch_flush(enc, &errnos))
        return false;
    for (uint32_t i = 0; i < snap->pairs; i++) {
        struct ppx_io_pair *p = ppx_io_pair_get(i);
        if (p != NULL && !encode_pair(enc, p, gen, snap->sites, n_stacks, &stacks))
            return false;
    }
    return batch_flush(enc, &stacks);
}
