/* The encoder: records (wire.h) built in an output buffer of the
 * profiler's own, written to the connection (or spool file) when full and
 * at the end of each flush. One encoder, used under state_mu. */
#include "stream.h"

#include <string.h>

#define OUT_CAPACITY (1u << 20)

/* Under state_mu (connection.c): whoever flushes owns it meanwhile. */
static struct ppx_encoder encoder;

struct ppx_encoder *ppx_stream_encoder(void)
{
    return &encoder;
}

bool ppx_encoder_flush(struct ppx_encoder *enc)
{
    if (enc->failed)
        return false;
    if (enc->out_len > 0 && !ppx_stream_write(enc->out, enc->out_len))
        enc->failed = true;
    enc->out_len = 0;
    return !enc->failed;
}

bool ppx_emit(struct ppx_encoder *enc, uint32_t type, const void *a, size_t alen, const void *b,
              size_t blen, const void *c, size_t clen)
{
    size_t payload = alen + blen + clen;
    size_t total = sizeof(struct wire_header) + payload;
    if (enc->failed || payload > WIRE_MAX_RECORD || total > OUT_CAPACITY)
        return false;
    if (enc->out_len + total > OUT_CAPACITY && !ppx_encoder_flush(enc))
        return false;
    struct wire_header h = {type, (uint32_t)payload};
    unsigned char *dst = enc->out + enc->out_len;
    memcpy(dst, &h, sizeof h);
    dst += sizeof h;
    if (alen > 0)
        memcpy(dst, a, alen);
    if (blen > 0)
        memcpy(dst + alen, b, blen);
    if (clen > 0)
        memcpy(dst + alen + blen, c, clen);
    enc->out_len += total;
    return true;
}

/* Nothing pending, nothing failed: for a new stream, or after a failed one. */
void ppx_stream_encoder_reset(void)
{
    encoder.out_len = 0;
    encoder.n_entries = 0;
    encoder.failed = false;
}

bool ppx_stream_buffers_ready(void)
{
    if (encoder.out == NULL)
        encoder.out = ppx_pages_alloc(OUT_CAPACITY);
    if (encoder.entries == NULL)
        encoder.entries = ppx_pages_alloc(PPX_HEAP_DELTA_CAPACITY * sizeof *encoder.entries);
    return encoder.out != NULL && encoder.entries != NULL;
}
