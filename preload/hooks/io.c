/* The exported I/O calls: socket, pipe and file reads and writes, accept
 * and connect, the readiness waits (epoll, poll, select) and epoll's set-up
 * (epoll_create, epoll_create1, epoll_ctl). Each calls
 * the next definition (libc's, found with dlsym(RTLD_NEXT)), timed with
 * two CLOCK_MONOTONIC reads, and hands the outcome to io/io_sites.c. The
 * hook returns exactly what the real call returned, errno included.
 *
 * Straight through, uncounted: before initialisation, with PPX_SYSCALLS=0,
 * and the profiler's own calls (the flusher's sends, libunwind's reads of
 * its pipe): made with the recursion guard held, from libppx.so's or
 * libunwind's code.
 *
 * Only calls through the PLT are seen: libc's internal ones (stdio's
 * reads and writes, say) are not. The _FORTIFY_SOURCE variants
 * (__read_chk, __recv_chk, __poll_chk, ...) are hooked as their plain
 * call: Debian builds its packages with them. */
#undef _FORTIFY_SOURCE /* its inline wrappers would clash with our definitions */
#include "hooks.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define RET __builtin_return_address(0)

enum real_index {
    R_READ,
    R_WRITE,
    R_READV,
    R_WRITEV,
    R_PREAD,
    R_PWRITE,
    R_PREAD64,
    R_PWRITE64,
    R_PREADV,
    R_PWRITEV,
    R_PREADV64,
    R_PWRITEV64,
    R_RECV,
    R_SEND,
    R_RECVFROM,
    R_SENDTO,
    R_RECVMSG,
    R_SENDMSG,
    R_RECVMMSG,
    R_SENDMMSG,
    R_ACCEPT,
    R_ACCEPT4,
    R_CONNECT,
    R_EPOLL_WAIT,
    R_EPOLL_PWAIT,
    R_POLL,
    R_PPOLL,
    R_SELECT,
    R_PSELECT,
    R_SENDFILE,
    R_SENDFILE64,
    R_SPLICE,
    R_READ_CHK,
    R_PREAD_CHK,
    R_PREAD64_CHK,
    R_RECV_CHK,
    R_RECVFROM_CHK,
    R_POLL_CHK,
    R_PPOLL_CHK,
    R_EPOLL_CTL,
    R_EPOLL_CREATE,
    R_EPOLL_CREATE1,
    R_COUNT
};

static const char *const real_names[R_COUNT] = {
    "read",           "write",      "readv",       "writev",      "pread",         "pwrite",
    "pread64",        "pwrite64",   "preadv",      "pwritev",     "preadv64",      "pwritev64",
    "recv",           "send",       "recvfrom",    "sendto",      "recvmsg",       "sendmsg",
    "recvmmsg",       "sendmmsg",   "accept",      "accept4",     "connect",       "epoll_wait",
    "epoll_pwait",    "poll",       "ppoll",       "select",      "pselect",       "sendfile",
    "sendfile64",     "splice",     "__read_chk",  "__pread_chk", "__pread64_chk", "__recv_chk",
    "__recvfrom_chk", "__poll_chk", "__ppoll_chk", "epoll_ctl",   "epoll_create",  "epoll_create1",
};

/* The next definitions, resolved at initialisation (or on first use). */
static void *real_fns[R_COUNT];

void ppx_io_hooks_resolve(void)
{
    ppx_next_resolve_all(real_fns, real_names, R_COUNT);
}

#define REAL(i, type) ((type)ppx_next(&real_fns[i], real_names[i]))

/* Whether the call from ret is counted. With the recursion guard held it
 * is the profiler's own (the flusher's sends, libunwind's pipe), unless it
 * comes from elsewhere: a signal handler that interrupted the profiler. */
static inline bool counting(const void *ret)
{
    if (PPX_UNLIKELY(!atomic_load_explicit(&ppx_io_active, memory_order_acquire)))
        return false;
    return PPX_LIKELY(ppx_tls.guard == 0) || !ppx_unwind_own_pc((uintptr_t)ret);
}

