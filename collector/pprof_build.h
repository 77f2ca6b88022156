/* Builds a pprof Profile message (profile.proto) piece by piece: a string
 * table (index 0 = ""), mappings, functions deduplicated by name and file,
 * locations deduplicated by (mapping, address) and symbolized on creation,
 * and samples. Allocation failures are remembered and reported once, by
 * pprof_builder_encode(), so callers need not check every step. */
#ifndef PPX_PPROF_BUILD_H
#define PPX_PPROF_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "process.h"

struct pprof_builder;

/* A sample label: a string one when str is not NULL, else a numeric one
 * (num_unit may be NULL: no unit). */
struct pprof_label {
    const char *key;
    int64_t num;
    const char *num_unit;
    const char *str;
};

struct pprof_builder *pprof_builder_new(void);
void pprof_builder_free(struct pprof_builder *b);

/* Index of s in the string table, added on first use. NULL is "". */
int64_t pprof_string(struct pprof_builder *b, const char *s);

void pprof_add_sample_type(struct pprof_builder *b, const char *type, const char *unit);
void pprof_set_period(struct pprof_builder *b, const char *type, const char *unit,
                      int64_t period);
void pprof_set_default_sample_type(struct pprof_builder *b, const char *type);
void pprof_set_time(struct pprof_builder *b, int64_t time_nanos, int64_t duration_nanos);
/* time_nanos = now_ns, duration_nanos = since the earliest start of procs. */
void pprof_set_time_since_start(struct pprof_builder *b, struct proc *const *procs, size_t n,
                                uint64_t now_ns);

/* v as a pprof int64 value, saturating. */
static inline int64_t pprof_clamp_int64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* Id of the pprof Mapping for m; mappings with the same file, build id and
 * range (forked processes) share one. The first mapping added is
 * mapping[0], which pprof takes for the main executable. 0 on failure. */
uint64_t pprof_mapping(struct pprof_builder *b, const struct proc_mapping *m);

/* Id of the Location at address (a pc already inside the call instruction)
 * in the pprof mapping mapping_id (m its process mapping), or with
 * mapping_id 0 and m NULL an address outside every mapping (no lines).
 * A new location is symbolized, inlined functions included, and the
 * mapping's has_* flags updated. 0 on failure. */
uint64_t pprof_location(struct pprof_builder *b, const struct proc_mapping *m,
                        uint64_t mapping_id, uint64_t address);

/* A new Location without mapping at address whose one line names
 * function (no file): a synthetic frame, such as the I/O call at the leaf
 * of a syscalls sample. Not deduplicated: callers keep the id. 0 on
 * failure. */
uint64_t pprof_function_location(struct pprof_builder *b, const char *function,
                                 uint64_t address);

/* Adds a sample: locations leaf first, values in sample_type order. */
void pprof_add_sample(struct pprof_builder *b, const uint64_t *location_ids, size_t n_locations,
                      const int64_t *values, size_t n_values, const struct pprof_label *labels,
                      size_t n_labels);

/* Serializes the profile (not compressed). Returns 0 with *out malloc'ed,
 * or -1 when something failed to allocate along the way. */
int pprof_builder_encode(struct pprof_builder *b, uint8_t **out, size_t *len);

/* Encodes b, frees it (whatever happens) and writes the gzipped profile to
 * path atomically. Returns 0, or -1 with a message in err. */
int pprof_builder_write(struct pprof_builder *b, const char *path, char *err, size_t errlen);
/* The end of every writer: pprof_builder_write, unless building failed
 * (build_rc != 0: out of memory), in which case b is freed and the error
 * said in err. */
int pprof_builder_finish(struct pprof_builder *b, int build_rc, const char *path, char *err,
                         size_t errlen);

/* Profiles in memory (served over HTTP). Every writer (pprof_heap_write,
 * pprof_cpu_write, ...) ends in pprof_builder_write(b, path, ...); rather
 * than give each a second entry point, a thread diverts that last step:
 * between pprof_capture_begin(out) and pprof_capture_end(),
 * pprof_builder_write() gzips the profile into out->data (malloc'ed, the
 * caller frees it) instead of writing a file, and path only names the
 * profile in messages. Per thread, so other threads keep writing files. */
struct pprof_capture {
    uint8_t *data;
    size_t len;
};
void pprof_capture_begin(struct pprof_capture *out);
void pprof_capture_end(void);

#endif
