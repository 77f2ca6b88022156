#include "base/base.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

char *path_join(const char *dir, const char *name)
{
    size_t dlen = strlen(dir);
    while (dlen > 1 && dir[dlen - 1] == '/')
        dlen--;
    size_t len = dlen + 1 + strlen(name) + 1;
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "%.*s/%s", (int)dlen, dir, name);
    return out;
}

int path_make_dirs(const char *dir, unsigned mode, char **failed)
{
    *failed = NULL;
    char *path = strdup(dir);
    if (!path) {
        errno = ENOMEM;
        return -1;
    }
    /* Each prefix in turn: mkdir of the whole path needs its parents. */
    for (char *p = path + 1;; p++) {
        bool last = *p == 0;
        if (*p != '/' && !last)
            continue;
        char saved = *p;
        *p = 0;
        if (mkdir(path, (mode_t)mode) < 0 && errno != EEXIST) {
            *failed = path;
            return -1;
        }
        *p = saved;
        if (last)
            break;
    }
    free(path);
    struct stat st;
    if (stat(dir, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}
