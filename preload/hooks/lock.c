/* The lock hooks, for the block and mutex profiles (lock/): mutexes,
 * rwlocks, condition variables and semaphores, and what C++'s std::mutex,
 * std::shared_mutex and std::condition_variable reach (libstdc++ calls
 * these). Each hook returns exactly what the real call returned, errno
 * included.
 *
 * A lock that is free costs one look before the real call: for a mutex,
 * a load of its lock word (glibc's __data.__lock, 0 while free), then the
 * real lock as a tail call; for an rwlock, the real trylock. Only a lock
 * that was not free has its wait timed: tried (the real trylock), then
 * waited for. A mutex that became taken between the look and the real
 * lock is waited for untimed: a window of a few instructions. At unlock,
 * a mutex whose lock word says it was never contended (1: held, no
 * waiter ever) goes straight through; otherwise, and for rwlocks, the
 * lock's slot says whether anyone waits (lock/lock.h), and only then is
 * the slow path taken. A condition variable's or a semaphore's wait is
 * always a wait (a semaphore is tried first).
 *
 * glibc's own locks (malloc's arenas, stdio's, the loader's) never come
 * here: glibc takes them through internal entry points (lll_lock,
 * __libc_lock_lock, and the loader's recursive lock through a pointer to
 * its internal __pthread_mutex_lock), not through the exported functions.
 * Nor do the profiler's own locks: they are taken with the guard held,
 * and pass straight through. pthread_spin_lock is not hooked: spinning is
 * CPU time, which the CPU profile shows. */
#include "hooks.h"

#include <errno.h>
#include <semaphore.h>

#define RET __builtin_return_address(0)

enum real_index {
    R_MUTEX_TRYLOCK,
    R_MUTEX_LOCK,
    R_MUTEX_TIMEDLOCK,
    R_MUTEX_CLOCKLOCK,
    R_MUTEX_UNLOCK,
    R_RW_TRYRDLOCK,
    R_RW_TRYWRLOCK,
    R_RW_RDLOCK,
    R_RW_WRLOCK,
    R_RW_TIMEDRDLOCK,
    R_RW_TIMEDWRLOCK,
    R_RW_CLOCKRDLOCK,
    R_RW_CLOCKWRLOCK,
    R_RW_UNLOCK,
    R_COND_WAIT,
    R_COND_TIMEDWAIT,
    R_COND_CLOCKWAIT,
    R_SEM_TRYWAIT,
    R_SEM_WAIT,
    R_SEM_TIMEDWAIT,
    R_SEM_CLOCKWAIT,
    R_COUNT
};

static const char *const real_names[R_COUNT] = {
    "pthread_mutex_trylock",
    "pthread_mutex_lock",
    "pthread_mutex_timedlock",
    "pthread_mutex_clocklock",
    "pthread_mutex_unlock",
    "pthread_rwlock_tryrdlock",
    "pthread_rwlock_trywrlock",
    "pthread_rwlock_rdlock",
    "pthread_rwlock_wrlock",
    "pthread_rwlock_timedrdlock",
    "pthread_rwlock_timedwrlock",
    "pthread_rwlock_clockrdlock",
    "pthread_rwlock_clockwrlock",
    "pthread_rwlock_unlock",
    "pthread_cond_wait",
    "pthread_cond_timedwait",
    "pthread_cond_clockwait",
    "sem_trywait",
    "sem_wait",
    "sem_timedwait",
    "sem_clockwait",
};

static void *real_fns[R_COUNT];

void ppx_lock_hooks_resolve(void)
{
    ppx_next_resolve_all(real_fns, real_names, R_COUNT);
}

#define REAL(i, type) ((type)ppx_next(&real_fns[i], real_names[i]))

typedef int (*mutex_fn)(pthread_mutex_t *);
typedef int (*mutex_timed_fn)(pthread_mutex_t *, const struct timespec *);
typedef int (*mutex_clock_fn)(pthread_mutex_t *, clockid_t, const struct timespec *);
typedef int (*rw_fn)(pthread_rwlock_t *);
typedef int (*rw_timed_fn)(pthread_rwlock_t *, const struct timespec *);
typedef int (*rw_clock_fn)(pthread_rwlock_t *, clockid_t, const struct timespec *);
typedef int (*cond_fn)(pthread_cond_t *, pthread_mutex_t *);
typedef int (*cond_timed_fn)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
typedef int (*cond_clock_fn)(pthread_cond_t *, pthread_mutex_t *, clockid_t,
                             const struct timespec *);
