/* Threads with known names, creators and CPU, for threadcreate.pb.gz and
 * `ppx threads`.
 *
 * Creation sites (each the direct caller of pthread_create):
 *   spawn_pool        3 threads, each names itself pool-1..pool-3 with
 *                     pthread_setname_np(pthread_self()) and spins K x UNIT
 *   spawn_named       1 thread named "by-creator" by its creator
 *                     (pthread_setname_np on its handle) before it runs
 *   spawn_prctl       1 thread that names itself "first" with
 *                     pthread_setname_np, then "via-prctl" with prctl
 *   spawn_nester      1 thread "nester" (prctl) that creates one itself:
 *   spawn_child       1 thread "nested-child", created by nester
 *   spawn_unnamed     1 thread that keeps the name it inherits (the
 *                     program's: "thread_names")
 * Every created thread spins a known amount of its own CPU time. At the
 * end the main thread renames itself "tn-main" (prctl).
 *
 * Usage: thread_names [UNIT_MS]   (default 40)
 *
 * Prints one line per thread, in creation order, then the main thread:
 *   thread NAME tid TID creator CREATOR_TID site SITE cpu_ns N
 * (cpu_ns: the thread's own CPU clock when its work ended). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid, pthread_setname_np (configure defines it too) */
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cpu_work.h"
#include "known_allocs.h"

#define MAX_THREADS 8

struct thread_info {
    char name[16];
    const char *site;
    uint64_t ms;
    pid_t tid, creator;
    uint64_t cpu_ns;
    pthread_t handle;
    pthread_barrier_t named; /* spawn_named: the creator has named it */
};

static struct thread_info infos[MAX_THREADS];
static int n_infos;
static uint64_t unit = 40;

static struct thread_info *new_info(const char *site, uint64_t ms)
{
    struct thread_info *t = &infos[n_infos++];
    t->site = site;
    t->ms = ms;
    t->creator = gettid();
    return t;
}

/* A macro: the spawn_* function itself must call pthread_create, so that
 * it is the leaf of the creation stack. */
#define START_OR_DIE(t, fn)                                                                        \
    do {                                                                                           \
        int err_ = pthread_create(&(t)->handle, NULL, (fn), (t));                                  \
        if (err_ != 0) {                                                                           \
            fprintf(stderr, "thread_names: pthread_create: error %d\n", err_);                     \
            exit(10);                                                                              \
        }                                                                                          \
    } while (0)

COUNTED static uint64_t named_thread_work(uint64_t ms, uint64_t seed)
{
    return BURN_CPU_MS(ms, seed);
}

static void end_work(struct thread_info *t)
{
    named_thread_work(t->ms, (uint64_t)t->tid);
    t->cpu_ns = thread_cpu_ns();
    pthread_getname_np(pthread_self(), t->name, sizeof t->name);
}

static void *pool_main(void *arg)
{
    struct thread_info *t = arg;
    char name[] = "pool-N";
    t->tid = gettid();
    name[5] = (char)('1' + (t - infos));
    pthread_setname_np(pthread_self(), name);
    end_work(t);
    return NULL;
}

COUNTED static void spawn_pool(void)
{
    for (int i = 0; i < 3; i++) {
        struct thread_info *t = new_info("spawn_pool", (uint64_t)(i + 1) * unit);
        START_OR_DIE(t, pool_main);
    }
}

static void *named_main(void *arg)
{
    struct thread_info *t = arg;
    t->tid = gettid();
    pthread_barrier_wait(&t->named);
    end_work(t);
    return NULL;
}

COUNTED static void spawn_named(void)
{
    struct thread_info *t = new_info("spawn_named", 2 * unit);
    pthread_barrier_init(&t->named, NULL, 2);
    START_OR_DIE(t, named_main);
    pthread_setname_np(t->handle, "by-creator");
    pthread_barrier_wait(&t->named);
}

static void *prctl_main(void *arg)
{
    struct thread_info *t = arg;
    t->tid = gettid();
    pthread_setname_np(pthread_self(), "first");
    named_thread_work(unit / 2, 1);
    prctl(PR_SET_NAME, (unsigned long)"via-prctl", 0, 0, 0);
    end_work(t);
    return NULL;
}

COUNTED static void spawn_prctl(void)
{
    struct thread_info *t = new_info("spawn_prctl", 3 * unit);
    START_OR_DIE(t, prctl_main);
}

static void *child_main(void *arg)
{
    struct thread_info *t = arg;
    t->tid = gettid();
    pthread_setname_np(pthread_self(), "nested-child");
    end_work(t);
    return NULL;
}

COUNTED static struct thread_info *spawn_child(void)
{
    struct thread_info *t = new_info("spawn_child", unit);
    START_OR_DIE(t, child_main);
    return t;
}

static void *nester_main(void *arg)
{
    struct thread_info *t = arg;
    t->tid = gettid();
    prctl(PR_SET_NAME, (unsigned long)"nester", 0, 0, 0);
    struct thread_info *child = spawn_child();
    end_work(t);
    pthread_join(child->handle, NULL);
    return NULL;
}

COUNTED static struct thread_info *spawn_nester(void)
{
    struct thread_info *t = new_info("spawn_nester", unit);
    START_OR_DIE(t, nester_main);
    return t;
}

static void *unnamed_main(void *arg)
{
    struct thread_info *t = arg;
    t->tid = gettid();
    end_work(t);
    return NULL;
}

COUNTED static void spawn_unnamed(void)
{
    struct thread_info *t = new_info("spawn_unnamed", unit);
    START_OR_DIE(t, unnamed_main);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        unit = strtoull(argv[1], NULL, 10);
    spawn_pool();
    spawn_named();
    spawn_prctl();
    /* nester takes the next infos[] entry itself: wait for it (and its
     * child) before main takes another, so the order stays fixed. */
    pthread_join(spawn_nester()->handle, NULL);
    spawn_unnamed();
    for (int i = 0; i < n_infos; i++)
        if (strcmp(infos[i].site, "spawn_nester") != 0 && strcmp(infos[i].site, "spawn_child") != 0)
            pthread_join(infos[i].handle, NULL);
    prctl(PR_SET_NAME, (unsigned long)"tn-main", 0, 0, 0);
    for (int i = 0; i < n_infos; i++)
        printf("thread %s tid %d creator %d site %s cpu_ns %llu\n", infos[i].name,
               (int)infos[i].tid, (int)infos[i].creator, infos[i].site,
               (unsigned long long)infos[i].cpu_ns);
    printf("thread tn-main tid %d creator 0 site main cpu_ns %llu\n", (int)getpid(),
           (unsigned long long)thread_cpu_ns());
    return 0;
}
