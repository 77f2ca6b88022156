/* Where the live collector listens: the path libppx.so connects to by
 * default, and the private directory that holds it. */
#ifndef PPX_SOCKET_DIR_H
#define PPX_SOCKET_DIR_H

#include <stdbool.h>
#include <stddef.h>

/* libppx.so's default (preload/init.c): $XDG_RUNTIME_DIR/ppx/ppx.sock when
 * XDG_RUNTIME_DIR is an absolute path short enough, else
 * /tmp/ppx-<uid>/ppx.sock. */
void socket_default_path(char *buf, size_t len);

/* The socket a command uses, as libppx.so chooses it: flag (--socket) if
 * given, else $PPX_SOCKET if set and usable, else socket_default_path().
 * An unusable PPX_SOCKET (empty, too long) is said on stderr, and the
 * default used, as libppx.so does. True when the path was chosen
 * explicitly (flag or PPX_SOCKET), false for the default. */
bool socket_path_choose(const char *flag, char *buf, size_t len);

/* Makes sure the directory of socket_path exists: created 0700 when
 * missing. With strict (the default path, in a shared place like /tmp),
 * an existing one must be a directory of ours (not a symlink) that
 * neither group nor others may access; anything else is refused, since
 * whoever controls it could stand in for the collector. Returns 0, or -1
 * with a message in err. */
int socket_dir_prepare(const char *socket_path, bool strict, char *err, size_t errlen);

/* Takes the collector's lock for socket_path: an exclusive flock on
 * socket_path + ".lock" (created 0600), held by the returned descriptor
 * for as long as the collector runs (the kernel drops it at exit, however
 * the process ends). Checking whether a collector answers, removing a
 * stale socket and binding a new one is not atomic: two collectors started
 * at once could both do it, the second unlinking the first's socket. Under
 * the lock only one gets that far. The lock file is never removed: a
 * collector that unlinked it could leave the next two locking different
 * files. Returns the descriptor, or -1 with a message in err (another
 * collector holds the lock, or the file cannot be opened). */
int socket_lock(const char *socket_path, char *err, size_t errlen);

#endif
