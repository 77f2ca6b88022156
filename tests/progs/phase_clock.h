/* What the programs with timed phases share (phases, deep_spin): each
 * phase's start printed with CLOCK_REALTIME seconds, for the tests to
 * split what they saw (timeline points, strace lines) by phase; and the
 * CPU seconds spent, to spin a known amount. */
#ifndef PPX_TESTS_PHASE_CLOCK_H
#define PPX_TESTS_PHASE_CLOCK_H

#include <stdio.h>
#include <time.h>

/* "PHASE SECONDS" on stdout, flushed. */
static inline void say(const char *phase)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    printf("%s %.3f\n", phase, (double)now.tv_sec + (double)now.tv_nsec / 1e9);
    fflush(stdout);
}

/* CPU seconds of clock (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID). */
static inline double cpu_s(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#endif
