/* A target that drops its collector connection the way daemons do: a
 * thread spins in spin_before() until the line "close" on stdin; then the
 * main thread closes every descriptor from 3 up (libppx's socket with
 * them), waits until a socket is open again (libppx reconnected, on its
 * next flush), prints "reconnected", and the thread spins in spin_after()
 * from then on: its samples are those taken on the new connection only.
 * Prints "no socket" instead if none comes back within 10 s. Prints
 * "ready PID" first; exits at end of input.
 *
 * Usage: spin_close_fds */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
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

/* As a daemon does after fork: whatever it inherited or opened goes, as
 * closefrom(3) does it (every descriptor, those above the soft
 * RLIMIT_NOFILE too, where libppx's socket may sit). */
static void close_from_3(void)
{
    closefrom(3);
}

/* Whether any descriptor of this process is a socket: the program has
 * none of its own, so it is libppx's. */
static bool have_socket(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char path[sizeof "/proc/self/fd/" + sizeof e->d_name], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        found = n > 0 && strncmp(link, "socket:", 7) == 0;
    }
    closedir(d);
    return found;
}

/* Waits up to 10 s for libppx's new connection; then a few ticks more:
 * it turns sampling off just after connecting (preload/flush/flush.c), and
 * spin_after() must not start before that. */
static bool wait_for_socket(void)
{
    const struct timespec tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 1000; i++) {
        if (have_socket()) {
            for (int j = 0; j < 5; j++)
                nanosleep(&tick, NULL);
            return true;
        }
        nanosleep(&tick, NULL);
    }
    return false;
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
            bool back = wait_for_socket();
            atomic_store(&closed, 1);
            printf("%s\n", back ? "reconnected" : "no socket");
            fflush(stdout);
        }
    }
    return 0;
}
