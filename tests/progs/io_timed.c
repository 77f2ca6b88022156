/* Times its own poll calls: 20 x poll(NULL, 0, 25 ms) from timed_polls,
 * each measured with CLOCK_MONOTONIC around the call. Prints the total in
 * nanoseconds; ppx's time for those calls lies inside these intervals. */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "known_allocs.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

COUNTED static uint64_t timed_polls(void)
{
    uint64_t total = 0;
    for (int i = 0; i < 20; i++) {
        uint64_t t0 = now_ns();
        poll(NULL, 0, 25);
        total += now_ns() - t0;
    }
    return total;
}

int main(void)
{
    printf("%llu\n", (unsigned long long)timed_polls());
    return 0;
}
