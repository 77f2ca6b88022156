#include "ingest/ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (64u << 10)
/* Bytes read from one connection per poll round, so that one busy target
 * cannot starve the others. */
#define READ_BUDGET (1u << 20)

/* Bytes that tell a control connection from a target's stream. */
#define HEAD_LEN 4u
/* Distinct refused uids said once each; later ones are refused quietly. */
#define MAX_SAID_UIDS 32u
/* Processes whose stream broke while they ran, waited for at once; more
 * are taken as ended at once (as a stream cut short is). */
#define MAX_ORPHANS 64u
/* How often those waited for are looked at, at most. */
#define ORPHAN_CHECK_MS 500

struct orphan {
    uint32_t pid;
    uint64_t start_ns;
    pid_t peer; /* SO_PEERCRED's */
};

struct conn {
    int fd;
    pid_t pid; /* SO_PEERCRED's; 0 when unknown */
    struct wire_decoder *decoder;
    uint8_t head[HEAD_LEN]; /* the first bytes, while head_len < HEAD_LEN */
    uint8_t head_len;
    bool classified; /* a target's stream (control connections leave at once) */
};

struct ingest {
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
    struct ingest_hooks hooks;
    uid_t said_uids[MAX_SAID_UIDS];
    size_t n_said_uids;
    struct orphan orphans[MAX_ORPHANS];
    size_t n_orphans;
    uint64_t accepted; /* connections accepted so far */
    uint8_t chunk[READ_CHUNK];
};

void ingest_set_hooks(struct ingest *s, const struct ingest_hooks *h)
{
    s->hooks = *h;
}

static void lock(struct ingest *s)
{
    if (s->hooks.lock)
        pthread_mutex_lock(s->hooks.lock);
}

static void unlock(struct ingest *s)
{
    if (s->hooks.lock)
        pthread_mutex_unlock(s->hooks.lock);
}

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
static int socket_answers(const char *path, const struct sockaddr_un *addr, char *err,
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
    int answers = connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0;
    close(fd);
    return answers;
}

struct ingest *ingest_open(const char *path, struct proc_table *t, char *err, size_t errlen)
{
    struct sockaddr_un addr;
    if (make_addr(path, &addr, err, errlen) < 0)
        return NULL;
    int answers = socket_answers(path, &addr, err, errlen);
    if (answers < 0)
        return NULL;
    if (answers) {
        snprintf(err, errlen, "ppx: socket %s is in use by another collector", path);
        return NULL;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "ppx: cannot remove stale socket %s: %s", path, strerror(errno));
        return NULL;
    }
    struct ingest *s = calloc(1, sizeof *s);
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

/* The peer's credentials, as of its connect(); pid 0 when unknown (another
 * pid namespace), uid -1 when they cannot be read. */
static struct ucred peer_cred(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        cred.pid = 0;
        cred.uid = (uid_t)-1;
    }
    if (cred.pid < 0)
        cred.pid = 0;
    return cred;
}

/* Whether a peer may feed this collector; says once per uid why not. The
 * socket's directory is private already: this holds even if someone
 * loosens its permissions. */
static bool peer_allowed(struct ingest *s, const struct ucred *cred)
{
    if (!s->hooks.check_uid || cred->uid == s->hooks.uid)
        return true;
    for (size_t i = 0; i < s->n_said_uids; i++)
        if (s->said_uids[i] == cred->uid)
            return false;
    if (s->n_said_uids < MAX_SAID_UIDS)
        s->said_uids[s->n_said_uids++] = cred->uid;
    fprintf(stderr,
            "ppx: refused a connection on %s from uid %ld (pid %ld): only processes of uid %ld "
            "may feed this collector\n",
            s->path, (long)(int)cred->uid, (long)cred->pid, (long)s->hooks.uid);
    return false;
}

static void accept_pending(struct ingest *s)
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
        struct ucred cred = peer_cred(fd);
        if (!peer_allowed(s, &cred)) {
            close(fd);
            continue;
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
        struct wire_decoder *d = wire_decoder_new(s->table, (uint32_t)cred.pid);
        if (!d) {
            fprintf(stderr, "ppx: out of memory: dropping a connection\n");
            close(fd);
            return;
        }
        /* A process connects once at a time: its connections are accepted
         * in the order it made them, whatever order they are read in. */
        wire_decoder_set_order(d, ++s->accepted);
        /* Without control connections every stream goes straight to its
         * decoder, as in ppx record. */
        s->conns[s->n_conns++] = (struct conn){
            .fd = fd, .pid = cred.pid, .decoder = d, .classified = s->hooks.control_magic == 0};
    }
}

static void report(const struct wire_decoder *d)
{
    const char *msg = wire_decoder_error(d);
    if (*msg)
        fprintf(stderr, "%s%s\n", msg,
                wire_decoder_broke_protocol(d)
                    ? "; connection closed (the data before it is kept; a reconnection of the "
                      "process resends its whole state)"
                    : "");
}

