#include "pprof/pprof.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int sink_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int sink_error(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* gzip (RFC 1952) in one pass: windowBits 15 + 16 selects the gzip wrapper,
 * which is what pprof's readers check for. */
static int gzip_buffer(const uint8_t *data, size_t len, uint8_t **out, size_t *out_len,
                       const char *path, char *err, size_t errlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return sink_error(err, errlen, "cannot compress %s: zlib initialisation failed", path);
    size_t cap = deflateBound(&zs, (uLong)len) + 64;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&zs);
        return sink_error(err, errlen, "cannot compress %s: %s", path, strerror(ENOMEM));
    }
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)len;
    zs.next_out = buf;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    size_t produced = cap - zs.avail_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(buf);
        return sink_error(err, errlen, "cannot compress %s: zlib error %d", path, rc);
    }
    *out = buf;
    *out_len = produced;
    return 0;
}

static int gzip_memory(const uint8_t *data, size_t len, uint8_t **out, size_t *out_len,
                       const char *what, char *err, size_t errlen)
{
    if (len > 0xffffffffu)
        return sink_error(err, errlen, "cannot compress %s: profile too large (%zu bytes)", what,
                          len);
    return gzip_buffer(data, len, out, out_len, what, err, errlen);
}

static int gzip_file(const char *path, const uint8_t *data, size_t len, char *err, size_t errlen)
{
    if (len > 0xffffffffu)
        return sink_error(err, errlen, "cannot write %s: profile too large (%zu bytes)", path, len);
    uint8_t *gz = NULL;
    size_t gz_len = 0;
    if (gzip_buffer(data, len, &gz, &gz_len, path, err, errlen) < 0)
        return -1;
    int rc = file_write_atomic(path, gz, gz_len);
    int e = errno;
    free(gz);
    return rc < 0 ? sink_error(err, errlen, "cannot write %s: %s", path, strerror(e)) : 0;
}

const char *pprof_sink_name(const struct pprof_sink *out)
{
    return out->name ? out->name : out->path;
}

int pprof_sink_put(struct pprof_sink *out, const uint8_t *data, size_t len, char *err,
                   size_t errlen)
{
    if (out->path)
        return gzip_file(out->path, data, len, err, errlen);
    free(out->data);
    out->data = NULL;
    out->len = 0;
    return gzip_memory(data, len, &out->data, &out->len, pprof_sink_name(out), err, errlen);
}
