/* Per-thread buffers (struct ppx_thread_buffers): the unwinder's output and the
 * stack and I/O site caches, 4 KiB a thread.
 *
 * They are not thread-local variables: glibc takes static TLS out of every
 * thread's stack, and a program that sizes its threads' stacks tightly
 * would overflow them under ppx. Static TLS keeps a pointer.
 *
 * Blocks come from the arena, never freed, and move between lists under
 * mem_mu, which is only taken with the caller's guard held (so a signal
 * handler never finds it held by its own thread):
 *  - free: nobody's (after a fork, the other threads' blocks);
 *  - ended: a thread's end was marked (cpu/thread_registry.c's key destructor). Not
 *    free yet: the thread still runs the program's other destructors and
 *    glibc's cleanup, which may allocate. It goes to another thread once
 *    its owner is gone (tgkill says ESRCH: a tid is not reused while its
 *    thread lives);
 *  - unwatched: owned by a thread whose end nobody watches (one that
 *    existed before us, a raw clone, the flusher), reclaimed the same way.
 * A block owned by a watched thread is on no list. So a server that starts
 * and ends threads all day keeps about as many blocks as it ever had
 * threads at once, and a thread start looks at a few blocks, not all. */
#include "core.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum mem_list { LIST_NONE, LIST_FREE, LIST_ENDED, LIST_UNWATCHED, N_LISTS };

struct mem_block {
    struct ppx_thread_buffers buffers; /* first: handed out as &block->buffers */
    pid_t tid;                         /* under mem_mu: the owner */
    unsigned list;                     /* under mem_mu: enum mem_list */
    struct mem_block *prev, *next;     /* under mem_mu: on that list */
    struct mem_block *all_next;        /* every block; immutable once published */
};

static pthread_mutex_t mem_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ppx_owner mem_mu_owner;    /* check builds: who holds mem_mu */
static struct mem_block *lists[N_LISTS]; /* under mem_mu; [LIST_NONE] unused */
static _Atomic(struct mem_block *) all_blocks;
/* This thread's end is watched (set before or after it takes a block). */
static PPX_TLS bool end_watched;

/* Whether thread tid of this process has ended. */
static bool tid_gone(pid_t tid)
{
    int saved = errno;
    bool gone =
        tid <= 0 || (syscall(SYS_tgkill, (long)ppx_pid, (long)tid, 0L) != 0 && errno == ESRCH);
    errno = saved;
    return gone;
}

/* Under mem_mu. */
static void mem_lock(void)
{
    pthread_mutex_lock(&mem_mu);
    ppx_owner_take(&mem_mu_owner);
}

static void mem_unlock(void)
{
    ppx_owner_drop(&mem_mu_owner);
    pthread_mutex_unlock(&mem_mu);
}

static void list_remove(struct mem_block *b)
{
    PPX_CHECK_OWNED(&mem_mu_owner);
    if (b->list == LIST_NONE)
        return;
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        lists[b->list] = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
    b->list = LIST_NONE;
}

/* Under mem_mu. */
static void list_push(struct mem_block *b, unsigned list)
{
    PPX_CHECK_OWNED(&mem_mu_owner);
    list_remove(b);
    b->list = list;
    b->prev = NULL;
    b->next = lists[list];
    if (b->next != NULL)
        b->next->prev = b;
    lists[list] = b;
}

/* Under mem_mu: a free block, else one whose owner is gone. */
static struct mem_block *reuse(void)
{
    if (lists[LIST_FREE] != NULL)
        return lists[LIST_FREE];
    for (unsigned l = LIST_ENDED; l <= LIST_UNWATCHED; l++)
        for (struct mem_block *b = lists[l]; b != NULL; b = b->next)
            if (tid_gone(b->tid))
                return b;
    return NULL;
}

static struct mem_block *fresh(void)
{
    struct mem_block *b = ppx_arena_alloc(sizeof *b, PPX_CACHELINE);
    if (b == NULL)
        return NULL;
    struct mem_block *head = atomic_load_explicit(&all_blocks, memory_order_relaxed);
    do
        b->all_next = head;
    while (!atomic_compare_exchange_weak_explicit(&all_blocks, &head, b, memory_order_release,
                                                  memory_order_relaxed));
    return b;
}

