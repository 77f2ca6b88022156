/* The I/O hooks' clock: the time-stamp counter where it is invariant,
 * else CLOCK_MONOTONIC (core.h, ppx_ticks_now), and its rate. */
#include "core.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

_Atomic int ppx_tick_clock;
/* Calibration base: a (ticks, ns) pair taken at initialisation; written
 * once by ppx_ticks_init, read by the flusher. */
static uint64_t base_ticks, base_ns;

bool ppx_tsc_probe(void)
{
    bool invariant = false;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    /* CPUID 0x80000007 EDX bit 8: invariant TSC. */
    if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000007u &&
        __get_cpuid(0x80000007u, &a, &b, &c, &d))
        invariant = (d & (1u << 8)) != 0;
#endif
    atomic_store_explicit(&ppx_tick_clock, invariant ? 1 : 2, memory_order_relaxed);
    return invariant;
}

double ppx_ns_per_tick(void)
{
    if (atomic_load_explicit(&ppx_tick_clock, memory_order_relaxed) != 1)
        return 1.0;
    /* The rate over the whole run so far: reading errors of ~30 ns weigh
     * nothing once some microseconds have passed; wait that long if not. */
    uint64_t now_ns, now_ticks;
    do {
        now_ticks = ppx_ticks_now();
        now_ns = ppx_monotonic_ns();
    } while (now_ns - base_ns < 20000);
    return (double)(now_ns - base_ns) / (double)(now_ticks - base_ticks);
}

void ppx_ticks_init(void)
{
    base_ticks = ppx_ticks_now();
    base_ns = ppx_monotonic_ns();
}
