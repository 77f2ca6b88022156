#include "pprof/pprof.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef Perftools__Profiles__Profile Profile;
typedef Perftools__Profiles__Location Location;
typedef Perftools__Profiles__Function Function;
typedef Perftools__Profiles__Mapping Mapping;

/* Far beyond any profile ppx writes; a bound so a wrong file cannot
 * exhaust memory. */
#define MAX_COMPRESSED (256u << 20)
#define MAX_PROFILE (1u << 30)

uint8_t *pprof_read_raw(const char *path, size_t *len, char *err, size_t errlen)
{
    uint8_t *buf = file_read_all(path, MAX_COMPRESSED, len);
    if (buf)
        return buf;
    if (errno == EFBIG)
        snprintf(err, errlen, "%s is larger than %u MiB: not a profile ppx wrote", path,
                 MAX_COMPRESSED >> 20);
    else if (errno == ENOMEM)
        snprintf(err, errlen, "out of memory reading %s", path);
    else if (errno == EIO)
        snprintf(err, errlen, "cannot read %s", path);
    else
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return NULL;
}

static uint8_t *gunzip(const char *path, const uint8_t *in, size_t in_len, size_t *out_len,
                       char *err, size_t errlen)
{
    if (in_len < 2 || in[0] != 0x1f || in[1] != 0x8b) {
        snprintf(err, errlen, "%s is not gzip-compressed: not a pprof profile", path);
        return NULL;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK) {
        snprintf(err, errlen, "cannot decompress %s: zlib initialisation failed", path);
        return NULL;
    }
    size_t cap = in_len * 4 + 4096, n = 0;
    uint8_t *out = malloc(cap);
    if (!out) {
        inflateEnd(&zs);
        snprintf(err, errlen, "out of memory decompressing %s", path);
        return NULL;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)in_len;
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (n == cap) {
            uint8_t *grown = cap < MAX_PROFILE ? realloc(out, cap * 2) : NULL;
            if (!grown) {
                snprintf(err, errlen, "%s decompresses to more than %zu bytes", path, cap);
                free(out);
                inflateEnd(&zs);
                return NULL;
            }
            out = grown;
            cap *= 2;
        }
        zs.next_out = out + n;
        zs.avail_out = (uInt)(cap - n);
        rc = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
        if (rc == Z_BUF_ERROR && zs.avail_out != 0)
            break; /* input exhausted before the end of the stream */
        if (rc == Z_BUF_ERROR)
            rc = Z_OK;
    }
    inflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        snprintf(err, errlen, "%s: corrupt or truncated gzip data%s%s", path, zs.msg ? ": " : "",
                 zs.msg ? zs.msg : "");
        free(out);
        return NULL;
    }
    *out_len = n;
    return out;
}

Profile *pprof_read_file(const char *path, char *err, size_t errlen)
{
    size_t len;
    uint8_t *gz = pprof_read_raw(path, &len, err, errlen);
    if (!gz)
        return NULL;
    Profile *p = pprof_parse(path, gz, len, err, errlen);
    free(gz);
    return p;
}

Profile *pprof_parse(const char *path, const uint8_t *gz, size_t len, char *err, size_t errlen)
{
    size_t plen;
    uint8_t *raw = gunzip(path, gz, len, &plen, err, errlen);
    if (!raw)
        return NULL;
    Profile *p = perftools__profiles__profile__unpack(NULL, plen, raw);
    free(raw);
    if (!p)
        snprintf(err, errlen, "%s is gzip-compressed but not a pprof profile (profile.proto)",
                 path);
    return p;
}

/* ---- index ----------------------------------------------------------------- */

static int cmp_location(const void *x, const void *y)
{
    uint64_t a = (*(const Location *const *)x)->id, b = (*(const Location *const *)y)->id;
    return a < b ? -1 : a > b;
}

static int cmp_function(const void *x, const void *y)
{
    uint64_t a = (*(const Function *const *)x)->id, b = (*(const Function *const *)y)->id;
    return a < b ? -1 : a > b;
}

static int cmp_mapping(const void *x, const void *y)
{
    uint64_t a = (*(const Mapping *const *)x)->id, b = (*(const Mapping *const *)y)->id;
    return a < b ? -1 : a > b;
}

static void *sorted_copy(void *const *items, size_t n, int (*cmp)(const void *, const void *))
{
    void **copy = malloc((n ? n : 1) * sizeof *copy);
    if (!copy)
        return NULL;
    if (n)
        memcpy(copy, items, n * sizeof *copy);
    qsort(copy, n, sizeof *copy, cmp);
    return copy;
}

int pprof_index_init(struct pprof_index *ix, const Profile *p)
{
    ix->prof = p;
    ix->locations = sorted_copy((void *const *)p->location, p->n_location, cmp_location);
    ix->functions = sorted_copy((void *const *)p->function, p->n_function, cmp_function);
    ix->mappings = sorted_copy((void *const *)p->mapping, p->n_mapping, cmp_mapping);
    if (ix->locations && ix->functions && ix->mappings)
        return 0;
    pprof_index_free(ix);
    return -1;
}

void pprof_index_free(struct pprof_index *ix)
{
    free(ix->locations);
    free(ix->functions);
    free(ix->mappings);
    ix->locations = NULL;
    ix->functions = NULL;
    ix->mappings = NULL;
}

const char *pprof_index_string(const struct pprof_index *ix, int64_t i)
{
    return i >= 0 && (size_t)i < ix->prof->n_string_table ? ix->prof->string_table[i] : "";
}

/* Returns the element of array[0..n) (sorted by id) whose id is wanted,
 * or NULL. */
#define FIND_BY_ID(array, n, wanted)                                                               \
    do {                                                                                           \
        size_t lo = 0, hi = (n);                                                                   \
        while (lo < hi) {                                                                          \
            size_t mid = lo + (hi - lo) / 2;                                                       \
            if ((array)[mid]->id == (wanted))                                                      \
                return (array)[mid];                                                               \
            if ((array)[mid]->id < (wanted))                                                       \
                lo = mid + 1;                                                                      \
            else                                                                                   \
                hi = mid;                                                                          \
        }                                                                                          \
        return NULL;                                                                               \
    } while (0)

const Location *pprof_index_location(const struct pprof_index *ix, uint64_t id)
{
    FIND_BY_ID(ix->locations, ix->prof->n_location, id);
}

const Function *pprof_index_function(const struct pprof_index *ix, uint64_t id)
{
    FIND_BY_ID(ix->functions, ix->prof->n_function, id);
}

const Mapping *pprof_index_mapping(const struct pprof_index *ix, uint64_t id)
{
    FIND_BY_ID(ix->mappings, ix->prof->n_mapping, id);
}

const char *pprof_index_label_str(const struct pprof_index *ix,
                                  const Perftools__Profiles__Sample *s, const char *key)
{
    for (size_t i = 0; i < s->n_label; i++)
        if (s->label[i]->str && strcmp(pprof_index_string(ix, s->label[i]->key), key) == 0)
            return pprof_index_string(ix, s->label[i]->str);
    return NULL;
}

bool pprof_index_label_num(const struct pprof_index *ix, const Perftools__Profiles__Sample *s,
                           const char *key, int64_t *out)
{
    for (size_t i = 0; i < s->n_label; i++)
        if (!s->label[i]->str && strcmp(pprof_index_string(ix, s->label[i]->key), key) == 0) {
            *out = s->label[i]->num;
            return true;
        }
    return false;
}
