/* Where the profiler's own long-lived descriptors go: out of the program's
 * reach.
 *
 * A program may count on every descriptor under its soft RLIMIT_NOFILE (a
 * server at `ulimit -n 16` opens its 13th file; a daemon closes or writes
 * to every fd from 3 to the limit; some size their tables by it). The
 * kernel checks that limit only when a descriptor is created: one placed
 * above it stays valid, and the program can neither open nor dup2 over
 * that number. So a descriptor of ours moves above the soft limit when the
 * hard one leaves room: the soft limit is raised for the one
 * fcntl(F_DUPFD) that needs it, and set back at once. That window is the
 * price: another thread of the program that hits EMFILE exactly then gets
 * a descriptor above its limit instead (rare, and harmless), and a
 * setrlimit() of its own at that instant is undone.
 *
 * Not above a large soft limit: the kernel sizes a process's descriptor
 * table by its highest fd, and a program allowed thousands of descriptors
 * does not miss one. There, as when the hard limit equals the soft one,
 * the descriptor goes to a high number under the limit (ppx_high_fd_base),
 * away from the low numbers programs expect open() to return. */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

/* Soft limits up to this get our descriptors above them. */
#define ABOVE_LIMIT_MAX 4096u
/* Room asked above the number wanted: a few of ours at once. */
#define ABOVE_LIMIT_ROOM 64u

int ppx_high_fd_base(void)
{
    struct rlimit rl;
    long limit = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 30) ? (1l << 30)
                                                                         : (long)rl.rlim_cur;
    long base = limit - 64;
    if (base > 1000)
        base = 1000; /* higher only grows the kernel's fd table for nothing */
    if (base < 100)
        base = limit > 100 ? 100 : limit / 2;
    return base < 3 ? 3 : (int)base;
}

int ppx_fd_dup_from(int fd, int min)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        (rlim_t)min < rl.rlim_cur)
        return fcntl(fd, F_DUPFD_CLOEXEC, min);
    rlim_t want = (rlim_t)min + ABOVE_LIMIT_ROOM;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    if (want <= (rlim_t)min) {
        errno = EMFILE;
        return -1;
    }
    struct rlimit raised = {want, rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0)
        return -1;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, min);
    int saved_errno = errno;
    setrlimit(RLIMIT_NOFILE, &rl);
    errno = saved_errno;
    return high;
}

int ppx_fd_above_limit(int fd)
{
    int saved_errno = errno;
    struct rlimit rl;
    int high = -1;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= 3 &&
        rl.rlim_cur <= ABOVE_LIMIT_MAX)
        high = ppx_fd_dup_from(fd, (int)rl.rlim_cur);
    if (high < 0)
        high = fcntl(fd, F_DUPFD_CLOEXEC, ppx_high_fd_base());
    if (high >= 0 && high != fd) {
        close(fd); /* else it stays where it is: still ours, still usable */
        fd = high;
    }
    errno = saved_errno;
    return fd;
}
