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
#include <sys/uio.h>

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
/* its _st_vp_t (with ST_SWITCH_CB, as Debian builds it) and _st_pollq_t */
#define VP_SIZE 0x68
#define VP_IDLE 0
#define VP_RUN_Q 16
#define VP_IO_Q 32
#define VP_ZOMBIE_Q 48
#define VP_SLEEP_Q 72
#define ST_LINKS 40
#define ST_LEFT 80
#define ST_RIGHT 88
#define POLLQ_THREAD 16
#define HEAP_STACK 128 /* the sleep heap's depth is its size's log2 */
enum {
    ST_RUNNING,
    ST_RUNNABLE,
    ST_IO_WAIT,
    ST_LOCK_WAIT,
    ST_COND_WAIT,
    ST_SLEEPING,
    ST_ZOMBIE,
    ST_SUSPENDED
};

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
static unsigned co_n;           /* entries filled by the last walk */
static uint64_t co_over;        /* coroutines beyond CO_MAX in it */
static bool co_wanted;          /* the flusher mapped the pool for this dump */
static bool co_static;          /* libst in the executable: its queues are walked */
static atomic_int co_owner;     /* the thread whose handler walks them */
static uint64_t co_unreachable; /* live coroutines on no queue (static walk) */
static uintptr_t found[CO_MAX]; /* the static walk's records (its handler only) */

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
    atomic_store_explicit(&co_owner, 0, memory_order_relaxed);
    co_unreachable = 0;
    pid_t tid = atomic_load_explicit(&st_tid, memory_order_acquire);
    co_static = tid == 0 && ppx_st_scheduler.vp != 0 && ppx_st_scheduler.vp_size == VP_SIZE;
    if ((tid == 0 && !co_static) || atomic_load_explicit(&disabled, memory_order_relaxed))
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
    return co_static ? 0 : tid;
}

bool ppx_coroutine_static(void)
{
    return co_static;
}

pid_t ppx_coroutine_dump_owner(void)
{
    return co_wanted ? (pid_t)atomic_load_explicit(&co_owner, memory_order_acquire) : 0;
}

/* ---- libst linked into the executable: its scheduler's queues ----
 * Walked in the handler of the thread that runs it, with every read
 * checked (process_vm_readv of this process: a bad address is EFAULT, not
 * a fault): the handler may have interrupted the scheduler amid a queue
 * change. A coroutine waiting on a condition variable or a mutex without
 * timeout is on no queue: _st_active_count says how many live ones there
 * are, and the difference is reported as such. */

static bool safe_read(void *dst, uintptr_t src, size_t len)
{
    struct iovec local = {dst, len}, remote = {(void *)src, len};
    return src != 0 &&
           syscall(SYS_process_vm_readv, (long)ppx_pid, &local, 1L, &remote, 1L, 0L) == (long)len;
}

static uintptr_t safe_word(uintptr_t src)
{
    uintptr_t v = 0;
    return safe_read(&v, src, sizeof v) ? v : 0;
}

static void add_found(uintptr_t t, unsigned *n)
{
    if (t != 0 && t % sizeof(void *) == 0 && *n < CO_MAX)
        found[(*n)++] = t;
}

/* The records on a queue: a circular list of links at offset at of each
 * element (the record itself at element - link_off, or through the
 * pointer at element + thread_ptr). */
static void walk_queue(uintptr_t head, size_t link_off, long thread_ptr, unsigned *n)
{
    uintptr_t node = safe_word(head);
    for (unsigned steps = 0; node != 0 && node != head && steps < CO_MAX; steps++) {
        add_found(thread_ptr >= 0 ? safe_word(node + (uintptr_t)thread_ptr) : node - link_off, n);
        node = safe_word(node);
    }
}

static void walk_sleep_heap(uintptr_t root, unsigned *n)
{
    uintptr_t stack[HEAP_STACK];
    unsigned depth = 0;
    if (root != 0)
        stack[depth++] = root;
    for (unsigned steps = 0; depth > 0 && steps < CO_MAX; steps++) {
        uintptr_t t = stack[--depth];
        add_found(t, n);
        uintptr_t left = safe_word(t + ST_LEFT), right = safe_word(t + ST_RIGHT);
        if (left != 0 && depth < HEAP_STACK)
            stack[depth++] = left;
        if (right != 0 && depth < HEAP_STACK)
            stack[depth++] = right;
    }
}

static void sort_unique(uintptr_t *a, unsigned *n)
{
    for (unsigned gap = *n / 2; gap > 0; gap /= 2)
        for (unsigned i = gap; i < *n; i++) {
            uintptr_t v = a[i];
            unsigned j = i;
            for (; j >= gap && a[j - gap] > v; j -= gap)
                a[j] = a[j - gap];
            a[j] = v;
        }
    unsigned k = 0;
    for (unsigned i = 0; i < *n; i++)
        if (k == 0 || a[k - 1] != a[i])
            a[k++] = a[i];
    *n = k;
}

