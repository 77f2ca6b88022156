/* A process's program counters as pprof locations: its mappings registered
 * in a builder and sorted by address, each return address looked up and
 * symbolized inside its call instruction (pc - 1). Shared by the heap and
 * the syscalls writers. */
#ifndef PPX_PPROF_STACK_H
#define PPX_PPROF_STACK_H

#include <stddef.h>
#include <stdint.h>
#include "pprof_build.h"
#include "process.h"

/* One process mapping with its pprof mapping id. */
struct pprof_mapping_ref {
    const struct proc_mapping *m;
    uint64_t pprof_id;
};

struct pprof_proc_mappings {
    struct pprof_builder *b;
    struct pprof_mapping_ref *refs; /* sorted by start */
    size_t n_refs;
};

/* Registers p's mappings in b, its main executable first (so the first
 * process's becomes mapping[0], which pprof takes for the program).
 * Returns 0, or -1 when out of memory. */
int pprof_proc_mappings_init(struct pprof_proc_mappings *pm, struct pprof_builder *b,
                             const struct proc *p);
void pprof_proc_mappings_free(struct pprof_proc_mappings *pm);

/* The mapping holding the runtime address addr, or NULL. */
const struct pprof_mapping_ref *pprof_find_mapping(const struct pprof_proc_mappings *pm,
                                                   uint64_t addr);

/* Stores in out[0..n) the locations of the return addresses pcs[0..n),
 * leaf first: each at pc - 1, inside the call (0 stays 0); an address
 * outside every mapping gets a location without mapping. Returns 0, or -1
 * when out of memory. */
int pprof_stack_locations(const struct pprof_proc_mappings *pm, const uint64_t *pcs, size_t n,
                          uint64_t *out);

#endif
