#include "base/base.h"

/* Defined in every build, so a library built with checks links with code
 * built without them. */
bool ppx_mutex_held(pthread_mutex_t *m)
{
    if (pthread_mutex_trylock(m) != 0)
        return true;
    pthread_mutex_unlock(m);
    return false;
}

_Noreturn void ppx_check_failed(const char *file, int line, const char *cond, const char *what)
{
    fprintf(stderr, "ppx: internal check failed at %s:%d: %s (%s)\n", file, line, what, cond);
    abort();
}
