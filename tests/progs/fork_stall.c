/* fork() while the profiler's connection is stalled (a collector that
 * stopped reading): forks must not wait for the collector.
 *
 * Usage: fork_stall N
 * Allocates from 8192 distinct stacks (left/right chains 13 deep: a profile
 * far larger than a socket buffer), waits 300 ms (the flusher is then stuck
 * in a send), then forks N times, 100 ms apart; child i prints "child i"
 * and exits with status i. Prints "children ok N" when every child's status
 * was right, and "max fork ms M": the longest a fork() call took in the
 * parent, measured around the call. Exit status 0, 1 on a wrong child. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "known_allocs.h"

#define LEVELS 13

static void branch(unsigned level, unsigned path);

COUNTED static void left(unsigned level, unsigned path)
{
    branch(level + 1, path);
}

COUNTED static void right(unsigned level, unsigned path)
{
    branch(level + 1, path);
}

COUNTED static void branch(unsigned level, unsigned path)
{
    if (level == LEVELS) {
        void *p = malloc(16);
        ESCAPE(p);
        free(p);
        return;
    }
    if (path & (1u << level))
        right(level, path);
    else
        left(level, path);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5;
    for (unsigned path = 0; path < (1u << LEVELS); path++)
        branch(0, path);
    struct timespec pause = {0, 300000000};
    nanosleep(&pause, NULL);
    uint64_t max_ns = 0;
    int ok = 0;
    for (int i = 1; i <= n; i++) {
        uint64_t t0 = now_ns();
        pid_t pid = fork();
        uint64_t took = now_ns() - t0;
        if (pid == 0) {
            printf("child %d\n", i);
            fflush(stdout);
            exit(i);
        }
        if (took > max_ns)
            max_ns = took;
        int status;
        if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
            WEXITSTATUS(status) == i)
            ok++;
        pause.tv_nsec = 100000000;
        nanosleep(&pause, NULL);
    }
    printf("children ok %d\n", ok);
    printf("max fork ms %llu\n", (unsigned long long)(max_ns / 1000000u));
    fflush(stdout);
    return ok == n ? 0 : 1;
}
