/* The loader's lock, and the dl_iterate_phdr hook that guards it.
 *
 * libunwind calls dl_iterate_phdr for every frame it steps through, and
 * dl_iterate_phdr takes the loader's recursive dl_load_write_lock. That
 * deadlocks: in a child forked while another thread held the
 * lock (dlclose, dl_iterate_phdr), where its owner no longer exists; and
 * in the SIGPROF handler, if the interrupted thread was itself between
 * taking the lock and recording itself as owner (or the reverse on
 * release), or while the lock's holder waits for a lock the interrupted
 * code holds. The lock is glibc's private business, so it is found, once,
 * by looking: inside a dl_iterate_phdr callback it is the one recursive
 * mutex in ld.so's _rtld_global owned by the calling thread. If it is not
 * found (another libc), the SIGPROF handler falls back to counting this
 * thread's dl_iterate_phdr calls (the hook below), and a fork child
 * unwinds as before. */

#include "stack.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/syscall.h>
#include <unistd.h>

struct glibc_mutex { /* the head of glibc's struct __pthread_mutex_s */
    int lock;
    unsigned count;
    int owner;
    unsigned nusers;
    int kind;
};
#define GLIBC_MUTEX_RECURSIVE 1

/* Found once at initialisation (NULL: not found), read-only after. */
static const struct glibc_mutex *loader_lock;

/* SIGPROF handlers at the loader's lock now: trying to take it, waiting
 * for it, or holding it (the dl_iterate_phdr hook). Every thread's CPU
 * timer fires at the same scheduler tick, so handlers on different cores
 * reach that lock at the same moment: one that finds it held while another
 * handler is there (a walk of a few microseconds, which waits for nothing
 * of ours) waits for it briefly instead of dropping its tick, which would
 * bias the profile against whichever thread comes second. Counted before
 * the try-lock (a handler that has just taken the lock is already counted)
 * until after the unlock. Held by anyone else, the tick is dropped. */
static atomic_uint handlers_at_lock;
#define HANDLER_WAIT_SPINS 2000u /* pauses: tens of microseconds at most */

struct lock_search {
    const unsigned char *lo;
    size_t size;
    int tid;
    const struct glibc_mutex *found;
    unsigned matches;
};

static int find_loader_lock(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)info;
    (void)size;
    struct lock_search *q = data;
    for (size_t off = 0; off + sizeof(struct glibc_mutex) <= q->size; off += sizeof(int)) {
        const struct glibc_mutex *m = (const struct glibc_mutex *)(q->lo + off);
        if (m->lock != 0 && m->owner == q->tid && m->count >= 1 && m->nusers >= 1 &&
            (m->kind & 0x7f) == GLIBC_MUTEX_RECURSIVE) {
            q->found = m;
            q->matches++;
        }
    }
    return 1; /* the lock is held for the whole iteration: one call is enough */
}

static void locate_loader_lock(void)
{
    void *rtld = dlsym(RTLD_DEFAULT, "_rtld_global");
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (rtld == NULL || dladdr1(rtld, &info, (void **)&sym, RTLD_DL_SYMENT) == 0 || sym == NULL ||
        sym->st_size < sizeof(struct glibc_mutex))
        return;
    struct lock_search q = {rtld, sym->st_size, (int)syscall(SYS_gettid), NULL, 0};
    dl_iterate_phdr(find_loader_lock, &q);
    if (q.matches == 1)
        loader_lock = q.found;
}

/* Whether taking the loader's lock now could block: someone holds it, and
 * it is not (fully) this thread. */
static bool loader_lock_busy(void)
{
    const struct glibc_mutex *m = loader_lock;
    if (m == NULL)
        return false;
    if (__atomic_load_n(&m->lock, __ATOMIC_RELAXED) == 0)
        return false; /* the common case: no system call */
    return __atomic_load_n(&m->owner, __ATOMIC_RELAXED) != (int)syscall(SYS_gettid);
}

static PPX_TLS unsigned dl_iterate_depth;
PPX_TLS bool ppx_loader_refused;

/* Resolved on first use (or at initialisation), then read-only. */
static dl_iterate_fn next_dl_iterate_phdr;

dl_iterate_fn ppx_loader_resolve(void)
{
    dl_iterate_fn fn = __atomic_load_n(&next_dl_iterate_phdr, __ATOMIC_ACQUIRE);
    if (fn == NULL) {
        fn = (dl_iterate_fn)dlsym(RTLD_NEXT, "dl_iterate_phdr");
        __atomic_store_n(&next_dl_iterate_phdr, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

/* After a failed try-lock in a handler (counted in handlers_at_lock):
 * true once the lock is ours. */
static bool wait_for_handler(pthread_mutex_t *lock)
{
    for (unsigned i = 0; i < HANDLER_WAIT_SPINS; i++) {
        if (atomic_load_explicit(&handlers_at_lock, memory_order_acquire) <= 1)
            return false; /* only this one: the holder is no handler */
        __builtin_ia32_pause();
        if (pthread_mutex_trylock(lock) == 0)
            return true;
    }
    return false;
}

PPX_EXPORT int dl_iterate_phdr(int (*callback)(struct dl_phdr_info *, size_t, void *), void *data)
{
    dl_iterate_fn real = ppx_loader_resolve();
    if (real == NULL)
        return 0;
    if (PPX_UNLIKELY(ppx_in_signal_walk != 0) && loader_lock != NULL) {
        /* libunwind, in the SIGPROF handler: never wait for the lock (its
         * holder may wait for a lock the interrupted code holds). */
        pthread_mutex_t *lock = (pthread_mutex_t *)(uintptr_t)loader_lock;
        atomic_fetch_add_explicit(&handlers_at_lock, 1, memory_order_acq_rel);
        if (pthread_mutex_trylock(lock) != 0 && !wait_for_handler(lock)) {
            atomic_fetch_sub_explicit(&handlers_at_lock, 1, memory_order_acq_rel);
            ppx_loader_refused = true;
            return 0;
        }
        int rc = real(callback, data); /* takes it again: recursive */
        pthread_mutex_unlock(lock);
        atomic_fetch_sub_explicit(&handlers_at_lock, 1, memory_order_acq_rel);
        return rc;
    }
    dl_iterate_depth++;
    atomic_signal_fence(memory_order_seq_cst);
    int rc = real(callback, data);
    atomic_signal_fence(memory_order_seq_cst);
    dl_iterate_depth--;
    return rc;
}

void ppx_loader_lock_locate(void)
{
    locate_loader_lock();
}

bool ppx_loader_lock_signal_unsafe(void)
{
    if (loader_lock == NULL)
        return dl_iterate_depth != 0;
    /* busy with another thread's handler at it: the walk may wait */
    return loader_lock_busy() && atomic_load_explicit(&handlers_at_lock, memory_order_acquire) == 0;
}

bool ppx_loader_lock_reset_child(void)
{
    atomic_store_explicit(&handlers_at_lock, 0, memory_order_relaxed);
    /* Only this thread exists now: a loader lock still held was held by
     * another thread at fork, and stays held for good. */
    return loader_lock != NULL && __atomic_load_n(&loader_lock->lock, __ATOMIC_RELAXED) != 0;
}
