/* flush: when and what the stream carries. The flusher thread, one flush
 * (every recorder's changes, in the order the collector needs them), the
 * collector's commands, and the exit, exec and fork of the process. The
 * top of the pipeline under the hooks: it reads every recorder. */
#ifndef PPX_FLUSH_H
#define PPX_FLUSH_H

#include "../cpu/cpu.h"
#include "../heap/heap.h"
#include "../io/io.h"
#include "../lock/lock.h"
#include "../stream/stream.h"

#pragma GCC visibility push(hidden)

/* ---- flusher.c ---- */

/* At init: the flusher's condition variable. */
void ppx_flush_init(void);
/* Constructor: one synchronous flush (connects if a collector listens),
 * and the flusher thread if one did; else the flusher waits for one. */
void ppx_flush_begin(void);
/* The flusher starts once a collector's socket is there, looked for from
 * CLOCK_MONOTONIC after_ns on, at most once a second, by
 * ppx_flusher_start_if_due on the allocation slow path (never in a signal
 * handler: it may start a thread). */
extern atomic_bool ppx_flusher_start_pending;
void ppx_flusher_start_later(uint64_t after_ns);
void ppx_flusher_start_if_due(void);

/* ---- lifecycle.c ---- */

/* The program's last thread is ending, on that thread (the thread
 * registry's callback): the flusher stops and is waited for, so that the
 * process exits on it. */
void ppx_flush_last_thread_ending(void);
/* Destructor: final flush, GOODBYE, stop the flusher. */
void ppx_flush_shutdown(void);
/* exec: send what this image recorded, with GOODBYE; and if exec failed,
 * carry on (the next flush reconnects). */
void ppx_flush_before_exec(void);
void ppx_flush_after_exec_failed(void);
/* Child of fork: a stream of its own; or, forked from inside the
 * profiler, none at all. */
void ppx_flush_reset_child(void);
void ppx_flush_disable_child(void);

/* ---- inside this stage only ---- */

/* The flusher's flags. Owned by flusher.c and lifecycle.c; under stream_mu
 * (ppx_flush_enter), but silenced, which only a child forked inside the
 * profiler sets, before any other thread exists. */
struct ppx_flush_flags {
    bool flusher_running; /* a flusher thread was started and not stopped */
    bool stopping;        /* set by the destructor (or the last thread's end) */
    bool silenced;        /* this process sends nothing (ppx_flush_disable_child) */
    bool exec_pending;    /* GOODBYE sent, exec under way */
};
extern struct ppx_flush_flags ppx_flush_flags;
/* Who holds stream_mu, for PPX_CHECK. */
extern struct ppx_owner ppx_stream_mu_owner;

/* stream_mu, then the stream's state_mu; and back. */
void ppx_flush_enter(void);
void ppx_flush_leave(void);
/* Stops the flusher for good (ppx_flush_enter'ed); whether there is one
 * to join, which ppx_flusher_join then does, within a budget. */
bool ppx_flusher_stop_locked(void);
void ppx_flusher_join(void);
void ppx_flusher_reset_child(void);

/* flush.c (ppx_flush_enter'ed) */
void ppx_flush_locked(void);
/* Sends everything, then GOODBYE, and closes the connection; when no
 * collector is reachable, spools it instead. */
void ppx_flush_and_say_goodbye(void);
/* Closes the connection; the collector's CPU requests end with it. */
void ppx_flush_disconnect(void);

/* wake.c: the pipe a half-full CPU ring wakes the flusher through. open:
 * by whoever starts the flusher; fd: the end to poll, -1 if none (or no
 * longer ours); drain: empties it; reset_child: fork's child lets go of
 * the parent's. */
void ppx_wake_open(void);
int ppx_wake_fd(void);
void ppx_wake_drain(void);
void ppx_wake_reset_child(void);

/* commands.c (ppx_flush_enter'ed) */
/* Reads and runs what the collector sent, without waiting. */
void ppx_flush_read_commands(void);
/* Forgets a partial command (a new or closed connection). */
void ppx_commands_reset(void);

#pragma GCC visibility pop

#endif
