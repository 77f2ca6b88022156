/* Exactly known I/O calls for the syscall audit tests (tests/e2e/syscalls.sh).
 *
 * Usage: known_io [print]
 *   print  also print every call's return value and errno (errno is set to 0
 *          before each call, so a hook that changes errno on success shows),
 *          for comparing a run under ppx with a plain one
 *
 * Each counted function calls the C library directly, so in syscalls.pb.gz
 * it is the frame under the synthetic leaf that names the call; its caller
 * is the run_* function of its group (kept out of line too), then main.
 * Totals per function (calls, bytes, messages, failures; descriptor):
 *   udp_sendto_batch      sendto    2000 200000 2000            socket inet dgram
 *   udp_recvfrom_batch    recvfrom  2000 200000 2000            socket inet dgram
 *   udp_sendmmsg_8        sendmmsg    10   5120   80            socket inet dgram
 *   udp_recvmmsg_8        recvmmsg    10   5120   80            socket inet dgram
 *   udp_recv_eagain_150   recv       150      0    0  150 EAGAIN socket inet dgram
 *   unix_sendmsg_batch    sendmsg    300   9600  300            socket unix dgram
 *   unix_recvmsg_batch    recvmsg    300   9600  300            socket unix dgram
 *   pipe_writev_100       writev     100   6000  100            pipe
 *   pipe_readv_100        readv      100   6000  100            pipe
 *   thread_pipe_write     write     1000  16000 1000            pipe (4 threads x 250)
 *   pipe_read_1000        read      1000  16000 1000            pipe
 *   file_pwrite_50        pwrite      50  25600   50            file
 *   file_pwrite64_10      pwrite      10   5120   10            file (pwrite64)
 *   file_pread_50         pread       50  25600   50            file
 *   file_pread64_10       pread       10   5120   10            file (pread64)
 *   file_sendfile_10      sendfile    10   1000   10            (file to pipe)
 *   pipe_splice_10        splice      10   1000   10            (pipe to file)
 *   tcp_connect_20        connect     20      0    0            socket inet stream
 *   tcp_accept_10         accept      10      0    0            socket inet stream
 *   tcp_accept4_10        accept4     10      0    0            socket inet stream
 *   tcp_send_50           send        50  10000   50            socket inet stream
 *   tcp_recv_50           recv        50  10000   50            socket inet stream
 *   tcp_connect_refused_5 connect      5      0    0    5 ECONNREFUSED  socket inet stream
 *   read_badfd_100        read       100      0    0  100 EBADF  (no descriptor)
 *   poll_100              poll       100   (zero timeout, nothing ready)
 *   ppoll_10              ppoll       10
 *   epoll_wait_100        epoll_wait 100
 *   epoll_pwait_10        epoll_pwait 10
 *   select_100            select     100
 *   pselect_10            pselect     10
 *   epoll_create_2        epoll_create   2                  (no descriptor)
 *   epoll_create1_3       epoll_create1  3                  (no descriptor)
 *   epoll_ctl_30          epoll_ctl     30  (10 x add, modify, delete) pipe
 *   epoll_ctl_enoent_5    epoll_ctl      5    5 ENOENT (delete what is not there) pipe
 *   fill_unix_stream      write      non-blocking unix stream socket written
 *                        with 1 MiB writes until EAGAIN: partial writes,
 *                        then exactly one EAGAIN; the calls and bytes it saw
 *                        are printed as "fill_unix_stream calls=N bytes=N
 *                        partial=N eagain=1" (socket unix stream)
 * Descriptor numbers are reused across kinds on purpose (each phase closes
 * its descriptors): a stale per-descriptor cache would label them wrong.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "known_allocs.h"

static int print_mode;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "known_io: %s: %s\n", what, strerror(errno));
        exit(10);
    }
}

/* One call's outcome, in print mode. */
static void note(const char *fn, const char *call, long ret, int err)
{
    if (print_mode)
        printf("%s %s ret=%ld errno=%d\n", fn, call, ret, err);
}

/* A call that returns a new descriptor: its number differs under ppx (the
 * profiler holds a descriptor of its own), its success does not. */
static void note_fd(const char *fn, const char *call, int fd, int err)
{
    note(fn, call, fd >= 0 ? 0 : fd, err);
}

static uint32_t checksum(const char *buf, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)buf[i]) * 16777619u;
    return h;
}