/* A read or write of some kind finished with r. */
static inline __attribute__((always_inline)) ssize_t
data_done(unsigned call, int fd, const void *ret, uint64_t t0, ssize_t r)
{
    int *errno_at = &errno; /* one __errno_location() call, not two */
    int saved_errno = *errno_at;
    int err = r < 0 ? (saved_errno > 0 ? saved_errno : -1) : 0;
    ppx_io_count(call, fd, ret, t0, err, r > 0 ? (uint64_t)r : 0, r >= 0 ? 1 : 0);
    *errno_at = saved_errno;
    return r;
}

/* A call that moves no data finished with r (failure: -1). */
static inline __attribute__((always_inline)) int other_done(unsigned call, int fd, const void *ret,
                                                            uint64_t t0, int r)
{
    int *errno_at = &errno;
    int saved_errno = *errno_at;
    int err = r < 0 ? (saved_errno > 0 ? saved_errno : -1) : 0;
    ppx_io_count(call, fd, ret, t0, err, 0, 0);
    *errno_at = saved_errno;
    return r;
}

/* recvmmsg/sendmmsg finished with r messages. */
static inline __attribute__((always_inline)) int
mmsg_done(unsigned call, int fd, const void *ret, uint64_t t0, int r, const struct mmsghdr *vec)
{
    int saved_errno = errno;
    int err = r < 0 ? (saved_errno > 0 ? saved_errno : -1) : 0;
    uint64_t bytes = 0;
    for (int i = 0; i < r; i++)
        bytes += vec[i].msg_len;
    ppx_io_count(call, fd, ret, t0, err, bytes, r > 0 ? (uint64_t)r : 0);
    errno = saved_errno;
    return r;
}

/* The body of a data call's hook: fn(args) is the real call. */
#define DATA_HOOK(call, fd, index, type, ...)                                                      \
    do {                                                                                           \
        type fn_ = REAL(index, type);                                                              \
        ppx_stream_check_program_use(fd);                                                          \
        if (!counting(RET))                                                                        \
            return fn_(__VA_ARGS__);                                                               \
        uint64_t t0_ = ppx_ticks_now();                                                            \
        struct ppx_wait saved_;                                                                    \
        struct ppx_wait *w_ = ppx_wait_begin(call, fd, t0_, &saved_);                              \
        ssize_t r_ = fn_(__VA_ARGS__);                                                             \
        ppx_wait_end(w_, &saved_);                                                                 \
        return data_done(call, fd, RET, t0_, r_);                                                  \
    } while (0)

#define OTHER_HOOK(call, fd, index, type, ...)                                                     \
    do {                                                                                           \
        type fn_ = REAL(index, type);                                                              \
        if (!counting(RET))                                                                        \
            return fn_(__VA_ARGS__);                                                               \
        uint64_t t0_ = ppx_ticks_now();                                                            \
        struct ppx_wait saved_;                                                                    \
        struct ppx_wait *w_ = ppx_wait_begin(call, fd, t0_, &saved_);                              \
        int r_ = fn_(__VA_ARGS__);                                                                 \
        ppx_wait_end(w_, &saved_);                                                                 \
        return other_done(call, fd, RET, t0_, r_);                                                 \
    } while (0)

/* ---- reads and writes ---- */

typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*iov_fn)(int, const struct iovec *, int);
typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pread64_fn)(int, void *, size_t, off64_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef ssize_t (*piov_fn)(int, const struct iovec *, int, off_t);
typedef ssize_t (*piov64_fn)(int, const struct iovec *, int, off64_t);

PPX_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    DATA_HOOK(WIRE_IO_READ, fd, R_READ, read_fn, fd, buf, n);
}

PPX_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    DATA_HOOK(WIRE_IO_WRITE, fd, R_WRITE, write_fn, fd, buf, n);
}

PPX_EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
    DATA_HOOK(WIRE_IO_READV, fd, R_READV, iov_fn, fd, iov, n);
}

