/* The connection to the collector: a Unix socket (or, for the final state
 * of a process without a collector, a spool file: spool.c).
 *
 * Before a byte goes out, the socket's directory and the listener's uid
 * are checked (socket_trust.c): a HELLO carries the command line.
 *
 * The socket must not disturb the program: close-on-exec, moved out of the
 * program's descriptor range (core/fd_place.c), MSG_NOSIGNAL, a send
 * timeout, and verified (device, inode) before each write, because daemons
 * close or dup2 over descriptors they do not know. A descriptor that is not
 * ours any more is forgotten, not closed; one the program read or wrote
 * itself (the I/O hooks tell) is dropped, and a new connection resends it
 * all. With no collector listening there is no socket at all: only a
 * stat() per interval, and no message.
 *
 * state_mu guards the stream's state (the encoder, what was sent on this
 * connection). The flusher holds it with its own stream_mu (flush/), and
 * releases it only while it waits on the collector (a send here, a poll or
 * a condition wait there), so that fork's prepare handler (ppx_stream_lock)
 * never waits for a stopped or slow collector, and the child copies the
 * state whole. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SEND_TIMEOUT_S 2

static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ppx_owner state_mu_owner; /* check builds: who holds state_mu */

/* Under state_mu: the connection. */
static int sock = -1;
static dev_t sock_dev;
static ino_t sock_ino;
static pid_t sock_pid;      /* the process that connected */
static uint64_t generation; /* of the current connection; 0: none yet */
/* While the exit or exec flush writes a spool file (spool.c), instead of
 * the socket: its descriptor and the bytes it may still take. */
static int spool_fd = -1;
static uint64_t spool_room;

void ppx_stream_lock(void)
{
    pthread_mutex_lock(&state_mu);
    ppx_owner_take(&state_mu_owner);
}

void ppx_stream_unlock(void)
{
    ppx_owner_drop(&state_mu_owner);
    pthread_mutex_unlock(&state_mu);
}

void ppx_stream_check_locked(void)
{
    PPX_CHECK_OWNED(&state_mu_owner);
}

uint64_t ppx_stream_generation(void)
{
    return generation;
}

/* The descriptor still is the socket we connected (the program may have
 * closed it, or dup2'ed something over it). */
