/* Per-thread buffers (struct ppx_thread_mem): the unwinder's output and the
 * stack and I/O site caches, 4 KiB a thread.
 *
 * They are not thread-local variables: glibc takes static TLS out of every
 * thread's stack, and a program that sizes its threads' stacks tightly
 * would overflow them under ppx. Static TLS keeps a pointer.
 *
 * Blocks come from the arena and are linked in one list that only grows
 * at its head; a thread owns a block by winning a compare-and-swap on its
 * state. Taking one needs no lock but the arena's (with the guard held),
 * so any hook may be a thread's first.
 *
 * A thread's end (threads.c's key destructor) marks its block ENDED, not
 * free: the thread still runs the program's other destructors and glibc's
 * cleanup, which may allocate. The block goes to another thread once its
 * owner is gone (tgkill says ESRCH: a tid is not reused while its thread
 * lives). Blocks of threads whose end nobody watches (a thread that
 * existed before us, a raw clone) are reclaimed the same way. So a server
 * that starts and ends threads all day keeps about as many blocks as it
 * ever had threads at once. */
#include "ppx_preload.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum mem_state { MEM_FREE, MEM_OWNED, MEM_ENDED };

struct mem_block {
    struct ppx_thread_mem mem; /* first: a block is handed out as &block->mem */
    atomic_uint state;         /* enum mem_state */
    _Atomic pid_t tid;         /* the owner */
    atomic_bool watched;       /* the owner's end will be marked */
    struct mem_block *next;    /* immutable once on the list */
};

static _Atomic(struct mem_block *) blocks;
/* This thread's end is watched (set before or after it takes a block). */
static PPX_TLS bool end_watched;

static pid_t own_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* Whether thread tid of this process has ended. */
static bool tid_gone(pid_t tid)
{
    int saved = errno;
    bool gone = tid <= 0 ||
                (syscall(SYS_tgkill, (long)ppx_pid, (long)tid, 0L) != 0 && errno == ESRCH);
    errno = saved;
    return gone;
}

static bool claim(struct mem_block *b, unsigned from)
{
    return atomic_compare_exchange_strong_explicit(&b->state, &from, MEM_OWNED,
                                                   memory_order_acquire, memory_order_relaxed);
}

/* A free block, else one whose owner is gone. */
static struct mem_block *reuse(void)
{
    struct mem_block *head = atomic_load_explicit(&blocks, memory_order_acquire);
    for (struct mem_block *b = head; b != NULL; b = b->next)
        if (atomic_load_explicit(&b->state, memory_order_relaxed) == MEM_FREE &&
            claim(b, MEM_FREE))
            return b;
    for (struct mem_block *b = head; b != NULL; b = b->next) {
        unsigned state = atomic_load_explicit(&b->state, memory_order_acquire);
        bool ending = state == MEM_ENDED ||
                      (state == MEM_OWNED && !atomic_load_explicit(&b->watched, memory_order_relaxed));
        if (ending && tid_gone(atomic_load_explicit(&b->tid, memory_order_relaxed)) &&
            claim(b, state))
            return b;
    }
    return NULL;
}

static struct mem_block *fresh(void)
{
    struct mem_block *b = ppx_arena_alloc(sizeof *b, PPX_CACHELINE);
    if (b == NULL)
        return NULL;
    atomic_store_explicit(&b->state, MEM_OWNED, memory_order_relaxed);
    struct mem_block *head = atomic_load_explicit(&blocks, memory_order_relaxed);
    do
        b->next = head;
    while (!atomic_compare_exchange_weak_explicit(&blocks, &head, b, memory_order_release,
                                                  memory_order_relaxed));
    return b;
}

bool ppx_thread_mem_take(struct ppx_thread *t)
{
    struct mem_block *b = reuse();
    bool recycled = b != NULL;
    if (b == NULL && (b = fresh()) == NULL) {
        static atomic_flag said = ATOMIC_FLAG_INIT;
        ppx_log_once(&said, "out of memory for per-thread buffers",
                     "; some calls go unrecorded", NULL, NULL);
        return false;
    }
    if (recycled) {
        /* the last owner's cache entries point into its own counters */
        memset(b->mem.stack_cache, 0, sizeof b->mem.stack_cache);
        memset(b->mem.io_cache, 0, sizeof b->mem.io_cache);
    }
    atomic_store_explicit(&b->tid, own_tid(), memory_order_relaxed);
    atomic_store_explicit(&b->watched, end_watched, memory_order_relaxed);
    t->pcs = b->mem.pcs;
    /* mem last: a signal handler sees either no buffers or whole ones */
    atomic_signal_fence(memory_order_seq_cst);
    t->mem = &b->mem;
    return true;
}

static struct mem_block *own_block(void)
{
    return (struct mem_block *)ppx_thread.mem;
}

void ppx_thread_mem_watched(void)
{
    end_watched = true;
    struct mem_block *b = own_block();
    if (b != NULL)
        atomic_store_explicit(&b->watched, true, memory_order_relaxed);
}

void ppx_thread_mem_end(void)
{
    struct mem_block *b = own_block();
    if (b != NULL)
        atomic_store_explicit(&b->state, MEM_ENDED, memory_order_release);
}

/* The child has only the forking thread: every other block is free, and
 * this thread's own has a new tid. */
void ppx_thread_mem_reset_child(void)
{
    struct mem_block *mine = own_block();
    for (struct mem_block *b = atomic_load_explicit(&blocks, memory_order_acquire); b != NULL;
         b = b->next)
        if (b != mine)
            atomic_store_explicit(&b->state, MEM_FREE, memory_order_relaxed);
    if (mine != NULL)
        atomic_store_explicit(&mine->tid, own_tid(), memory_order_relaxed);
}
