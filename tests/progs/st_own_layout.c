/* Coroutines of a state-threads-like scheduler of this program's own,
 * whose records are laid out unlike any state-threads build
 * (st_own_layout.h), parked in known places, for the thread dump
 * (goroutine profile): ppx knows where its scheduler's variables and
 * members are only from this program's DWARF.
 *   st_own_layout         thread-local scheduler variables (as recent
 *                         SRS), the debug list of every record (thread_q),
 *                         the scheduler on a second thread (main waits
 *                         in pthread_join)
 *   st_own_layout_global  plain global variables, no list of every record
 *                         (ST_GLOBAL_VARS), the scheduler on the main thread
 *   st_own_layout_nolist  as st_own_layout, without the list of every
 *                         record (ST_NO_LIST)
 *   st_own_layout_swapped as _global, but its saved contexts hold the
 *                         stack pointer where md.S has rbx and the other
 *                         way round (ST_CONTEXT_SWAPPED): a layout ppx
 *                         reads right from DWARF and still cannot use
 * Each coroutine's record is carved from the top of its own stack, as
 * state-threads does. NSLEEP coroutines sleep (park_in_sleep: on the
 * sleep heap, an hour left), NIO wait for input on pipes nobody writes
 * (park_in_io: on the I/O queue), NCOND wait on a condition
 * (park_in_cond: on no queue but thread_q, found by their stacks without
 * it), NYIELD yielded and wait on the run queue (park_in_yield), each
 * entered from a start function of its kind through _st_thread_main (the
 * coroutine entry, as in state-threads). The primordial coroutine
 * then waits on stdin through wait_for_quit (in poll, as a scheduler
 * waits for events): prints "ready" and exits 0 at a line or the end of
 * stdin.
 * Usage: st_own_layout NSLEEP NIO NCOND NYIELD. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "st_own_layout.h"

#define NOINLINE __attribute__((noinline, noclone))
#define STACK_BYTES (64 * 1024)
#define RED_ZONE 4096
#define KEYS 16 /* per-thread data keys, as state-threads' ST_KEYS_MAX */
#define MAX_CORO 256

#ifdef ST_GLOBAL_VARS
#define ST_VAR
#else
#define ST_VAR __thread
#endif
ST_VAR struct _st_vp _st_this_vp;
ST_VAR struct _st_thread *_st_this_thread;
ST_VAR int _st_active_count;

/* ctx_switch(save, load): state-threads' md.S save and restore in one.
 * ST_CONTEXT_SWAPPED: the stack pointer and rbx trade places (an ST port
 * whose context is not md.S's: its DWARF cannot say so). */
#ifdef ST_CONTEXT_SWAPPED
#define RBX_AT "48"
#define SP_AT "0"
#define SP_WORD 0
#else
#define RBX_AT "0"
#define SP_AT "48"
#define SP_WORD 6
#endif
void ctx_switch(struct _st_jmp_buf *save, const struct _st_jmp_buf *load);
__asm__(".text\n"
        ".globl ctx_switch\n"
        ".type ctx_switch, @function\n"
        "ctx_switch:\n"
        "  mov %rbx, " RBX_AT "(%rdi)\n  mov %rbp, 8(%rdi)\n  mov %r12, 16(%rdi)\n"
        "  mov %r13, 24(%rdi)\n  mov %r14, 32(%rdi)\n  mov %r15, 40(%rdi)\n"
        "  lea 8(%rsp), %rdx\n  mov %rdx, " SP_AT "(%rdi)\n"
        "  mov (%rsp), %rax\n  mov %rax, 56(%rdi)\n"
        "  mov " RBX_AT "(%rsi), %rbx\n  mov 8(%rsi), %rbp\n  mov 16(%rsi), %r12\n"
        "  mov 24(%rsi), %r13\n  mov 32(%rsi), %r14\n  mov 40(%rsi), %r15\n"
        "  mov " SP_AT "(%rsi), %rsp\n"
        "  jmp *56(%rsi)\n"
        ".size ctx_switch, .-ctx_switch\n");

static struct _st_thread *primordial;
static struct _st_thread *sleepers[MAX_CORO];
static int n_sleepers;
static volatile int resumed; /* stores after the parks: no tail calls */

static void list_insert_before(struct _st_clist *e, struct _st_clist *l)
{
    e->next = l;
    e->prev = l->prev;
    l->prev->next = e;
    l->prev = e;
}

static void list_init(struct _st_clist *l)
{
    l->next = l->prev = l;
}

/* The running coroutine parks (its state set) and the primordial one runs. */
static void park(int state)
{
    struct _st_thread *me = _st_this_thread;
    me->state = state;
    _st_this_thread = primordial;
    primordial->state = ST_RUNNING;
    ctx_switch(&me->context, &primordial->context);
}

NOINLINE void park_in_sleep(void)
{
    struct timespec now; /* state-threads' time: the wall clock's microseconds */
    clock_gettime(CLOCK_REALTIME, &now);
    _st_this_thread->due = (unsigned long long)now.tv_sec * 1000000ull + 3600000000ull;
    sleepers[n_sleepers++] = _st_this_thread;
    park(ST_SLEEPING);
    resumed++;
}

NOINLINE void park_in_io(int fd)
{
    struct pollfd pd = {fd, POLLIN, 0};
    struct _st_pollq pq = {&pd, 1, _st_this_thread, {NULL, NULL}};
    list_insert_before(&pq.links, &_st_this_vp.io_q);
    park(ST_IO_WAIT);
    resumed++;
}