typedef int (*sem_fn)(sem_t *);
typedef int (*sem_timed_fn)(sem_t *, const struct timespec *);
typedef int (*sem_clock_fn)(sem_t *, clockid_t, const struct timespec *);

/* Whether this thread's waits are recorded now: not the profiler's own. */
static inline bool recording(void)
{
    return atomic_load_explicit(&ppx_lock_active, memory_order_relaxed) && ppx_tls.guard == 0;
}

/* A wait that ended in r: did the thread wait, or fail at once? */
static inline bool waited(int r)
{
    return r == 0 || r == EOWNERDEAD || r == ETIMEDOUT;
}

/* The call that waits, as its hook was asked: which one and its arguments. */
struct lock_call {
    unsigned index;
    void *lock;
    clockid_t clock;
    const struct timespec *abstime;
};

static int call_lock(const struct lock_call *c)
{
    switch (c->index) {
    case R_MUTEX_LOCK:
        return REAL(R_MUTEX_LOCK, mutex_fn)(c->lock);
    case R_MUTEX_TIMEDLOCK:
        return REAL(R_MUTEX_TIMEDLOCK, mutex_timed_fn)(c->lock, c->abstime);
    case R_MUTEX_CLOCKLOCK:
        return REAL(R_MUTEX_CLOCKLOCK, mutex_clock_fn)(c->lock, c->clock, c->abstime);
    case R_RW_RDLOCK:
    case R_RW_WRLOCK:
        return REAL(c->index, rw_fn)(c->lock);
    case R_RW_TIMEDRDLOCK:
    case R_RW_TIMEDWRLOCK:
        return REAL(c->index, rw_timed_fn)(c->lock, c->abstime);
    case R_RW_CLOCKRDLOCK:
    case R_RW_CLOCKWRLOCK:
        return REAL(c->index, rw_clock_fn)(c->lock, c->clock, c->abstime);
    }
    return EINVAL; /* cannot happen */
}

/* The lock was not free (the trylock said r): wait for it, timed. */
static __attribute__((noinline)) int lock_slow(const struct lock_call *c, int r, const void *ret)
{
    if (r == 0)
        return 0;
    /* EOWNERDEAD: a robust mutex taken from a dead owner, as the lock would
     * have; anything else but "busy" is the lock's own answer to give. */
    if (r == EOWNERDEAD)
        return r;
    if (r != EBUSY)
        return call_lock(c);
    /* a thread dump says what the thread waits in, and since when */
    struct ppx_wait saved;
    struct ppx_wait *slot =
        ppx_tls.guard == 0 ? ppx_wait_begin(WIRE_WAIT_MUTEX, -1, ppx_ticks_now(), &saved) : NULL;
    if (!recording()) {
        r = call_lock(c);
    } else {
        struct ppx_lock_wait w;
        ppx_lock_wait_begin(&w, c->lock, PPX_LOCK_HELD);
        r = call_lock(c);
        ppx_lock_wait_end(&w, waited(r), ret);
    }
    ppx_wait_end(slot, &saved);
    return r;
}

/* An unlock of a lock a waiter may wait for: pays their waiting. */
static __attribute__((noinline)) int unlock_slow(void *lock, unsigned index, const void *ret)
{
    uint64_t delay = recording() ? ppx_lock_release_begin(lock) : 0;
    int r = index == R_MUTEX_UNLOCK ? REAL(R_MUTEX_UNLOCK, mutex_fn)(lock)
                                    : REAL(R_RW_UNLOCK, rw_fn)(lock);
    if (r == 0 && delay != 0)
        ppx_lock_release_end(delay, ret);
    return r;
}

/* ---- mutexes ---- */

/* glibc's lock word of m: 0 free; 1 held (normal, recursive and
 * error-checking mutexes), 2 held and maybe waited for; for robust and
 * priority-inheritance mutexes the owner's tid and flags (a robust mutex
 * held by tid 1, a container's init, reads 1 too: its unlock skips the
 * slot, and its waiters' time goes to a later release or to nobody). */
