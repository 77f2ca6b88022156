/* What the multi-threaded benchmarks share: their two arguments, and N
 * workers started at once and joined. */
#ifndef PPX_BENCH_WORKERS_H
#define PPX_BENCH_WORKERS_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_THREADS 256

/* argv[1] threads (1..MAX_THREADS), argv[2] a count per thread (> 0): each
 * replaces its default if given; out of range, USAGE and exit status 2. */
static void bench_args(int argc, char **argv, int *threads, long *count, const char *usage)
{
    if (argc > 1)
        *threads = atoi(argv[1]);
    if (argc > 2)
        *count = atol(argv[2]);
    if (*threads < 1 || *threads > MAX_THREADS || *count < 1) {
        fprintf(stderr, "usage: %s\n", usage);
        exit(2);
    }
}

/* Runs FN on each of N workers (SIZE bytes apart from BASE), all at once,
 * and returns once they ended: 0, or -1 if one could not be started. */
static int run_workers(void *(*fn)(void *), void *base, size_t size, int n)
{
    pthread_t tids[MAX_THREADS];
    for (int i = 0; i < n; i++)
        if (pthread_create(&tids[i], NULL, fn, (char *)base + (size_t)i * size) != 0)
            return -1;
    for (int i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    return 0;
}

#endif
