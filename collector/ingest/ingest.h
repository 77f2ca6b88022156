/* Ingest: the targets' record streams (include/ppx/wire.h) into the
 * process model. The decoder validates and applies records; the stream
 * listener accepts targets on the collector's Unix socket and feeds each
 * connection to its decoder; spool files left by targets that found no
 * collector go through the same decoder; control requests (`ppx snapshot`)
 * arrive on the same socket. */
#ifndef PPX_INGEST_H
#define PPX_INGEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "model/model.h"

/* ---- wire_decode ---- */
/* Decoder for the record stream of one connection (include/ppx/wire.h).
 *
 * Pure: it never touches a socket. Feed it the bytes as they arrive, in
 * chunks of any size; each complete record is validated and then applied
 * to the connection's struct proc in the proc_table. The first bad byte
 * stops the decoder for good: the caller closes the connection. Whatever
 * the process sent before the bad record stays in the table.
 *
 * Memory per connection is bounded: at most one partial record
 * (<= WIRE_MAX_RECORD, and grown only as its bytes actually arrive), and
 * per process at most PROC_MAX_* mappings, stacks, frames, I/O
 * sites and threads (one more closes the connection). The I/O detail beyond its
 * limits, distinct errnos or sampled stacks of one site, is dropped and
 * counted (proc_table_io_drops()); the site's exact figures stay whole:
 * calls of an errno beyond the limit remain in the site's errors, and the
 * site's figures are divided among the stacks it kept. Likewise CPU
 * samples of (stack, thread) pairs beyond PROC_MAX_CPU_ENTRIES are
 * kept only as a count (proc->cpu_dropped), so the CPU total stays true.
 * Threads beyond PROC_MAX_THREADS are not described (proc->
 * threads_full); their CPU samples are counted the same way. */

struct wire_decoder;

/* peer_pid (from SO_PEERCRED, 0 when unknown) names the connection in
 * messages until its HELLO says which process it is. NULL when out of
 * memory. */
struct wire_decoder *wire_decoder_new(struct proc_table *t, uint32_t peer_pid);

/* The order in which the connection was made (accepted), 1 and up: a
 * HELLO from a connection older than the one that last said HELLO for the
 * same process (both streams were read out of order, the old one last) is
 * ignored, and its connection closed, rather than let the older state
 * replace the newer. Without it (0: a spool file) every HELLO is taken. */
void wire_decoder_set_order(struct wire_decoder *d, uint64_t order);

/* Consumes len bytes. 0 while the stream is valid; -1 once it is not (and
 * for every later call): see wire_decoder_error(). */
int wire_decoder_feed(struct wire_decoder *d, const void *bytes, size_t len);

/* The peer closed the stream. 0 for a clean end (at a record boundary), -1
 * when it ended inside a record or the stream had failed before. */
int wire_decoder_end(struct wire_decoder *d);

/* The error as one line for stderr, without a newline, such as
 * "ppx: pid 1234: bad STACK record: depth 0"; "" when there is none or when
 * it need not be shown again (a process whose streams break again and
 * again is said once). */
const char *wire_decoder_error(const struct wire_decoder *d);

/* True when the stream failed: bad data, or cut inside a record. */
bool wire_decoder_failed(const struct wire_decoder *d);

/* True when the stream failed on bad data (not cut short, not still
 * valid): the connection must go, the process may reconnect afresh. */
bool wire_decoder_broke_protocol(const struct wire_decoder *d);

/* The process this connection feeds: NULL before a valid HELLO. */
struct proc *wire_decoder_proc(const struct wire_decoder *d);

/* The process whose stream ends with this decoder: its proc, unless a
 * newer connection feeds it now or has fed it since (after GOODBYE or a
 * bad record the decoder no longer owns it, but no other does either: its
 * stream ended here all the same). NULL before a HELLO. */
struct proc *wire_decoder_ended_proc(const struct wire_decoder *d);

/* True once GOODBYE was received. */
bool wire_decoder_said_goodbye(const struct wire_decoder *d);

/* Frees the decoder; the process stays in the table, marked disconnected
 * if this connection was the one feeding it. */
void wire_decoder_free(struct wire_decoder *d);

/* ---- streams ---- */
/* The collector's listening Unix socket and its connections: accepts
 * targets, reads their streams without blocking and feeds each to its own
 * wire decoder (ingest.h). A connection whose stream goes bad is
 * closed with a message on stderr; the others go on. */
struct ingest;

/* What the daemon (`ppx collect`) adds to the plain listener of `ppx record`. */
struct ingest_hooks {
    /* Held while connections are accepted, read and decoded (never while
     * waiting in poll), so that other threads may read the proc table
     * under it. NULL: single-threaded. */
    pthread_mutex_t *lock;
    /* Peers of another uid (SO_PEERCRED) are refused, said once per uid. */
    bool check_uid;
    uid_t uid;
    /* The connection feeding p ended (GOODBYE, end of stream, bad record,
     * read error) and no newer connection feeds it. Called with the lock
     * held, p already marked disconnected. */
    void (*closed)(void *arg, struct proc *p);
    /* A connection started feeding p: its HELLO was decoded (p's first,
     * or a reconnect of the same incarnation). Called with the lock held,
     * so a command sent now goes to that connection. */
    void (*opened)(void *arg, struct proc *p);
    /* A connection whose first 4 bytes are control_magic (little-endian)
     * is no target: it is handed to control() with the bytes read after
     * the magic, and the callee owns fd from then on. 0: no such thing. */
    uint32_t control_magic;
    void (*control)(void *arg, int fd, const uint8_t *rest, size_t len);
    void *arg;
};
void ingest_set_hooks(struct ingest *s, const struct ingest_hooks *h);

