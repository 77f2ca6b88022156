/* The thread hooks: pthread_create (where threads are created, by whom),
 * pthread_setname_np and prctl(PR_SET_NAME) (what they are called). The
 * registry itself is cpu/thread_registry.c.
 *
 * pthread_create unwinds its caller's stack and interns it (the creation
 * stack), then starts the thread on thread_start with a small start block
 * from a pool of our own (never the target's malloc): the new thread
 * registers itself, then calls the real start routine as a tail call, so
 * that no frame of ours sits at the root of its stacks. The profiler's own
 * threads (created with the guard held: the flusher) pass straight through
 * and are never registered. (pthread_mutex_lock and the other waits are
 * hooks/lock.c's.) */
#include "hooks.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <unistd.h>

#define BLOCKS_PER_CHUNK 64u

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
typedef int (*setname_fn)(pthread_t, const char *);
typedef int (*prctl_fn)(int, unsigned long, unsigned long, unsigned long, unsigned long);

/* The next definitions, resolved on first use (ppx_next). */
static void *next_create, *next_setname, *next_prctl;

/* What the new thread needs before it runs the program's code. */
struct start_block {
    void *(*start)(void *);
    void *arg;
    uint32_t creator_id, stack_id;
    size_t stack_size; /* from the attributes; 0 if unknown */
    atomic_uint busy;
};

/* The pool: chunks from the arena, never freed, a block taken by swapping
 * its busy flag. Lock-free, so a fork never finds it locked; it is as large
 * as the most thread creations ever under way at once. */
struct block_chunk {
    struct start_block blocks[BLOCKS_PER_CHUNK];
    struct block_chunk *next;
};
static _Atomic(struct block_chunk *) chunks;

static struct start_block *block_get(void)
{
    for (struct block_chunk *c = atomic_load_explicit(&chunks, memory_order_acquire); c != NULL;
         c = c->next)
        for (unsigned i = 0; i < BLOCKS_PER_CHUNK; i++) {
            atomic_uint *busy = &c->blocks[i].busy;
            if (atomic_load_explicit(busy, memory_order_relaxed) == 0 &&
                atomic_exchange_explicit(busy, 1, memory_order_acquire) == 0)
                return &c->blocks[i];
        }
    struct block_chunk *c = ppx_arena_alloc(sizeof *c, PPX_CACHELINE);
    if (c == NULL)
        return NULL;
    atomic_store_explicit(&c->blocks[0].busy, 1, memory_order_relaxed);
    c->next = atomic_load_explicit(&chunks, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&chunks, &c->next, c, memory_order_release,
                                                  memory_order_relaxed)) {
    }
    return &c->blocks[0];
}

static void block_put(struct start_block *b)
{
    atomic_store_explicit(&b->busy, 0, memory_order_release);
}

/* Not in a vfork child (or a raw clone() without fork handlers): it shares
 * or copies our registry without being the process it describes. */
static inline bool active(void)
{
    return ppx_hooks_ready() && atomic_load_explicit(&ppx_enabled, memory_order_relaxed) &&
           getpid() == ppx_pid;
}

/* ---- pthread_create ---- */

static void *thread_start(void *p)
{
    struct start_block *b = p;
    void *(*start)(void *) = b->start;
    void *arg = b->arg;
    uint32_t creator_id = b->creator_id, stack_id = b->stack_id;
    size_t stack_size = b->stack_size;
    block_put(b);
    struct ppx_tls *t = &ppx_tls;
    /* Where the stack ends, give or take glibc's thread block above us
     * (which makes it look larger: PPX_UNWIND_STACK_NEED allows for it). */
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    t->stack_lo = stack_size != 0 && stack_size < sp ? sp - stack_size : 0;
    t->guard++;
    ppx_threads_started(creator_id, stack_id);
    t->guard--;
    return start(arg); /* a tail call: start_thread is the caller of start */
}

/* The start block of a thread about to be created from ret, with the guard
 * held; NULL when there is no memory (the thread then starts unwrapped and
 * registers itself, if ever, as preexisting). */
static struct start_block *prepare(struct ppx_tls *t, const pthread_attr_t *attr,
                                   void *(*start)(void *), void *arg, const void *ret)
{
    if (!ppx_thread_buffers_ensure(t))
        return NULL;
    struct start_block *b = block_get();
    if (b == NULL) {
        static atomic_flag said = ATOMIC_FLAG_INIT;
        ppx_log_once(&said, "out of memory for thread start blocks", "; some threads go unrecorded",
                     NULL, NULL);
        return NULL;
    }
    struct ppx_thread_record *creator = ppx_threads_register_self();
    /* Unwind before any lock: unwinding may take the loader's. */
    unsigned depth = ppx_unwind(t->pcs, ppx_config.max_depth, ret);
    struct ppx_stack *s = ppx_stack_intern(t, t->pcs, depth);
    if (s == NULL)
        ppx_note_lost("out of memory for the stack table");
    b->start = start;
    b->arg = arg;
    b->stack_size = 0;
    if (attr != NULL && pthread_attr_getstacksize(attr, &b->stack_size) != 0)
        b->stack_size = 0;
    b->creator_id = creator != NULL ? creator->id : WIRE_NO_ID;
    b->stack_id = s != NULL ? s->id : WIRE_NO_ID;
    ppx_threads_creating();
    return b;
}