PPX_EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
    DATA_HOOK(WIRE_IO_WRITEV, fd, R_WRITEV, iov_fn, fd, iov, n);
}

PPX_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    DATA_HOOK(WIRE_IO_PREAD, fd, R_PREAD, pread_fn, fd, buf, n, off);
}

PPX_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    DATA_HOOK(WIRE_IO_PWRITE, fd, R_PWRITE, pwrite_fn, fd, buf, n, off);
}

PPX_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    DATA_HOOK(WIRE_IO_PREAD, fd, R_PREAD64, pread64_fn, fd, buf, n, off);
}

PPX_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    DATA_HOOK(WIRE_IO_PWRITE, fd, R_PWRITE64, pwrite64_fn, fd, buf, n, off);
}

PPX_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
    DATA_HOOK(WIRE_IO_PREADV, fd, R_PREADV, piov_fn, fd, iov, n, off);
}

PPX_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    DATA_HOOK(WIRE_IO_PWRITEV, fd, R_PWRITEV, piov_fn, fd, iov, n, off);
}

PPX_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t off)
{
    DATA_HOOK(WIRE_IO_PREADV, fd, R_PREADV64, piov64_fn, fd, iov, n, off);
}

PPX_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off)
{
    DATA_HOOK(WIRE_IO_PWRITEV, fd, R_PWRITEV64, piov64_fn, fd, iov, n, off);
}

/* ---- sockets ---- */

typedef ssize_t (*recv_fn)(int, void *, size_t, int);
typedef ssize_t (*send_fn)(int, const void *, size_t, int);
/* The real functions take glibc's transparent unions of address pointers;
 * every use of __SOCKADDR_ARG is a type of its own, so these take the
 * plain pointer (the union's __sockaddr__), which is what is passed. */
typedef ssize_t (*recvfrom_fn)(int, void *__restrict, size_t, int, struct sockaddr *__restrict,
                               socklen_t *__restrict);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*recvmsg_fn)(int, struct msghdr *, int);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef int (*recvmmsg_fn)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
typedef int (*sendmmsg_fn)(int, struct mmsghdr *, unsigned int, int);
typedef int (*accept_fn)(int, struct sockaddr *__restrict, socklen_t *__restrict);
typedef int (*accept4_fn)(int, struct sockaddr *__restrict, socklen_t *__restrict, int);
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

PPX_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    DATA_HOOK(WIRE_IO_RECV, fd, R_RECV, recv_fn, fd, buf, n, flags);
}

PPX_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    DATA_HOOK(WIRE_IO_SEND, fd, R_SEND, send_fn, fd, buf, n, flags);
}

PPX_EXPORT ssize_t recvfrom(int fd, void *__restrict buf, size_t n, int flags, __SOCKADDR_ARG addr,
                            socklen_t *__restrict addr_len)
{
    DATA_HOOK(WIRE_IO_RECVFROM, fd, R_RECVFROM, recvfrom_fn, fd, buf, n, flags, addr.__sockaddr__,
              addr_len);
}

PPX_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, __CONST_SOCKADDR_ARG addr,
                          socklen_t addr_len)
{
    DATA_HOOK(WIRE_IO_SENDTO, fd, R_SENDTO, sendto_fn, fd, buf, n, flags, addr.__sockaddr__,
              addr_len);
}

PPX_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    DATA_HOOK(WIRE_IO_RECVMSG, fd, R_RECVMSG, recvmsg_fn, fd, msg, flags);
}

PPX_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    DATA_HOOK(WIRE_IO_SENDMSG, fd, R_SENDMSG, sendmsg_fn, fd, msg, flags);
}

