/* A program whose figures over time are known, for the timeline and the
 * peak heap:
 *   grow:    12 blocks of 4 MiB from grow_block(), one every 250 ms, each
 *            written through, and 100 write()s of 4 KiB to /dev/null after
 *            each;
 *   spin:    1.5 s of CPU, holding the 48 MiB;
 *   free:    every block freed, then 1.2 s asleep;
 *   regrow:  6 blocks of 4 MiB from regrow_block() at once, 1.2 s asleep,
 *            then freed;
 *   end:     2 s asleep.
 * The peak heap is grow_block()'s 48 MiB; nothing is in use at the end.
 * Prints "phases pid N" first, then each phase's start as it begins
 * ("grow", "spin", ...) with CLOCK_REALTIME seconds.
 *
 * Usage: phases */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "known_allocs.h"
#include "phase_clock.h"

#define BLOCKS 12
#define BLOCK (4u << 20)

COUNTED void *grow_block(int fill)
{
    void *p = malloc(BLOCK);
    if (p)
        memset(p, fill, BLOCK);
    return p;
}

COUNTED void *regrow_block(int fill)
{
    void *p = malloc(BLOCK);
    if (p)
        memset(p, fill, BLOCK);
    return p;
}

static void free_all(void **blocks, int n)
{
    for (int i = 0; i < n; i++)
        free(blocks[i]);
}

int main(void)
{
    static char page[4096];
    void *blocks[BLOCKS];
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0)
        return 10;
    printf("phases pid %d\n", (int)getpid());
    say("grow");
    for (int i = 0; i < BLOCKS; i++) {
        if (!(blocks[i] = grow_block(i + 1)))
            return 11;
        for (int k = 0; k < 100; k++)
            if (write(fd, page, sizeof page) != (ssize_t)sizeof page)
                return 12;
        usleep(250000);
    }
    say("spin");
    volatile unsigned long x = 0;
    for (double start = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
         cpu_s(CLOCK_PROCESS_CPUTIME_ID) - start < 1.5;)
        for (int k = 0; k < 10000; k++)
            x += (unsigned long)k;
    say("free");
    free_all(blocks, BLOCKS);
    usleep(1200000);
    say("regrow");
    for (int i = 0; i < BLOCKS / 2; i++)
        if (!(blocks[i] = regrow_block(i + 1)))
            return 11;
    usleep(1200000);
    free_all(blocks, BLOCKS / 2);
    say("end");
    sleep(2);
    close(fd);
    return 0;
}
