/* Spool files: the final state of targets that exited (or exec'd) while no
 * collector was reachable, left in the socket's directory by libppx.so
 * (preload/spool.c) as spool.<pid>.<start_ns>.ppx, each a whole stream
 * (HELLO to GOODBYE). `ppx collect` reads them at start and then every
 * SPOOL_SCAN_MS, oldest process first, through the same decoder as a
 * connection.
 *
 * A file is read once per collector run. With consume set (ppx collect -o
 * DIR), the caller is given its path to remove once the process's profiles
 * are written; otherwise files stay for a later collector. A file that is
 * not a valid stream, or a .part whose writer died before finishing it, is
 * read up to the damage (that data is kept), reported, and renamed to
 * *.bad so that it is not read again. */
#ifndef PPX_SPOOL_H
#define PPX_SPOOL_H

#include <pthread.h>
#include <stdbool.h>
#include "proc_table.h"

#define SPOOL_SCAN_MS 1000

struct spool;

/* ended(arg, p, path): p's stream was read whole (called with lock held,
 * p disconnected); path is the file to remove after p's profiles are
 * written, or NULL when it must stay. */
typedef void (*spool_ended_fn)(void *arg, struct proc *p, const char *path);

/* For the directory of socket_path. NULL when out of memory. */
struct spool *spool_new(const char *socket_path, bool consume, struct proc_table *t,
                        pthread_mutex_t *lock, spool_ended_fn ended, void *arg);
/* Reads the spool files not read yet. */
void spool_scan(struct spool *s);
void spool_free(struct spool *s);

#endif
