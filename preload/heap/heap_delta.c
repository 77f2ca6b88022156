/* HEAP_DELTA records: for every stack whose heap figures moved since the
 * last flush on this connection, the change (its STACK record first the
 * first time). Stacks with nothing counted are never sent. */
#include "heap.h"

#include <string.h>

/* The sampled bytes in use as the flushes sent them, and how far the last
 * flush moved them: the flusher's pace (flusher.c) follows it. Owned by
 * stream_mu's holder, as the sends are. */
static int64_t flushed_inuse, flush_net;
static bool moved;
/* A heap that moved by at least 1/MOVED_FRACTION of what is in use, and
 * by MOVED_MIN_BYTES and MOVED_MIN_SAMPLES sampling intervals (what a
 * steady server's sampling noise stays under), in one flush is changing:
 * a peak may be coming. */
#define MOVED_FRACTION 16
#define MOVED_MIN_BYTES (1 << 20)
#define MOVED_MIN_SAMPLES 4

bool ppx_heap_send_pending(struct ppx_encoder *enc)
{
    if (enc->n_entries == 0)
        return !enc->failed;
    struct wire_heap_delta d = {(uint32_t)enc->n_entries, 0};
    bool ok = ppx_emit(enc, WIRE_HEAP_DELTA, &d, sizeof d, enc->entries,
                       enc->n_entries * sizeof *enc->entries, NULL, 0);
    enc->n_entries = 0;
    return ok;
}

/* About what n sampled blocks of these bytes stand for (the collector's
 * scaling, roughly: a small block stands for the sampling interval). */
static int64_t weight(uint64_t n, uint64_t bytes)
{
    uint64_t by_count = n * ppx_config.sample_rate;
    return (int64_t)(bytes > by_count ? bytes : by_count);
}

/* Appends s's change since the last delta on this connection; its STACK
 * record first if this connection has not seen it (the HEAP_DELTA carrying
 * the entry is emitted after it). */
static bool encode_stack(struct ppx_encoder *enc, struct ppx_stack *s)
{
    struct ppx_stack_figures f;
    ppx_stack_figures(s, &f);
    uint64_t fo = f.free_objects, fb = f.free_bytes, ao = f.alloc_objects, ab = f.alloc_bytes;
    if (s->sent_generation != ppx_stream_generation()) {
        if (ao == 0 && ab == 0 && fo == 0 && fb == 0)
            return true;
        if (!ppx_stream_emit_stack(enc, s))
            return false;
    }
    if (ao == s->sent_alloc_objects && ab == s->sent_alloc_bytes && fo == s->sent_free_objects &&
        fb == s->sent_free_bytes)
        return true;
    flush_net += weight(ao - s->sent_alloc_objects, ab - s->sent_alloc_bytes) -
                 weight(fo - s->sent_free_objects, fb - s->sent_free_bytes);
    enc->entries[enc->n_entries++] = (struct wire_heap_entry){
        .stack_id = s->id,
        .reserved = 0,
        .alloc_objects = ao - s->sent_alloc_objects,
        .alloc_bytes = ab - s->sent_alloc_bytes,
        .free_objects = fo - s->sent_free_objects,
        .free_bytes = fb - s->sent_free_bytes,
    };
    s->sent_alloc_objects = ao;
    s->sent_alloc_bytes = ab;
    s->sent_free_objects = fo;
    s->sent_free_bytes = fb;
    if (enc->n_entries == PPX_HEAP_DELTA_CAPACITY)
        return ppx_heap_send_pending(enc);
    return true;
}

/* A stack with several dirty stripes is read once per stripe; after the
 * first, nothing has moved (or what moved since is sent). */
static bool send_dirty(struct ppx_encoder *enc, uint32_t n_stacks)
{
    struct ppx_stack_stripe *list = ppx_stacks_take_dirty();
    while (list != NULL) {
        struct ppx_stack_stripe *st = list;
        list = st->dirty_next;
        if (st->stack->id >= n_stacks || enc->failed) {
            ppx_stacks_requeue(st); /* still flagged dirty: next time */
            continue;
        }
        /* clear, then read (pairs with mark_dirty's add-then-check) */
        atomic_store_explicit(&st->dirty, 0, memory_order_seq_cst);
        if (!encode_stack(enc, st->stack))
            enc->failed = true;
    }
    return !enc->failed;
}

/* What this flush did to the heap in use: a fresh connection resends all
 * of it, so its net is the whole. */
static void note_movement(bool fresh)
{
    int64_t before = fresh ? 0 : flushed_inuse;
    int64_t after = before + flush_net;
    int64_t change = flush_net < 0 ? -flush_net : flush_net;
    int64_t base = after > before ? after : before;
    int64_t least = (int64_t)ppx_config.sample_rate * MOVED_MIN_SAMPLES;
    if (least < MOVED_MIN_BYTES)
        least = MOVED_MIN_BYTES;
    moved = change >= least && change >= base / MOVED_FRACTION;
    flushed_inuse = after;
    flush_net = 0;
}

bool ppx_heap_send(struct ppx_encoder *enc, uint32_t n_stacks, bool fresh)
{
    bool ok = true;
    flush_net = 0;
    if (fresh) {
        for (uint32_t id = 0; id < n_stacks && ok; id++) {
            struct ppx_stack *s = ppx_stack_get(id);
            if (s != NULL)
                ok = encode_stack(enc, s);
        }
    }
    ok = ok && send_dirty(enc, n_stacks); /* on failure the rest of the list is requeued */
    if (ok)
        note_movement(fresh);
    return ok;
}

bool ppx_heap_moving(void)
{
    return moved;
}
