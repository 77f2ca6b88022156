/* A daemon's habit: fd 2 becomes a data file, then the program installs a
 * SIGPROF handler of its own (what makes a CPU profiler stop, and say so).
 *
 * Usage: stderr_redirect FILE
 *   FILE gets exactly "data 1\ndata 2\n" from the program; exit 0. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cpu_work.h"
#include "known_allocs.h"

static void on_sigprof(int sig)
{
    (void)sig;
}

static int put(const char *s)
{
    return write(STDERR_FILENO, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1;
}

COUNTED static uint64_t spin(void)
{
    return BURN_CPU_MS(30, 3);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: stderr_redirect FILE\n");
        return 2;
    }
    spin(); /* sampled, under PPX_CPU_HZ */
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, STDERR_FILENO) != STDERR_FILENO)
        return 3;
    close(fd);
    if (put("data 1\n") != 0)
        return 4;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigprof;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPROF, &sa, NULL) != 0)
        return 5;
    spin();
    return put("data 2\n") != 0 ? 6 : 0;
}