enum conn_state { CONN_OPEN, CONN_DONE, CONN_HANDED_OVER };

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* p reconnected: its end is that of its new connection. */
static void forget_orphan(struct ingest *s, const struct proc *p)
{
    for (size_t i = s->n_orphans; i-- > 0;)
        if (s->orphans[i].pid == p->pid && s->orphans[i].start_ns == p->start_ns)
            s->orphans[i] = s->orphans[--s->n_orphans];
}

/* Collects a new connection's first bytes: a control connection leaves
 * for its handler with what followed them; a target's stream gets them
 * fed first. data and len: what is left of the chunk. */
static enum conn_state classify(struct ingest *s, struct conn *c, const uint8_t **data, size_t *len)
{
    size_t take = HEAD_LEN - c->head_len;
    if (take > *len)
        take = *len;
    memcpy(c->head + c->head_len, *data, take);
    c->head_len += (uint8_t)take;
    *data += take;
    *len -= take;
    if (c->head_len < HEAD_LEN)
        return CONN_OPEN;
    c->classified = true;
    if (le32(c->head) == s->hooks.control_magic) {
        s->hooks.control(s->hooks.arg, c->fd, *data, *len);
        return CONN_HANDED_OVER;
    }
    if (wire_decoder_feed(c->decoder, c->head, HEAD_LEN) < 0) {
        report(c->decoder);
        return CONN_DONE;
    }
    return CONN_OPEN;
}

static enum conn_state consume(struct ingest *s, struct conn *c, const uint8_t *data, size_t len)
{
    if (!c->classified) {
        enum conn_state st = classify(s, c, &data, &len);
        if (st != CONN_OPEN || len == 0)
            return st;
    }
    /* (classify() feeds 4 bytes at most: never a whole HELLO) */
    bool had_proc = wire_decoder_proc(c->decoder) != NULL;
    if (wire_decoder_feed(c->decoder, data, len) < 0) {
        report(c->decoder);
        return CONN_DONE;
    }
    struct proc *p = wire_decoder_proc(c->decoder);
    if (!had_proc && p)
        forget_orphan(s, p); /* (even if this read took its GOODBYE too) */
    if (!had_proc && p && proc_table_owner(p) == c->decoder && s->hooks.opened)
        s->hooks.opened(s->hooks.arg, p);
    return CONN_OPEN;
}

/* Reads what c has (up to the budget). CONN_DONE when the connection is
 * finished: the peer closed it or its stream went bad. */
static enum conn_state read_conn(struct ingest *s, struct conn *c)
{
    size_t budget = READ_BUDGET;
    while (budget > 0) {
        ssize_t n = read(c->fd, s->chunk, sizeof s->chunk);
        if (n > 0) {
            enum conn_state st = consume(s, c, s->chunk, (size_t)n);
            if (st != CONN_OPEN)
                return st;
            budget -= (size_t)n < budget ? (size_t)n : budget;
            continue;
        }
        if (n == 0) {
            /* A stream shorter than the head still gets its bytes judged. */
            if (!c->classified && c->head_len > 0 &&
                wire_decoder_feed(c->decoder, c->head, c->head_len) < 0)
                report(c->decoder);
            else if (wire_decoder_end(c->decoder) < 0)
                report(c->decoder);
            return CONN_DONE;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return CONN_OPEN;
        struct proc *p = wire_decoder_proc(c->decoder);
        fprintf(stderr, "ppx: pid %u: read error: %s; the data before it is kept\n", p ? p->pid : 0,
                strerror(errno));
        return CONN_DONE;
    }
    return CONN_OPEN;
}

/* Whether process pid still runs (pid known, in our pid namespace). */
static bool alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* A stream broken by bad data (a program that wrote into our socket), or
 * cut inside a record (libppx.so dropped it, having seen the program write
 * there), is not the end of a process that still runs: libppx.so
 * reconnects at its next flush and resends its whole state (at exit too,
 * its last connection may come in just before it dies). Its end is told
 * only if it dies without a newer connection. False when p's end is to be
 * told now (its pid unknown, or too many waited for). */
static bool wait_for_reconnection(struct ingest *s, const struct conn *c, const struct proc *p)
{
    if (!wire_decoder_failed(c->decoder) || c->pid <= 0 || s->n_orphans == MAX_ORPHANS)
        return false;
    s->orphans[s->n_orphans++] = (struct orphan){p->pid, p->start_ns, c->pid};
    return true;
}

/* Whether a connection of process pid is open (accepted, not yet done). */
static bool has_connection(const struct ingest *s, pid_t pid)
{
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i].pid == pid)
            return true;
    return false;
}

/* The processes waited for: forgotten once they reconnected (or are gone
 * from the table), their end told once they died with no newer connection
 * (one made just before dying is accepted first: its HELLO may come); every
 * one of them when the listener closes (all). */
