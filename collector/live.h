/* The live collector's state shared between its threads: the process
 * table fed by the ingest loop (the main thread), read by the HTTP
 * handlers and the background worker.
 *
 * Locking: the ingest loop holds live_lock() while it decodes (server.h
 * hooks), never while it waits. Readers hold it only to copy what they
 * need (proc_copy.h) and build profiles from the copies afterwards, under
 * the separate build lock: the symbolizer's cache is not thread-safe, and
 * builds are what takes time (symbolizing a large binary the first time),
 * so they must not stall ingest.
 *
 * Exited processes stay readable (merged into every profile) until more
 * than LIVE_KEEP_EXITED have exited; then the oldest are forgotten. */
#ifndef PPX_LIVE_H
#define PPX_LIVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "proc_copy.h"
#include "proc_table.h"

#define LIVE_KEEP_EXITED 32u

struct live;

struct live *live_new(void);
void live_free(struct live *l);

/* The table (touched by the ingest loop under live_lock()). */
struct proc_table *live_table(struct live *l);
pthread_mutex_t *live_lock(struct live *l);

/* From the ingest loop, lock held: p's connection ended (it exited, or
 * the collector is stopping). Returns true when p counts as exited (not
 * while stopping). May forget the oldest exited processes. */
bool live_process_ended(struct live *l, struct proc *p);

/* From the ingest loop, lock held: a connection started feeding p (its
 * HELLO, first or again). A target forgets the collector's commands when
 * its connection ends (a daemon closing every descriptor, say): the CPU
 * sampling that profile windows still want is asked for again. */
void live_process_opened(struct live *l, struct proc *p);

/* Copies of the processes a request selects: every one (pid 0) or the
 * latest incarnation of pid. Returns 0 with *out (free with
 * live_free_copies(); NULL when none) and *n, LIVE_NO_SUCH_PID, or -1
 * when out of memory. */
#define LIVE_NO_SUCH_PID 1
int live_copy(struct live *l, uint32_t pid, enum proc_copy_depth depth, struct proc ***out,
              size_t *n);
void live_free_copies(struct proc **procs, size_t n);

/* What the index page lists of a process. */
struct live_info {
    uint32_t pid;
    uint64_t start_ns, exited_ns; /* CLOCK_REALTIME; exited_ns 0: running */
    char exe[256];
};
/* The processes, in the order they first connected; *out malloc'ed. */
int live_describe(struct live *l, struct live_info **out, size_t *n);

/* Serializes profile builds (symbolizer). */
void live_build_begin(struct live *l);
void live_build_end(struct live *l);

/* Sleeps seconds (a delta profile's window); false, at once, when the
 * collector is stopping. */
bool live_sleep(struct live *l, unsigned seconds);
/* Counts the windows under way: true (and counted until
 * live_window_leave()) while fewer than max are. */
bool live_window_enter(struct live *l, unsigned max);
void live_window_leave(struct live *l);
/* Wakes every live_sleep() for good. */
void live_stop(struct live *l);
bool live_stopping(struct live *l);

uint64_t live_now_ns(void); /* CLOCK_REALTIME */

/* ---- commands to the targets (wire.h) ----
 * The ingest loop's server writes them: live_set_sender() gives the
 * function (called with live_lock() held) that writes one to the
 * connection feeding p; 0 when written. Without one, nothing is sent. */
typedef int (*live_send_fn)(void *arg, const struct proc *p, uint32_t type, const void *payload,
                            size_t len);
void live_set_sender(struct live *l, live_send_fn send, void *arg);

/* How long live_flush() waits for the targets' FLUSHED. */
#define LIVE_FLUSH_WAIT_MS 1000
/* Asks the connected processes (every one, or the latest incarnation of
 * pid) to send everything now, and waits until each has answered
 * (FLUSHED), gone, or timeout_ms passed. Returns how many answered. A
 * process that let the deadline pass is neither asked nor waited for
 * again until it answers that request or reconnects: a target whose
 * flusher is stuck costs one wait, not one per request. */
size_t live_flush(struct live *l, uint32_t pid, int timeout_ms);

/* A CPU profile's window: the processes asked to sample. */
struct live_proc_id;
struct live_cpu_window {
    struct live_proc_id *procs;
    size_t n;
};
/* Asks the connected processes (every one, or pid) that sample CPU on
 * demand to sample at hz, until live_cpu_end(); concurrent windows share
 * the sampling (the first one's rate), which stops when the last ends.
 * Processes started with PPX_CPU_HZ are left alone. */
void live_cpu_begin(struct live *l, uint32_t pid, uint32_t hz, struct live_cpu_window *w);
void live_cpu_end(struct live *l, struct live_cpu_window *w);

#endif
