/* Shared by the CPU test programs: burn a known amount of the calling
 * thread's CPU time inside the function that uses BURN_CPU_MS.
 *
 * The amount is measured on the thread's own CPU clock, not counted in loop
 * iterations: the same clock drives ppx's per-thread timers, so the expected
 * shares do not depend on the machine's speed, on turbo, or on other load
 * on a noisy CI machine (steal time is not the thread's CPU time). */
#ifndef PPX_TESTS_CPU_WORK_H
#define PPX_TESTS_CPU_WORK_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>

/* A thread that spins and measures itself: its tid, and its own CPU clock
 * at its end, which the program prints once the thread is joined. */
struct measured_thread {
    pthread_t handle;
    pid_t tid;
    uint64_t cpu_ns;
    uint64_t result; /* what the spinning computed: used, so it is not optimized out */
};

/* Not inlined: samples that land in the clock read are then thread_cpu_ns
 * (or the libc/vDSO code under it) called from the counted function. */
static __attribute__((noinline, unused)) uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        perror("clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        exit(10);
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* User + system CPU of the whole process so far (every thread, ended ones
 * included): what the profile's total is checked against. */
static inline uint64_t process_rusage_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        perror("getrusage");
        exit(10);
    }
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

/* The work itself is written as macros (GNU statement expressions), not
 * inline functions: an inlined function still has a DWARF record of its own,
 * and pprof shows it as a frame of its own, the leaf. Expanded here, the
 * samples' leaf is the COUNTED function that uses them.
 *
 * BURN_CHUNK(x): pure computation between two clock reads (~85 us here):
 * the clock read is a real system call (the vDSO does not serve thread CPU
 * clocks), so most samples should land in the caller's own code. */
#define BURN_CHUNK(x)                                                                              \
    ({                                                                                             \
        uint64_t burn_x_ = (x);                                                                    \
        for (int burn_i_ = 0; burn_i_ < 50000; burn_i_++) {                                        \
            burn_x_ ^= burn_x_ << 13;                                                              \
            burn_x_ ^= burn_x_ >> 7;                                                               \
            burn_x_ ^= burn_x_ << 17;                                                              \
        }                                                                                          \
        burn_x_;                                                                                   \
    })

/* BURN_CPU_MS(ms, seed): spins until the calling thread has used `ms` more
 * milliseconds of CPU; its value depends on the work, so none of it can be
 * dropped. */
#define BURN_CPU_MS(ms, seed)                                                                      \
    ({                                                                                             \
        uint64_t burn_v_ = (uint64_t)(seed) | 1;                                                   \
        const uint64_t burn_until_ = thread_cpu_ns() + 1000000u * (uint64_t)(ms);                  \
        do                                                                                         \
            burn_v_ = BURN_CHUNK(burn_v_);                                                         \
        while (thread_cpu_ns() < burn_until_);                                                     \
        burn_v_;                                                                                   \
    })

/* BURN_CHUNKS(n, seed): a fixed amount of work (n chunks), for programs
 * whose output must be the same with and without ppx. */
#define BURN_CHUNKS(n, seed)                                                                       \
    ({                                                                                             \
        uint64_t burn_w_ = (uint64_t)(seed) | 1;                                                   \
        for (uint64_t burn_n_ = (n); burn_n_ > 0; burn_n_--)                                       \
            burn_w_ = BURN_CHUNK(burn_w_);                                                         \
        burn_w_;                                                                                   \
    })

#endif
