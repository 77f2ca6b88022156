/* Calls that close, replace or create descriptors, hooked only to keep the
 * descriptor class cache (io/fd_class.c) true: a closed or replaced number is
 * forgotten, a new one forgotten or labelled at once when its kind is
 * known (socket, pipe, eventfd, ...). Each returns exactly what the real
 * call returned, errno included, and does nothing else with PPX_SYSCALLS=0.
 * pipe2 also moves libunwind's pipe (stack/unwind_pipe.c); epoll_create
 * and epoll_create1 are in io.c, which counts them.
 *
 * Not hooked: fcntl(F_DUPFD), accept's relatives outside io.c,
 * memfd_create, inotify, and closes inside libc (fclose): a number reused
 * after one of those may carry its old label until it is closed again. */
#undef _FORTIFY_SOURCE /* its inline open() would clash with ours */
#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

static void *real_close, *real_close_range, *real_closefrom, *real_dup, *real_dup2, *real_dup3,
    *real_socket, *real_socketpair, *real_pipe, *real_open, *real_open64, *real_openat,
    *real_openat64, *real_open_2, *real_open64_2, *real_openat_2, *real_openat64_2, *real_creat,
    *real_creat64, *real_eventfd, *real_timerfd_create, *real_signalfd;

#define NEXT(name, type) ((type)ppx_next(&real_##name, #name))
#define NEXT_AS(slot, name, type) ((type)ppx_next(&real_##slot, name))

void ppx_fd_hooks_resolve(void)
{
    static struct {
        void **slot;
        const char *name;
    } const all[] = {
        {&real_close, "close"},
        {&real_close_range, "close_range"},
        {&real_closefrom, "closefrom"},
        {&real_dup, "dup"},
        {&real_dup2, "dup2"},
        {&real_dup3, "dup3"},
        {&real_socket, "socket"},
        {&real_socketpair, "socketpair"},
        {&real_pipe, "pipe"},
        {&real_open, "open"},
        {&real_open64, "open64"},
        {&real_openat, "openat"},
        {&real_openat64, "openat64"},
        {&real_open_2, "__open_2"},
        {&real_open64_2, "__open64_2"},
        {&real_openat_2, "__openat_2"},
        {&real_openat64_2, "__openat64_2"},
        {&real_creat, "creat"},
        {&real_creat64, "creat64"},
        {&real_eventfd, "eventfd"},
        {&real_timerfd_create, "timerfd_create"},
        {&real_signalfd, "signalfd"},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ppx_next(all[i].slot, all[i].name);
}

static inline bool tracking(void)
{
    return atomic_load_explicit(&ppx_io_active, memory_order_relaxed);
}

/* fd (a result: -1 is a failure) is new or was replaced. */
static inline void forget(int fd)
{
    if (fd >= 0 && tracking())
        ppx_fd_forget(fd);
}

static inline void label(int fd, uint32_t type)
{
    if (fd >= 0 && tracking())
        ppx_fd_set_class(fd, PPX_FD_CLASS(type, 0, 0));
}

/* ---- closing and replacing ---- */

PPX_EXPORT int close(int fd)
{
    int r = NEXT(close, int (*)(int))(fd);
    if (tracking()) {
        int saved_errno = errno;
        ppx_fd_forget(fd); /* even on failure: Linux closes it on EINTR too */
        errno = saved_errno;
    }
    return r;
}

PPX_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    int r = NEXT(close_range, int (*)(unsigned int, unsigned int, int))(first, last, flags);
#ifdef CLOSE_RANGE_CLOEXEC
    bool closes = (flags & CLOSE_RANGE_CLOEXEC) == 0;
#else
    bool closes = true;
#endif
    if (r == 0 && closes && tracking())
        ppx_fd_forget_range(first, last);
    return r;
}

PPX_EXPORT void closefrom(int lowfd)
{
    NEXT(closefrom, void (*)(int))(lowfd);
    if (tracking())
        ppx_fd_forget_range(lowfd < 0 ? 0u : (unsigned)lowfd, ~0u);
}

PPX_EXPORT int dup(int fd)
{
    int r = NEXT(dup, int (*)(int))(fd);
    forget(r);
    return r;
}

PPX_EXPORT int dup2(int fd, int target)
{
    int r = NEXT(dup2, int (*)(int, int))(fd, target);
    forget(r);
    return r;
}

PPX_EXPORT int dup3(int fd, int target, int flags)
{
    int r = NEXT(dup3, int (*)(int, int, int))(fd, target, flags);
    forget(r);
    return r;
}

/* ---- creating ---- */

PPX_EXPORT int socket(int domain, int type, int protocol)
{
    int r = NEXT(socket, int (*)(int, int, int))(domain, type, protocol);
    if (r >= 0 && tracking())
        ppx_fd_set_socket(r, domain, type);
    return r;
}

