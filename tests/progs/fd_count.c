/* Opens /dev/null until open() fails, then prints how many it got and the
 * error: "opened N EMFILE". For tests/e2e_fd_limit.sh, under a low
 * `ulimit -Sn`: the profiler's own descriptors must not count. */
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
        void *p = malloc(64); /* sampled: libunwind is in use */
        ESCAPE(p);
        free(p);
        if (open("/dev/null", O_RDONLY) < 0)
            break;
        n++;
    }
    printf("opened %d %s\n", n, errno == EMFILE ? "EMFILE" : strerror(errno));
    return 0;
}
