/* The state-threads coroutines of a thread dump (task_dump.c), for a
 * program linked with the dynamic libst (Debian's libst.so.1.9).
 *
 * Which coroutines exist: libst keeps no list of them (its scheduler's
 * queues hold the runnable, sleeping, I/O-waiting and zombie ones; one
 * waiting on a condition variable without timeout is on that variable's
 * queue only), and Debian's libst.so hides its scheduler's variables. So
 * the st_thread_create and st_thread_exit hooks (hooks/thread.c; libst
 * calls both through its PLT, its idle coroutine's creation and every
 * coroutine's end included) keep a registry of the coroutine records,
 * and the primordial one (the program's main stack) is added at the
 * first creation. A libst linked statically (libst.a, SRS) cannot be
 * hooked: its coroutines are not dumped (README, limits).
 *
 * The record's layout is state-threads 1.9's, verified on every
 * creation before anything is read from it (the start function and
 * argument at their offsets, the new record runnable, the saved stack
 * pointer inside the coroutine's stack); a record that does not match
 * turns coroutine dumps off for good, said once:
 *   0 state, 8 start, 16 arg, 32 stack (_st_stack_t: 32 stk_bottom,
 *   40 stk_top), 72 due (wake-up time, st_utime microseconds), 0x78 the
 *   saved context: ST's own md.S jmp_buf, unmangled (rbx, rbp, r12-r15,
 *   the stack pointer after the switch returned, the return address).
 *
 * The walk: the registry is changed only on the thread that runs the
 * coroutines (ST 1.9 has one scheduler per process). In that thread's
 * dump signal handler, after its own stack, every registered coroutine's
 * state is read and its stack unwound from its saved context up to the
 * coroutine entry (stack/coroutines.c): the thread is in the handler, so
 * no coroutine moves meanwhile. The running one (st_thread_self) gets the
 * thread's own stack, which ends at its entry. The results go to a pool
 * of CO_MAX entries mapped by the flusher before the dump. */
#include "cpu.h"

#include <dlfcn.h>
#include <string.h>
#include <sys/time.h>

#define CHUNK_SLOTS 4096u
#define MAX_CHUNKS 64u /* 262144 coroutines */
#define CO_MAX 16384u  /* dumped at once; the rest counted */

/* state-threads 1.9's _st_thread_t and _st_stack_t (see above) */
#define ST_STATE 0
#define ST_START 8
#define ST_ARG 16
#define ST_STACK 32
#define ST_DUE 72
#define ST_CONTEXT 0x78
#define STK_BOTTOM 32
#define STK_TOP 40
enum { ST_RUNNING, ST_RUNNABLE, ST_IO_WAIT, ST_LOCK_WAIT, ST_COND_WAIT, ST_SLEEPING, ST_ZOMBIE,
       ST_SUSPENDED };

static _Atomic(void *) *chunks[MAX_CHUNKS];
static atomic_uint n_slots; /* high-water mark */
static unsigned free_hint;  /* the scheduler's thread only */
static atomic_int st_tid;   /* the scheduler's thread; 0 none yet */
static atomic_bool disabled;
static void *(*st_self)(void);
static bool have_primordial; /* the scheduler's thread only */

/* The pool the handler fills (mapped by the flusher, once). */
struct co_entry {
    uint64_t thread;
    uint64_t due;
    uint8_t state;
    uint32_t depth;
    uintptr_t pcs[];
};
static unsigned char *co_pool;
static size_t co_size;
static unsigned co_n;      /* entries filled by the last walk */
static uint64_t co_over;   /* coroutines beyond CO_MAX in it */
static bool co_wanted;     /* the flusher mapped the pool for this dump */

static void say_off(const char *why)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    atomic_store(&disabled, true);
    ppx_log_once(&said, "state-threads coroutines are not dumped: ", why, NULL, NULL);
}

static uintptr_t word_at(const void *base, size_t off)
{
    uintptr_t v;
    memcpy(&v, (const char *)base + off, sizeof v);
    return v;
}