/* Under mem_mu: b is the calling thread's now. */
static void own(struct mem_block *b)
{
    b->tid = ppx_gettid();
    if (end_watched)
        list_remove(b);
    else
        list_push(b, LIST_UNWATCHED);
}

bool ppx_thread_buffers_take(struct ppx_tls *t)
{
    mem_lock();
    struct mem_block *b = reuse();
    if (b != NULL) {
        /* the last owner's cache entries point into its own counters */
        memset(b->buffers.stack_cache, 0, sizeof b->buffers.stack_cache);
        memset(b->buffers.io_cache, 0, sizeof b->buffers.io_cache);
        atomic_store_explicit(&b->buffers.wait.since, 0, memory_order_relaxed);
    } else {
        b = fresh();
    }
    if (b != NULL)
        own(b);
    mem_unlock();
    if (b == NULL) {
        static atomic_flag said = ATOMIC_FLAG_INIT;
        ppx_log_once(&said, "out of memory for per-thread buffers", "; some calls go unrecorded",
                     NULL, NULL);
        return false;
    }
    t->pcs = b->buffers.pcs;
    /* buffers last: a signal handler sees either no buffers or whole ones */
    atomic_signal_fence(memory_order_seq_cst);
    t->buffers = &b->buffers;
    return true;
}

static struct mem_block *own_block(void)
{
    return (struct mem_block *)ppx_tls.buffers;
}

unsigned ppx_tid_index(const pid_t *tids, unsigned n, pid_t tid)
{
    unsigned lo = 0, hi = n;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (tids[mid] < tid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && tids[lo] == tid ? lo : n;
}

void ppx_thread_waits(const pid_t *tids, unsigned n, uint64_t *since, uint64_t *what)
{
    for (unsigned i = 0; i < n; i++)
        since[i] = what[i] = 0;
    mem_lock();
    for (struct mem_block *b = atomic_load_explicit(&all_blocks, memory_order_acquire); b != NULL;
         b = b->all_next) {
        /* An ended thread's block keeps its tid until another takes it;
         * the kernel may have given the tid to a new thread meanwhile. */
        unsigned i = b->list == LIST_ENDED ? n : ppx_tid_index(tids, n, b->tid);
        if (i == n)
            continue;
        const struct ppx_wait *w = &b->buffers.wait;
        for (int tries = 0; tries < 4; tries++) {
            uint64_t s = atomic_load_explicit(&w->since, memory_order_acquire);
            uint64_t c = atomic_load_explicit(&w->what, memory_order_relaxed);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&w->since, memory_order_relaxed) == s) {
                since[i] = s;
                what[i] = c;
                break;
            }
        }
    }
    mem_unlock();
}

void ppx_thread_buffers_watched(void)
{
    end_watched = true;
    struct mem_block *b = own_block();
    if (b == NULL)
        return;
    mem_lock();
    if (b->list == LIST_UNWATCHED)
        list_remove(b);
    mem_unlock();
}

void ppx_thread_buffers_end(void)
{
    struct mem_block *b = own_block();
    if (b == NULL)
        return;
    mem_lock();
    list_push(b, LIST_ENDED);
    mem_unlock();
}

/* The child has only the forking thread: every other block is free (the
 * lists are rebuilt: another thread may have been changing them), and
 * this thread's own has a new tid. */
void ppx_thread_buffers_reset_child(void)
{
    pthread_mutex_init(&mem_mu, NULL);
    ppx_owner_reset(&mem_mu_owner);
    ppx_owner_take(&mem_mu_owner); /* for list_push's check: nobody else runs */
    struct mem_block *mine = own_block();
    for (unsigned l = 0; l < N_LISTS; l++)
        lists[l] = NULL;
    for (struct mem_block *b = atomic_load_explicit(&all_blocks, memory_order_acquire); b != NULL;
         b = b->all_next) {
        b->list = LIST_NONE;
        b->prev = b->next = NULL;
        if (b != mine)
            list_push(b, LIST_FREE);
    }
    if (mine != NULL) {
        mine->tid = ppx_gettid();
        if (!end_watched)
            list_push(mine, LIST_UNWATCHED);
    }
    ppx_owner_drop(&mem_mu_owner);
}
