/* Descriptors of the profiler's own, out of the program's count.
 *
 * A program may open as many descriptors as RLIMIT_NOFILE's soft limit
 * allows, and some size their tables by it (or close every fd below it).
 * The kernel checks that limit only when a descriptor is created: one
 * placed above it stays valid, and the program can neither open nor dup2
 * over that number. So a descriptor of ours goes above the soft limit:
 * the soft limit is raised for the one fcntl(F_DUPFD) when the hard limit
 * leaves room, then put back. Where it does not (hard = soft), or where
 * the soft limit is large (the kernel's table would grow to our number for
 * nothing; two of thousands are not missed), it goes to
 * ppx_high_fd_base() as before, inside the limit.
 *
 * The raise is process-wide for a few microseconds: another thread
 * opening descriptors then may get one above its limit too, and a
 * concurrent setrlimit(RLIMIT_NOFILE) of the program's may be undone.
 * Both are the price of not taking the program's numbers. */
#include "ppx_preload.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#define ABOVE_LIMIT_MAX 4096 /* soft limits up to this: ours go above */

int ppx_fd_dup_from(int fd, int min)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        (rlim_t)min < rl.rlim_cur)
        return fcntl(fd, F_DUPFD_CLOEXEC, min);
    rlim_t want = (rlim_t)min + 8; /* room for a few of ours at once */
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
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur <= ABOVE_LIMIT_MAX)
        high = ppx_fd_dup_from(fd, (int)rl.rlim_cur);
    if (high < 0)
        high = fcntl(fd, F_DUPFD_CLOEXEC, ppx_high_fd_base());
    if (high >= 0 && high != fd) {
        close(fd);
        fd = high;
    }
    errno = saved_errno;
    return fd;
}
