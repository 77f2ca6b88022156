/* main() ends with pthread_exit while a worker runs on: glibc exits the
 * process (status 0) when the worker, the last thread, returns, and runs
 * the atexit handlers on it.
 *
 * Usage: main_thread_exit [return|exit|cancel]
 * The worker waits until the main thread has ended (a zombie in
 * /proc/self/task), allocates 100 x 1000 bytes in worker_allocs (kept: in
 * use at exit), and ends as told: returns from its start routine (the
 * default), calls pthread_exit, or cancels itself. The atexit handler prints whether it runs on
 * the worker, by its tid and by a thread-local marker the worker set:
 *   main ends
 *   worker done
 *   atexit on the worker: tid yes, marker 1
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "known_allocs.h"

static const char *how = "return";
static pid_t worker_tid;
static _Thread_local int marker;

static pid_t own_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

COUNTED static void worker_allocs(void)
{
    for (int i = 0; i < 100; i++)
        ESCAPE(malloc(1000));
}

/* The main thread (tid = pid) shows state Z once it has called
 * pthread_exit, until the process ends. */
static int main_thread_ended(void)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)getpid());
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
}

static void *worker(void *arg)
{
    (void)arg;
    marker = 1;
    worker_tid = own_tid();
    struct timespec pause = {0, 1000000};
    while (!main_thread_ended())
        nanosleep(&pause, NULL);
    worker_allocs();
    printf("worker done\n");
    fflush(stdout);
    if (strcmp(how, "exit") == 0)
        pthread_exit(NULL);
    if (strcmp(how, "cancel") == 0) {
        pthread_cancel(pthread_self());
        pthread_testcancel();
    }
    return NULL;
}

static void on_exit_handler(void)
{
    printf("atexit on the worker: tid %s, marker %d\n", own_tid() == worker_tid ? "yes" : "no",
           marker);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        how = argv[1];
    atexit(on_exit_handler);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    printf("main ends\n");
    fflush(stdout);
    pthread_exit(NULL);
}