static void note_data(const char *fn, const char *buf, size_t len)
{
    if (print_mode)
        printf("%s data len=%zu sum=%08x\n", fn, len, checksum(buf, len));
}

/* ---- UDP on loopback ---------------------------------------------------- */

#define UDP_ROUNDS 40
#define UDP_BATCH 50
#define UDP_SIZE 100

COUNTED static void udp_sendto_batch(int fd, const struct sockaddr_in *to)
{
    char buf[UDP_SIZE];
    for (int i = 0; i < UDP_BATCH; i++) {
        memset(buf, 'a' + i % 26, sizeof buf);
        errno = 0;
        ssize_t n = sendto(fd, buf, sizeof buf, 0, (const struct sockaddr *)to, sizeof *to);
        note(__func__, "sendto", n, errno);
        check(n == UDP_SIZE, "sendto");
    }
}

COUNTED static void udp_recvfrom_batch(int fd)
{
    char buf[UDP_SIZE * 2];
    for (int i = 0; i < UDP_BATCH; i++) {
        struct sockaddr_in from;
        socklen_t fromlen = sizeof from;
        errno = 0;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen);
        note(__func__, "recvfrom", n, errno);
        check(n == UDP_SIZE && fromlen == sizeof from, "recvfrom");
        note_data(__func__, buf, (size_t)n);
    }
}

#define MMSG_ROUNDS 10
#define MMSG_VLEN 8
#define MMSG_SIZE 64

COUNTED static void udp_sendmmsg_8(int fd, const struct sockaddr_in *to)
{
    char bufs[MMSG_VLEN][MMSG_SIZE];
    struct iovec iov[MMSG_VLEN];
    struct mmsghdr msgs[MMSG_VLEN];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < MMSG_VLEN; i++) {
        memset(bufs[i], '0' + i, MMSG_SIZE);
        iov[i] = (struct iovec){bufs[i], MMSG_SIZE};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = (void *)to;
        msgs[i].msg_hdr.msg_namelen = sizeof *to;
    }
    errno = 0;
    int n = sendmmsg(fd, msgs, MMSG_VLEN, 0);
    note(__func__, "sendmmsg", n, errno);
    check(n == MMSG_VLEN, "sendmmsg");
}

COUNTED static void udp_recvmmsg_8(int fd)
{
    char bufs[MMSG_VLEN][MMSG_SIZE * 2] = {{0}};
    struct iovec iov[MMSG_VLEN];
    struct mmsghdr msgs[MMSG_VLEN];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < MMSG_VLEN; i++) {
        iov[i] = (struct iovec){bufs[i], sizeof bufs[i]};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    errno = 0;
    /* All 8 datagrams are queued: MSG_WAITFORONE returns them at once. */
    int n = recvmmsg(fd, msgs, MMSG_VLEN, MSG_WAITFORONE, NULL);
    note(__func__, "recvmmsg", n, errno);
    check(n == MMSG_VLEN, "recvmmsg");
    for (int i = 0; i < n; i++) {
        check(msgs[i].msg_len == MMSG_SIZE, "recvmmsg: message length");
        note_data(__func__, bufs[i], msgs[i].msg_len);
    }
}

COUNTED static void udp_recv_eagain_150(int fd)
{
    char buf[UDP_SIZE];
    for (int i = 0; i < 150; i++) {
        errno = 0;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        note(__func__, "recv", n, errno);
        check(n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK), "recv: expected EAGAIN");
    }
}

static int udp_socket(struct sockaddr_in *bound)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    check(fd >= 0, "socket(AF_INET, SOCK_DGRAM)");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    check(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "bind 127.0.0.1:0");
    socklen_t len = sizeof *bound;
    check(getsockname(fd, (struct sockaddr *)bound, &len) == 0, "getsockname");
    return fd;
}

COUNTED static void run_udp(void)
{
    struct sockaddr_in rx_addr, tx_addr;
    int rx = udp_socket(&rx_addr), tx = udp_socket(&tx_addr);
    /* Batches small enough that the receive buffer never drops one. */
    for (int r = 0; r < UDP_ROUNDS; r++) {
        udp_sendto_batch(tx, &rx_addr);
        udp_recvfrom_batch(rx);
    }
    for (int r = 0; r < MMSG_ROUNDS; r++) {
        udp_sendmmsg_8(tx, &rx_addr);
        udp_recvmmsg_8(rx);
    }
    check(fcntl(rx, F_SETFL, O_NONBLOCK) == 0, "fcntl O_NONBLOCK");
    udp_recv_eagain_150(rx);
    close(rx);
    close(tx);
}

