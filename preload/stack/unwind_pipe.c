/* libunwind's pipe, kept out of the program's way and repaired.
 *
 * On first use libunwind opens a pipe, through which it
 * checks every address it reads while stepping (Debian builds it with
 * conservative checks). At the lowest free numbers those descriptors would
 * shift every fd the program opens afterwards, and they would count
 * against its RLIMIT_NOFILE, so libunwind's pipe2() calls made while the
 * profiler runs get their descriptors moved above the soft limit where the
 * hard limit allows (core/fd_place.c), else to high numbers (they still show in
 * /proc/self/fd, close-on-exec). A pipe that fails
 * instead is no way out: every check then fails, stacks end after a frame or
 * two, and each unwind takes libunwind's slow path. Daemons close every fd:
 * libunwind would then read and write whatever the program opens at those
 * numbers next, so the flusher puts the pipe back while the numbers are
 * free, or stops unwinding if the program took them. */
#include "stack.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Resolved at initialisation (or by the first pipe2 call), then read-only. */
static int (*next_pipe2)(int[2], int);
/* The pipe libunwind made, as we placed it: under pipe_mu. */
static pthread_mutex_t pipe_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ppx_owner pipe_mu_owner; /* check builds: who holds pipe_mu */
static int unwinder_pipe[2] = {-1, -1};
static dev_t unwinder_pipe_dev[2];
static ino_t unwinder_pipe_ino[2];

static int real_pipe2(int fds[2], int flags)
{
    if (next_pipe2 == NULL)
        next_pipe2 = (int (*)(int[2], int))dlsym(RTLD_NEXT, "pipe2");
    if (next_pipe2 == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return next_pipe2(fds, flags);
}

static void pipe_lock(void)
{
    pthread_mutex_lock(&pipe_mu);
    ppx_owner_take(&pipe_mu_owner);
}

static void pipe_unlock(void)
{
    ppx_owner_drop(&pipe_mu_owner);
    pthread_mutex_unlock(&pipe_mu);
}

static void remember_pipe(const int fds[2])
{
    PPX_CHECK_OWNED(&pipe_mu_owner);
    for (int i = 0; i < 2; i++) {
        struct stat st;
        unwinder_pipe[i] = fds[i];
        if (fstat(fds[i], &st) == 0) {
            unwinder_pipe_dev[i] = st.st_dev;
            unwinder_pipe_ino[i] = st.st_ino;
        }
    }
}

enum pipe_end_state { END_OURS, END_GONE, END_TAKEN };

static enum pipe_end_state pipe_end(int i)
{
    struct stat st;
    if (fstat(unwinder_pipe[i], &st) != 0)
        return errno == EBADF ? END_GONE : END_OURS;
    if (st.st_dev == unwinder_pipe_dev[i] && st.st_ino == unwinder_pipe_ino[i])
        return END_OURS;
    return END_TAKEN;
}

/* Both ends were closed by the program: a fresh pipe at the same numbers,
 * taken only while they are free (F_DUPFD takes the lowest free number at
 * or above the one asked, so it never replaces a descriptor of the
 * program's). */
static bool restore_pipe(void)
{
    int fresh[2];
    if (real_pipe2(fresh, O_CLOEXEC | O_NONBLOCK) != 0)
        return false;
    int placed[2];
    for (int i = 0; i < 2; i++)
        placed[i] = ppx_fd_dup_from(fresh[i], unwinder_pipe[i]);
    close(fresh[0]);
    close(fresh[1]);
    if (placed[0] == unwinder_pipe[0] && placed[1] == unwinder_pipe[1]) {
        remember_pipe(placed);
        return true;
    }
    for (int i = 0; i < 2; i++)
        if (placed[i] >= 0)
            close(placed[i]);
    return false;
}

void ppx_unwind_check_fds(void)
{
    if (ppx_unwind_disabled())
        return;
    int saved_errno = errno;
    pipe_lock();
    if (unwinder_pipe[0] >= 0 && unwinder_pipe[1] >= 0) {
        enum pipe_end_state r = pipe_end(0), w = pipe_end(1);
        if (r == END_TAKEN || w == END_TAKEN || (r == END_GONE) != (w == END_GONE))
            ppx_unwind_disable("the program replaced libunwind's descriptors");
        else if (r == END_GONE && !restore_pipe())
            ppx_unwind_disable("the program took libunwind's descriptor numbers");
    }
    pipe_unlock();
    errno = saved_errno;
}

void ppx_unwind_lock(void)
{
    pipe_lock();
}

void ppx_unwind_unlock(void)
{
    pipe_unlock();
}

void ppx_unwind_pipe_reset_child(void)
{
    pthread_mutex_init(&pipe_mu, NULL);
    ppx_owner_reset(&pipe_mu_owner);
}

void ppx_unwind_pipe_resolve(void)
{
    if (next_pipe2 == NULL)
        next_pipe2 = (int (*)(int[2], int))dlsym(RTLD_NEXT, "pipe2");
}

int ppx_unwind_real_pipe2(int fds[2], int flags)
{
    return real_pipe2(fds, flags);
}

void ppx_unwind_pipe_adopt(int fds[2])
{
    for (int i = 0; i < 2; i++)
        fds[i] = ppx_fd_above_limit(fds[i]);
    pipe_lock();
    remember_pipe(fds);
    pipe_unlock();
}