static bool layout_matches(const void *t, void *(*start)(void *), void *arg)
{
    int state;
    memcpy(&state, t, sizeof state);
    uintptr_t stack = word_at(t, ST_STACK);
    if (state != ST_RUNNABLE || word_at(t, ST_START) != (uintptr_t)start ||
        word_at(t, ST_ARG) != (uintptr_t)arg || stack == 0)
        return false;
    uintptr_t lo = word_at((void *)stack, STK_BOTTOM), hi = word_at((void *)stack, STK_TOP);
    uintptr_t sp = word_at(t, ST_CONTEXT + 6 * sizeof(uintptr_t));
    return lo < hi && sp > lo && sp <= hi;
}

static _Atomic(void *) *slot_at(unsigned i)
{
    return &chunks[i / CHUNK_SLOTS][i % CHUNK_SLOTS];
}

static void registry_add(void *t)
{
    unsigned n = atomic_load_explicit(&n_slots, memory_order_relaxed);
    for (unsigned i = free_hint; i < n; i++)
        if (atomic_load_explicit(slot_at(i), memory_order_relaxed) == NULL) {
            atomic_store_explicit(slot_at(i), t, memory_order_release);
            free_hint = i + 1;
            return;
        }
    if (n == CHUNK_SLOTS * MAX_CHUNKS) {
        say_off("more than 262144 coroutines");
        return;
    }
    if (chunks[n / CHUNK_SLOTS] == NULL) {
        void *c = ppx_pages_alloc(CHUNK_SLOTS * sizeof(void *));
        if (c == NULL) {
            say_off("out of memory");
            return;
        }
        chunks[n / CHUNK_SLOTS] = c;
    }
    atomic_store_explicit(slot_at(n), t, memory_order_release);
    atomic_store_explicit(&n_slots, n + 1, memory_order_release);
    free_hint = n + 1;
}

/* On the scheduler's thread (hooks/thread.c), after the real
 * st_thread_create made t. */
void ppx_coroutine_created(void *t, void *(*start)(void *), void *arg)
{
    if (t == NULL || atomic_load_explicit(&disabled, memory_order_relaxed))
        return;
    pid_t tid = ppx_gettid();
    int none = 0;
    if (!atomic_compare_exchange_strong(&st_tid, &none, tid) && none != tid) {
        say_off("coroutines are created on more than one thread");
        return;
    }
    if (!layout_matches(t, start, arg)) {
        say_off("the coroutine records are not laid out as state-threads 1.9's");
        return;
    }
    if (st_self == NULL)
        st_self = (void *(*)(void))dlsym(RTLD_DEFAULT, "st_thread_self");
    /* The primordial coroutine (the program's main stack), once it is one:
     * st_init creates the idle coroutine before it. */
    void *self = st_self != NULL ? st_self() : NULL;
    if (!have_primordial && self != NULL && self != t) {
        registry_add(self);
        have_primordial = true;
    }
    registry_add(t);
}

/* On the scheduler's thread, as coroutine t ends (st_thread_exit). */
void ppx_coroutine_exiting(void *t)
{
    if (atomic_load_explicit(&st_tid, memory_order_relaxed) != ppx_gettid())
        return;
    /* the newest first: short-lived coroutines end soonest */
    for (unsigned i = atomic_load_explicit(&n_slots, memory_order_relaxed); i-- > 0;)
        if (atomic_load_explicit(slot_at(i), memory_order_relaxed) == t) {
            atomic_store_explicit(slot_at(i), NULL, memory_order_release);
            if (i < free_hint)
                free_hint = i;
            return;
        }
}

/* ---- the dump ---- */

static struct co_entry *co_at(unsigned i)
{
    return (struct co_entry *)(void *)(co_pool + (size_t)i * co_size);
}

pid_t ppx_coroutine_dump_prepare(void)
{
    co_wanted = false;
    pid_t tid = atomic_load_explicit(&st_tid, memory_order_acquire);
    if (tid == 0 || atomic_load_explicit(&disabled, memory_order_relaxed))
        return 0;
    if (co_pool == NULL) {
        co_size = (sizeof(struct co_entry) + ppx_config.max_depth * sizeof(uintptr_t) + 63u) &
                  ~(size_t)63u;
        co_pool = ppx_pages_alloc(co_size * CO_MAX);
        if (co_pool == NULL)
            return 0;
    }
    co_n = 0;
    co_over = 0;
    co_wanted = true;
    return tid;
}

