/* Whom libppx.so tells its secrets: the checks before the first byte goes
 * to a collector socket.
 *
 * A HELLO carries the whole command line (passwords included), and the
 * records that follow the mappings and stacks; a collector's commands are
 * obeyed. So the socket must be one only this user, or root, could have
 * put there, and the process listening on it must run as this user or as
 * root (root may read this process's memory anyway, and a collector run by
 * root for others' processes is a real use):
 *   - the socket's directory (lstat: not a symlink) belongs to this
 *     process's effective uid or to root, and neither group nor others may
 *     write it (whoever may write it may replace the socket);
 *   - the listener's uid (SO_PEERCRED, read after connect and before any
 *     send) is the effective uid or 0.
 * A refusal is said once on stderr; the stream then stays unconnected, and
 * the planted socket itself is not tried again (connection.c remembers it).
 * Flusher only (stream_mu held): no malloc, no stdio. */
#include "stream.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define WHY_MAX (2 * PPX_SOCKET_PATH_MAX + 160)

static atomic_flag said_refused = ATOMIC_FLAG_INIT;
static char why[WHY_MAX];

static size_t put_str(size_t at, const char *s)
{
    size_t n = strlen(s);
    if (n > sizeof why - 1 - at)
        n = sizeof why - 1 - at;
    memcpy(why + at, s, n);
    /* every at comes from put_str, so at <= sizeof why - 1 and the index
     * stays inside why; cppcheck assumes any at */
    // cppcheck-suppress arrayIndexOutOfBoundsCond
    why[at + n] = '\0';
    return at + n;
}

static size_t put_u64(size_t at, uint64_t v)
{
    char digits[24];
    ppx_format_u64(v, digits, sizeof digits);
    return put_str(at, digits);
}

static size_t put_octal(size_t at, unsigned mode)
{
    char digits[5] = {'0', (char)('0' + ((mode >> 6) & 7)), (char)('0' + ((mode >> 3) & 7)),
                      (char)('0' + (mode & 7)), '\0'};
    return put_str(at, digits);
}

/* "not connecting to the collector socket PATH: <why>; ..." once. */
static void refuse(const char *socket_path)
{
    ppx_log_once(&said_refused, "not connecting to the collector socket ", socket_path, ": ", why);
}

static bool trusted_uid(uid_t uid)
{
    return uid == geteuid() || uid == 0;
}

/* The directory part of path ("." for a bare name), into dir. */
static void dir_of(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (len == 0 || len >= cap) {
        strcpy(dir, ".");
        return;
    }
    memcpy(dir, path, len);
    dir[len] = '\0';
}

bool ppx_socket_dir_trusted(const char *socket_path)
{
    char dir[PPX_SOCKET_PATH_MAX];
    dir_of(socket_path, dir, sizeof dir);
    struct stat st;
    size_t at = put_str(0, "its directory ");
    at = put_str(at, dir);
    if (lstat(dir, &st) != 0)
        return false; /* gone since the socket was seen: nothing to say */
    if (!S_ISDIR(st.st_mode)) {
        put_str(at, " is not a directory (a symlink?)");
    } else if (!trusted_uid(st.st_uid)) {
        at = put_str(at, " belongs to uid ");
        at = put_u64(at, st.st_uid);
        at = put_str(at, ", neither this process's uid ");
        at = put_u64(at, geteuid());
        put_str(at, " nor root");
    } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        at = put_str(at, " may be written by others (mode ");
        at = put_octal(at, st.st_mode & 0777);
        put_str(at, ")");
    } else {
        return true;
    }
    put_str(strlen(why), "; this process's profile is not sent");
    refuse(socket_path);
    return false;
}

bool ppx_socket_peer_trusted(int fd, const char *socket_path)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    size_t at;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
        at = put_str(0, "the listener's credentials cannot be read");
    } else if (!trusted_uid(cred.uid)) {
        at = put_str(0, "the listener runs as uid ");
        at = put_u64(at, cred.uid);
        at = put_str(at, ", neither this process's uid ");
        at = put_u64(at, geteuid());
        at = put_str(at, " nor root");
    } else {
        return true;
    }
    put_str(at, "; this process's profile is not sent");
    refuse(socket_path);
    return false;
}