PPX_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
                        struct timespec *timeout)
{
    recvmmsg_fn fn = REAL(R_RECVMMSG, recvmmsg_fn);
    if (!counting(RET))
        return fn(fd, vec, vlen, flags, timeout);
    uint64_t t0 = ppx_ticks_now();
    struct ppx_wait saved;
    struct ppx_wait *w = ppx_wait_begin(WIRE_IO_RECVMMSG, fd, t0, &saved);
    int r = fn(fd, vec, vlen, flags, timeout);
    ppx_wait_end(w, &saved);
    return mmsg_done(WIRE_IO_RECVMMSG, fd, RET, t0, r, vec);
}

PPX_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    sendmmsg_fn fn = REAL(R_SENDMMSG, sendmmsg_fn);
    if (!counting(RET))
        return fn(fd, vec, vlen, flags);
    uint64_t t0 = ppx_ticks_now();
    struct ppx_wait saved;
    struct ppx_wait *w = ppx_wait_begin(WIRE_IO_SENDMMSG, fd, t0, &saved);
    int r = fn(fd, vec, vlen, flags);
    ppx_wait_end(w, &saved);
    return mmsg_done(WIRE_IO_SENDMMSG, fd, RET, t0, r, vec);
}

/* The accepted socket is of the listening one's kind: no need to classify
 * it on its first read. */
static inline __attribute__((always_inline)) int accepted(unsigned call, int fd, const void *ret,
                                                          uint64_t t0, int r)
{
    int saved_errno = errno;
    if (r >= 0)
        ppx_fd_set_class(r, ppx_fd_class(fd));
    errno = saved_errno;
    return other_done(call, fd, ret, t0, r);
}

PPX_EXPORT int accept(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict addr_len)
{
    accept_fn fn = REAL(R_ACCEPT, accept_fn);
    if (!counting(RET)) {
        int r = fn(fd, addr.__sockaddr__, addr_len);
        if (r >= 0 && atomic_load_explicit(&ppx_io_active, memory_order_relaxed))
            ppx_fd_forget(r);
        return r;
    }
    uint64_t t0 = ppx_ticks_now();
    struct ppx_wait saved;
    struct ppx_wait *w = ppx_wait_begin(WIRE_IO_ACCEPT, fd, t0, &saved);
    int r = fn(fd, addr.__sockaddr__, addr_len);
    ppx_wait_end(w, &saved);
    return accepted(WIRE_IO_ACCEPT, fd, RET, t0, r);
}

PPX_EXPORT int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict addr_len, int flags)
{
    accept4_fn fn = REAL(R_ACCEPT4, accept4_fn);
    if (!counting(RET)) {
        int r = fn(fd, addr.__sockaddr__, addr_len, flags);
        if (r >= 0 && atomic_load_explicit(&ppx_io_active, memory_order_relaxed))
            ppx_fd_forget(r);
        return r;
    }
    uint64_t t0 = ppx_ticks_now();
    struct ppx_wait saved;
    struct ppx_wait *w = ppx_wait_begin(WIRE_IO_ACCEPT4, fd, t0, &saved);
    int r = fn(fd, addr.__sockaddr__, addr_len, flags);
    ppx_wait_end(w, &saved);
    return accepted(WIRE_IO_ACCEPT4, fd, RET, t0, r);
}

PPX_EXPORT int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t addr_len)
{
    OTHER_HOOK(WIRE_IO_CONNECT, fd, R_CONNECT, connect_fn, fd, addr.__sockaddr__, addr_len);
}

/* ---- readiness ---- */

typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);
typedef int (*epoll_pwait_fn)(int, struct epoll_event *, int, int, const sigset_t *);
typedef int (*poll_fn)(struct pollfd *, nfds_t, int);
typedef int (*ppoll_fn)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
typedef int (*select_fn)(int, fd_set *__restrict, fd_set *__restrict, fd_set *__restrict,
                         struct timeval *__restrict);
typedef int (*pselect_fn)(int, fd_set *__restrict, fd_set *__restrict, fd_set *__restrict,
                          const struct timespec *__restrict, const sigset_t *__restrict);

/* The waits carry no descriptor class: an epoll descriptor says nothing
 * about what it waits for. */
