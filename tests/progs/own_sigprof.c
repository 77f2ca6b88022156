/* A program that profiles itself the old way: its own SIGPROF handler and
 * setitimer(ITIMER_PROF). Under ppx its handler must be the one installed,
 * its ticks must reach it, and asking for SIGPROF's action must give back
 * what it installed (and SIG_DFL before that, whatever ppx installed).
 *
 * Usage: own_sigprof sigaction|signal
 *   how the handler is installed (sigaction with SA_SIGINFO, or signal()).
 *
 * The main thread spins in before_own_handler (100 ms of CPU, before the
 * handler is installed, alone: its tick count is checked, and threads
 * competing for the cores would only make it coarser), then starts two
 * background threads that spin from then on, so a profiler's timers on other
 * threads must be stopped too, and spins in after_own_handler (300 ms, with
 * the handler and the itimer running).
 *
 * stdout is the same with and without ppx; exit 0 when every check passed.
 * On stderr: how many ticks arrived and how many were not the itimer's
 * (a tick a profiler's timer had already queued). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid, pthread_setname_np (configure defines it too) */
#endif
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cpu_work.h"
#include "known_allocs.h"

static atomic_long ticks, foreign_ticks, plain_ticks;
static atomic_bool stop_background;
static int failures;

static void check(int ok, const char *what)
{
    printf("%s: %s\n", what, ok ? "yes" : "NO");
    if (!ok)
        failures++;
}

static void on_sigprof_info(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (sig != SIGPROF)
        return;
    atomic_fetch_add(&ticks, 1);
    /* setitimer's ticks come from the kernel; a POSIX timer's say SI_TIMER */
    if (si != NULL && si->si_code == SI_TIMER)
        atomic_fetch_add(&foreign_ticks, 1);
}

static void on_sigprof_plain(int sig)
{
    if (sig == SIGPROF)
        atomic_fetch_add(&plain_ticks, 1);
}

COUNTED static uint64_t before_own_handler(void)
{
    return BURN_CPU_MS(100, 7);
}

COUNTED static uint64_t after_own_handler(void)
{
    return BURN_CPU_MS(300, 9);
}

COUNTED static void *background_spin(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg;
    while (!atomic_load(&stop_background))
        x = BURN_CHUNK(x);
    return (void *)(uintptr_t)(x | 1);
}

static int is_default(const struct sigaction *sa)
{
    return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == SIG_DFL;
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "sigaction";
    int use_signal = strcmp(how, "signal") == 0;
    struct sigaction old, now;
    pthread_t bg[2];

    if (!use_signal && strcmp(how, "sigaction") != 0) {
        fprintf(stderr, "usage: own_sigprof sigaction|signal\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    before_own_handler();
    for (int i = 0; i < 2; i++)
        if (pthread_create(&bg[i], NULL, background_spin, (void *)(uintptr_t)(i + 1)) != 0)
            return 10;

    check(sigaction(SIGPROF, NULL, &old) == 0 && is_default(&old),
          "SIGPROF action is SIG_DFL before");

    if (use_signal) {
        check(signal(SIGPROF, on_sigprof_plain) == SIG_DFL,
              "signal() returns SIG_DFL as the old handler");
    } else {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigprof_info;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        check(sigaction(SIGPROF, &sa, &old) == 0 && is_default(&old),
              "sigaction() returns SIG_DFL as the old action");
    }
    struct itimerval every_5ms = {{0, 5000}, {0, 5000}};
    check(setitimer(ITIMER_PROF, &every_5ms, NULL) == 0, "setitimer(ITIMER_PROF) works");
    after_own_handler();

    check(sigaction(SIGPROF, NULL, &now) == 0 &&
              (use_signal ? now.sa_handler == on_sigprof_plain
                          : (now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_sigprof_info),
          "the handler installed is the program's");
    long got = use_signal ? atomic_load(&plain_ticks) : atomic_load(&ticks);
    /* 300 ms of main's CPU alone is 60 itimer periods; the process-wide
     * itimer counts the background threads' CPU too. Any tick proves it. */
    check(got > 0, "the program's handler ran");

    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    atomic_store(&stop_background, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(bg[i], NULL);

    /* Reinstalling, ignoring and restoring: ppx says nothing more. */
    if (use_signal) {
        check(signal(SIGPROF, on_sigprof_plain) == on_sigprof_plain,
              "signal() again returns the handler");
        check(signal(SIGPROF, SIG_IGN) == on_sigprof_plain, "signal(SIG_IGN) returns the handler");
        check(signal(SIGPROF, SIG_DFL) == SIG_IGN, "signal(SIG_DFL) returns SIG_IGN");
    } else {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        check(sigaction(SIGPROF, &ign, &old) == 0 && (old.sa_flags & SA_SIGINFO) &&
                  old.sa_sigaction == on_sigprof_info,
              "sigaction(SIG_IGN) returns the handler");
        check(sigaction(SIGPROF, NULL, &now) == 0 && now.sa_handler == SIG_IGN,
              "SIGPROF is now ignored");
    }
    fprintf(stderr, "own_sigprof: %ld ticks, %ld from a POSIX timer\n",
            use_signal ? atomic_load(&plain_ticks) : atomic_load(&ticks),
            atomic_load(&foreign_ticks));
    printf("%s\n", failures == 0 ? "all checks passed" : "some checks failed");
    return failures == 0 ? 0 : 1;
}
