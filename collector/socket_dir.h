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

/* Makes sure the directory of socket_path exists: created 0700 when
 * missing. With strict (the default path, in a shared place like /tmp),
 * an existing one must be a directory of ours (not a symlink) that
 * neither group nor others may access; anything else is refused, since
 * whoever controls it could stand in for the collector. Returns 0, or -1
 * with a message in err. */
int socket_dir_prepare(const char *socket_path, bool strict, char *err, size_t errlen);

#endif
