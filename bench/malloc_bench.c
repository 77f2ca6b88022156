/* A malloc-heavy multi-threaded workload: each thread keeps a ring of live
 * blocks and replaces one per step with a block of a pseudo-random size,
 * from one of several call paths, so the profiler sees many stacks, a
 * realistic mix of sizes, and a steady live set.
 *
 * usage: malloc_bench [threads] [steps per thread] */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers.h"

#define RING 4096

struct worker {
    unsigned seed;
    long steps;
    uint64_t checksum;
};

static uint32_t next_random(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

/* Distinct call paths, as a server's request, buffer and string code would be. */
__attribute__((noinline)) static void *alloc_request(size_t n)
{
    return malloc(n);
}
__attribute__((noinline)) static void *alloc_buffer(size_t n)
{
    return calloc(1, n);
}
__attribute__((noinline)) static void *alloc_nested(int depth, size_t n)
{
    if (depth == 0)
        return malloc(n);
    void *p = alloc_nested(depth - 1, n);
    __asm__ volatile("" ::: "memory"); /* keep the recursion real */
    return p;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    void *ring[RING] = {0};
    for (long i = 0; i < w->steps; i++) {
        uint32_t r = next_random(&w->seed);
        uint32_t r2 = next_random(&w->seed);
        size_t size = 16 + (r % 1024);
        if (r2 % 16 == 0)
            size *= 8;
        void *p;
        switch ((r >> 12) % 3) {
        case 0:
            p = alloc_request(size);
            break;
        case 1:
            p = alloc_buffer(size);
            break;
        default:
            p = alloc_nested((int)((r >> 16) % 8), size);
            break;
        }
        if (p == NULL)
            abort();
        memset(p, (int)i, size < 64 ? size : 64);
        unsigned slot = (r2 >> 4) % RING;
        if ((r2 >> 16) % 8 == 0) {
            void *q = realloc(ring[slot], size * 2);
            if (q != NULL) {
                ring[slot] = q;
                free(p);
                continue;
            }
        }
        w->checksum += ((unsigned char *)p)[0];
        free(ring[slot]);
        ring[slot] = p;
    }
    for (int i = 0; i < RING; i++)
        free(ring[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 4;
    long steps = 2000000;
    bench_args(argc, argv, &threads, &steps, "malloc_bench [threads 1..256] [steps]");
    struct worker workers[MAX_THREADS];
    for (int t = 0; t < threads; t++)
        workers[t] = (struct worker){.seed = 12345u + (unsigned)t, .steps = steps};
    if (run_workers(worker_main, workers, sizeof workers[0], threads) != 0)
        return 1;
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++)
        sum += workers[t].checksum;
    printf("%llu\n", (unsigned long long)sum);
    return 0;
}