PPX_EXPORT int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
{
    OTHER_HOOK(WIRE_IO_EPOLL_WAIT, -1, R_EPOLL_WAIT, epoll_wait_fn, epfd, events, max, timeout);
}

PPX_EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int max, int timeout,
                           const sigset_t *mask)
{
    OTHER_HOOK(WIRE_IO_EPOLL_PWAIT, -1, R_EPOLL_PWAIT, epoll_pwait_fn, epfd, events, max, timeout,
               mask);
}

PPX_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    OTHER_HOOK(WIRE_IO_POLL, -1, R_POLL, poll_fn, fds, n, timeout);
}

PPX_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                     const sigset_t *mask)
{
    OTHER_HOOK(WIRE_IO_PPOLL, -1, R_PPOLL, ppoll_fn, fds, n, timeout, mask);
}

PPX_EXPORT int select(int n, fd_set *__restrict rd, fd_set *__restrict wr, fd_set *__restrict ex,
                      struct timeval *__restrict timeout)
{
    OTHER_HOOK(WIRE_IO_SELECT, -1, R_SELECT, select_fn, n, rd, wr, ex, timeout);
}

PPX_EXPORT int pselect(int n, fd_set *__restrict rd, fd_set *__restrict wr, fd_set *__restrict ex,
                       const struct timespec *__restrict timeout, const sigset_t *__restrict mask)
{
    OTHER_HOOK(WIRE_IO_PSELECT, -1, R_PSELECT, pselect_fn, n, rd, wr, ex, timeout, mask);
}

/* ---- epoll's set-up ----
 * Counted because an event loop makes about as many epoll_ctl calls as it
 * reads (one or two per connection and per change of interest), which is
 * system call time a program can save (e.g. by not toggling EPOLLOUT).
 * fcntl (O_NONBLOCK once per descriptor), setsockopt and the like are not:
 * set-up that a loop does not repeat per request. */

typedef int (*epoll_ctl_fn)(int, int, int, struct epoll_event *);
typedef int (*epoll_create_fn)(int);

/* Labelled by the watched descriptor: what the loop waits for. */
PPX_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    OTHER_HOOK(WIRE_IO_EPOLL_CTL, fd, R_EPOLL_CTL, epoll_ctl_fn, epfd, op, fd, event);
}

/* The new descriptor is an epoll one (io/fd_class.c's anon), whether the call
 * is counted or not. */
static inline __attribute__((always_inline)) int epoll_created(int r)
{
    if (r >= 0 && atomic_load_explicit(&ppx_io_active, memory_order_relaxed)) {
        int saved_errno = errno;
        ppx_fd_set_class(r, PPX_FD_CLASS(WIRE_FD_ANON, 0, 0));
        errno = saved_errno;
    }
    return r;
}

PPX_EXPORT int epoll_create(int size)
{
    epoll_create_fn fn = REAL(R_EPOLL_CREATE, epoll_create_fn);
    if (!counting(RET))
        return epoll_created(fn(size));
    uint64_t t0 = ppx_ticks_now();
    int r = epoll_created(fn(size));
    return other_done(WIRE_IO_EPOLL_CREATE, -1, RET, t0, r);
}

PPX_EXPORT int epoll_create1(int flags)
{
    epoll_create_fn fn = REAL(R_EPOLL_CREATE1, epoll_create_fn);
    if (!counting(RET))
        return epoll_created(fn(flags));
    uint64_t t0 = ppx_ticks_now();
    int r = epoll_created(fn(flags));
    return other_done(WIRE_IO_EPOLL_CREATE1, -1, RET, t0, r);
}

/* ---- zero-copy ---- */

typedef ssize_t (*sendfile_fn)(int, int, off_t *, size_t);
typedef ssize_t (*sendfile64_fn)(int, int, off64_t *, size_t);
typedef ssize_t (*splice_fn)(int, off64_t *, int, off64_t *, size_t, unsigned int);

