/* HEAP_DELTA records: for every stack whose heap figures moved since the
 * last flush on this connection, the change (its STACK record first the
 * first time). Stacks with nothing counted are never sent. */
#include "heap.h"

#include <string.h>

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

bool ppx_heap_send(struct ppx_encoder *enc, uint32_t n_stacks, bool fresh)
{
    bool ok = true;
    if (fresh) {
        for (uint32_t id = 0; id < n_stacks && ok; id++) {
            struct ppx_stack *s = ppx_stack_get(id);
            if (s != NULL)
                ok = encode_stack(enc, s);
        }
    }
    return ok && send_dirty(enc, n_stacks); /* on failure the rest of the list is requeued */
}
