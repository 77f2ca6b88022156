/* The failure path of PPX_CHECK, in check builds only: what failed and
 * where, with write(2) (async-signal-safe: checks run in the SIGPROF
 * handler too), then abort. */
#include "core.h"

#ifdef PPX_CHECKS
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t ppx_check_tid(void)
{
    return ppx_gettid();
}

static void put(const char *s)
{
    syscall(SYS_write, STDERR_FILENO, s, strlen(s));
}

void ppx_check_failed(const char *file, int line, const char *what)
{
    char num[24];
    ppx_format_u64((uint64_t)line, num, sizeof num);
    put("ppx: check failed: ");
    put(what);
    put(" (");
    put(file);
    put(":");
    put(num);
    put(")\n");
    abort();
}
#endif
