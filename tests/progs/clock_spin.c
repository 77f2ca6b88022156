/* A thread that spends its time reading the clock, as servers that stamp
 * every request do: read_clock_loop calls clock_gettime(CLOCK_MONOTONIC),
 * which the kernel's vDSO answers without a system call, for MS
 * milliseconds of wall time. Most CPU samples then land in the vDSO.
 *
 * Usage: clock_spin [MS]   (default 500); prints the number of reads. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "known_allocs.h"

static COUNTED unsigned long read_clock_loop(long ms)
{
    struct timespec t0, t;
    unsigned long reads = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &t);
        reads++;
    } while ((t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000L < ms);
    return reads;
}

int main(int argc, char **argv)
{
    long ms = argc > 1 ? atol(argv[1]) : 500;
    printf("%lu\n", read_clock_loop(ms));
    return 0;
}
