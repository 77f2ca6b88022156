#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "wire_decode.h"

#define READ_CHUNK (64u << 10)
/* Bytes read from one connection per poll round, so that one busy target
 * cannot starve the others. */
#define READ_BUDGET (1u << 20)

struct conn {
    int fd;
    struct wire_decoder *decoder;
};

struct server {
    int listen_fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct proc_table *table;
    struct conn *conns;
    size_t n_conns, cap_conns;
    struct pollfd *pfds;
    size_t cap_pfds;
    bool said_accept_error;
    /* Out of file descriptors: the pending connection stays queued and the
     * listening socket stays readable, so skip it for a round rather than
     * spin. */
    bool accept_backoff;
    uint8_t chunk[READ_CHUNK];
};

static int make_addr(const char *path, struct sockaddr_un *addr, char *err, size_t errlen)
{
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr->sun_path) {
        snprintf(err, errlen, "ppx: socket path %s is longer than %zu bytes", path,
                 sizeof addr->sun_path - 1);
        return -1;
    }
    strcpy(addr->sun_path, path);
    return 0;
}

/* 1 when a collector answers on path, 0 when nothing does (a stale or
 * absent socket), -1 when path exists but is no socket. */
static int socket_is_live(const char *path, const struct sockaddr_un *addr, char *err,
                          size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "ppx: %s exists and is not a socket; not replacing it", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int live = connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0;
    close(fd);
    return live;
}

struct server *server_open(const char *path, struct proc_table *t, char *err, size_t errlen)
{
    struct sockaddr_un addr;
    if (make_addr(path, &addr, err, errlen) < 0)
        return NULL;
    int live = socket_is_live(path, &addr, err, errlen);
    if (live < 0)
        return NULL;
    if (live) {
        snprintf(err, errlen, "ppx: socket %s is in use by another collector", path);
        return NULL;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "ppx: cannot remove stale socket %s: %s", path, strerror(errno));
        return NULL;
    }
    struct server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "ppx: out of memory");
        return NULL;
    }
    s->table = t;
    strcpy(s->path, path);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0) {
        snprintf(err, errlen, "ppx: cannot create a socket: %s", strerror(errno));
        free(s);
        return NULL;
    }
    /* Only the owner may connect (the directory is private too). */
    mode_t old_umask = umask(077);
    int rc = bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr);
    int bind_errno = errno;
    umask(old_umask);
    if (rc < 0 || listen(s->listen_fd, 128) < 0) {
        snprintf(err, errlen, "ppx: cannot %s %s: %s", rc < 0 ? "bind" : "listen on", path,
                 strerror(rc < 0 ? bind_errno : errno));
        if (rc == 0)
            unlink(path);
        close(s->listen_fd);
        free(s);
        return NULL;
    }
    return s;
}

static uint32_t peer_pid(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid <= 0)
        return 0;
    return (uint32_t)cred.pid;
}

static void accept_pending(struct server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                s->accept_backoff = true;
            if (errno != EAGAIN && errno != EWOULDBLOCK && !s->said_accept_error) {
                fprintf(stderr, "ppx: cannot accept a connection on %s: %s\n", s->path,
                        strerror(errno));
                s->said_accept_error = true;
            }
            return;
        }
        if (s->n_conns == s->cap_conns) {
            size_t cap = s->cap_conns ? 2 * s->cap_conns : 16;
            struct conn *grown = realloc(s->conns, cap * sizeof *grown);
            if (!grown) {
                fprintf(stderr, "ppx: out of memory: dropping a connection\n");
                close(fd);
                return;
            }
            s->conns = grown;
            s->cap_conns = cap;
        }
        struct wire_decoder *d = wire_decoder_new(s->table, peer_pid(fd));
        if (!d) {
            fprintf(stderr, "ppx: out of memory: dropping a connection\n");
            close(fd);
            return;
        }
        s->conns[s->n_conns++] = (struct conn){.fd = fd, .decoder = d};
    }
}