static uint8_t wire_state(int st)
{
    switch (st) {
    case ST_RUNNING:
        return WIRE_CO_RUNNING;
    case ST_RUNNABLE:
        return WIRE_CO_RUNNABLE;
    case ST_IO_WAIT:
        return WIRE_CO_IO_WAIT;
    case ST_LOCK_WAIT:
    case ST_COND_WAIT:
        return WIRE_CO_COND_WAIT;
    case ST_SLEEPING:
    case ST_SUSPENDED:
        return WIRE_CO_SLEEPING;
    case ST_ZOMBIE:
        return WIRE_CO_ZOMBIE;
    default:
        return 0;
    }
}

void ppx_coroutine_dump_walk(const uintptr_t *thread_pcs, uint32_t thread_depth)
{
    if (!co_wanted || atomic_load_explicit(&st_tid, memory_order_relaxed) != ppx_gettid())
        return;
    void *running = st_self != NULL ? st_self() : NULL;
    unsigned n = atomic_load_explicit(&n_slots, memory_order_acquire), k = 0;
    for (unsigned i = 0; i < n; i++) {
        void *t = atomic_load_explicit(slot_at(i), memory_order_acquire);
        if (t == NULL)
            continue;
        if (k == CO_MAX) {
            co_over++;
            continue;
        }
        struct co_entry *e = co_at(k);
        int st;
        memcpy(&st, t, sizeof st);
        e->thread = (uint64_t)(uintptr_t)t;
        e->state = wire_state(t == running ? ST_RUNNING : st);
        if (e->state == 0)
            continue; /* not a state of ours: a record being reused */
        e->due = st == ST_SLEEPING ? word_at(t, ST_DUE) : 0;
        if (t == running) {
            e->depth = thread_depth;
            memcpy(e->pcs, thread_pcs, thread_depth * sizeof(uintptr_t));
        } else {
            const uintptr_t *ctx = (const uintptr_t *)(const void *)((const char *)t + ST_CONTEXT);
            struct ppx_saved_regs r = {ctx[0], ctx[1], ctx[2], ctx[3],
                                       ctx[4], ctx[5], ctx[6], ctx[7]};
            e->depth = ppx_unwind_saved(e->pcs, ppx_config.max_depth, &r);
            if (e->depth == 0) { /* the loader was busy: the saved pc alone */
                e->pcs[0] = r.pc;
                e->depth = 1;
            }
        }
        k++;
    }
    co_n = k;
}

bool ppx_coroutine_dump_send(struct ppx_encoder *enc, uint64_t seq, pid_t tid, uint32_t thread_id,
                             const char name[WIRE_THREAD_NAME], unsigned *sent)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    uint64_t now_us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_usec;
    *sent = 0;
    for (unsigned i = 0; co_wanted && i < co_n; i++) {
        const struct co_entry *e = co_at(i);
        struct wire_task w;
        memset(&w, 0, sizeof w);
        w.seq = seq;
        w.id = e->thread;
        w.tid = (uint32_t)tid;
        w.thread_id = thread_id;
        w.kind = WIRE_TASK_COROUTINE;
        w.state = e->state;
        w.stack = WIRE_TASK_STACK_OK;
        w.fd = -1;
        w.depth = e->depth;
        w.wait_ns = e->due > now_us ? (e->due - now_us) * 1000u : 0;
        memcpy(w.name, name, sizeof w.name);
        if (!ppx_emit(enc, WIRE_TASK, &w, sizeof w, e->pcs, (size_t)w.depth * sizeof(uint64_t),
                      NULL, 0))
            return false;
        (*sent)++;
    }
    if (co_over != 0) {
        static atomic_flag said = ATOMIC_FLAG_INIT;
        ppx_log_once(&said, "a thread dump holds at most 16384 coroutines",
                     "; the rest are left out", NULL, NULL);
    }
    co_wanted = false;
    return true;
}
