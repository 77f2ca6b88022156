/* Opens /dev/null until open() fails, then prints how many it got and
 * why it stopped ("opened N EMFILE"): what a program gets of its
 * RLIMIT_NOFILE. Each round allocates first, so libunwind is in use: the
 * profiler's own descriptors must not count. The descriptors stay open
 * until exit.
 *
 * Usage: open_until_emfile */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "known_allocs.h"

int main(void)
{
    int n = 0;
    for (;;) {
        void *p = malloc(64);
        ESCAPE(p);
        free(p);
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) {
            printf("opened %d %s\n", n, errno == EMFILE ? "EMFILE" : strerror(errno));
            return 0;
        }
        n++;
        if (n > 1000000)
            break;
    }
    printf("opened %d without a limit\n", n);
    return 1;
}
