/* I/O calls from a signal handler that interrupts the program's own I/O
 * calls, and from two threads calling from one site: the counts ppx records
 * must equal the calls made, wherever the handler lands (in particular
 * inside the profiler's counting of the interrupted call).
 *
 * Prints "handler_writes=K main_writes=N thread_writes=M", each the number
 * of successful write() calls made from alarm_write (the SIGALRM handler,
 * fired every 200 us by setitimer), main_write_loop and thread_write_loop. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "known_allocs.h"

#define LOOP_WRITES 200000
#define THREADS 2

static int devnull = -1;
/* atomic: handlers may run on several threads at once */
static atomic_long handler_writes;

static COUNTED void alarm_write(void)
{
    int saved = errno;
    char c = 'a';
    if (write(devnull, &c, 1) == 1)
        atomic_fetch_add(&handler_writes, 1);
    errno = saved;
}

static void on_alarm(int sig)
{
    (void)sig;
    alarm_write();
}

/* Both threads run this: one call site, two threads. */
static COUNTED long thread_write_loop(void)
{
    char c = 't';
    long n = 0;
    for (int i = 0; i < LOOP_WRITES; i++)
        if (write(devnull, &c, 1) == 1)
            n++;
    return n;
}

static void *thread_main(void *arg)
{
    *(long *)arg = thread_write_loop();
    return NULL;
}

static COUNTED long main_write_loop(void)
{
    char c = 'm';
    long n = 0;
    for (int i = 0; i < LOOP_WRITES; i++)
        if (write(devnull, &c, 1) == 1)
            n++;
    return n;
}

int main(void)
{
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull < 0) {
        perror("open /dev/null");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 200}, {0, 200}}, off = {{0, 0}, {0, 0}};
    long per_thread[THREADS] = {0};
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&threads[i], NULL, thread_main, &per_thread[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    setitimer(ITIMER_REAL, &every, NULL); /* SIGALRM goes to the main thread or a worker */
    long main_writes = main_write_loop();
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    /* Block first: a pending SIGALRM must not be delivered after the count is read. */
    sigset_t alrm;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alrm, NULL);
    setitimer(ITIMER_REAL, &off, NULL);
    long thread_writes = 0;
    for (int i = 0; i < THREADS; i++)
        thread_writes += per_thread[i];
    printf("handler_writes=%ld main_writes=%ld thread_writes=%ld\n", atomic_load(&handler_writes),
           main_writes, thread_writes);
    return atomic_load(&handler_writes) > 0 ? 0 : 2;
}
