/* /proc/self/task for the flusher's thread listings, held open above the
 * program's descriptor limit (core/fd_place.c). Opened anew for each scan,
 * the directory took the lowest free descriptor for an instant, from the
 * flusher thread: a program opening files up to its limit right then got
 * EMFILE one file early. Opened by whoever starts the flusher (before
 * main() when a collector is there at start), read by the flusher only. */
#include "cpu.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Owned by the flusher once started; set by its starter before that. */
static int task_dir = -1;
static struct ppx_fd_identity task_id;

/* Whether task_dir is still the directory opened (a program may close
 * every descriptor, and its number be reused). */
static bool still_ours(void)
{
    return ppx_fd_is(task_dir, &task_id);
}

void ppx_task_dir_open(void)
{
    if (still_ours())
        return;
    task_dir = -1;
    int fd =
        (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    fd = ppx_fd_above_limit(fd);
    if (!ppx_fd_identify(fd, &task_id)) {
        close(fd);
        return;
    }
    task_dir = fd;
}

bool ppx_task_dir_walk(bool (*each)(int dirfd, const char *name, void *arg), void *arg)
{
    if (still_ours() && ppx_dir_walk_fd(task_dir, each, arg))
        return true;
    task_dir = -1;
    return ppx_dir_walk("/proc/self/task", each, arg);
}

/* The child of fork: the copy lists the parent's threads (/proc/self was
 * the parent when it was opened). */
void ppx_task_dir_reset_child(void)
{
    if (still_ours())
        close(task_dir);
    task_dir = -1;
}