/* Labelled by the destination: usually the socket a file goes to. */
PPX_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    DATA_HOOK(WIRE_IO_SENDFILE, out_fd, R_SENDFILE, sendfile_fn, out_fd, in_fd, offset, count);
}

PPX_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
    DATA_HOOK(WIRE_IO_SENDFILE, out_fd, R_SENDFILE64, sendfile64_fn, out_fd, in_fd, offset, count);
}

/* One end of a splice is a pipe; the site is labelled by the other. */
static inline int splice_label_fd(int in_fd, int out_fd)
{
    return (ppx_fd_class(in_fd) & 0xfu) == WIRE_FD_PIPE ? out_fd : in_fd;
}

PPX_EXPORT ssize_t splice(int in_fd, off64_t *in_off, int out_fd, off64_t *out_off, size_t len,
                          unsigned int flags)
{
    splice_fn fn = REAL(R_SPLICE, splice_fn);
    if (!counting(RET))
        return fn(in_fd, in_off, out_fd, out_off, len, flags);
    uint64_t t0 = ppx_ticks_now();
    struct ppx_wait saved;
    struct ppx_wait *w = ppx_wait_begin(WIRE_IO_SPLICE, in_fd, t0, &saved);
    ssize_t r = fn(in_fd, in_off, out_fd, out_off, len, flags);
    ppx_wait_end(w, &saved);
    int saved_errno = errno;
    int fd = splice_label_fd(in_fd, out_fd);
    errno = saved_errno;
    return data_done(WIRE_IO_SPLICE, fd, RET, t0, r);
}

/* ---- the _FORTIFY_SOURCE variants: the real one checks the buffer ---- */

typedef ssize_t (*read_chk_fn)(int, void *, size_t, size_t);
typedef ssize_t (*pread_chk_fn)(int, void *, size_t, off_t, size_t);
typedef ssize_t (*pread64_chk_fn)(int, void *, size_t, off64_t, size_t);
typedef ssize_t (*recv_chk_fn)(int, void *, size_t, size_t, int);
typedef ssize_t (*recvfrom_chk_fn)(int, void *__restrict, size_t, size_t, int,
                                   struct sockaddr *__restrict, socklen_t *__restrict);
typedef int (*poll_chk_fn)(struct pollfd *, nfds_t, int, size_t);
typedef int (*ppoll_chk_fn)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *,
                            size_t);

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *__restrict buf, size_t n, size_t buflen, int flags,
                       struct sockaddr *__restrict addr, socklen_t *__restrict addr_len);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask,
                size_t fdslen);

PPX_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    DATA_HOOK(WIRE_IO_READ, fd, R_READ_CHK, read_chk_fn, fd, buf, n, buflen);
}

PPX_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    DATA_HOOK(WIRE_IO_PREAD, fd, R_PREAD_CHK, pread_chk_fn, fd, buf, n, off, buflen);
}

PPX_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen)
{
    DATA_HOOK(WIRE_IO_PREAD, fd, R_PREAD64_CHK, pread64_chk_fn, fd, buf, n, off, buflen);
}

PPX_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    DATA_HOOK(WIRE_IO_RECV, fd, R_RECV_CHK, recv_chk_fn, fd, buf, n, buflen, flags);
}

PPX_EXPORT ssize_t __recvfrom_chk(int fd, void *__restrict buf, size_t n, size_t buflen, int flags,
                                  struct sockaddr *__restrict addr, socklen_t *__restrict addr_len)
{
    DATA_HOOK(WIRE_IO_RECVFROM, fd, R_RECVFROM_CHK, recvfrom_chk_fn, fd, buf, n, buflen, flags,
              addr, addr_len);
}

PPX_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    OTHER_HOOK(WIRE_IO_POLL, -1, R_POLL_CHK, poll_chk_fn, fds, n, timeout, fdslen);
}

PPX_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                           const sigset_t *mask, size_t fdslen)
{
    OTHER_HOOK(WIRE_IO_PPOLL, -1, R_PPOLL_CHK, ppoll_chk_fn, fds, n, timeout, mask, fdslen);
}
