/* A long-running target for the collector's commands (wire.h): a thread
 * spins in spin_forever() from the start; each line "alloc" on stdin makes
 * allocate_late() allocate 100 blocks of 1000 bytes (kept), then prints
 * "allocated". Prints "ready PID" first; exits at end of input.
 *
 * Usage: spin_on_demand */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "known_allocs.h"

static volatile unsigned long long spins;
static void *kept[1000];
static size_t n_kept;

static COUNTED void *spin_forever(void *arg)
{
    (void)arg;
    for (;;)
        spins++;
    return NULL;
}

static COUNTED void allocate_late(void)
{
    for (int i = 0; i < 100 && n_kept < sizeof kept / sizeof kept[0]; i++) {
        kept[n_kept] = malloc(1000);
        ESCAPE(kept[n_kept]);
        n_kept++;
    }
}

int main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, spin_forever, NULL) != 0) {
        fprintf(stderr, "spin_on_demand: cannot start a thread\n");
        return 1;
    }
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "alloc", 5) == 0) {
            allocate_late();
            printf("allocated\n");
            fflush(stdout);
        }
    }
    return 0;
}
