/* The output directory of `ppx record` and the profile files in it:
 * heap.pb.gz, allocs.pb.gz and syscalls.pb.gz (merged over all processes),
 * numbered snapshots heap.N.pb.gz / allocs.N.pb.gz / syscalls.N.pb.gz, and
 * with several processes per-process files in DIR/PID/ (DIR/PID.I/ for
 * later incarnations). */
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
 * process that has samples or I/O calls; with final, says what I/O detail
 * the decoder's limits dropped. Returns 0, or -1 after printing what
 * failed. */
int output_write(const char *dir, struct proc_table *t, unsigned snapshot, bool final);

#endif
