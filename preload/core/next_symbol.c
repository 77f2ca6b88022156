/* The next definition of a symbol we interpose (dlsym(RTLD_NEXT)), stored
 * in the caller's slot once found, or a stand-in that fails with ENOSYS. */
#include "core.h"

#include <dlfcn.h>
#include <errno.h>

/* Stands in for a function the next object does not have (never with
 * glibc): fails the way a missing system call would. Returns long so that
 * both int and ssize_t callers read -1. */
static long missing(void)
{
    errno = ENOSYS;
    return -1;
}

void *ppx_next_symbol(void **slot, const char *name)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (fn != NULL)
        return fn;
    int saved_errno = errno;
    fn = dlsym(RTLD_NEXT, name);
    if (fn == NULL) {
        ppx_log_once(&said, "cannot find the next ", name, "; it fails with ENOSYS", NULL);
        fn = (void *)missing;
    }
    __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
    errno = saved_errno;
    return fn;
}
