/* The profiler's own descriptors, known by their file (core.h): the
 * connection, /proc/self/task, the flusher's wake-up pipe. */
#include "core.h"

#include <sys/stat.h>

bool ppx_fd_identify(int fd, struct ppx_fd_identity *id)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return false;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    return true;
}

bool ppx_fd_is(int fd, const struct ppx_fd_identity *id)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == id->dev && st.st_ino == id->ino;
}
