/* A target that drops its collector connection the way daemons do: a
 * thread spins in spin_before() until the line "close" on stdin; then the
 * main thread closes every descriptor from 3 up (libppx's socket with
 * them: it reconnects on its next flush), prints "closed", and the thread
 * spins in spin_after() from then on. Prints "ready PID" first; exits at
 * end of input.
 *
 * Usage: spin_close_fds */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "known_allocs.h"

static atomic_int closed;
static volatile unsigned long long spins;

static COUNTED void spin_before(void)
{
    while (!atomic_load_explicit(&closed, memory_order_relaxed))
        spins++;
}

static COUNTED void spin_after(void)
{
    for (;;)
        spins++;
}

static void *spinner(void *arg)
{
    (void)arg;
    spin_before();
    spin_after();
    return NULL;
}

/* As a daemon does after fork: whatever it inherited or opened goes. */
static void close_from_3(void)
{
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > (1L << 20))
        max = 1L << 20;
    for (long fd = 3; fd < max; fd++)
        close((int)fd);
}

int main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, spinner, NULL) != 0) {
        fprintf(stderr, "spin_close_fds: cannot start a thread\n");
        return 1;
    }
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "close", 5) == 0) {
            close_from_3();
            atomic_store(&closed, 1);
            printf("closed\n");
            fflush(stdout);
        }
    }
    return 0;
}
