/* A program that needs to be single-threaded: unshare(CLONE_NEWUSER) is
 * refused to a process with more than one thread.
 *
 * Usage: single_thread [unshare] [wait]
 * Prints "threads N" (Threads: of /proc/self/status), then with unshare
 * "unshare ok" or "unshare failed: <error>"; with wait, "ready PID", then
 * for each line "alloc" on stdin runs alloc_100x1000 and prints "done", and
 * at the end of input prints "threads N" again. Exit status 0, 1 when
 * unshare failed. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "known_allocs.h"

COUNTED static void alloc_100x1000(void)
{
    for (int i = 0; i < 100; i++)
        ESCAPE(malloc(1000));
}

static void print_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "Threads:", 8) == 0)
            printf("threads %ld\n", strtol(line + 8, NULL, 10));
    if (f != NULL)
        fclose(f);
    fflush(stdout);
}

static void wait_for_lines(void)
{
    char line[64];
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strcmp(line, "alloc\n") == 0) {
            alloc_100x1000();
            printf("done\n");
            fflush(stdout);
        }
    }
    print_threads();
}

int main(int argc, char **argv)
{
    int status = 0;
    print_threads();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "unshare") == 0) {
            if (unshare(CLONE_NEWUSER) == 0) {
                printf("unshare ok\n");
            } else {
                printf("unshare failed: %s\n", strerror(errno));
                status = 1;
            }
            fflush(stdout);
        } else if (strcmp(argv[i], "wait") == 0) {
            wait_for_lines();
        } else {
            fprintf(stderr, "usage: single_thread [unshare] [wait]\n");
            return 2;
        }
    }
    return status;
}
