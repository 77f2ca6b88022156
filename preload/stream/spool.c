/* Spool files: the final state of a process that exits (or execs) while no
 * collector is reachable, kept for the next `ppx collect`.
 *
 * The file holds exactly what a connection would have carried (wire.h,
 * HELLO to GOODBYE), so the collector reads it with the same decoder. It
 * goes in the socket's directory, and only when that directory exists, is
 * ours and is closed to group and others: the collector made it (a program
 * merely preloaded, never collected, leaves nothing behind), and nobody
 * else can plant or read files there. Written as spool.<pid>.<start>.part,
 * renamed to .ppx when complete: a collector never takes a half-written
 * file for a whole one, and a .part whose writer died is recognisable.
 *
 * All spool files together stay under PPX_SPOOL_MAX_MB: a process that
 * would pass it writes nothing (said once). Only the exit or exec flush
 * comes here (stream_mu held): no malloc, no stdio. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_LEN 64u

/* Owned by the exit or exec flush (stream_mu): the file being written. */
static char dir_path[PPX_SOCKET_PATH_MAX];
static char part_path[PPX_SOCKET_PATH_MAX + NAME_MAX_LEN];
static char done_path[PPX_SOCKET_PATH_MAX + NAME_MAX_LEN];

static size_t append_u64(char *buf, size_t at, uint64_t v)
{
    ppx_format_u64(v, buf + at, 24);
    return at + strlen(buf + at);
}

static size_t append_str(char *buf, size_t at, const char *s)
{
    size_t n = strlen(s);
    memcpy(buf + at, s, n + 1);
    return at + n;
}

/* The socket's directory, if spool files may go there. */
static bool usable_dir(void)
{
    const char *sock = ppx_config.socket_path;
    const char *slash = strrchr(sock, '/');
    if (slash == NULL || slash == sock)
        return false; /* a relative name, or a socket in / */
    size_t len = (size_t)(slash - sock);
    memcpy(dir_path, sock, len);
    dir_path[len] = '\0';
    struct stat st;
    return lstat(dir_path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
           (st.st_mode & (S_IRWXG | S_IRWXO)) == 0;
}

static bool add_size(int dirfd, const char *name, void *arg)
{
    uint64_t *total = arg;
    struct stat st;
    if (strncmp(name, "spool.", 6) == 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode))
        *total += (uint64_t)st.st_size;
    return true;
}

/* Bytes taken by the spool files already in the directory. */
static uint64_t spooled_bytes(void)
{
    uint64_t total = 0;
    ppx_dir_walk(dir_path, add_size, &total);
    return total;
}

int ppx_spool_open(uint64_t *room)
{
    static atomic_flag said_full = ATOMIC_FLAG_INIT;
    if (!ppx_config.spool || !usable_dir())
        return -1;
    uint64_t cap = (uint64_t)ppx_config.spool_max_mb << 20;
    uint64_t used = spooled_bytes();
    if (used >= cap) {
        ppx_log_once(&said_full, "no collector, and the spool directory ", dir_path,
                     " is full (PPX_SPOOL_MAX_MB): this process's profile is not kept", NULL);
        return -1;
    }
    size_t at = append_str(part_path, 0, dir_path);
    at = append_str(part_path, at, "/spool.");
    at = append_u64(part_path, at, (uint64_t)getpid());
    at = append_str(part_path, at, ".");
    at = append_u64(part_path, at, ppx_start_ns);
    memcpy(done_path, part_path, at);
    append_str(done_path, at, ".ppx");
    append_str(part_path, at, ".part");
    int fd = open(part_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, ppx_high_fd_base());
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    *room = cap - used;
    return fd;
}

void ppx_spool_close(int fd, bool complete)
{
    static atomic_flag said_cut = ATOMIC_FLAG_INIT;
    bool closed = close(fd) == 0;
    bool kept = complete && closed && rename(part_path, done_path) == 0;
    if (!kept) {
        unlink(part_path);
        ppx_log_once(&said_cut, "no collector, and the spool file ", part_path,
                     " could not be written whole (PPX_SPOOL_MAX_MB, disk full?): removed", NULL);
    }
}