static inline int mutex_word(const pthread_mutex_t *m)
{
    return __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED);
}

/* Out of line, so that the hook's fast path needs no frame. */
static __attribute__((noinline)) int mutex_lock_slow(pthread_mutex_t *m, const void *ret)
{
    return lock_slow(&(struct lock_call){.index = R_MUTEX_LOCK, .lock = m},
                     REAL(R_MUTEX_TRYLOCK, mutex_fn)(m), ret);
}

PPX_EXPORT int pthread_mutex_lock(pthread_mutex_t *m)
{
    if (PPX_LIKELY(mutex_word(m) == 0))
        return REAL(R_MUTEX_LOCK, mutex_fn)(m);
    return mutex_lock_slow(m, RET);
}

PPX_EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abstime)
{
    int r = REAL(R_MUTEX_TRYLOCK, mutex_fn)(m);
    if (PPX_LIKELY(r == 0))
        return 0;
    return lock_slow(&(struct lock_call){.index = R_MUTEX_TIMEDLOCK, .lock = m, .abstime = abstime},
                     r, RET);
}

PPX_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clock,
                                       const struct timespec *abstime)
{
    int r = REAL(R_MUTEX_TRYLOCK, mutex_fn)(m);
    if (PPX_LIKELY(r == 0))
        return 0;
    return lock_slow(
        &(struct lock_call){
            .index = R_MUTEX_CLOCKLOCK, .lock = m, .clock = clock, .abstime = abstime},
        r, RET);
}

PPX_EXPORT int pthread_mutex_unlock(pthread_mutex_t *m)
{
    if (PPX_LIKELY(mutex_word(m) == 1 || !ppx_lock_maybe_waited(m)))
        return REAL(R_MUTEX_UNLOCK, mutex_fn)(m);
    return unlock_slow(m, R_MUTEX_UNLOCK, RET);
}

/* ---- rwlocks ---- */

#define RW_HOOK(try_index, call_index, ...)                                                        \
    do {                                                                                           \
        int r_ = REAL(try_index, rw_fn)(rw);                                                       \
        if (PPX_LIKELY(r_ == 0))                                                                   \
            return 0;                                                                              \
        return lock_slow(&(struct lock_call){.index = (call_index), .lock = rw, __VA_ARGS__}, r_,  \
                         RET);                                                                     \
    } while (0)

PPX_EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *rw)
{
    RW_HOOK(R_RW_TRYRDLOCK, R_RW_RDLOCK, .abstime = NULL);
}

PPX_EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *rw)
{
    RW_HOOK(R_RW_TRYWRLOCK, R_RW_WRLOCK, .abstime = NULL);
}

PPX_EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *rw, const struct timespec *abstime)
{
    RW_HOOK(R_RW_TRYRDLOCK, R_RW_TIMEDRDLOCK, .abstime = abstime);
}

PPX_EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *rw, const struct timespec *abstime)
{
    RW_HOOK(R_RW_TRYWRLOCK, R_RW_TIMEDWRLOCK, .abstime = abstime);
}

PPX_EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t *rw, clockid_t clock,
                                          const struct timespec *abstime)
{
    RW_HOOK(R_RW_TRYRDLOCK, R_RW_CLOCKRDLOCK, .clock = clock, .abstime = abstime);
}

PPX_EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t *rw, clockid_t clock,
                                          const struct timespec *abstime)
{
    RW_HOOK(R_RW_TRYWRLOCK, R_RW_CLOCKWRLOCK, .clock = clock, .abstime = abstime);
}

PPX_EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *rw)
{
    if (PPX_LIKELY(!ppx_lock_maybe_waited(rw)))
        return REAL(R_RW_UNLOCK, rw_fn)(rw);
    return unlock_slow(rw, R_RW_UNLOCK, RET);
}

/* ---- condition variables ----
 * The wait releases the mutex inside glibc, past the unlock hook: the
 * mutex's waiters are paid here, by the caller of the wait, as at an
 * unlock. The wait itself, reacquiring the mutex included, is a block
 * event; a timed wait that timed out waited all the same. */

struct cond_call {
    unsigned index;
    pthread_cond_t *cond;
    pthread_mutex_t *mutex;
    clockid_t clock;
    const struct timespec *abstime;
};

