/* Writes the CPU profile of processes (cpu.pb.gz) in pprof format, as Go's
 * runtime/pprof writes CPU profiles. */
#ifndef PPX_PPROF_CPU_H
#define PPX_PPROF_CPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "process.h"

/* The synthetic frames of the samples that have no stack. */
#define PPROF_CPU_LOST_FRAME "ppx: lost samples"
#define PPROF_CPU_DROPPED_FRAME "ppx: samples over the collector's limits"

/* The rate assumed for the period of a profile without any sample. */
#define PPROF_CPU_DEFAULT_HZ 100u

/* Writes the merged CPU profile of procs[0..n) to path, atomically (a
 * temporary file renamed into place), also when no process sent a sample
 * (a profile without samples).
 *
 * Sample types samples/count and cpu/nanoseconds (the default), period
 * type cpu/nanoseconds, period 1e9/hz of the first process that sent
 * samples (processes at other rates keep their own nanoseconds). One
 * sample per (stack, thread), leaf first (the interrupted instruction),
 * with a string label "thread" (the thread's latest name: a thread renamed
 * during the run has all its samples under its last name) and a numeric
 * label "tid"; with pid_labels a numeric label "pid" too. Ticks the target lost
 * are one sample per process on the single synthetic frame
 * PPROF_CPU_LOST_FRAME, without thread labels, so that the totals stay
 * true and the loss shows; samples the decoder kept without stack
 * (wire_decode.h limits) likewise on PPROF_CPU_DROPPED_FRAME. now_ns is
 * the profile's time, its duration runs from the earliest process start.
 * Returns 0, or -1 with a message in err. */
int pprof_cpu_write(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                    const char *path, char *err, size_t errlen);

#endif
