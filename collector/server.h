/* The collector's listening Unix socket and its connections: accepts
 * targets, reads their streams without blocking and feeds each to its own
 * wire decoder (wire_decode.h). A connection whose stream goes bad is
 * closed with a message on stderr; the others go on. */
#ifndef PPX_SERVER_H
#define PPX_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "proc_table.h"

struct server;

/* What the daemon (`ppx collect`) adds to the plain server of `ppx record`. */
struct server_hooks {
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
void server_set_hooks(struct server *s, const struct server_hooks *h);

/* Listens on path. A path on which another collector answers is refused
 * ("socket PATH is in use by another collector"); a stale socket left by a
 * dead one is replaced. The socket gets mode 0600. NULL with a message in
 * err on failure. */
struct server *server_open(const char *path, struct proc_table *t, char *err, size_t errlen);

/* Waits up to timeout_ms (-1: no limit) for connections, stream data, or
 * extra_fd (-1: none) becoming readable; handles what arrived. Returns 1
 * when extra_fd is readable, 0 otherwise, -1 on a poll error (EINTR is 0). */
int server_poll(struct server *s, int timeout_ms, int extra_fd);

/* Accepts what is pending and reads what is already buffered on every
 * connection, without waiting. */
void server_read_available(struct server *s);

/* Reads until every connection has ended or timeout_ms has passed,
 * accepting pending connections too. For the end of a run: processes that
 * have exited have all their data queued already. Returns the number of
 * connections still open at the deadline. */
size_t server_drain(struct server *s, int timeout_ms);

size_t server_connections(const struct server *s);
/* Writes a command (wire.h: a wire_header of type, then len bytes of
 * payload) to the connection that currently feeds p, without blocking;
 * with the hooks' lock held. 0 when written; -1 when p has no such
 * connection, or its socket is full (nothing written), or the write was
 * cut short: then the connection's writing side is shut, and the target,
 * seeing the end of its commands, reconnects. */
int server_command(struct server *s, const struct proc *p, uint32_t type, const void *payload,
                   size_t len);

/* Closes every connection, the listening socket, and unlinks its path. */
void server_close(struct server *s);

#endif
