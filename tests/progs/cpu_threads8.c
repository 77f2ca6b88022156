/* Eight threads on however many cores with known, different amounts of CPU:
 * thread wK (K = 1..8) spins K units of its own CPU time in `worker`, all
 * eight at once (on a 2-core machine they share the cores, so a profiler
 * that charged the wrong thread or missed descheduled ones would show).
 *
 * Usage: cpu_threads8 [UNIT_MS]   (default 60: 36 units, 2.16 s of CPU)
 *
 * Prints, once all are joined, one line per thread, then the process CPU:
 *   thread wK tid TID cpu_ns N     the thread's own CPU clock at its end
 *   rusage_cpu_ns N */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid, pthread_setname_np (configure defines it too) */
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cpu_work.h"
#include "known_allocs.h"

#define THREADS 8

struct worker {
    int k;
    uint64_t ms;
    struct measured_thread m;
};

static pthread_barrier_t start_together;

COUNTED static uint64_t worker(uint64_t ms, uint64_t seed)
{
    return BURN_CPU_MS(ms, seed);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[] = "wK";
    name[1] = (char)('0' + w->k);
    pthread_setname_np(pthread_self(), name);
    w->m.tid = gettid();
    pthread_barrier_wait(&start_together);
    w->m.result = worker(w->ms, (uint64_t)w->k);
    w->m.cpu_ns = thread_cpu_ns();
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t unit = argc > 1 ? strtoull(argv[1], NULL, 10) : 60;
    struct worker w[THREADS];
    uint64_t all = 0;

    if (pthread_barrier_init(&start_together, NULL, THREADS) != 0)
        return 10;
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.k = i + 1, .ms = (uint64_t)(i + 1) * unit};
        int err = pthread_create(&w[i].m.handle, NULL, worker_main, &w[i]);
        if (err != 0) {
            fprintf(stderr, "cpu_threads8: pthread_create: error %d\n", err);
            return 10;
        }
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(w[i].m.handle, NULL);
    for (int i = 0; i < THREADS; i++) {
        printf("thread w%d tid %d cpu_ns %llu\n", w[i].k, (int)w[i].m.tid,
               (unsigned long long)w[i].m.cpu_ns);
        all |= w[i].m.result;
    }
    printf("rusage_cpu_ns %llu\n", (unsigned long long)process_rusage_ns());
    return all != 0 ? 0 : 11;
}
