#include "base/base.h"

#include <string.h>

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