/* Whether the calling thread runs the scheduler: its stack is the running
 * coroutine's, or the running one is the primordial (no stack of its own)
 * and this is the main thread. */
static bool runs_scheduler(uintptr_t running, uintptr_t sp)
{
    uintptr_t stack = safe_word(running + ST_STACK);
    if (stack == 0)
        return ppx_gettid() == ppx_pid;
    uintptr_t lo = safe_word(stack + STK_BOTTOM), hi = safe_word(stack + STK_TOP);
    return sp >= lo && sp < hi;
}

static unsigned collect_static(uintptr_t running)
{
    uintptr_t vp = ppx_st_scheduler.vp;
    unsigned n = 0;
    add_found(running, &n);
    add_found(safe_word(vp + VP_IDLE), &n);
    walk_queue(vp + VP_RUN_Q, ST_LINKS, -1, &n);
    walk_queue(vp + VP_ZOMBIE_Q, ST_LINKS, -1, &n);
    walk_queue(vp + VP_IO_Q, 0, POLLQ_THREAD, &n);
    walk_sleep_heap(safe_word(vp + VP_SLEEP_Q), &n);
    sort_unique(found, &n);
    return n;
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

/* One handler only walks (and writes the pool): the first that finds it
 * runs the scheduler (a program running state-threads off its main thread
 * could make the main thread's handler believe so too). */
static bool claim(void)
{
    int none = 0;
    return atomic_compare_exchange_strong_explicit(&co_owner, &none, (int)ppx_gettid(),
                                                   memory_order_acq_rel, memory_order_relaxed);
}

void ppx_coroutine_dump_walk(const uintptr_t *thread_pcs, uint32_t thread_depth, uintptr_t sp)
{
    if (!co_wanted)
        return;
    void *running;
    unsigned n;
    if (co_static) {
        running = (void *)safe_word(ppx_st_scheduler.this_thread);
        if (running == NULL || !runs_scheduler((uintptr_t)running, sp) || !claim())
            return;
        n = collect_static((uintptr_t)running);
    } else {
        if (atomic_load_explicit(&st_tid, memory_order_relaxed) != ppx_gettid() || !claim())
            return;
        running = st_self != NULL ? st_self() : NULL;
        n = atomic_load_explicit(&n_slots, memory_order_acquire);
    }
    unsigned k = 0, live = 0;
    for (unsigned i = 0; i < n; i++) {
        void *t =
            co_static ? (void *)found[i] : atomic_load_explicit(slot_at(i), memory_order_acquire);
        if (t == NULL)
            continue;
        if (k == CO_MAX) {
            co_over++;
            continue;
        }
        struct co_entry *e = co_at(k);
        int st = -1;
        uintptr_t ctx[8] = {0};
        if (!safe_read(&st, (uintptr_t)t, sizeof st) ||
            !safe_read(ctx, (uintptr_t)t + ST_CONTEXT, sizeof ctx))
            continue;
        e->thread = (uint64_t)(uintptr_t)t;
        e->state = wire_state(t == running ? ST_RUNNING : st);
        if (e->state == 0)
            continue; /* not a state of ours: a record being reused */
        e->due = st == ST_SLEEPING ? safe_word((uintptr_t)t + ST_DUE) : 0;
        live += st != ST_ZOMBIE && t != (void *)safe_word(ppx_st_scheduler.vp + VP_IDLE);
        if (t == running) {
            e->depth = thread_depth;
            memcpy(e->pcs, thread_pcs, thread_depth * sizeof(uintptr_t));
        } else {
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
    int active = 0;
    if (co_static && safe_read(&active, ppx_st_scheduler.active_count, sizeof active) &&
        active > 0 && (unsigned)active > live)
        co_unreachable = (unsigned)active - live;
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
    for (uint64_t i = 0; co_wanted && i < co_unreachable; i++) {
        struct wire_task w;
        memset(&w, 0, sizeof w);
        w.seq = seq;
        w.tid = (uint32_t)tid;
        w.thread_id = thread_id;
        w.kind = WIRE_TASK_COROUTINE;
        w.state = WIRE_CO_COND_WAIT;
        w.stack = WIRE_TASK_STACK_UNREACHABLE;
        w.fd = -1;
        memcpy(w.name, name, sizeof w.name);
        if (!ppx_emit(enc, WIRE_TASK, &w, sizeof w, NULL, 0, NULL, 0))
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

void ppx_coroutine_reset_child(void)
{
    /* The forking thread is the child's only one: if it ran the coroutines
     * it still does, under a new tid (SRS forks from its coroutines); if
     * not, the copies it holds are shown as they were. */
    pid_t tid = atomic_load_explicit(&st_tid, memory_order_relaxed);
    if (tid != 0)
        atomic_store_explicit(&st_tid, ppx_gettid(), memory_order_relaxed);
    co_wanted = false;
}