PPX_EXPORT int pthread_create(pthread_t *restrict thread, const pthread_attr_t *restrict attr,
                              void *(*start)(void *), void *restrict arg)
{
    create_fn real = (create_fn)ppx_next(&next_create, "pthread_create");
    struct ppx_tls *t = &ppx_tls;
    if (t->guard != 0 || !active())
        return real(thread, attr, start, arg);
    int saved_errno = errno;
    t->guard++;
    struct start_block *b = prepare(t, attr, start, arg, __builtin_return_address(0));
    t->guard--;
    errno = saved_errno;
    if (b == NULL)
        return real(thread, attr, start, arg);
    int rc = real(thread, attr, thread_start, b);
    if (rc != 0) {
        ppx_threads_create_failed();
        block_put(b);
    }
    return rc;
}

/* ---- names ---- */

PPX_EXPORT int pthread_setname_np(pthread_t thread, const char *name)
{
    setname_fn real = (setname_fn)ppx_next(&next_setname, "pthread_setname_np");
    int rc = real(thread, name);
    struct ppx_tls *t = &ppx_tls;
    if (rc != 0 || t->guard != 0 || !active())
        return rc;
    int saved_errno = errno;
    t->guard++;
    if (pthread_equal(thread, pthread_self()))
        ppx_threads_renamed_self();
    else
        ppx_threads_renamed(thread, name);
    t->guard--;
    errno = saved_errno;
    return rc;
}

/* prctl is variadic; like glibc's own, it passes four more words on. */
PPX_EXPORT int prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    unsigned long a2 = va_arg(ap, unsigned long);
    unsigned long a3 = va_arg(ap, unsigned long);
    unsigned long a4 = va_arg(ap, unsigned long);
    unsigned long a5 = va_arg(ap, unsigned long);
    va_end(ap);
    prctl_fn real = (prctl_fn)ppx_next(&next_prctl, "prctl");
    int rc = real(option, a2, a3, a4, a5);
    struct ppx_tls *t = &ppx_tls;
    if (option != PR_SET_NAME || rc != 0 || t->guard != 0 || !active())
        return rc;
    int saved_errno = errno;
    t->guard++;
    ppx_threads_renamed_self();
    t->guard--;
    errno = saved_errno;
    return rc;
}

/* state-threads (the dynamic libst): its coroutines, for thread dumps
 * (cpu/coroutine_dump.c). libst calls both through its PLT too. A libst
 * linked into the program is not interposed. */
typedef void *st_thread_t;
typedef st_thread_t (*st_create_fn)(void *(*)(void *), void *, int, int);
typedef void (*st_exit_fn)(void *);
static void *next_st_create, *next_st_exit, *st_self_fn;
/* st.h's, declared here: libst-dev need not be installed to build ppx. */
st_thread_t st_thread_create(void *(*start)(void *), void *arg, int joinable, int stack_size);
void st_thread_exit(void *retval) __attribute__((noreturn));

PPX_EXPORT st_thread_t st_thread_create(void *(*start)(void *), void *arg, int joinable,
                                        int stack_size)
{
    st_create_fn real = (st_create_fn)ppx_next(&next_st_create, "st_thread_create");
    st_thread_t t = real(start, arg, joinable, stack_size);
    struct ppx_tls *tls = &ppx_tls;
    if (t != NULL && tls->guard == 0 && atomic_load(&ppx_state) == PPX_READY) {
        tls->guard++;
        ppx_coroutine_created(t, start, arg);
        tls->guard--;
    }
    return t;
}

PPX_EXPORT void st_thread_exit(void *retval)
{
    st_exit_fn real = (st_exit_fn)ppx_next(&next_st_exit, "st_thread_exit");
    void *(*self)(void) = (void *(*)(void))ppx_next(&st_self_fn, "st_thread_self");
    struct ppx_tls *tls = &ppx_tls;
    if (tls->guard == 0 && atomic_load(&ppx_state) == PPX_READY) {
        tls->guard++;
        ppx_coroutine_exiting(self());
        tls->guard--;
    }
    real(retval);
    __builtin_unreachable();
}
