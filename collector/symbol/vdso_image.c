/* The vDSO as a file, for the symbolizer: targets report their vDSO as a
 * mapping named "[vdso]" (no file on disk holds it). Every process on a
 * running kernel maps the same image, so the collector's own copy serves
 * (the symbolizer checks the build ids match). It is copied whole from
 * this process's mapping (its extent from /proc/self/maps, as perf does)
 * into an anonymous memory file that libdwfl reads like any ELF file. */
#include "symbol/symbol.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define VDSO_MAX (1u << 20) /* a sanity bound: real ones are a few pages */

static bool find_vdso(uintptr_t *lo, uintptr_t *hi)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, maps)) {
        unsigned long a, b;
        if (strstr(line, "[vdso]") && sscanf(line, "%lx-%lx", &a, &b) == 2 && b > a &&
            b - a <= VDSO_MAX) {
            *lo = a;
            *hi = b;
            found = true;
        }
    }
    fclose(maps);
    return found;
}

int vdso_image_fd(void)
{
    uintptr_t lo, hi;
    if (!find_vdso(&lo, &hi))
        return -1;
    int fd = memfd_create("vdso", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    const char *p = (const char *)lo;
    size_t left = hi - lo;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}
