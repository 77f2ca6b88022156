/* Reading a directory without malloc or stdio (opendir allocates): raw
 * getdents64, for the flusher's thread scan and the exit flush's spool
 * accounting, both of which run where the program's allocator must not be
 * entered. */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

bool ppx_dir_walk_fd(int fd, bool (*each)(int dirfd, const char *name, void *arg), void *arg)
{
    if (syscall(SYS_lseek, fd, 0L, SEEK_SET) != 0)
        return false;
    _Alignas(8) char buf[4096];
    bool more = true;
    while (more) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        for (long off = 0; off < got && more;) {
            /* struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            more = each(fd, buf + off + 19, arg);
            if (reclen == 0)
                break;
            off += reclen;
        }
    }
    return true;
}

bool ppx_dir_walk(const char *path, bool (*each)(int dirfd, const char *name, void *arg), void *arg)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = ppx_dir_walk_fd(fd, each, arg);
    syscall(SYS_close, fd);
    return ok;
}
