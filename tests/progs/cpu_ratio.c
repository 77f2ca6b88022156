/* Two threads spin concurrently in two functions with a 3:1 ratio of CPU
 * time: spin_three uses 3 units of its thread's CPU, spin_one 1 unit.
 *
 * Usage: cpu_ratio [UNIT_MS]   (default 500: 1.5 s + 0.5 s of CPU)
 *
 * Prints, once both threads are joined:
 *   spin_three tid TID cpu_ns N    the threads' own CPU clocks at their end
 *   spin_one tid TID cpu_ns N
 *   rusage_cpu_ns N                getrusage(RUSAGE_SELF) user + system
 * A profile of it should give spin_three 75% of the two functions' CPU, and
 * a total close to rusage_cpu_ns. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid, pthread_setname_np (configure defines it too) */
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cpu_work.h"
#include "known_allocs.h"

struct spinner {
    const char *name;
    uint64_t (*spin)(uint64_t ms);
    uint64_t ms;
    struct measured_thread m;
};

static pthread_barrier_t start_together;

COUNTED static uint64_t spin_three(uint64_t ms)
{
    return BURN_CPU_MS(ms, 3);
}

COUNTED static uint64_t spin_one(uint64_t ms)
{
    return BURN_CPU_MS(ms, 1);
}

static void *spinner_main(void *arg)
{
    struct spinner *s = arg;
    s->m.tid = gettid();
    pthread_barrier_wait(&start_together);
    s->m.result = s->spin(s->ms);
    s->m.cpu_ns = thread_cpu_ns();
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t unit = argc > 1 ? strtoull(argv[1], NULL, 10) : 500;
    struct spinner s[2] = {{.name = "spin_three", .spin = spin_three, .ms = 3 * unit},
                           {.name = "spin_one", .spin = spin_one, .ms = unit}};

    if (pthread_barrier_init(&start_together, NULL, 2) != 0)
        return 10;
    for (int i = 0; i < 2; i++) {
        int err = pthread_create(&s[i].m.handle, NULL, spinner_main, &s[i]);
        if (err != 0) {
            fprintf(stderr, "cpu_ratio: pthread_create: error %d\n", err);
            return 10;
        }
        pthread_setname_np(s[i].m.handle, i == 0 ? "three" : "one");
    }
    for (int i = 0; i < 2; i++)
        pthread_join(s[i].m.handle, NULL);
    for (int i = 0; i < 2; i++)
        printf("%s tid %d cpu_ns %llu\n", s[i].name, (int)s[i].m.tid,
               (unsigned long long)s[i].m.cpu_ns);
    printf("rusage_cpu_ns %llu\n", (unsigned long long)process_rusage_ns());
    return (s[0].m.result | s[1].m.result) != 0 ? 0 : 11;
}
