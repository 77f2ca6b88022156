/* How many queued-signal slots (RLIMIT_SIGPENDING, per user) a program
 * gets, with N threads of its own alive.
 *
 * Usage: timer_limit N timers|signals
 *   starts N threads that wait, then calls timer_create (each timer holds
 *   a slot) or sigqueue(SIGRTMIN, blocked: each signal stays queued) until
 *   it fails; prints "timers: C" or "signals: C", and "error: E" (strerror
 *   of the failure); deletes the timers or discards the signals, ends the
 *   threads, exit 0. C is what `ulimit -i` leaves. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_TIMERS 100000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int started, done;
static timer_t timers[MAX_TIMERS];

static void *wait_done(void *arg)
{
    pthread_mutex_lock(&mu);
    started++;
    pthread_cond_broadcast(&cv);
    while (!done)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return arg;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 0;
    if (argc != 3 || n < 0 || n > 1000 ||
        (strcmp(argv[2], "timers") != 0 && strcmp(argv[2], "signals") != 0)) {
        fprintf(stderr, "usage: timer_limit N timers|signals (N 0..1000)\n");
        return 2;
    }
    int use_signals = strcmp(argv[2], "signals") == 0;
    /* blocked in every thread (inherited): a queued SIGRTMIN stays queued */
    sigset_t rt;
    sigemptyset(&rt);
    sigaddset(&rt, SIGRTMIN);
    if (pthread_sigmask(SIG_BLOCK, &rt, NULL) != 0)
        return 3;
    pthread_t *th = calloc((size_t)n + 1, sizeof *th);
    if (th == NULL)
        return 3;
    for (int i = 0; i < n; i++)
        if (pthread_create(&th[i], NULL, wait_done, NULL) != 0)
            return 4;
    pthread_mutex_lock(&mu);
    while (started < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    int count = 0, err = 0;
    if (use_signals) {
        union sigval v = {.sival_int = 0};
        while (count < MAX_TIMERS && sigqueue(getpid(), SIGRTMIN, v) == 0)
            count++;
        err = errno;
        printf("signals: %d\nerror: %s\n", count, strerror(err));
        signal(SIGRTMIN, SIG_IGN); /* discards them */
        count = 0;
    }
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGALRM;
    while (!use_signals && count < MAX_TIMERS) {
        if (timer_create(CLOCK_MONOTONIC, &ev, &timers[count]) != 0) {
            err = errno;
            break;
        }
        count++;
    }
    if (!use_signals)
        printf("timers: %d\nerror: %s\n", count, err != 0 ? strerror(err) : "none");
    for (int i = 0; i < count; i++)
        timer_delete(timers[i]);

    pthread_mutex_lock(&mu);
    done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    free(th);
    return 0;
}