/* ---- Unix datagrams ----------------------------------------------------- */

#define UNIX_ROUNDS 30
#define UNIX_BATCH 10

COUNTED static void unix_sendmsg_batch(int fd)
{
    char a[16], b[16];
    for (int i = 0; i < UNIX_BATCH; i++) {
        memset(a, 'A' + i, sizeof a);
        memset(b, 'a' + i, sizeof b);
        struct iovec iov[2] = {{a, sizeof a}, {b, sizeof b}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
        errno = 0;
        ssize_t n = sendmsg(fd, &msg, 0);
        note(__func__, "sendmsg", n, errno);
        check(n == 32, "sendmsg");
    }
}

COUNTED static void unix_recvmsg_batch(int fd)
{
    char buf[64];
    for (int i = 0; i < UNIX_BATCH; i++) {
        struct iovec iov = {buf, sizeof buf};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        errno = 0;
        ssize_t n = recvmsg(fd, &msg, 0);
        note(__func__, "recvmsg", n, errno);
        check(n == 32, "recvmsg");
        note_data(__func__, buf, (size_t)n);
    }
}

COUNTED static void run_unix_dgram(void)
{
    int sv[2];
    check(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0, "socketpair(AF_UNIX, SOCK_DGRAM)");
    for (int r = 0; r < UNIX_ROUNDS; r++) {
        unix_sendmsg_batch(sv[0]);
        unix_recvmsg_batch(sv[1]);
    }
    close(sv[0]);
    close(sv[1]);
}

/* ---- pipes, threads ----------------------------------------------------- */

COUNTED static void pipe_writev_100(int fd)
{
    char a[10], b[20], c[30];
    for (int i = 0; i < 100; i++) {
        memset(a, 'x', sizeof a);
        memset(b, 'y', sizeof b);
        memset(c, '0' + i % 10, sizeof c);
        struct iovec iov[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
        errno = 0;
        ssize_t n = writev(fd, iov, 3);
        note(__func__, "writev", n, errno);
        check(n == 60, "writev");
    }
}

COUNTED static void pipe_readv_100(int fd)
{
    char a[30] = {0}, b[30] = {0};
    for (int i = 0; i < 100; i++) {
        struct iovec iov[2] = {{a, sizeof a}, {b, sizeof b}};
        errno = 0;
        ssize_t n = readv(fd, iov, 2);
        note(__func__, "readv", n, errno);
        check(n == 60, "readv");
        note_data(__func__, b, sizeof b);
    }
}

#define THREADS 4
#define THREAD_WRITES 250
#define THREAD_SIZE 16

COUNTED static void thread_pipe_write(int fd)
{
    char buf[THREAD_SIZE];
    memset(buf, 't', sizeof buf);
    for (int i = 0; i < THREAD_WRITES; i++) {
        /* Pipe writes of at most PIPE_BUF bytes are atomic, and the pipe
         * holds all 16000 bytes: every write is whole. */
        ssize_t n = write(fd, buf, sizeof buf);
        check(n == THREAD_SIZE, "write to pipe (thread)");
    }
}

static void *thread_main(void *arg)
{
    thread_pipe_write(*(const int *)arg);
    return NULL;
}

COUNTED static void pipe_read_1000(int fd)
{
    char buf[THREAD_SIZE];
    for (int i = 0; i < THREADS * THREAD_WRITES; i++) {
        errno = 0;
        ssize_t n = read(fd, buf, sizeof buf);
        note(__func__, "read", n, errno);
        check(n == THREAD_SIZE, "read from pipe");
    }
}

COUNTED static void run_pipes(void)
{
    int p[2];
    check(pipe(p) == 0, "pipe");
    pipe_writev_100(p[1]);
    pipe_readv_100(p[0]);

    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        check(pthread_create(&threads[i], NULL, thread_main, &p[1]) == 0, "pthread_create");
    for (int i = 0; i < THREADS; i++)
        check(pthread_join(threads[i], NULL) == 0, "pthread_join");
    if (print_mode)
        printf("thread_pipe_write write x%d ret=%d errno=0\n", THREADS * THREAD_WRITES,
               THREAD_SIZE);
    pipe_read_1000(p[0]);
    close(p[0]);
    close(p[1]);
}

/* ---- a regular file ----------------------------------------------------- */

#define FILE_SIZE 512

COUNTED static void file_pwrite_50(int fd)
{
    char buf[FILE_SIZE];
    for (int i = 0; i < 50; i++) {
        memset(buf, 'a' + i % 26, sizeof buf);
        errno = 0;
        ssize_t n = pwrite(fd, buf, sizeof buf, (off_t)i * FILE_SIZE);
        note(__func__, "pwrite", n, errno);
        check(n == FILE_SIZE, "pwrite");
    }
}

COUNTED static void file_pwrite64_10(int fd)
{
    char buf[FILE_SIZE];
    memset(buf, 'z', sizeof buf);
    for (int i = 0; i < 10; i++) {
        errno = 0;
        ssize_t n = pwrite64(fd, buf, sizeof buf, (off64_t)(50 + i) * FILE_SIZE);
        note(__func__, "pwrite64", n, errno);
        check(n == FILE_SIZE, "pwrite64");
    }
}

COUNTED static void file_pread_50(int fd)
{
    char buf[FILE_SIZE];
    for (int i = 0; i < 50; i++) {
        errno = 0;
        ssize_t n = pread(fd, buf, sizeof buf, (off_t)(49 - i) * FILE_SIZE);
        note(__func__, "pread", n, errno);
        check(n == FILE_SIZE, "pread");
        note_data(__func__, buf, (size_t)n);
    }
}

COUNTED static void file_pread64_10(int fd)
{
    char buf[FILE_SIZE];
    for (int i = 0; i < 10; i++) {
        errno = 0;
        ssize_t n = pread64(fd, buf, sizeof buf, (off64_t)(50 + i) * FILE_SIZE);
        note(__func__, "pread64", n, errno);
        check(n == FILE_SIZE, "pread64");
    }
}

COUNTED static void file_sendfile_10(int pipe_w, int file)
{
    off_t off = 0;
    for (int i = 0; i < 10; i++) {
        errno = 0;
        ssize_t n = sendfile(pipe_w, file, &off, 100);
        note(__func__, "sendfile", n, errno);
        check(n == 100, "sendfile");
    }
}

COUNTED static void pipe_splice_10(int pipe_r, int file)
{
    loff_t off = 100000;
    for (int i = 0; i < 10; i++) {
        errno = 0;
        ssize_t n = splice(pipe_r, NULL, file, &off, 100, 0);
        note(__func__, "splice", n, errno);
        check(n == 100, "splice");
    }
}

COUNTED static void run_file(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/known_io.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    check(fd >= 0, "mkstemp");
    unlink(path);
    file_pwrite_50(fd);
    file_pwrite64_10(fd);
    file_pread_50(fd);
    file_pread64_10(fd);
    int p[2];
    check(pipe(p) == 0, "pipe");
    file_sendfile_10(p[1], fd);
    pipe_splice_10(p[0], fd);
    close(p[0]);
    close(p[1]);
    close(fd);
}

/* ---- TCP on loopback ---------------------------------------------------- */

#define TCP_CONNS 20
#define TCP_SIZE 200

COUNTED static void tcp_connect_20(const struct sockaddr_in *to, int *fds)
{
    for (int i = 0; i < TCP_CONNS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        check(fds[i] >= 0, "socket(AF_INET, SOCK_STREAM)");
        errno = 0;
        /* The listener's backlog completes the handshake: no accept needed yet. */
        int rc = connect(fds[i], (const struct sockaddr *)to, sizeof *to);
        note(__func__, "connect", rc, errno);
        check(rc == 0, "connect");
    }
}

COUNTED static void tcp_accept_10(int listener, int *fds)
{
    for (int i = 0; i < 10; i++) {
        errno = 0;
        fds[i] = accept(listener, NULL, NULL);
        note_fd(__func__, "accept", fds[i], errno);
        check(fds[i] >= 0, "accept");
    }
}

COUNTED static void tcp_accept4_10(int listener, int *fds)
{
    for (int i = 0; i < 10; i++) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        errno = 0;
        fds[i] = accept4(listener, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
        note_fd(__func__, "accept4", fds[i], errno);
        check(fds[i] >= 0 && len == sizeof peer, "accept4");
    }
}

COUNTED static void tcp_send_50(int fd)
{
    char buf[TCP_SIZE];
    for (int i = 0; i < 50; i++) {
        memset(buf, 'k' + i % 10, sizeof buf);
        errno = 0;
        ssize_t n = send(fd, buf, sizeof buf, 0);
        note(__func__, "send", n, errno);
        check(n == TCP_SIZE, "send");
    }
}

COUNTED static void tcp_recv_50(int fd)
{
    char buf[TCP_SIZE];
    for (int i = 0; i < 50; i++) {
        errno = 0;
        ssize_t n = recv(fd, buf, sizeof buf, MSG_WAITALL);
        note(__func__, "recv", n, errno);
        check(n == TCP_SIZE, "recv");
        note_data(__func__, buf, (size_t)n);
    }
}

COUNTED static void tcp_connect_refused_5(const struct sockaddr_in *to)
{
    for (int i = 0; i < 5; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        check(fd >= 0, "socket(AF_INET, SOCK_STREAM)");
        errno = 0;
        int rc = connect(fd, (const struct sockaddr *)to, sizeof *to);
        note(__func__, "connect", rc, errno);
        check(rc == -1 && errno == ECONNREFUSED, "connect: expected ECONNREFUSED");
        close(fd);
    }
}

static int tcp_bound_socket(struct sockaddr_in *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    check(fd >= 0, "socket(AF_INET, SOCK_STREAM)");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    check(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "bind 127.0.0.1:0");
    socklen_t len = sizeof *bound;
    check(getsockname(fd, (struct sockaddr *)bound, &len) == 0, "getsockname");
    return fd;
}

COUNTED static void run_tcp(void)
{
    struct sockaddr_in addr, dead_addr;
    int listener = tcp_bound_socket(&addr);
    check(listen(listener, 64) == 0, "listen");
    int clients[TCP_CONNS], servers[TCP_CONNS];
    tcp_connect_20(&addr, clients);
    tcp_accept_10(listener, servers);
    tcp_accept4_10(listener, servers + 10);
    tcp_send_50(clients[0]);
    tcp_recv_50(servers[0]);
    for (int i = 0; i < TCP_CONNS; i++) {
        close(clients[i]);
        close(servers[i]);
    }
    close(listener);
    /* Bound, not listening: a connection to it is refused. */
    int dead = tcp_bound_socket(&dead_addr);
    tcp_connect_refused_5(&dead_addr);
    close(dead);
}

/* ---- failures, readiness ------------------------------------------------ */

COUNTED static void read_badfd_100(void)
{
    char buf[8];
    for (int i = 0; i < 100; i++) {
        errno = 0;
        ssize_t n = read(-1, buf, sizeof buf);
        note(__func__, "read", n, errno);
        check(n == -1 && errno == EBADF, "read(-1): expected EBADF");
    }
}

COUNTED static void poll_100(int fd)
{
    for (int i = 0; i < 100; i++) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        errno = 0;
        int n = poll(&pfd, 1, 0);
        note(__func__, "poll", n, errno);
        check(n == 0, "poll: expected nothing ready");
    }
}

COUNTED static void ppoll_10(int fd)
{
    for (int i = 0; i < 10; i++) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        struct timespec zero = {0, 0};
        errno = 0;
        int n = ppoll(&pfd, 1, &zero, NULL);
        note(__func__, "ppoll", n, errno);
        check(n == 0, "ppoll: expected nothing ready");
    }
}

