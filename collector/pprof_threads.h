/* Writes where the threads of processes were created (threadcreate.pb.gz)
 * in pprof format, as Go writes its threadcreate profile, with each
 * thread's particulars in labels (read back by `ppx threads`). */
#ifndef PPX_PPROF_THREADS_H
#define PPX_PPROF_THREADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "process.h"

/* The one synthetic frame of a thread without creation stack. */
#define PPROF_THREADS_MAIN_FRAME "main thread"
#define PPROF_THREADS_PREEXISTING_FRAME "thread started before ppx"
#define PPROF_THREADS_UNKNOWN_FRAME "creation stack unknown"

/* Writes the merged threadcreate profile of procs[0..n) to path,
 * atomically (a temporary file renamed into place), also when no process
 * described a thread (a profile without samples).
 *
 * Sample type threadcreate/count (the default), period type
 * threadcreate/count, period 1. One sample of value 1 per thread, whose
 * stack is its creation stack (leaf: the caller of pthread_create) or,
 * for a thread without one, a synthetic frame: PPROF_THREADS_MAIN_FRAME,
 * PPROF_THREADS_PREEXISTING_FRAME or PPROF_THREADS_UNKNOWN_FRAME. `pprof
 * -top` thus counts threads per creation site. Labels: string "thread"
 * (its name), numeric "tid", "creator_tid" (when the creator is known),
 * "start_ns" and "end_ns" (CLOCK_REALTIME; no end_ns while it runs), and
 * "cpu" (unit nanoseconds: CPU time used); with pid_labels "pid". now_ns is
 * the profile's time, its duration runs from the earliest process start.
 * Returns 0, or -1 with a message in err. */
int pprof_threads_write(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                        const char *path, char *err, size_t errlen);

#endif
