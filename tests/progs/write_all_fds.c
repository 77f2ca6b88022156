/* A program that writes into every descriptor it has, as some daemons do
 * (or a bug does): known allocations, then 64 bytes of 0xff into each open
 * descriptor from 3 up (listed from /proc/self/fd, so those above the soft
 * RLIMIT_NOFILE too, except the listing's own), then more known
 * allocations, then exit status 7.
 *
 * Usage: write_all_fds [raw | half]
 *   raw   write with the raw system call (no libc write(), so no hook sees
 *         it), then wait 1 s: time for the collector to drop the corrupt
 *         stream and for libppx to notice and reconnect
 *   half  write 4 bytes only, half a record header: nothing the collector
 *         can find wrong until more bytes follow on that stream
 *
 * Figures (leaks, exact mode): garbage_before 100 x 1000 bytes,
 * garbage_after 100 x 2000 bytes. Prints "wrote N" (descriptors that took
 * the bytes). */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "known_allocs.h"

#define N_ALLOCS 100

static void *kept[2 * N_ALLOCS];

static COUNTED void garbage_before(void)
{
    for (int i = 0; i < N_ALLOCS; i++) {
        kept[i] = malloc(1000);
        ESCAPE(kept[i]);
    }
}

static COUNTED void garbage_after(void)
{
    for (int i = 0; i < N_ALLOCS; i++) {
        kept[N_ALLOCS + i] = malloc(2000);
        ESCAPE(kept[N_ALLOCS + i]);
    }
}

/* The descriptors open now (but the listing's), into fds; their count. */
static int open_fds(int *fds, int cap)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd >= 3 && fd != dirfd(d))
            fds[n++] = fd;
    }
    closedir(d);
    return n;
}

static int write_garbage(bool raw, size_t len)
{
    static int fds[4096];
    unsigned char junk[64];
    memset(junk, 0xff, sizeof junk);
    int n = open_fds(fds, 4096), wrote = 0;
    for (int i = 0; i < n; i++) {
        ssize_t r = raw ? syscall(SYS_write, fds[i], junk, len) : write(fds[i], junk, len);
        wrote += r > 0;
    }
    return wrote;
}

int main(int argc, char **argv)
{
    bool raw = argc > 1 && strcmp(argv[1], "raw") == 0;
    bool half = argc > 1 && strcmp(argv[1], "half") == 0;
    garbage_before();
    int wrote = write_garbage(raw, half ? 4 : 64);
    if (raw) {
        const struct timespec pause = {1, 0};
        nanosleep(&pause, NULL);
    }
    garbage_after();
    printf("wrote %d\n", wrote);
    return 7;
}
