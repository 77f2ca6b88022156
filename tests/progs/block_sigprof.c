/* Threads that block SIGPROF, as some programs do (a thread that must not
 * be interrupted, or a signal-handling thread): they must run as they do
 * without a profiler, with their signal mask untouched, and get correct
 * results. Under ppx a blocked thread's CPU ticks stay pending until it
 * unblocks or ends; they must not break anything.
 *
 * Threads (each spins a fixed amount of work, does pipe I/O and malloc):
 *   main       blocks SIGPROF while it creates `inherit` and runs
 *              main_work_blocked, then unblocks it
 *   inherit    starts with SIGPROF blocked (inherited from main): runs
 *              work_before_unblock, unblocks, runs work_after_unblock
 *   blocked    blocks SIGPROF itself, runs work_blocked, never unblocks
 *   unblocked  runs work_unblocked with SIGPROF deliverable
 *
 * stdout is the same with and without ppx; exit 0 when every check passed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid, pthread_setname_np (configure defines it too) */
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_work.h"
#include "known_allocs.h"

#define CHUNKS 2000 /* ~170 ms of CPU at 85 us a chunk */

struct result {
    const char *name;
    uint64_t checksum;
    int io_ok, heap_ok, mask_ok;
};

static int sigprof_blocked(void)
{
    sigset_t cur;
    if (pthread_sigmask(SIG_BLOCK, NULL, &cur) != 0)
        return -1;
    return sigismember(&cur, SIGPROF);
}

static void set_sigprof(int how)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPROF);
    if (pthread_sigmask(how, &s, NULL) != 0) {
        fprintf(stderr, "block_sigprof: pthread_sigmask failed\n");
        exit(10);
    }
}

COUNTED static uint64_t main_work_blocked(void)
{
    return BURN_CHUNKS(CHUNKS, 11);
}
COUNTED static uint64_t work_before_unblock(void)
{
    return BURN_CHUNKS(CHUNKS, 13);
}
COUNTED static uint64_t work_after_unblock(void)
{
    return BURN_CHUNKS(CHUNKS, 15);
}
COUNTED static uint64_t work_blocked(void)
{
    return BURN_CHUNKS(CHUNKS, 17);
}
COUNTED static uint64_t work_unblocked(void)
{
    return BURN_CHUNKS(CHUNKS, 19);
}

/* 2000 messages of 64 bytes through a pipe and back, each checked. */
static int pipe_round_trips(int seed)
{
    int fds[2];
    char out[64], in[64];
    if (pipe(fds) != 0)
        return 0;
    int ok = 1;
    for (int i = 0; i < 2000 && ok; i++) {
        memset(out, (seed + i) & 0xff, sizeof out);
        ssize_t w, r;
        do
            w = write(fds[1], out, sizeof out);
        while (w < 0 && errno == EINTR);
        do
            r = read(fds[0], in, sizeof in);
        while (r < 0 && errno == EINTR);
        ok = w == (ssize_t)sizeof out && r == (ssize_t)sizeof in && memcmp(in, out, sizeof in) == 0;
    }
    close(fds[0]);
    close(fds[1]);
    return ok;
}

/* 20000 allocations of 1..1024 bytes, filled, checked, freed. */
static int heap_churn(int seed)
{
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)((i * 7919 + seed) % 1024) + 1;
        unsigned char *p = malloc(n);
        if (p == NULL)
            return 0;
        memset(p, i & 0xff, n);
        ESCAPE(p);
        for (size_t j = 0; j < n; j += 97)
            if (p[j] != (unsigned char)(i & 0xff)) {
                free(p);
                return 0;
            }
        free(p);
    }
    return 1;
}

static void finish_thread(struct result *r, int seed, int expect_blocked)
{
    r->io_ok = pipe_round_trips(seed);
    r->heap_ok = heap_churn(seed);
    r->mask_ok = sigprof_blocked() == expect_blocked;
}

static void *inherit_main(void *arg)
{
    struct result *r = arg;
    int started_blocked = sigprof_blocked() == 1;
    r->checksum = work_before_unblock();
    set_sigprof(SIG_UNBLOCK);
    r->checksum ^= work_after_unblock();
    finish_thread(r, 1, 0);
    r->mask_ok &= started_blocked;
    return NULL;
}

static void *blocked_main(void *arg)
{
    struct result *r = arg;
    set_sigprof(SIG_BLOCK);
    r->checksum = work_blocked();
    finish_thread(r, 2, 1);
    return NULL;
}

static void *unblocked_main(void *arg)
{
    struct result *r = arg;
    r->checksum = work_unblocked();
    finish_thread(r, 3, 0);
    return NULL;
}

int main(void)
{
    struct result res[4] = {
        {.name = "main"}, {.name = "inherit"}, {.name = "blocked"}, {.name = "unblocked"}};
    void *(*const entry[4])(void *) = {NULL, inherit_main, blocked_main, unblocked_main};
    pthread_t t[4];
    int failures = 0;

    set_sigprof(SIG_BLOCK);
    if (pthread_create(&t[1], NULL, entry[1], &res[1]) != 0)
        return 10;
    res[0].checksum = main_work_blocked();
    int main_was_blocked = sigprof_blocked() == 1;
    set_sigprof(SIG_UNBLOCK);
    for (int i = 2; i < 4; i++)
        if (pthread_create(&t[i], NULL, entry[i], &res[i]) != 0)
            return 10;
    finish_thread(&res[0], 0, 0);
    res[0].mask_ok &= main_was_blocked;
    for (int i = 1; i < 4; i++)
        pthread_join(t[i], NULL);

    for (int i = 0; i < 4; i++) {
        printf("%s checksum %016llx io %s heap %s mask %s\n", res[i].name,
               (unsigned long long)res[i].checksum, res[i].io_ok ? "ok" : "WRONG",
               res[i].heap_ok ? "ok" : "WRONG", res[i].mask_ok ? "kept" : "CHANGED");
        failures += !res[i].io_ok + !res[i].heap_ok + !res[i].mask_ok;
    }
    printf("%s\n", failures == 0 ? "all checks passed" : "some checks failed");
    return failures == 0 ? 0 : 1;
}
