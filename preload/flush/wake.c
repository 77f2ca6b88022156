/* The flusher's wake-up pipe. While a CPU profile runs, the flusher may
 * sleep up to PPX_FLUSH_IDLE_MS although the threads' rings hold ticks for
 * two PPX_FLUSH_MS intervals of a thread at full speed: a SIGPROF handler
 * that fills a ring to half writes a byte here (cpu/sigprof_handler.c),
 * and the flusher, polling this pipe beside the collector's socket, flushes
 * at once. So a server using a few percent of a core is flushed once a
 * second, and a busy thread still every 100 ms or so, its ring never full.
 *
 * Both ends above the program's descriptor limit (core/fd_place.c),
 * close-on-exec, non-blocking, made by whoever starts the flusher; the
 * handlers check the write end is still the pipe before each byte, the
 * flusher checks the read end before each poll (a daemon may close every
 * descriptor). The flusher owns read_fd; the write end's number and
 * identity are the handlers' (ppx_cpu_set_waker). */
#include "flush.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int read_fd = -1, write_fd = -1;
static struct ppx_fd_identity read_id, write_id;

void ppx_wake_open(void)
{
    if (ppx_wake_fd() >= 0)
        return; /* made for an earlier start */
    int fds[2];
    /* not through the pipe2 hook: that one is libunwind's (stack/unwind_pipe.c) */
    if (syscall(SYS_pipe2, fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return;
    int r = ppx_fd_above_limit(fds[0]), w = ppx_fd_above_limit(fds[1]);
    if (!ppx_fd_identify(r, &read_id) || !ppx_fd_identify(w, &write_id)) {
        close(r);
        close(w);
        return;
    }
    read_fd = r;
    write_fd = w;
    ppx_cpu_set_waker(w, &write_id);
}

int ppx_wake_fd(void)
{
    if (read_fd >= 0 && !ppx_fd_is(read_fd, &read_id)) {
        /* closed, or taken by the program: not ours to use or close */
        ppx_cpu_set_waker(-1, NULL);
        if (ppx_fd_is(write_fd, &write_id))
            close(write_fd);
        read_fd = write_fd = -1;
    }
    return read_fd;
}

void ppx_wake_drain(void)
{
    char buf[64];
    while (read_fd >= 0 && read(read_fd, buf, sizeof buf) > 0)
        ;
}

void ppx_wake_reset_child(void)
{
    /* the parent's flusher reads this pipe: the child's makes its own */
    ppx_cpu_set_waker(-1, NULL);
    if (ppx_fd_is(read_fd, &read_id))
        close(read_fd);
    if (ppx_fd_is(write_fd, &write_id))
        close(write_fd);
    read_fd = write_fd = -1;
}