PPX_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
    int r = NEXT(socketpair, int (*)(int, int, int, int[2]))(domain, type, protocol, sv);
    if (r == 0 && tracking()) {
        ppx_fd_set_socket(sv[0], domain, type);
        ppx_fd_set_socket(sv[1], domain, type);
    }
    return r;
}

PPX_EXPORT int pipe(int fds[2])
{
    int r = NEXT(pipe, int (*)(int[2]))(fds);
    if (r == 0) {
        label(fds[0], WIRE_FD_PIPE);
        label(fds[1], WIRE_FD_PIPE);
    }
    return r;
}

/* pipe2: labelled like pipe; also the way libunwind's own pipe is caught
 * and moved out of the program's descriptor range (stack/unwind_pipe.c):
 * the call that made it comes from libunwind's code, with the guard held. */
static void label_pipe(const int fds[2])
{
    if (atomic_load_explicit(&ppx_io_active, memory_order_relaxed)) {
        ppx_fd_set_class(fds[0], PPX_FD_CLASS(WIRE_FD_PIPE, 0, 0));
        ppx_fd_set_class(fds[1], PPX_FD_CLASS(WIRE_FD_PIPE, 0, 0));
    }
}

PPX_EXPORT int pipe2(int fds[2], int flags)
{
    int rc = ppx_unwind_real_pipe2(fds, flags);
    if (rc == 0)
        label_pipe(fds); /* for the I/O hooks' descriptor classes (io/fd_class.c) */
    if (rc != 0 || ppx_tls.guard == 0 || !ppx_unwinder_pc((uintptr_t)__builtin_return_address(0)))
        return rc;
    int saved_errno = errno;
    ppx_unwind_pipe_adopt(fds);
    label_pipe(fds);
    errno = saved_errno;
    return 0;
}

/* The mode argument is there only when the flags ask for it. */
#define OPEN_MODE(flags, last)                                                                     \
    mode_t mode = 0;                                                                               \
    if (__OPEN_NEEDS_MODE(flags)) {                                                                \
        va_list ap;                                                                                \
        va_start(ap, last);                                                                        \
        mode = va_arg(ap, mode_t);                                                                 \
        va_end(ap);                                                                                \
    }

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

PPX_EXPORT int open(const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    int r = NEXT(open, open_fn)(path, flags, mode);
    forget(r);
    return r;
}

PPX_EXPORT int open64(const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    int r = NEXT(open64, open_fn)(path, flags, mode);
    forget(r);
    return r;
}

PPX_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    int r = NEXT(openat, openat_fn)(dirfd, path, flags, mode);
    forget(r);
    return r;
}

PPX_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    int r = NEXT(openat64, openat_fn)(dirfd, path, flags, mode);
    forget(r);
    return r;
}

/* What _FORTIFY_SOURCE's open() calls when it cannot see the flags. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

PPX_EXPORT int __open_2(const char *path, int flags)
{
    int r = NEXT_AS(open_2, "__open_2", int (*)(const char *, int))(path, flags);
    forget(r);
    return r;
}

PPX_EXPORT int __open64_2(const char *path, int flags)
{
    int r = NEXT_AS(open64_2, "__open64_2", int (*)(const char *, int))(path, flags);
    forget(r);
    return r;
}

PPX_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    int r = NEXT_AS(openat_2, "__openat_2", int (*)(int, const char *, int))(dirfd, path, flags);
    forget(r);
    return r;
}

PPX_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    int r =
        NEXT_AS(openat64_2, "__openat64_2", int (*)(int, const char *, int))(dirfd, path, flags);
    forget(r);
    return r;
}

PPX_EXPORT int creat(const char *path, mode_t mode)
{
    int r = NEXT(creat, int (*)(const char *, mode_t))(path, mode);
    forget(r); /* an existing FIFO or device stays what it is */
    return r;
}

PPX_EXPORT int creat64(const char *path, mode_t mode)
{
    int r = NEXT(creat64, int (*)(const char *, mode_t))(path, mode);
    forget(r);
    return r;
}

PPX_EXPORT int eventfd(unsigned int count, int flags)
{
    int r = NEXT(eventfd, int (*)(unsigned int, int))(count, flags);
    label(r, WIRE_FD_ANON);
    return r;
}

PPX_EXPORT int timerfd_create(int clock, int flags)
{
    int r = NEXT(timerfd_create, int (*)(int, int))(clock, flags);
    label(r, WIRE_FD_ANON);
    return r;
}

PPX_EXPORT int signalfd(int fd, const sigset_t *mask, int flags)
{
    int r = NEXT(signalfd, int (*)(int, const sigset_t *, int))(fd, mask, flags);
    label(r, WIRE_FD_ANON);
    return r;
}
