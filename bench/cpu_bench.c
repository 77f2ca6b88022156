/* A CPU-bound multi-threaded workload for the CPU profilers: each thread
 * repeatedly fills an array with pseudo-random keys, sorts it with a
 * recursive quicksort (stacks 20-40 frames deep, as real code's are, so a
 * sampling profiler's unwinding cost shows) and hashes the result. No
 * allocation and no system call in the loop: what a profiler adds is its
 * ticks alone.
 *
 * usage: cpu_bench [threads] [rounds per thread]   (default 4 x 300)
 * Prints a checksum (the same whatever the profiler), the CPU used and the
 * wall time from start to end of the work (what the program itself sees,
 * without a profiler's start-up and output costs). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "workers.h"

#define KEYS 65536

struct worker {
    uint32_t seed;
    long rounds;
    uint32_t keys[KEYS];
    uint64_t checksum;
};

static uint32_t next_random(uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

__attribute__((noinline)) static void fill_keys(struct worker *w)
{
    for (int i = 0; i < KEYS; i++)
        w->keys[i] = next_random(&w->seed);
}

__attribute__((noinline)) static void insertion_sort(uint32_t *a, long n)
{
    for (long i = 1; i < n; i++) {
        uint32_t v = a[i];
        long j = i - 1;
        while (j >= 0 && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

__attribute__((noinline)) static void quicksort(uint32_t *a, long n)
{
    if (n <= 16) {
        insertion_sort(a, n);
        return;
    }
    uint32_t pivot = a[n / 2];
    long i = 0, j = n - 1;
    while (i <= j) {
        while (a[i] < pivot)
            i++;
        while (a[j] > pivot)
            j--;
        if (i <= j) {
            uint32_t t = a[i];
            a[i++] = a[j];
            a[j--] = t;
        }
    }
    quicksort(a, j + 1);
    quicksort(a + i, n - i);
    __asm__ volatile("" ::: "memory"); /* keep the recursion real: no tail call */
}

__attribute__((noinline)) static uint64_t hash_keys(const struct worker *w)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < KEYS; i++)
        h = (h ^ w->keys[i]) * 1099511628211ull;
    return h;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (long r = 0; r < w->rounds; r++) {
        fill_keys(w);
        quicksort(w->keys, KEYS);
        w->checksum ^= hash_keys(w) + (uint64_t)r;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 4;
    long rounds = 300;
    bench_args(argc, argv, &threads, &rounds, "cpu_bench [threads 1..256] [rounds per thread]");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct worker *w = calloc((size_t)threads, sizeof *w);
    if (w == NULL)
        return 1;
    for (int i = 0; i < threads; i++) {
        w[i].seed = 2463534242u + (uint32_t)i;
        w[i].rounds = rounds;
    }
    if (run_workers(worker_main, w, sizeof *w, threads) != 0) {
        fprintf(stderr, "cpu_bench: pthread_create failed\n");
        return 1;
    }
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++)
        sum ^= w[i].checksum;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("cpu_bench: %d threads x %ld rounds, checksum %016llx, cpu %.3f s, wall %.3f s\n",
           threads, rounds, (unsigned long long)sum,
           (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
