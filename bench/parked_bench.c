/* A program for the thread-dump benchmark (BENCH=stacks bench/run):
 * NTHREADS threads, each DEPTH calls deep, blocked in read() on one pipe
 * nobody writes. Prints "ready" once all are started, then exits at the
 * first line (or end) of stdin. Usage: parked_bench NTHREADS DEPTH. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int pipe_fds[2];
static int depth;

__attribute__((noinline)) static int descend(int level)
{
    char c;
    if (level > 0)
        return descend(level - 1) + 1;
    return (int)read(pipe_fds[0], &c, 1);
}

static void *park(void *arg)
{
    (void)arg;
    descend(depth);
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    depth = argc > 2 ? atoi(argv[2]) : 16;
    if (pipe(pipe_fds) != 0)
        return 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, park, NULL) != 0) {
            fprintf(stderr, "parked_bench: thread %d not started\n", i);
            return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);
    char line[16];
    return fgets(line, sizeof line, stdin) ? 0 : 0;
}