static void check_orphans(struct ingest *s, bool all)
{
    if (s->n_orphans > 0 && !all)
        accept_pending(s);
    for (size_t i = s->n_orphans; i-- > 0;) {
        const struct orphan *o = &s->orphans[i];
        struct proc *p = proc_table_find(s->table, o->pid, o->start_ns);
        bool back = !p || p->connected || proc_table_owner(p);
        if (!back && !all && (alive(o->peer) || has_connection(s, o->peer)))
            continue;
        if (!back && s->hooks.closed)
            s->hooks.closed(s->hooks.arg, p);
        s->orphans[i] = s->orphans[--s->n_orphans];
    }
}

/* handed_over: the fd now belongs to the control handler. */
static void close_conn(struct ingest *s, size_t i, bool handed_over)
{
    struct conn *c = &s->conns[i];
    struct proc *p = wire_decoder_ended_proc(c->decoder);
    if (p && wait_for_reconnection(s, c, p))
        p = NULL;
    if (!handed_over)
        close(c->fd);
    wire_decoder_free(c->decoder);
    if (p && s->hooks.closed)
        s->hooks.closed(s->hooks.arg, p);
    s->conns[i] = s->conns[--s->n_conns];
}

static void read_all(struct ingest *s, const struct pollfd *pfds, size_t n_polled)
{
    /* Walk backwards: close_conn() moves the last connection into slot i. */
    for (size_t i = n_polled; i-- > 0;) {
        if (pfds && !pfds[i].revents)
            continue;
        enum conn_state st = read_conn(s, &s->conns[i]);
        if (st != CONN_OPEN)
            close_conn(s, i, st == CONN_HANDED_OVER);
    }
}

int ingest_poll(struct ingest *s, int timeout_ms, int extra_fd)
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
    if (s->n_orphans > 0 && (timeout_ms < 0 || timeout_ms > ORPHAN_CHECK_MS))
        timeout_ms = ORPHAN_CHECK_MS;
    s->pfds[n_conns] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
    s->pfds[n_conns + 1] = (struct pollfd){.fd = extra_fd, .events = POLLIN};
    int rc = poll(s->pfds, n_conns + 2, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : -1;
    bool extra = rc > 0 && extra_fd >= 0 && (s->pfds[n_conns + 1].revents & POLLIN);
    if (rc == 0 && s->n_orphans == 0)
        return 0;
    lock(s);
    if (rc > 0) {
        read_all(s, s->pfds, n_conns);
        if (s->pfds[n_conns].revents)
            accept_pending(s);
    }
    check_orphans(s, false);
    unlock(s);
    return extra ? 1 : 0;
}

void ingest_read_available(struct ingest *s)
{
    lock(s);
    accept_pending(s);
    read_all(s, NULL, s->n_conns);
    unlock(s);
}

size_t ingest_drain(struct ingest *s, int timeout_ms)
{
    long long deadline = monotonic_ms() + timeout_ms;
    ingest_read_available(s);
    for (;;) {
        if (s->n_conns == 0) {
            /* A process may have connected and exited just now: one more
             * look at the backlog. */
            ingest_read_available(s);
            if (s->n_conns == 0)
                return 0;
        }
        long long left = deadline - monotonic_ms();
        if (left <= 0)
            return s->n_conns;
        if (ingest_poll(s, (int)left, -1) < 0)
            return s->n_conns;
    }
}

int ingest_command(struct ingest *s, const struct proc *p, uint32_t type, const void *payload,
                   size_t len)
{
    PPX_CHECK(!s->hooks.lock || ppx_mutex_held(s->hooks.lock),
              "commands are written under the hooks' lock");
    /* the longest command: a dump with its state-threads layout */
    uint8_t buf[sizeof(struct wire_header) + sizeof(struct wire_cmd_tasks) +
                sizeof(struct wire_st_layout)];
    if (len > sizeof buf - sizeof(struct wire_header))
        return -1;
    for (size_t i = 0; i < s->n_conns; i++) {
        struct conn *c = &s->conns[i];
        if (wire_decoder_proc(c->decoder) != p || proc_table_owner(p) != c->decoder ||
            wire_decoder_said_goodbye(c->decoder))
            continue;
        struct wire_header h = {type, (uint32_t)len};
        memcpy(buf, &h, sizeof h);
        memcpy(buf + sizeof h, payload, len);
        ssize_t n;
        do
            n = send(c->fd, buf, sizeof h + len, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)(sizeof h + len))
            return 0;
        if (n > 0)
            shutdown(c->fd, SHUT_WR); /* half a command: the target must not read on */
        return -1;
    }
    return -1;
}

size_t ingest_connections(const struct ingest *s)
{
    return s->n_conns;
}

void ingest_close(struct ingest *s)
{
    if (!s)
        return;
    lock(s);
    while (s->n_conns > 0)
        close_conn(s, s->n_conns - 1, false);
    check_orphans(s, true);
    unlock(s);
    close(s->listen_fd);
    unlink(s->path);
    free(s->conns);
    free(s->pfds);
    free(s);
}