static bool socket_fd_is_ours(void)
{
    struct stat st;
    return sock >= 0 && fstat(sock, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == sock_dev &&
           st.st_ino == sock_ino;
}

/* ...and this is the process that connected it: one made by a raw clone()
 * (no fork handlers) shares the connection with its parent, and must not
 * write there, nor close it (with CLONE_FILES that would close the
 * parent's). */
static bool socket_still_ours(void)
{
    return getpid() == sock_pid && socket_fd_is_ours();
}

bool ppx_stream_connected(void)
{
    return sock >= 0;
}

int ppx_stream_socket(void)
{
    return sock;
}

bool ppx_stream_still_ours(void)
{
    return socket_still_ours();
}

void ppx_stream_forget(void)
{
    sock = -1; /* closed or replaced by the program: not ours to close */
}

void ppx_stream_close(void)
{
    if (socket_still_ours())
        close(sock);
    sock = -1;
}

/* Whether the collector closed its end. The target only writes, so a
 * collector that died unnoticed would otherwise be found out only by the
 * next send, and an idle target would never reach a restarted one. */
bool ppx_stream_peer_closed(void)
{
    char c;
    ssize_t n = recv(sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* To the spool file instead of a socket, within its room. */
static bool spool_all(const unsigned char *p, size_t len)
{
    if (len > spool_room)
        return false;
    spool_room -= len;
    while (len > 0) {
        ssize_t n = write(spool_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool ppx_stream_write(const void *data, size_t len)
{
    const unsigned char *p = data;
    ppx_stream_check_locked();
    if (spool_fd >= 0)
        return spool_all(p, len);
    if (!socket_still_ours()) {
        sock = -1; /* closed or replaced by the program: not ours to close */
        return false;
    }
    while (len > 0) {
        uint64_t deadline = ppx_stream_encoder()->deadline_ns;
        if (deadline != 0 && ppx_monotonic_ns() > deadline)
            return false;
        /* a fork may go on meanwhile: what is being sent is the parent's */
        ppx_stream_unlock();
        ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
        int err = errno;
        ppx_stream_lock();
        errno = err;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false; /* EPIPE, timeout (EAGAIN), anything: give up this connection */
        p += n;
        len -= (size_t)n;
    }
    return true;
}

atomic_int ppx_stream_fd = -1;
static atomic_bool program_touched_stream;

void ppx_stream_program_touched(void)
{
    atomic_store_explicit(&program_touched_stream, true, memory_order_relaxed);
}

bool ppx_stream_program_touched_it(void)
{
    return sock >= 0 && atomic_load_explicit(&program_touched_stream, memory_order_relaxed);
}

/* The socket file whose listener was refused (socket_trust.c): not
 * connected to again, so that a planted socket costs one connection, not
 * one per interval; a collector started afresh binds a new one. */
static bool refused_socket;
static dev_t refused_dev;
static ino_t refused_ino;

static bool socket_was_refused(const struct stat *st)
{
    return refused_socket && st->st_dev == refused_dev && st->st_ino == refused_ino;
}

static void remember_refused(const struct stat *st)
{
    refused_socket = true;
    refused_dev = st->st_dev;
    refused_ino = st->st_ino;
}

/* A socket connected to the listener at path, whose uid we trust; -1 if
 * none (a refused listener's socket file, st, is remembered). */
static int connect_trusted(const char *path, const struct stat *st)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, strlen(path)); /* checked shorter than sun_path */
    /* non-blocking: a collector with a full backlog means "later", not a hang */
    if (connect(fd, (const struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    if (!ppx_socket_peer_trusted(fd, path)) {
        remember_refused(st);
        close(fd);
        return -1;
    }
    return fd;
}

/* The connected socket fd becomes the stream's: out of the program's
 * descriptor range, blocking with a send timeout, and a new generation. */
static bool adopt_socket(int fd)
{
    struct stat st;
    fd = ppx_fd_above_limit(fd);
    int flags = fcntl(fd, F_GETFL);
    struct timeval timeout = {SEND_TIMEOUT_S, 0};
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) != 0 ||
        fstat(fd, &st) != 0) {
        close(fd);
        return false;
    }
    sock = fd;
    sock_pid = getpid();
    sock_dev = st.st_dev;
    sock_ino = st.st_ino;
    atomic_store_explicit(&program_touched_stream, false, memory_order_relaxed);
    atomic_store_explicit(&ppx_stream_fd, fd, memory_order_relaxed);
    generation++;
    ppx_stream_encoder_reset();
    return true;
}

/* Connects if a collector we may trust is listening; quietly false if
 * none is, false with a message (once) if the socket is not to be
 * trusted. Not a byte is sent before both checks passed: the caller sends
 * the HELLO (hello.c) once its side is ready too. */
bool ppx_stream_connect(void)
{
    const char *path = ppx_config.socket_path;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return false; /* nobody listening: do not even take a descriptor */
    if (socket_was_refused(&st) || !ppx_socket_dir_trusted(path))
        return false;
    if (!ppx_stream_buffers_ready())
        return false;
    int fd = connect_trusted(path, &st);
    return fd >= 0 && adopt_socket(fd);
}

void ppx_stream_spool_begin(int fd, uint64_t room)
{
    spool_fd = fd;
    spool_room = room;
    generation++; /* a stream of its own: every stack and site from zero */
    ppx_stream_encoder_reset();
}

void ppx_stream_spool_end(void)
{
    spool_fd = -1;
    ppx_stream_encoder_reset();
}

/* The child of fork: state_mu afresh (the parent's flusher may be
 * sending); fork copied the descriptor: closing the copy leaves the
 * parent's connection alone, and lets the collector see the parent's end
 * when the parent exits before us (daemons). */
void ppx_stream_reset_child(void)
{
    pthread_mutex_init(&state_mu, NULL);
    ppx_owner_reset(&state_mu_owner);
    if (socket_fd_is_ours())
        close(sock);
    sock = -1;
    ppx_stream_encoder_reset();
    ppx_stream_encoder()->deadline_ns = 0;
    ppx_stream_encoder()->final = false; /* the parent's exit flush may have been sending */
}

/* A child forked from inside the profiler: our copy of the parent's
 * connection goes. */
void ppx_stream_disable_child(void)
{
    if (socket_fd_is_ours())
        close(sock);
    sock = -1;
}