COUNTED static void epoll_wait_100(int ep)
{
    for (int i = 0; i < 100; i++) {
        struct epoll_event ev[4];
        errno = 0;
        int n = epoll_wait(ep, ev, 4, 0);
        note(__func__, "epoll_wait", n, errno);
        check(n == 0, "epoll_wait: expected nothing ready");
    }
}

COUNTED static void epoll_pwait_10(int ep)
{
    sigset_t mask;
    sigemptyset(&mask);
    for (int i = 0; i < 10; i++) {
        struct epoll_event ev[4];
        errno = 0;
        int n = epoll_pwait(ep, ev, 4, 0, &mask);
        note(__func__, "epoll_pwait", n, errno);
        check(n == 0, "epoll_pwait: expected nothing ready");
    }
}

COUNTED static void select_100(int fd)
{
    for (int i = 0; i < 100; i++) {
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fd, &set);
        struct timeval zero = {0, 0};
        errno = 0;
        int n = select(fd + 1, &set, NULL, NULL, &zero);
        note(__func__, "select", n, errno);
        check(n == 0, "select: expected nothing ready");
    }
}

COUNTED static void pselect_10(int fd)
{
    for (int i = 0; i < 10; i++) {
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fd, &set);
        struct timespec zero = {0, 0};
        errno = 0;
        int n = pselect(fd + 1, &set, NULL, NULL, &zero, NULL);
        note(__func__, "pselect", n, errno);
        check(n == 0, "pselect: expected nothing ready");
    }
}

