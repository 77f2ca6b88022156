/* Writes a serialized profile to disk the way pprof expects it: gzipped,
 * and atomically (a temporary file in the same directory, renamed into
 * place), so a reader never sees a half-written profile. */
#ifndef PPX_PPROF_WRITE_H
#define PPX_PPROF_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* Gzips data[0..len) into path. Returns 0, or -1 with a message naming the
 * file and the cause in err (no "ppx:" prefix); on failure no temporary
 * file is left behind and an existing file at path is untouched. */
int pprof_write_gzip_atomic(const char *path, const uint8_t *data, size_t len, char *err,
                            size_t errlen);

/* Gzips data[0..len) into memory: *out (malloc'ed, the caller frees) of
 * *out_len bytes, for a profile served over HTTP. Returns 0, or -1 with a
 * message naming what (e.g. "heap profile") in err. */
int pprof_gzip_memory(const uint8_t *data, size_t len, uint8_t **out, size_t *out_len,
                      const char *what, char *err, size_t errlen);

#endif
