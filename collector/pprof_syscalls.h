/* Writes the I/O call audit of processes as a pprof profile (syscalls.pb.gz):
 * per call site and stack, how many calls, how long they took, what they
 * moved and how many failed. */
#ifndef PPX_PPROF_SYSCALLS_H
#define PPX_PPROF_SYSCALLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "process.h"

/* Sample types, in this order; the default is "calls". */
#define PPROF_SYSCALLS_TYPES                                                                 \
    {"calls", "count"}, {"time", "nanoseconds"}, {"bytes", "bytes"}, {"messages", "count"},  \
        {"errors", "count"}, {"eagain", "count"}
#define PPROF_SYSCALLS_N_TYPES 6

/* Writes the merged I/O profile of procs[0..n) to path, atomically (a
 * temporary file renamed into place), also when no process made an I/O
 * call (a profile without samples).
 *
 * Each sample's stack is a synthetic leaf naming the call ("recvmsg": a
 * location without mapping whose function has that name), then the real
 * frames. A site's exact figures are divided among its sampled stacks in
 * proportion to their samples, with largest-remainder rounding so that the
 * integers add up to the site's figures exactly; a site without a sampled
 * stack gets the one-frame stack of its caller. String labels "fd",
 * "family", "socktype" describe the descriptor; with pid_labels a numeric
 * label "pid" names the process. Failed calls by errno are separate
 * samples with a string label "errno" ("ECONNRESET") carrying only an
 * errors value (an eagain value for EAGAIN); the plain samples carry the
 * failures whose errno is unknown. now_ns is the profile's time, its
 * duration runs from the earliest process start. Returns 0, or -1 with a
 * message in err. */
int pprof_syscalls_write(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                         const char *path, char *err, size_t errlen);

/* The name of a wire.h enum wire_io_call value ("recvmsg"), or NULL. */
const char *pprof_io_call_name(unsigned call);

/* The name of errno value err ("ECONNRESET"), or "E<number>" for one the
 * C library cannot name, in buf. */
const char *pprof_errno_name(int err, char *buf, size_t buflen);

#endif
