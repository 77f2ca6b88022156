/* A malloc-dominated workload: each thread keeps a window of WINDOW live
 * blocks and, per step, replaces a random one. 95% of the new blocks are
 * small (16-272 B), 5% large (4-68 KiB), each allocated through a chain of
 * 1 to 4 calls, so nearly all of the time is malloc and free and a
 * profiler's cost per call shows in full.
 *
 * usage: window_bench [threads] [steps per thread] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "workers.h"

#define WINDOW 4096

struct worker {
    uint64_t seed;
    long steps;
    uint64_t checksum;
};

/* xorshift64: cheap next to malloc, so the workload stays malloc-bound. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

/* 95% in 16..272 bytes, 5% in 4..68 KiB. */
static size_t block_size(uint64_t r)
{
    if (r % 100 < 95)
        return 16 + (size_t)((r >> 8) % 257);
    return 4096 + (size_t)((r >> 8) % (64 * 1024 + 1));
}

/* A few call depths, as a program's layers would be. */
__attribute__((noinline)) static void *alloc_at(int depth, size_t n)
{
    if (depth <= 1)
        return malloc(n);
    void *p = alloc_at(depth - 1, n);
    __asm__ volatile("" ::: "memory"); /* keep the recursion real */
    return p;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    void *window[WINDOW] = {0};
    for (long i = 0; i < w->steps; i++) {
        uint64_t r = next_random(&w->seed);
        size_t size = block_size(r);
        char *p = alloc_at(1 + (int)((r >> 32) % 4), size);
        if (p == NULL)
            abort();
        p[0] = (char)i;
        unsigned slot = (unsigned)(r >> 40) % WINDOW;
        free(window[slot]);
        window[slot] = p;
        w->checksum += (unsigned char)p[0];
    }
    for (int i = 0; i < WINDOW; i++)
        free(window[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 2;
    long steps = 12000000;
    bench_args(argc, argv, &threads, &steps, "window_bench [threads 1..256] [steps]");
    struct worker workers[MAX_THREADS];
    for (int t = 0; t < threads; t++)
        workers[t] =
            (struct worker){.seed = 0x9e3779b97f4a7c15u * (uint64_t)(t + 1), .steps = steps};
    if (run_workers(worker_main, workers, sizeof workers[0], threads) != 0)
        return 1;
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++)
        sum += workers[t].checksum;
    printf("%llu\n", (unsigned long long)sum);
    return 0;
}