NOINLINE void park_in_cond(void)
{
    park(ST_COND_WAIT);
    resumed++;
}

NOINLINE void park_in_yield(void)
{
    list_insert_before(&_st_this_thread->links, &_st_this_vp.run_q);
    park(ST_RUNNABLE);
    resumed++;
}

NOINLINE void *sleeper_main(void *arg)
{
    (void)arg;
    park_in_sleep();
    return NULL;
}

NOINLINE void *reader_main(void *arg)
{
    park_in_io((int)(intptr_t)arg);
    return NULL;
}

NOINLINE void *waiter_main(void *arg)
{
    (void)arg;
    park_in_cond();
    return NULL;
}

NOINLINE void *yielder_main(void *arg)
{
    (void)arg;
    park_in_yield();
    return NULL;
}

/* The coroutine entry: its caller is no frame. */
NOINLINE void _st_thread_main(void)
{
    struct _st_thread *me = _st_this_thread;
    me->start(me->arg);
    abort(); /* none of them is resumed */
}

/* As state-threads: a stack segment of its own with a red-zone page at
 * each end, the per-thread data keys and the record carved from the top
 * of the usable part, the stack record from the heap. */
static struct _st_thread *create(void *(*start)(void *), void *arg)
{
    struct _st_stack *s = calloc(1, sizeof *s);
    char *seg = mmap(NULL, STACK_BYTES + 2 * RED_ZONE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s == NULL || seg == MAP_FAILED)
        exit(2);
    s->stk_bottom = seg + RED_ZONE;
    s->stk_top = s->stk_bottom + STACK_BYTES;
    struct _st_thread *t =
        (struct _st_thread *)(void *)(s->stk_top - KEYS * sizeof(void *) - sizeof *t);
    t->stack = s;
    t->start = start;
    t->arg = arg;
    /* entered as if called: the stack pointer 8 below a 16-byte boundary
     * under the record, a zero return address there */
    uintptr_t *sp = (uintptr_t *)((uintptr_t)t & ~(uintptr_t)63) - 1;
    *sp = 0;
    t->context.__jmpbuf[SP_WORD] = (long)(uintptr_t)sp;
    t->context.__jmpbuf[7] = (long)(uintptr_t)_st_thread_main;
    t->state = ST_RUNNABLE;
#ifdef ST_THREAD_LIST
    list_insert_before(&t->tlink, &_st_this_vp.thread_q);
#endif
    _st_active_count++;
    return t;
}

/* Runs t until it parks. */
static void run(struct _st_thread *t)
{
    _st_this_thread = t;
    t->state = ST_RUNNING;
    ctx_switch(&primordial->context, &t->context);
}

/* The sleepers as a heap of left and right children, by creation order. */
static void build_sleep_heap(void)
{
    for (int i = 0; i < n_sleepers; i++) {
        sleepers[i]->left = 2 * i + 1 < n_sleepers ? sleepers[2 * i + 1] : NULL;
        sleepers[i]->right = 2 * i + 2 < n_sleepers ? sleepers[2 * i + 2] : NULL;
    }
    _st_this_vp.sleep_q = n_sleepers > 0 ? sleepers[0] : NULL;
}

/* Waits as a state-threads scheduler does, in poll (a call a signal cuts
 * short, which a dump interrupts only on a thread that runs a scheduler). */
NOINLINE void wait_for_quit(void)
{
    struct pollfd in = {0, POLLIN, 0};
    char c = 0;
    while (c != '\n' && (poll(&in, 1, -1) >= 0 || errno == EINTR))
        if ((in.revents & (POLLIN | POLLHUP)) != 0 && read(0, &c, 1) != 1)
            break;
    resumed++;
}

static int counts[4];

static void *scheduler(void *arg)
{
    (void)arg;
    list_init(&_st_this_vp.io_q);
    list_init(&_st_this_vp.zombie_q);
    list_init(&_st_this_vp.run_q);
#ifdef ST_THREAD_LIST
    list_init(&_st_this_vp.thread_q);
#endif
    _st_this_vp.pagesize = 4096;
    primordial = calloc(1, sizeof *primordial);
    if (primordial == NULL)
        exit(2);
    primordial->state = ST_RUNNING;
#ifdef ST_THREAD_LIST
    list_insert_before(&primordial->tlink, &_st_this_vp.thread_q);
#endif
    _st_this_thread = primordial;
    _st_active_count = 1;
    for (int i = 0; i < counts[0]; i++)
        run(create(sleeper_main, NULL));
    for (int i = 0; i < counts[1]; i++) {
        int fds[2];
        if (pipe(fds) != 0)
            exit(2);
        run(create(reader_main, (void *)(intptr_t)fds[0]));
    }
    for (int i = 0; i < counts[2]; i++)
        run(create(waiter_main, NULL));
    for (int i = 0; i < counts[3]; i++)
        run(create(yielder_main, NULL));
    build_sleep_heap();
    printf("ready\n");
    fflush(stdout);
    wait_for_quit();
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    for (int i = 0; i < 4; i++) {
        counts[i] = atoi(argv[i + 1]);
        if (counts[i] < 0 || counts[i] > MAX_CORO / 4)
            return 2;
    }
#ifdef ST_GLOBAL_VARS
    scheduler(NULL);
#else
    pthread_t t;
    if (pthread_create(&t, NULL, scheduler, NULL) != 0)
        return 2;
    pthread_join(t, NULL);
#endif
    return 1;
}
