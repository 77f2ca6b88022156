/* Threads with the smallest stack glibc allows (PTHREAD_STACK_MIN, 16 KiB).
 *
 * Usage: small_stack locals N
 *   one such thread runs deep_locals with N bytes of locals in use while it
 *   allocates (8 blocks of 64..71 bytes, freed) and burns 50 ms of CPU.
 *   Prints "N bytes of locals on a 16 KiB stack: 9", exit 0. glibc puts a
 *   thread's static TLS (every library's) on its stack: a preloaded
 *   library with a large one leaves too little room, and the thread crashes.
 * Usage: small_stack churn N
 *   N such threads one after the other, each allocating once; prints the
 *   growth of VmRSS in KiB from after the first 1000 to after the last, as
 *   "rss growth: K", and "churn: N threads". */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "known_allocs.h"

static size_t locals;

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

COUNTED static long deep_locals(size_t n)
{
    char buf[n];
    memset(buf, 1, n);
    long sum = 0;
    for (int i = 0; i < 8; i++) {
        char *p = malloc(64 + (size_t)i);
        if (p == NULL)
            return -1;
        ESCAPE(p);
        p[0] = buf[i];
        sum += p[0];
        free(p);
    }
    /* CPU with the locals in use: timer ticks land on this deep stack */
    unsigned x = 1;
    for (double t0 = thread_cpu_ms(); thread_cpu_ms() - t0 < 50;)
        for (int i = 0; i < 10000; i++)
            x = x * 1103515245u + buf[(size_t)i % n];
    ESCAPE(&x);
    return sum + buf[n - 1];
}

static void *run_locals(void *arg)
{
    (void)arg;
    return (void *)deep_locals(locals);
}

COUNTED static void *run_short(void *arg)
{
    char *p = malloc(100);
    ESCAPE(p);
    free(p);
    return arg;
}

static int start_small(void *(*fn)(void *), void **ret)
{
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN) != 0)
        return -1;
    int rc = pthread_create(&t, &attr, fn, NULL);
    pthread_attr_destroy(&attr);
    return rc != 0 ? -1 : pthread_join(t, ret);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f != NULL)
        fclose(f);
    return kib;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "locals") != 0 && strcmp(argv[1], "churn") != 0)) {
        fprintf(stderr, "usage: small_stack locals|churn N\n");
        return 2;
    }
    unsigned long n = strtoul(argv[2], NULL, 10);
    if (strcmp(argv[1], "locals") == 0) {
        void *ret;
        locals = n > 0 ? n : 1;
        if (start_small(run_locals, &ret) != 0)
            return 3;
        printf("%zu bytes of locals on a 16 KiB stack: %ld\n", locals, (long)ret);
        return 0;
    }
    long base = -1;
    for (unsigned long i = 0; i < n; i++) {
        if (start_small(run_short, NULL) != 0)
            return 3;
        if (i + 1 == 1000)
            base = rss_kib();
    }
    printf("rss growth: %ld\nchurn: %lu threads\n", rss_kib() - base, n);
    return 0;
}