/* Listens on path. A path on which another collector answers is refused
 * ("socket PATH is in use by another collector"); a stale socket left by a
 * dead one is replaced. The socket gets mode 0600. NULL with a message in
 * err on failure. */
struct ingest *ingest_open(const char *path, struct proc_table *t, char *err, size_t errlen);

/* Waits up to timeout_ms (-1: no limit) for connections, stream data, or
 * extra_fd (-1: none) becoming readable; handles what arrived. Returns 1
 * when extra_fd is readable, 0 otherwise, -1 on a poll error (EINTR is 0). */
int ingest_poll(struct ingest *s, int timeout_ms, int extra_fd);

/* Accepts what is pending and reads what is already buffered on every
 * connection, without waiting. */
void ingest_read_available(struct ingest *s);

/* Reads until every connection has ended or timeout_ms has passed,
 * accepting pending connections too. For the end of a run: processes that
 * have exited have all their data queued already. Returns the number of
 * connections still open at the deadline. */
size_t ingest_drain(struct ingest *s, int timeout_ms);

size_t ingest_connections(const struct ingest *s);
/* Writes a command (wire.h: a wire_header of type, then len bytes of
 * payload) to the connection that currently feeds p, without blocking;
 * with the hooks' lock held. 0 when written; -1 when p has no such
 * connection, or its socket is full (nothing written), or the write was
 * cut short: then the connection's writing side is shut, and the target,
 * seeing the end of its commands, reconnects. */
int ingest_command(struct ingest *s, const struct proc *p, uint32_t type, const void *payload,
                   size_t len);

/* Closes every connection, the listening socket, and unlinks its path. */
void ingest_close(struct ingest *s);

/* ---- spool ---- */
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

/* ---- control ---- */
/* The control protocol of `ppx snapshot` (the client) and `ppx collect`
 * (the collector), over the collector's own Unix socket.
 *
 * A target's stream starts with a record header whose first four bytes
 * are its type (WIRE_HELLO = 1); a control connection starts with
 * CONTROL_MAGIC instead, and the collector tells the two apart by those
 * four bytes (ingest.h hooks). Everything else a target gets applies too:
 * the peer's uid is checked first (SO_PEERCRED), and every byte is
 * validated.
 *
 * Request, little-endian: CONTROL_MAGIC, a struct control_request, then
 * dir_len bytes of an absolute directory path (no NUL). It must arrive
 * within CONTROL_TIMEOUT_MS.
 * Reply, text lines: "file PATH" per file written, then "ok N" (N files)
 * or "error MESSAGE"; then the collector closes the connection.
 *
 * CONTROL_STACKS (`ppx stacks`) has no directory (dir_len 0): the
 * collector asks the processes for a thread dump and replies "ok" and a
 * newline, then the dump as text (goroutine?debug=2) until it closes the
 * connection; or "error MESSAGE". */
#define CONTROL_MAGIC 0x43585050u /* "PPXC" little-endian */
#define CONTROL_VERSION 1u
#define CONTROL_MAX_DIR 4096u
#define CONTROL_TIMEOUT_MS 5000

enum control_command {
    CONTROL_SNAPSHOT = 1, /* write the profiles of pid (0: every process) into dir */
    CONTROL_STACKS = 2,   /* every thread's and coroutine's stack, as text */
};

struct control_request {
    uint32_t version; /* CONTROL_VERSION */
    uint32_t command; /* enum control_command */
    uint32_t pid;     /* 0: every process */
    uint32_t dir_len; /* 1..CONTROL_MAX_DIR */
};

struct control_snapshot {
    uint32_t command; /* enum control_command */
    uint32_t pid;
    char dir[CONTROL_MAX_DIR + 1];
};

/* Collector side: reads the rest of a request from fd (rest[0..len): the
 * bytes already read after the magic) and validates it. Returns 0, or -1
 * with a one-line message in err. */
int control_read_request(int fd, const uint8_t *rest, size_t len, struct control_snapshot *req,
                         char *err, size_t errlen);

/* Collector side: one reply line (a newline is added); best effort, bounded
 * by CONTROL_TIMEOUT_MS. */
void control_reply(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Collector side: bytes as they are (a stacks reply's text), bounded
 * likewise. */
void control_reply_bytes(int fd, const char *bytes, size_t len);

/* Client side: sends a snapshot request. Returns 0, or -1 with errno. */
int control_send_snapshot(int fd, uint32_t pid, const char *dir);
/* Client side: sends a stacks request. Returns 0, or -1 with errno. */
int control_send_stacks(int fd, uint32_t pid);

#endif