static void report(const struct wire_decoder *d)
{
    const char *msg = wire_decoder_error(d);
    if (*msg)
        fprintf(stderr, "%s\n", msg);
}

/* Reads what c has (up to the budget). Returns false when the connection
 * is finished: the peer closed it or its stream went bad. */
static bool read_conn(struct server *s, struct conn *c)
{
    size_t budget = READ_BUDGET;
    while (budget > 0) {
        ssize_t n = read(c->fd, s->chunk, sizeof s->chunk);
        if (n > 0) {
            if (wire_decoder_feed(c->decoder, s->chunk, (size_t)n) < 0) {
                report(c->decoder);
                return false;
            }
            budget -= (size_t)n < budget ? (size_t)n : budget;
            continue;
        }
        if (n == 0) {
            if (wire_decoder_end(c->decoder) < 0)
                report(c->decoder);
            return false;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return true;
        struct proc *p = wire_decoder_proc(c->decoder);
        fprintf(stderr, "ppx: pid %u: read error: %s; the data before it is kept\n",
                p ? p->pid : 0, strerror(errno));
        return false;
    }
    return true;
}

static void close_conn(struct server *s, size_t i)
{
    close(s->conns[i].fd);
    wire_decoder_free(s->conns[i].decoder);
    s->conns[i] = s->conns[--s->n_conns];
}

static void read_all(struct server *s, const struct pollfd *pfds, size_t n_polled)
{
    /* Walk backwards: close_conn() moves the last connection into slot i. */
    for (size_t i = n_polled; i-- > 0;) {
        if (pfds && !pfds[i].revents)
            continue;
        if (!read_conn(s, &s->conns[i]))
            close_conn(s, i);
    }
}

int server_poll(struct server *s, int timeout_ms, int extra_fd)
{
    size_t need = s->n_conns + 2;
    if (need > s->cap_pfds) {
        struct pollfd *grown = realloc(s->pfds, need * sizeof *grown);
        if (!grown)
            return -1;
        s->pfds = grown;
        s->cap_pfds = need;
    }
    size_t n_conns = s->n_conns;
    for (size_t i = 0; i < n_conns; i++)
        s->pfds[i] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
    int listen_fd = s->listen_fd;
    if (s->accept_backoff) {
        s->accept_backoff = false;
        listen_fd = -1;
        if (timeout_ms < 0 || timeout_ms > 100)
            timeout_ms = 100;
    }
    s->pfds[n_conns] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
    s->pfds[n_conns + 1] = (struct pollfd){.fd = extra_fd, .events = POLLIN};
    int rc = poll(s->pfds, n_conns + 2, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : -1;
    if (rc == 0)
        return 0;
    bool extra = extra_fd >= 0 && (s->pfds[n_conns + 1].revents & POLLIN);
    read_all(s, s->pfds, n_conns);
    if (s->pfds[n_conns].revents)
        accept_pending(s);
    return extra ? 1 : 0;
}

void server_read_available(struct server *s)
{
    accept_pending(s);
    read_all(s, NULL, s->n_conns);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t server_drain(struct server *s, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    server_read_available(s);
    for (;;) {
        if (s->n_conns == 0) {
            /* A process may have connected and exited just now: one more
             * look at the backlog. */
            server_read_available(s);
            if (s->n_conns == 0)
                return 0;
        }
        long long left = deadline - now_ms();
        if (left <= 0)
            return s->n_conns;
        if (server_poll(s, (int)left, -1) < 0)
            return s->n_conns;
    }
}

size_t server_connections(const struct server *s)
{
    return s->n_conns;
}

void server_close(struct server *s)
{
    if (!s)
        return;
    while (s->n_conns > 0)
        close_conn(s, s->n_conns - 1);
    close(s->listen_fd);
    unlink(s->path);
    free(s->conns);
    free(s->pfds);
    free(s);
}
