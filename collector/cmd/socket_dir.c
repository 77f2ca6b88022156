#include "cmd/cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

void socket_default_path(char *buf, size_t len)
{
    static const char suffix[] = "/ppx/ppx.sock";
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    /* The same test as libppx.so's, so that both pick the same path. */
    if (runtime && runtime[0] == '/' &&
        strlen(runtime) + sizeof suffix <= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(buf, len, "%s%s", runtime, suffix);
        return;
    }
    snprintf(buf, len, "/tmp/ppx-%lu/ppx.sock", (unsigned long)getuid());
}

bool socket_path_choose(const char *flag, char *buf, size_t len)
{
    if (flag) {
        snprintf(buf, len, "%s", flag);
        return true;
    }
    const char *env = getenv("PPX_SOCKET");
    /* The same test as libppx.so's (preload/init.c), so that both pick the
     * same path. */
    if (env && *env && strlen(env) < sizeof(((struct sockaddr_un *)0)->sun_path) &&
        strlen(env) < len) {
        snprintf(buf, len, "%s", env);
        return true;
    }
    socket_default_path(buf, len);
    if (env)
        fprintf(stderr, "ppx: PPX_SOCKET=\"%s\" is %s; using %s, as libppx.so does\n", env,
                *env ? "too long for a socket path" : "empty", buf);
    return false;
}

int socket_dir_prepare(const char *socket_path, bool strict, char *err, size_t errlen)
{
    char dir[4096];
    const char *slash = strrchr(socket_path, '/');
    if (!slash)
        return 0; /* in the current directory */
    if (slash == socket_path || (size_t)(slash - socket_path) >= sizeof dir)
        return 0; /* "/" itself */
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - socket_path), socket_path);
    if (mkdir(dir, 0700) == 0)
        return 0;
    if (errno != EEXIST) {
        snprintf(err, errlen, "ppx: cannot create the socket's directory %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    if (!strict)
        return 0;
    struct stat st;
    if (lstat(dir, &st) < 0) {
        snprintf(err, errlen, "ppx: cannot inspect the socket's directory %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen,
                 "ppx: %s is not a directory (a symlink?); refusing to put the "
                 "socket there: remove it, or choose --socket",
                 dir);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errlen,
                 "ppx: the socket's directory %s belongs to uid %lu, not to you "
                 "(uid %lu); refusing to use it: remove it, or choose --socket",
                 dir, (unsigned long)st.st_uid, (unsigned long)geteuid());
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen,
                 "ppx: the socket's directory %s is open to others (mode %03o); "
                 "refusing to use it: chmod 700 %s",
                 dir, (unsigned)(st.st_mode & 0777), dir);
        return -1;
    }
    return 0;
}

int socket_lock(const char *socket_path, char *err, size_t errlen)
{
    char path[4096 + 8];
    if (snprintf(path, sizeof path, "%s.lock", socket_path) >= (int)sizeof path) {
        snprintf(err, errlen, "ppx: socket path %s is too long", socket_path);
        return -1;
    }
    /* O_NOFOLLOW: a symlink planted in a shared directory must not make us
     * create or truncate a file elsewhere (nothing is ever written to it). */
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "ppx: cannot open the lock file %s: %s", path, strerror(errno));
        return -1;
    }
    int rc;
    do
        rc = flock(fd, LOCK_EX | LOCK_NB);
    while (rc < 0 && errno == EINTR);
    if (rc == 0)
        return fd;
    if (errno == EWOULDBLOCK)
        snprintf(err, errlen,
                 "ppx: another collector is running on %s (it holds %s); not "
                 "starting a second one",
                 socket_path, path);
    else
        snprintf(err, errlen, "ppx: cannot lock %s: %s", path, strerror(errno));
    close(fd);
    return -1;
}
