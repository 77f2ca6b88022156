/* Where the profiler's own long-lived descriptors go: out of the program's
 * reach.
 *
 * A program may count on every descriptor under its soft RLIMIT_NOFILE (a
 * server at `ulimit -n 16` opens its 13th file; a daemon closes or writes
 * to every fd from 3 to the limit). So a descriptor of ours moves above the
 * soft limit when the hard one leaves room: the soft limit is raised for
 * the one fcntl(F_DUPFD) that needs it, and set back at once. That window
 * is the price: another thread of the program that hits EMFILE exactly
 * then gets a descriptor above its limit instead (rare, and harmless), and
 * a setrlimit() of its own at that instant is undone.
 *
 * Not above a large soft limit: the kernel sizes a process's descriptor
 * table by its highest fd, and a program allowed thousands of descriptors
 * does not miss one. There, as when the hard limit equals the soft one,
 * the descriptor goes to a high number under the limit (ppx_high_fd_base),
 * away from the low numbers programs expect open() to return. */
#include "ppx_preload.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

/* Soft limits up to this get our descriptors above them. */
#define ABOVE_LIMIT_MAX 4096u
/* Room asked above the soft limit. */
#define ABOVE_LIMIT_ROOM 64u

/* A copy of fd at or above the soft limit, close-on-exec; -1 if not possible. */
static int dup_above_soft_limit(int fd)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > ABOVE_LIMIT_MAX || rl.rlim_cur < 3)
        return -1;
    rlim_t soft = rl.rlim_cur;
    rlim_t room = rl.rlim_max == RLIM_INFINITY ? ABOVE_LIMIT_ROOM : rl.rlim_max - soft;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max <= soft)
        return -1;
    struct rlimit raised = {soft + (room < ABOVE_LIMIT_ROOM ? room : ABOVE_LIMIT_ROOM),
                            rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0)
        return -1;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, (int)soft);
    setrlimit(RLIMIT_NOFILE, &rl);
    return high;
}

int ppx_fd_above_limit(int fd)
{
    int high = dup_above_soft_limit(fd);
    if (high < 0)
        high = fcntl(fd, F_DUPFD_CLOEXEC, ppx_high_fd_base());
    if (high < 0)
        return fd; /* stays where it is: still ours, still usable */
    close(fd);
    return high;
}
