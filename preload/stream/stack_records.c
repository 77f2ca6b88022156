/* STACK records: each stack goes out once per connection (or spool file),
 * before the first record that names it. */
#include "stream.h"

/* Sets s's figures already sent on this connection to zero. */
bool ppx_stream_emit_stack(struct ppx_encoder *enc, struct ppx_stack *s)
{
    struct wire_stack ws = {s->id, s->depth};
    if (!ppx_emit(enc, WIRE_STACK, &ws, sizeof ws, s->pcs, s->depth * sizeof s->pcs[0], NULL, 0))
        return false;
    s->sent_generation = ppx_stream_generation();
    s->sent_alloc_objects = s->sent_alloc_bytes = 0;
    s->sent_free_objects = s->sent_free_bytes = 0;
    return true;
}

/* For IO_STACKS: a stack sampled only by I/O calls has no heap figures,
 * and goes out when an I/O record names it. */
bool ppx_stream_send_stack(struct ppx_encoder *enc, struct ppx_stack *s)
{
    return s->sent_generation == ppx_stream_generation() || ppx_stream_emit_stack(enc, s);
}