COUNTED static void epoll_create_2(void)
{
    for (int i = 0; i < 2; i++) {
        errno = 0;
        int ep = epoll_create(1);
        note_fd(__func__, "epoll_create", ep, errno);
        check(ep >= 0, "epoll_create");
        close(ep);
    }
}

/* Returns the last one, open. */
COUNTED static int epoll_create1_3(void)
{
    int ep = -1;
    for (int i = 0; i < 3; i++) {
        if (ep >= 0)
            close(ep);
        errno = 0;
        ep = epoll_create1(EPOLL_CLOEXEC);
        note_fd(__func__, "epoll_create1", ep, errno);
        check(ep >= 0, "epoll_create1");
    }
    return ep;
}

COUNTED static void epoll_ctl_30(int ep, int fd)
{
    static const int ops[3] = {EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL};
    for (int i = 0; i < 30; i++) {
        struct epoll_event ev = {.events = i % 3 == 1 ? EPOLLIN | EPOLLOUT : EPOLLIN,
                                 .data.fd = fd};
        errno = 0;
        int r = epoll_ctl(ep, ops[i % 3], fd, &ev);
        note(__func__, "epoll_ctl", r, errno);
        check(r == 0, "epoll_ctl");
    }
}

COUNTED static void epoll_ctl_enoent_5(int ep, int fd)
{
    for (int i = 0; i < 5; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        errno = 0;
        int r = epoll_ctl(ep, EPOLL_CTL_DEL, fd, &ev);
        note(__func__, "epoll_ctl", r, errno);
        check(r == -1 && errno == ENOENT, "epoll_ctl: expected ENOENT");
    }
}

