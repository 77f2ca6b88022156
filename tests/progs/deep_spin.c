/* CPU on a deep stack, between two idle stretches, for the flusher's pace
 * under a CPU profile: 1.5 s asleep, SECONDS of CPU spun in spin_leaf()
 * 60 calls below main (each tick a long stack: a ring fills in a few
 * hundred milliseconds), 1.5 s asleep. Prints each phase's start ("idle",
 * "spin", "rest") with CLOCK_REALTIME seconds.
 *
 * Usage: deep_spin SECONDS */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "known_allocs.h"
#include "phase_clock.h"

#define DEPTH 60

COUNTED void spin_leaf(double seconds)
{
    volatile unsigned long x = 0;
    for (double start = cpu_s(CLOCK_THREAD_CPUTIME_ID);
         cpu_s(CLOCK_THREAD_CPUTIME_ID) - start < seconds;)
        for (int k = 0; k < 10000; k++)
            x += (unsigned long)k;
}

COUNTED void spin_down(int n, double seconds)
{
    if (n == 0)
        spin_leaf(seconds);
    else
        spin_down(n - 1, seconds);
    ESCAPE(&n);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0;
    if (!(seconds > 0 && seconds <= 60)) {
        fprintf(stderr, "usage: deep_spin SECONDS (0 < SECONDS <= 60)\n");
        return 2;
    }
    say("idle");
    usleep(1500000);
    say("spin");
    spin_down(DEPTH, seconds);
    say("rest");
    usleep(1500000);
    return 0;
}
