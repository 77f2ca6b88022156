/* What kind of descriptor an I/O call used: file, pipe, socket (with its
 * family and type), ... — a label on the call's site.
 *
 * Classifying takes an fstat and, for sockets, two getsockopt calls; the
 * result is cached per descriptor number (below FD_CACHE_SIZE; numbers
 * above it are classified on every call). The hooks on close, dup2, dup3
 * and on the calls that create descriptors (hooks/fd.c) forget an entry, so
 * a reused number is classified afresh. Closes the hooks do not see (glibc's
 * internal ones, fclose, a raw syscall) can leave a stale entry: that only
 * mislabels a site, it never changes what a call returns.
 *
 * Each entry is one 32-bit word: the class and a valid bit, under a
 * generation that every forget bumps. A classification stores its result
 * only if the generation is still the one it read before its fstat, so a
 * close racing with it cannot leave the old descriptor's class behind. */
#include "io.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define FD_CACHE_SIZE PPX_FD_CACHE_SIZE
#define ENTRY_VALID PPX_FD_ENTRY_VALID
#define ENTRY_CLASS PPX_FD_ENTRY_CLASS
#define GEN_SHIFT 16

/* Static zero pages: valid before initialisation, touched only per fd used.
 * Written here only; io.h's ppx_fd_class reads it inline. */
_Atomic uint32_t ppx_fd_cache[FD_CACHE_SIZE];
#define fd_cache ppx_fd_cache

static uint32_t wire_family(int domain)
{
    switch (domain) {
    case AF_UNIX:
        return WIRE_FAMILY_UNIX;
    case AF_INET:
        return WIRE_FAMILY_INET;
    case AF_INET6:
        return WIRE_FAMILY_INET6;
    default:
        return WIRE_FAMILY_OTHER;
    }
}

static uint32_t wire_socktype(int type)
{
    switch (type & 0xf) { /* without SOCK_NONBLOCK / SOCK_CLOEXEC */
    case SOCK_STREAM:
        return WIRE_SOCK_STREAM;
    case SOCK_DGRAM:
        return WIRE_SOCK_DGRAM;
    case SOCK_SEQPACKET:
        return WIRE_SOCK_SEQPACKET;
    case SOCK_RAW:
        return WIRE_SOCK_RAW;
    default:
        return WIRE_SOCK_OTHER;
    }
}

static uint32_t socket_class(int fd)
{
    int domain = -1, type = -1;
    socklen_t len = sizeof domain;
    uint32_t family = WIRE_FAMILY_OTHER, socktype = WIRE_SOCK_OTHER;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0)
        family = wire_family(domain);
    len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
        socktype = wire_socktype(type);
    return PPX_FD_CLASS(WIRE_FD_SOCKET, family, socktype);
}

/* The class of fd right now; WIRE_FD_NONE if fd is not open. */
static uint32_t classify(int fd, bool *known)
{
    struct stat st;
    *known = false;
    if (fstat(fd, &st) != 0)
        return PPX_FD_CLASS(WIRE_FD_NONE, 0, 0);
    *known = true;
    switch (st.st_mode & S_IFMT) {
    case S_IFREG:
        return PPX_FD_CLASS(WIRE_FD_FILE, 0, 0);
    case S_IFIFO:
        return PPX_FD_CLASS(WIRE_FD_PIPE, 0, 0);
    case S_IFSOCK:
        return socket_class(fd);
    case S_IFCHR:
        return PPX_FD_CLASS(WIRE_FD_CHAR, 0, 0);
    case 0:
        return PPX_FD_CLASS(WIRE_FD_ANON, 0, 0); /* anon inode: epoll, eventfd, ... */
    default:
        return PPX_FD_CLASS(WIRE_FD_OTHER, 0, 0);
    }
}

uint32_t ppx_fd_class_slow(int fd)
{
    bool known;
    if (fd < 0)
        return PPX_FD_CLASS(WIRE_FD_NONE, 0, 0);
    if ((unsigned)fd >= FD_CACHE_SIZE)
        return classify(fd, &known);
    uint32_t old = atomic_load_explicit(&fd_cache[fd], memory_order_acquire);
    if (old & ENTRY_VALID)
        return old & ENTRY_CLASS;
    int saved_errno = errno;
    uint32_t cls = classify(fd, &known);
    errno = saved_errno;
    if (known) {
        uint32_t fresh = (old & ~(uint32_t)0xffffu) | ENTRY_VALID | cls;
        atomic_compare_exchange_strong_explicit(&fd_cache[fd], &old, fresh, memory_order_acq_rel,
                                                memory_order_relaxed);
    }
    return cls;
}

/* Bumps the generation (a classification under way will not store) and
 * stores cls, valid if valid. */
static void replace(int fd, uint32_t cls, bool valid)
{
    if (fd < 0 || (unsigned)fd >= FD_CACHE_SIZE)
        return;
    _Atomic uint32_t *e = &fd_cache[fd];
    uint32_t old = atomic_load_explicit(e, memory_order_relaxed);
    uint32_t fresh;
    do {
        fresh = (((old >> GEN_SHIFT) + 1) << GEN_SHIFT) | (valid ? ENTRY_VALID | cls : 0);
    } while (!atomic_compare_exchange_weak_explicit(e, &old, fresh, memory_order_acq_rel,
                                                    memory_order_relaxed));
}

void ppx_fd_forget(int fd)
{
    replace(fd, 0, false);
}

void ppx_fd_forget_range(unsigned first, unsigned last)
{
    for (unsigned fd = first; fd <= last && fd < FD_CACHE_SIZE; fd++)
        if (atomic_load_explicit(&fd_cache[fd], memory_order_relaxed) & ENTRY_VALID)
            replace((int)fd, 0, false);
}

void ppx_fd_set_socket(int fd, int domain, int type)
{
    replace(fd, PPX_FD_CLASS(WIRE_FD_SOCKET, wire_family(domain), wire_socktype(type)), true);
}

void ppx_fd_set_class(int fd, uint32_t cls)
{
    replace(fd, cls, (cls & 0xfu) != WIRE_FD_NONE);
}
