/* The output directory of `ppx record` and the profile files in it:
 * heap.pb.gz, allocs.pb.gz, syscalls.pb.gz, cpu.pb.gz and
 * threadcreate.pb.gz (merged over all processes), numbered snapshots
 * heap.N.pb.gz ... threadcreate.N.pb.gz, and with several processes
 * per-process files in DIR/PID/ (DIR/PID.I/ for later incarnations). */
#ifndef PPX_RECORD_OUTPUT_H
#define PPX_RECORD_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include "proc_table.h"

/* mkdir -p dir, then proves it writable by creating and removing a file
 * (access() would lie for root and on read-only file systems). */
int output_dir_prepare(const char *dir, char *err, size_t errlen);

/* dir/name without a doubled slash, malloc'ed. */
char *output_path(const char *dir, const char *name);

/* Writes snapshot number n (0: the final files) of every process, merged.
 * With final and several processes, also the per-process files of each
 * process that has samples, I/O calls, CPU samples or threads; with final,
 * says what I/O and CPU detail the decoder's limits dropped. Returns 0, or -1 after printing what
 * failed. */
int output_write(const char *dir, struct proc_table *t, unsigned snapshot, bool final);

/* Writes the profiles of procs[0..n) (copies, proc_copy.h, for the live
 * collector), merged, into dir: the same files as output_write(), with
 * pid labels when n > 1. Returns 0, or -1 after printing what failed. */
int output_write_procs(const char *dir, struct proc *const *procs, size_t n);

#endif
