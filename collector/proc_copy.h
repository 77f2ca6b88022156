/* Copies of processes (process.h) that live on their own, and the
 * difference of two copies.
 *
 * The live collector's readers (HTTP handlers, snapshots, the profiles of
 * an exited process) copy what they need while holding the table's lock,
 * and build profiles from the copy after letting go of it, so symbolizing
 * and encoding never stall the ingest of the targets' streams.
 *
 * A delta profile (`?seconds=N`, Go's net/http/pprof semantics: the
 * difference of two profiles) is made at this level: a copy of the
 * counters at t0, a full copy at t1, and proc_copy_subtract(). Counters
 * are cumulative per id (stack, I/O site, (stack, thread) CPU pair), and a
 * target that reconnects resends them from zero under the same ids, so the
 * subtraction is per id; a figure below its base (a reconnection still
 * being resent) counts as no change. */
#ifndef PPX_PROC_COPY_H
#define PPX_PROC_COPY_H

#include <stdbool.h>
#include <stdint.h>
#include "process.h"

enum proc_copy_depth {
    PROC_COPY_FULL,     /* everything a pprof writer reads */
    PROC_COPY_COUNTERS, /* ids and counters only: no frames, mappings, names */
    PROC_COPY_MAPPINGS, /* mappings and names only: to look addresses up */
};

/* A malloc'ed copy of p that shares nothing with it; NULL when out of
 * memory. Free it with proc_copy_free(). */
struct proc *proc_copy(const struct proc *p, enum proc_copy_depth depth);
void proc_copy_free(struct proc *copy);

/* Turns now (a PROC_COPY_FULL copy) into the change since base (a copy of
 * the same process, start_ns equal, taken earlier): heap, I/O and CPU
 * counters become differences (a stack whose blocks were freed in the
 * window has more frees than allocations: its in-use figures go
 * negative), threads described in base are dropped (left: the threads
 * created in the window), and start_ns becomes since_ns, so that a
 * profile's duration is the window's. base NULL: the process started in
 * the window, everything stays. */
void proc_copy_subtract(struct proc *now, const struct proc *base, uint64_t since_ns);

#endif
