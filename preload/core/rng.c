/* Pseudo-random numbers for the samplers: xorshift64* on a state of the
 * caller's (per thread), seeded with splitmix64. No shared state but the
 * seed counter, no locks: usable in any hook and in a signal handler. */
#include "core.h"

#include <time.h>

/* Makes seeds taken at the same instant differ; only ever incremented. */
static atomic_uint_fast64_t seed_counter;

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* xorshift64*: per-thread state, no shared state, no locks. */
uint64_t ppx_random_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* A nonzero seed unlike any other thread's: time, the state's address and
 * a process-wide counter, mixed. */
uint64_t ppx_random_seed(const void *state)
{
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)state ^
                 (atomic_fetch_add_explicit(&seed_counter, 1, memory_order_relaxed) << 48);
    x = splitmix64(x);
    return x != 0 ? x : 0x9E3779B97F4A7C15ull;
}