COUNTED static void run_readiness(void)
{
    int p[2];
    check(pipe(p) == 0, "pipe");
    epoll_create_2();
    int ep = epoll_create1_3();
    epoll_ctl_30(ep, p[0]);
    epoll_ctl_enoent_5(ep, p[0]);
    poll_100(p[0]);
    ppoll_10(p[0]);
    epoll_wait_100(ep);
    epoll_pwait_10(ep);
    select_100(p[0]);
    pselect_10(p[0]);
    close(ep);
    close(p[0]);
    close(p[1]);
}

/* ---- partial writes ----------------------------------------------------- */

#define FILL_SIZE (1 << 20)

/* Writes 1 MiB at a time to a non-blocking Unix stream socket nobody reads,
 * until EAGAIN: the kernel takes what fits in the send buffer (a partial
 * write), then refuses. Prints what it saw, for the test to compare. */
COUNTED static void fill_unix_stream(int fd, char *buf)
{
    long calls = 0, bytes = 0, partial = 0;
    for (;;) {
        errno = 0;
        ssize_t n = write(fd, buf, FILL_SIZE);
        calls++;
        note(__func__, "write", n, errno);
        if (n < 0) {
            check(errno == EAGAIN || errno == EWOULDBLOCK, "write: expected EAGAIN");
            break;
        }
        bytes += n;
        partial += n < FILL_SIZE;
        check(calls < 100000, "write never returned EAGAIN");
    }
    printf("fill_unix_stream calls=%ld bytes=%ld partial=%ld eagain=1\n", calls, bytes, partial);
}

COUNTED static void run_fill(void)
{
    int sv[2];
    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0,
          "socketpair(AF_UNIX, SOCK_STREAM)");
    char *buf = calloc(1, FILL_SIZE);
    check(buf != NULL, "calloc");
    fill_unix_stream(sv[0], buf);
    free(buf);
    close(sv[0]);
    close(sv[1]);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "print") == 0) {
            print_mode = 1;
        } else {
            fprintf(stderr, "usage: known_io [print]\n");
            return 2;
        }
    }
    run_udp();
    run_unix_dgram();
    run_pipes();
    run_file();
    run_tcp();
    read_badfd_100();
    run_readiness();
    run_fill();
    printf("done\n");
    return 0;
}
