/* Reading a pprof profile back, for ppx's report commands (audit, threads):
 * a gzipped profile.proto file decoded with protobuf-c, bounded in size,
 * and an index to look its locations, functions and mappings up by id. */
#ifndef PPX_PPROF_READ_H
#define PPX_PPROF_READ_H

#include <stddef.h>
#include <stdint.h>
#include "profile.pb-c.h"

/* The profile in path, to free with perftools__profiles__profile__free_unpacked;
 * NULL with a message in err (no "ppx ...:" prefix) when the file cannot be
 * read, is not gzip-compressed, is corrupt, too large, or no profile. */
Perftools__Profiles__Profile *pprof_read_file(const char *path, char *err, size_t errlen);

/* Sorted copies of a profile's location, function and mapping arrays. */
struct pprof_index {
    const Perftools__Profiles__Profile *prof;
    const Perftools__Profiles__Location **locations;
    const Perftools__Profiles__Function **functions;
    const Perftools__Profiles__Mapping **mappings;
};

/* 0, or -1 when out of memory (then ix holds nothing to free). */
int pprof_index_init(struct pprof_index *ix, const Perftools__Profiles__Profile *p);
void pprof_index_free(struct pprof_index *ix);

/* The string at index i of the string table; "" for one out of range. */
const char *pprof_index_string(const struct pprof_index *ix, int64_t i);

/* By id; NULL when the profile has none with that id. */
const Perftools__Profiles__Location *pprof_index_location(const struct pprof_index *ix,
                                                          uint64_t id);
const Perftools__Profiles__Function *pprof_index_function(const struct pprof_index *ix,
                                                          uint64_t id);
const Perftools__Profiles__Mapping *pprof_index_mapping(const struct pprof_index *ix,
                                                        uint64_t id);

#endif
