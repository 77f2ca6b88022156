/* The floor of interposition for the lock hooks: an LD_PRELOAD library
 * that hooks pthread_mutex_lock and pthread_mutex_unlock as libppx.so does
 * and only forwards them to the next definitions (glibc's), found once at
 * load. What it costs (a PLT call, an indirect call, a frame) is what any
 * interposing lock profiler pays before it records anything;
 * BENCH=lock bench/run shows ppx against it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <dlfcn.h>
#include <pthread.h>

static int (*next_lock)(pthread_mutex_t *);
static int (*next_unlock)(pthread_mutex_t *);

__attribute__((constructor)) static void resolve(void)
{
    next_lock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_lock");
    next_unlock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_unlock");
}

int pthread_mutex_lock(pthread_mutex_t *m)
{
    if (__builtin_expect(next_lock == NULL, 0))
        resolve();
    return next_lock(m);
}

int pthread_mutex_unlock(pthread_mutex_t *m)
{
    if (__builtin_expect(next_unlock == NULL, 0))
        resolve();
    return next_unlock(m);
}
