/* The live collector's background thread: writes profile files, so that
 * neither the ingest loop nor a control connection waits for symbolizing
 * and compressing. Jobs run one at a time, in order:
 *  - the final profiles of a process whose connection ended (with -o DIR):
 *    DIR/<exe>.<pid>/heap.pb.gz, allocs.pb.gz, ... (record_output.h);
 *  - a control request (`ppx snapshot`, control.h): the profiles of the
 *    selected processes, merged, in the requested directory, plus each
 *    process's own in <exe>.<pid>/ there when several are selected; the
 *    files written are listed back to the client. */
#ifndef PPX_COLLECT_WORKER_H
#define PPX_COLLECT_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "live.h"

struct collect_worker;

/* out_dir: where exited processes' profiles go (prepared already), or
 * NULL for none; quiet: no message for each process written, only
 * errors. NULL with a message on stderr when the thread cannot start. */
struct collect_worker *collect_worker_start(struct live *l, const char *out_dir, bool quiet);

/* From the ingest loop, table lock held: p's connection ended; exited
 * false when the collector is stopping (p may still run). Copies p when
 * its profiles are to be written. spool: the spool file p was read from
 * (spool.h), removed once they are; NULL for a connection. */
void collect_worker_process_ended(struct collect_worker *w, const struct proc *p, bool exited,
                                  const char *spool);

/* From the ingest loop: a control connection (server.h hooks); the worker
 * owns fd from now on. */
void collect_worker_control(struct collect_worker *w, int fd, const uint8_t *rest, size_t len);

/* Runs every queued job, stops the thread and frees w. */
void collect_worker_finish(struct collect_worker *w);

/* "<exe basename>.<pid>" (".<incarnation>" added after an exec), the
 * name of a process's own directory, made of safe characters only. */
void collect_proc_dirname(const struct proc *p, char *buf, size_t len);

#endif