static int call_cond(const struct cond_call *c)
{
    switch (c->index) {
    case R_COND_WAIT:
        return REAL(R_COND_WAIT, cond_fn)(c->cond, c->mutex);
    case R_COND_TIMEDWAIT:
        return REAL(R_COND_TIMEDWAIT, cond_timed_fn)(c->cond, c->mutex, c->abstime);
    }
    return REAL(R_COND_CLOCKWAIT, cond_clock_fn)(c->cond, c->mutex, c->clock, c->abstime);
}

static __attribute__((noinline)) int cond_wait(const struct cond_call *c, const void *ret)
{
    if (!recording())
        return call_cond(c);
    uint64_t delay = ppx_lock_maybe_waited(c->mutex) ? ppx_lock_release_begin(c->mutex) : 0;
    struct ppx_lock_wait w;
    ppx_lock_wait_begin(&w, c->cond, PPX_LOCK_EVENT);
    int r = call_cond(c);
    ppx_lock_wait_end(&w, waited(r), ret);
    ppx_lock_release_end(delay, ret);
    return r;
}

PPX_EXPORT int pthread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *m)
{
    return cond_wait(&(struct cond_call){.index = R_COND_WAIT, .cond = cond, .mutex = m}, RET);
}

PPX_EXPORT int pthread_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *m,
                                      const struct timespec *abstime)
{
    return cond_wait(
        &(struct cond_call){
            .index = R_COND_TIMEDWAIT, .cond = cond, .mutex = m, .abstime = abstime},
        RET);
}

PPX_EXPORT int pthread_cond_clockwait(pthread_cond_t *cond, pthread_mutex_t *m, clockid_t clock,
                                      const struct timespec *abstime)
{
    return cond_wait(&(struct cond_call){.index = R_COND_CLOCKWAIT,
                                         .cond = cond,
                                         .mutex = m,
                                         .clock = clock,
                                         .abstime = abstime},
                     RET);
}

/* ---- semaphores ----
 * Tried first; only a semaphore at zero has its wait timed. -1 and errno
 * as the real call set them; a successful call leaves errno as it was. */

struct sem_call {
    unsigned index;
    sem_t *sem;
    clockid_t clock;
    const struct timespec *abstime;
};

static int call_sem(const struct sem_call *c)
{
    switch (c->index) {
    case R_SEM_WAIT:
        return REAL(R_SEM_WAIT, sem_fn)(c->sem);
    case R_SEM_TIMEDWAIT:
        return REAL(R_SEM_TIMEDWAIT, sem_timed_fn)(c->sem, c->abstime);
    }
    return REAL(R_SEM_CLOCKWAIT, sem_clock_fn)(c->sem, c->clock, c->abstime);
}

static __attribute__((noinline)) int sem_wait_slow(const struct sem_call *c, const void *ret)
{
    if (!recording())
        return call_sem(c);
    int *errno_at = &errno;
    int saved_errno = *errno_at;
    if (REAL(R_SEM_TRYWAIT, sem_fn)(c->sem) == 0)
        return 0;
    bool busy = *errno_at == EAGAIN;
    *errno_at = saved_errno;
    if (!busy)
        return call_sem(c); /* EINVAL and the like: the call's own answer */
    struct ppx_lock_wait w;
    ppx_lock_wait_begin(&w, c->sem, PPX_LOCK_EVENT);
    int r = call_sem(c);
    ppx_lock_wait_end(&w, r == 0 || *errno_at == ETIMEDOUT, ret);
    return r;
}

PPX_EXPORT int sem_wait(sem_t *sem)
{
    return sem_wait_slow(&(struct sem_call){.index = R_SEM_WAIT, .sem = sem}, RET);
}

PPX_EXPORT int sem_timedwait(sem_t *sem, const struct timespec *abstime)
{
    return sem_wait_slow(
        &(struct sem_call){.index = R_SEM_TIMEDWAIT, .sem = sem, .abstime = abstime}, RET);
}

PPX_EXPORT int sem_clockwait(sem_t *sem, clockid_t clock, const struct timespec *abstime)
{
    return sem_wait_slow(
        &(struct sem_call){
            .index = R_SEM_CLOCKWAIT, .sem = sem, .clock = clock, .abstime = abstime},
        RET);
}
