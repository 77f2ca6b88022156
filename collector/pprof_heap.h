/* Writes heap and allocs profiles in pprof format (profile.proto, gzipped),
 * as Go's runtime/pprof writes them. */
#ifndef PPX_PPROF_HEAP_H
#define PPX_PPROF_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include "process.h"

enum pprof_heap_kind {
    PPROF_HEAP,   /* default sample type inuse_space */
    PPROF_ALLOCS, /* default sample type alloc_space */
};

/* Writes the merged profile of procs[0..n) to path (atomically: a
 * temporary file renamed into place). With pid_labels, each sample carries
 * a numeric label "pid". now_ns is the profile's time. Returns 0, or -1
 * with a message in err. */
int pprof_heap_write(struct proc *const *procs, size_t n, enum pprof_heap_kind kind,
                     bool pid_labels, uint64_t now_ns, const char *path, char *err,
                     size_t errlen);

/* Whether name (a raw symbol name) is an allocator entry point: malloc and
 * its family, operator new/delete in every variant, glibc's __libc_*,
 * jemalloc's and tcmalloc's own names. Such frames are dropped from the
 * leaf end of heap stacks, as Go drops its runtime frames. */
bool pprof_is_allocator_entry(const char *name);

/* How many frames at the leaf end of s are allocator entry points (a stack
 * of nothing else keeps its last frame): where its shown stack starts. */
struct pprof_proc_mappings;
uint32_t pprof_heap_first_frame(const struct pprof_proc_mappings *pm, const struct proc_stack *s);

#endif
