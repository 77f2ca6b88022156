/* Lock workloads for the lock hooks' overhead (BENCH=lock bench/run):
 *   lock_bench uncontended THREADS PAIRS: each thread locks and unlocks a
 *     mutex of its own PAIRS times (never contended); prints the mean
 *     nanoseconds of the threads' own CPU time per lock/unlock pair (CPU
 *     time: other load on the machine does not count, its time slices do);
 *   lock_bench contended THREADS OPS: THREADS threads share one mutex, each
 *     taking it OPS times around a short critical section, with some work
 *     of its own between; prints operations per second.
 * Both print "lock_bench: ns_per_pair X ops_per_s Y wall S". */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include "workers.h"

static long count;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct own {
    pthread_mutex_t mu;
    volatile uint64_t n;
    double cpu_s; /* the thread's CPU time in its loop */
    char pad[64];
};

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static struct own own[MAX_THREADS];

static void *uncontended(void *arg)
{
    struct own *o = arg;
    double t0 = thread_cpu_s();
    for (long i = 0; i < count; i++) {
        pthread_mutex_lock(&o->mu);
        o->n++;
        pthread_mutex_unlock(&o->mu);
    }
    o->cpu_s = thread_cpu_s() - t0;
    return NULL;
}

static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile uint64_t shared_state = 1;

static uint64_t spin(uint64_t x, int n)
{
    for (int i = 0; i < n; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

static void *contended(void *arg)
{
    uint64_t mine = (uintptr_t)arg | 1;
    for (long i = 0; i < count; i++) {
        pthread_mutex_lock(&shared_mu);
        shared_state = spin(shared_state, 100); /* ~100 ns held */
        pthread_mutex_unlock(&shared_mu);
        mine = spin(mine, 100); /* ~100 ns of its own */
    }
    return (void *)(uintptr_t)mine;
}

int main(int argc, char **argv)
{
    static const char usage[] = "lock_bench uncontended|contended [threads] [count per thread]";
    if (argc < 2 || (strcmp(argv[1], "uncontended") != 0 && strcmp(argv[1], "contended") != 0)) {
        fprintf(stderr, "usage: %s\n", usage);
        return 2;
    }
    bool shared = strcmp(argv[1], "contended") == 0;
    int threads = shared ? 4 : 1;
    count = shared ? 2000000 : 50000000;
    bench_args(argc - 1, argv + 1, &threads, &count, usage);
    for (int i = 0; i < threads; i++)
        pthread_mutex_init(&own[i].mu, NULL);
    double t0 = now_s();
    int rc = shared ? run_workers(contended, (void *)1, 1, threads)
                    : run_workers(uncontended, own, sizeof own[0], threads);
    double wall = now_s() - t0;
    if (rc < 0) {
        fprintf(stderr, "lock_bench: cannot start the threads\n");
        return 1;
    }
    double ops = (double)count * threads, cpu = 0;
    for (int i = 0; i < threads; i++)
        cpu += own[i].cpu_s;
    printf("lock_bench: ns_per_pair %.2f ops_per_s %.0f wall %.3f\n",
           shared ? wall * 1e9 / ops : cpu * 1e9 / ops, ops / wall, wall);
    return 0;
}
