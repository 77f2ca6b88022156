/* The state-threads coroutines of a thread dump (task_dump.c).
 *
 * Which coroutines exist, two ways:
 *  - a program linked with the dynamic libst (Debian's libst.so.1.9):
 *    libst keeps no list of its coroutines, and Debian's libst.so hides
 *    its scheduler's variables. So the st_thread_create and
 *    st_thread_exit hooks (hooks/thread.c; libst calls both through its
 *    PLT, its idle coroutine's creation and every coroutine's end
 *    included) keep a registry of the coroutine records, and the
 *    primordial one (the program's main stack) is added at the first
 *    creation. Those records are state-threads 1.9's (st19 below),
 *    verified on every creation before anything is read from them (the
 *    start function and argument at their offsets, the new record
 *    runnable, the saved stack pointer inside the coroutine's stack); a
 *    record that does not match turns coroutine dumps off for good, said
 *    once.
 *  - a state-threads linked into the executable (libst.a, SRS): its
 *    scheduler's queues, from _st_this_vp (below). Where that variable is
 *    and how the records are laid out comes from the collector, which
 *    read them in the executable's DWARF (wire.h struct wire_st_layout:
 *    SRS's fork has layouts of its own, and thread-local variables);
 *    without DWARF, from the executable's symbols (stack/coroutines.c)
 *    with state-threads 1.9's layout, when the variable's size is that
 *    layout's. Every offset is checked against its record's size and
 *    every variable against the executable's segments first; what is
 *    read is checked as it is read (a record whose saved stack pointer
 *    is not inside its stack is left out; when no record passes, dumps
 *    are turned off, said once). Coroutines on no queue (waiting without
 *    timeout) are then looked for by their stacks (coroutine_scan.c).
 *
 * The context: ST's own md.S jmp_buf, unmangled (on x86-64 rbx, rbp,
 * r12-r15, the stack pointer after the switch returned, the return
 * address: ctx slots).
 *
 * The walk: in the dump signal handler of the thread that runs the
 * scheduler, after its own stack, every coroutine's state is read and its
 * stack unwound from its saved context up to the coroutine entry
 * (stack/coroutines.c): the thread is in the handler, so no coroutine
 * moves meanwhile. The running one gets the thread's own stack, which
 * ends at its entry. The results go to a pool of CO_MAX entries mapped by
 * the flusher before the dump. */
#include "cpu.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <string.h>
#include <time.h>

#define CHUNK_SLOTS 4096u
#define MAX_CHUNKS 64u /* 262144 coroutines */
#define CO_MAX 16384u  /* dumped at once; the rest counted */

/* One state-threads build's layout: byte offsets in its records (wire.h
 * struct wire_st_layout says which member each is). */
struct st_layout {
    size_t th_state, th_start, th_arg, th_stack, th_links, th_tlink, th_due, th_left, th_right,
        th_context;
    size_t stk_bottom, stk_top;
    size_t vp_size, vp_idle, vp_run_q, vp_io_q, vp_zombie_q, vp_thread_q, vp_sleep_q;
    size_t pq_links, pq_thread, pq_pds;
    unsigned ctx[8]; /* words of rbx, rbp, r12-r15, sp, pc in the context */
    bool has_tlink;  /* debug builds: every record on the vp's thread_q */
};
enum { CTX_SP = 6 }; /* the stack pointer's place in ctx[] */

/* state-threads 1.9's, as Debian builds it (ST_SWITCH_CB on: the vp's
 * size tells it from other builds when only symbols say where it is). */
static const struct st_layout st19 = {
    .th_state = 0,
    .th_start = 8,
    .th_arg = 16,
    .th_stack = 32,
    .th_links = 40,
    .th_due = 72,
    .th_left = 80,
    .th_right = 88,
    .th_context = 0x78,
    .stk_bottom = 32,
    .stk_top = 40,
    .vp_size = 0x68,
    .vp_idle = 0,
    .vp_run_q = 16,
    .vp_io_q = 32,
    .vp_zombie_q = 48,
    .vp_sleep_q = 72,
    .pq_links = 0,
    .pq_thread = 16,
    .pq_pds = 24,
    .ctx = {0, 1, 2, 3, 4, 5, 6, 7},
};
#define HEAP_STACK 128 /* the sleep heap's depth is its size's log2 */
#define CTX_SPAN 32u   /* saved-context words read at once */
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
    int32_t fd; /* waited on (I/O wait); -1 unknown */
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
static bool co_scan;            /* those looked for by their stacks (coroutine_scan.c) */
static unsigned co_schedulers;  /* threads that may run one (thread-local variables) */
static unsigned co_mismatched;  /* records whose saved stack pointer is off their stack */
/* The static walk's records, with the fd each waits on (its handler only). */
struct found_record {
    uintptr_t t;
    int32_t fd;
};
static struct found_record found[CO_MAX];

/* The static walk's layout and scheduler variables, for this dump (set by
 * the flusher before the signals). The variables are runtime addresses,
 * or with tls offsets in the executable's TLS block, which lies at
 * tls_delta from each thread's thread pointer (static TLS: the same for
 * every thread; offset 0 is one). */
static struct st_layout lay;
static struct {
    uintptr_t vp, this_thread, active;
    bool tls, has_active;
    intptr_t tls_delta;
} vars;

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

/* A record just created by libst.so: state-threads 1.9's? */
static bool layout_matches(const void *t, void *(*start)(void *), void *arg)
{
    int state;
    memcpy(&state, (const char *)t + st19.th_state, sizeof state);
    uintptr_t stack = word_at(t, st19.th_stack);
    if (state != ST_RUNNABLE || word_at(t, st19.th_start) != (uintptr_t)start ||
        word_at(t, st19.th_arg) != (uintptr_t)arg || stack == 0)
        return false;
    uintptr_t lo = word_at((void *)stack, st19.stk_bottom);
    uintptr_t hi = word_at((void *)stack, st19.stk_top);
    uintptr_t sp = word_at(t, st19.th_context + st19.ctx[CTX_SP] * sizeof(uintptr_t));
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

/* ---- the layout of a state-threads in the executable ---- */

/* Whether a member of width bytes at off fits a record of size bytes. */
static bool fits(uint16_t off, size_t width, uint16_t size)
{
    return off != WIRE_ST_ABSENT && (size_t)off + width <= size;
}

/* The collector's layout, checked member by member against its record's
 * size; NULL when it is fine, else what is wrong. */
static const char *layout_from_wire(const struct wire_st_layout *w, struct st_layout *out)
{
    const size_t P = sizeof(uintptr_t), L = 2 * sizeof(uintptr_t); /* pointer, list node */
    static const uint8_t zeros[sizeof w->reserved2];
    if ((w->flags & ~WIRE_ST_TLS) != 0 || w->reserved != 0 ||
        memcmp(w->reserved2, zeros, sizeof zeros) != 0 || w->thread_size > WIRE_ST_MAX_RECORD ||
        w->stack_size > WIRE_ST_MAX_RECORD || w->vp_size > WIRE_ST_MAX_RECORD ||
        w->pollq_size > WIRE_ST_MAX_RECORD)
        return "unknown flags, reserved bytes set, or records over 4096 bytes";
    bool tlink = w->th_tlink != WIRE_ST_ABSENT;
    if (!fits(w->th_state, sizeof(int), w->thread_size) || !fits(w->th_start, P, w->thread_size) ||
        !fits(w->th_arg, P, w->thread_size) || !fits(w->th_stack, P, w->thread_size) ||
        !fits(w->th_links, L, w->thread_size) || !fits(w->th_due, 8, w->thread_size) ||
        !fits(w->th_left, P, w->thread_size) || !fits(w->th_right, P, w->thread_size) ||
        (tlink && !fits(w->th_tlink, L, w->thread_size)) || w->ctx_words < 8 ||
        !fits(w->th_context, (size_t)w->ctx_words * P, w->thread_size))
        return "a member outside the thread record";
    if (!fits(w->stk_bottom, P, w->stack_size) || !fits(w->stk_top, P, w->stack_size))
        return "a member outside the stack record";
    if (!fits(w->vp_idle, P, w->vp_size) || !fits(w->vp_run_q, L, w->vp_size) ||
        !fits(w->vp_io_q, L, w->vp_size) || !fits(w->vp_zombie_q, L, w->vp_size) ||
        !fits(w->vp_sleep_q, P, w->vp_size) || tlink != (w->vp_thread_q != WIRE_ST_ABSENT) ||
        (tlink && !fits(w->vp_thread_q, L, w->vp_size)))
        return "a member outside the scheduler record";
    if (!fits(w->pq_links, L, w->pollq_size) || !fits(w->pq_thread, P, w->pollq_size) ||
        !fits(w->pq_pds, P, w->pollq_size))
        return "a member outside the poll queue record";
    for (unsigned i = 0; i < 8; i++)
        if (w->ctx_slot[i] >= w->ctx_words)
            return "a register outside the saved context";
    *out = (struct st_layout){w->th_state,    w->th_start,    w->th_arg,     w->th_stack,
                              w->th_links,    w->th_tlink,    w->th_due,     w->th_left,
                              w->th_right,    w->th_context,  w->stk_bottom, w->stk_top,
                              w->vp_size,     w->vp_idle,     w->vp_run_q,   w->vp_io_q,
                              w->vp_zombie_q, w->vp_thread_q, w->vp_sleep_q, w->pq_links,
                              w->pq_thread,   w->pq_pds,      {0},           tlink};
    for (unsigned i = 0; i < 8; i++)
        out->ctx[i] = w->ctx_slot[i];
    return NULL;
}

/* The executable's writable segments and TLS block, for checking where
 * the collector says the variables are. */
struct exe_segments {
    uintptr_t bias;
    const ElfW(Phdr) * phdr;
    unsigned phnum;
    void *tls_data; /* this thread's block, NULL none */
    bool done;
};

static int first_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct exe_segments *e = data;
    *e = (struct exe_segments){info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum,
                               info->dlpi_tls_modid == 1 ? info->dlpi_tls_data : NULL, true};
    return 1; /* the first object is the executable */
}

/* Whether [addr, addr + len) is in one of e's segments of type type (a
 * PT_LOAD must be writable); for PT_TLS addr is an offset in it. */
static bool in_segment(const struct exe_segments *e, unsigned type, uint64_t addr, size_t len)
{
    for (unsigned i = 0; i < e->phnum; i++) {
        const ElfW(Phdr) *ph = &e->phdr[i];
        if (ph->p_type != type || (type == PT_LOAD && !(ph->p_flags & PF_W)))
            continue;
        uint64_t lo = type == PT_TLS ? 0 : e->bias + ph->p_vaddr;
        if (addr >= lo && addr <= lo + ph->p_memsz && len <= lo + ph->p_memsz - addr)
            return true;
    }
    return false;
}

static uintptr_t thread_pointer(void)
{
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp)); /* x86-64: the TCB's pointer to itself */
    return tp;
}

/* The variables the collector names: checked, then runtime addresses (or
 * TLS offsets and the block's delta); NULL when fine. */
static const char *vars_from_wire(const struct wire_st_layout *w)
{
    struct exe_segments e = {0};
    dl_iterate_phdr(first_object, &e);
    if (!e.done)
        return "no executable found";
    bool tls = (w->flags & WIRE_ST_TLS) != 0;
    unsigned type = tls ? PT_TLS : PT_LOAD;
    uintptr_t base = tls ? 0 : e.bias;
    if (tls && e.tls_data == NULL)
        return "the executable's TLS block is not found";
    if (!in_segment(&e, type, base + w->this_vp, w->vp_size) ||
        !in_segment(&e, type, base + w->this_thread, sizeof(void *)) ||
        (w->active_count != WIRE_ST_NO_VAR &&
         !in_segment(&e, type, base + w->active_count, sizeof(int))))
        return "a scheduler variable outside the executable's data";
    vars.tls = tls;
    vars.tls_delta = tls ? (intptr_t)((uintptr_t)e.tls_data - thread_pointer()) : 0;
    vars.vp = base + w->this_vp;
    vars.this_thread = base + w->this_thread;
    vars.has_active = w->active_count != WIRE_ST_NO_VAR;
    vars.active = vars.has_active ? base + w->active_count : 0;
    return NULL;
}

/* Where the static walk looks this dump: the collector's layout, else the
 * executable's symbols with state-threads 1.9's layout when the vp's size
 * is its. */
static bool static_walk_ready(const struct wire_st_layout *w)
{
    if (w != NULL) {
        const char *why = layout_from_wire(w, &lay);
        if (why == NULL)
            why = vars_from_wire(w);
        if (why != NULL) { /* for good, as a record that does not match */
            static atomic_flag said = ATOMIC_FLAG_INIT;
            atomic_store(&disabled, true);
            ppx_log_once(&said, "the collector's state-threads layout is refused (", why,
                         "): coroutines are not dumped", NULL);
            return false;
        }
        return true;
    }
    if (ppx_st_scheduler.vp == 0 || ppx_st_scheduler.vp_size != st19.vp_size)
        return false;
    lay = st19;
    vars.tls = false;
    vars.vp = ppx_st_scheduler.vp;
    vars.this_thread = ppx_st_scheduler.this_thread;
    vars.active = ppx_st_scheduler.active_count;
    vars.has_active = true;
    return true;
}

pid_t ppx_coroutine_dump_prepare(const struct wire_st_layout *layout)
{
    co_wanted = false;
    atomic_store_explicit(&co_owner, 0, memory_order_relaxed);
    co_unreachable = 0;
    co_mismatched = 0;
    pid_t tid = atomic_load_explicit(&st_tid, memory_order_acquire);
    if (atomic_load_explicit(&disabled, memory_order_relaxed))
        return 0;
    co_static = tid == 0 && static_walk_ready(layout);
    if (tid == 0 && !co_static)
        return 0;
    /* without a list of every record, and with the count of them to say
     * how many are on no queue */
    co_scan = co_static && !lay.has_tlink && vars.has_active && ppx_stack_scan_prepare();
    co_schedulers = UINT_MAX; /* until the flusher says */
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

void ppx_coroutine_schedulers(unsigned n)
{
    co_schedulers = n;
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
 * are; those missing are looked for by their stacks (below), and those
 * still missing are reported as such. */

static bool safe_read(void *dst, uintptr_t src, size_t len)
{
    return ppx_read_self(dst, src, len);
}

static uintptr_t safe_word(uintptr_t src)
{
    uintptr_t v = 0;
    return safe_read(&v, src, sizeof v) ? v : 0;
}

/* glibc on x86-64: a pthread_t is the address of its thread's control
 * block, which its thread pointer points to. */
bool ppx_coroutine_runs_on(uintptr_t handle)
{
    if (!co_wanted || !co_static || !vars.tls || handle == 0)
        return false;
    return safe_word((uintptr_t)((intptr_t)handle + vars.tls_delta) + vars.this_thread) != 0;
}

static void add_found(uintptr_t t, int32_t fd, unsigned *n)
{
    if (t != 0 && t % sizeof(void *) == 0 && *n < CO_MAX)
        found[(*n)++] = (struct found_record){t, fd};
}

/* The records on a queue: a circular list of nodes at offset link_off of
 * each record. */
static void walk_queue(uintptr_t head, size_t link_off, unsigned *n)
{
    uintptr_t node = safe_word(head);
    for (unsigned steps = 0; node != 0 && node != head && steps < CO_MAX; steps++) {
        add_found(node - link_off, -1, n);
        node = safe_word(node);
    }
}

/* The I/O queue: poll queue entries (on their waiters' stacks), each
 * naming its waiting record and its pollfd array, whose first fd is the
 * one shown. */
static void walk_io_queue(uintptr_t head, unsigned *n)
{
    uintptr_t node = safe_word(head);
    for (unsigned steps = 0; node != 0 && node != head && steps < CO_MAX; steps++) {
        uintptr_t pq = node - lay.pq_links;
        int32_t fd = -1;
        uintptr_t pds = safe_word(pq + lay.pq_pds);
        if (pds == 0 || !safe_read(&fd, pds, sizeof fd)) /* struct pollfd: fd first */
            fd = -1;
        add_found(safe_word(pq + lay.pq_thread), fd, n);
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
        add_found(t, -1, n);
        uintptr_t left = safe_word(t + lay.th_left), right = safe_word(t + lay.th_right);
        if (left != 0 && depth < HEAP_STACK)
            stack[depth++] = left;
        if (right != 0 && depth < HEAP_STACK)
            stack[depth++] = right;
    }
}

/* By record, each once (the fd kept from the I/O queue's entry). */
static void sort_unique(struct found_record *a, unsigned *n)
{
    for (unsigned gap = *n / 2; gap > 0; gap /= 2)
        for (unsigned i = gap; i < *n; i++) {
            struct found_record v = a[i];
            unsigned j = i;
            for (; j >= gap && a[j - gap].t > v.t; j -= gap)
                a[j] = a[j - gap];
            a[j] = v;
        }
    unsigned k = 0;
    for (unsigned i = 0; i < *n; i++) {
        if (k > 0 && a[k - 1].t == a[i].t) {
            if (a[i].fd >= 0)
                a[k - 1].fd = a[i].fd;
            continue;
        }
        a[k++] = a[i];
    }
    *n = k;
}

/* A scheduler variable's address in the calling thread. */
static uintptr_t var_addr(uintptr_t v)
{
    return vars.tls ? (uintptr_t)((intptr_t)thread_pointer() + vars.tls_delta) + v : v;
}

/* A stack record's stk_bottom and stk_top: in one read when they are
 * near (a dump reads them for every coroutine). */
static void stack_bounds(uintptr_t stack, uintptr_t *lo, uintptr_t *hi)
{
    size_t first = lay.stk_bottom < lay.stk_top ? lay.stk_bottom : lay.stk_top;
    size_t last = lay.stk_bottom < lay.stk_top ? lay.stk_top : lay.stk_bottom;
    uintptr_t w[8] = {0};
    if (last - first < sizeof w && last % sizeof(uintptr_t) == first % sizeof(uintptr_t)) {
        size_t len = last - first + sizeof(uintptr_t);
        if (!safe_read(w, stack + first, len))
            memset(w, 0, sizeof w);
        *lo = w[(lay.stk_bottom - first) / sizeof(uintptr_t)];
        *hi = w[(lay.stk_top - first) / sizeof(uintptr_t)];
        return;
    }
    *lo = safe_word(stack + lay.stk_bottom);
    *hi = safe_word(stack + lay.stk_top);
}

/* Whether the calling thread runs the scheduler: its stack is the running
 * coroutine's, or the running one is the primordial (no stack of its own)
 * and this is the main thread (with thread-local variables: any thread,
 * the running one is this thread's own). */
static bool runs_scheduler(uintptr_t running, uintptr_t sp)
{
    uintptr_t stack = safe_word(running + lay.th_stack);
    if (stack == 0)
        return vars.tls || ppx_gettid() == ppx_pid;
    uintptr_t lo, hi;
    stack_bounds(stack, &lo, &hi);
    return sp >= lo && sp < hi;
}

static unsigned collect_static(uintptr_t running, uintptr_t vp)
{
    unsigned n = 0;
    add_found(running, -1, &n);
    add_found(safe_word(vp + lay.vp_idle), -1, &n);
    if (lay.has_tlink) { /* a debug build's list of every record */
        walk_queue(vp + lay.vp_thread_q, lay.th_tlink, &n);
    } else {
        walk_queue(vp + lay.vp_run_q, lay.th_links, &n);
        walk_queue(vp + lay.vp_zombie_q, lay.th_links, &n);
        walk_sleep_heap(safe_word(vp + lay.vp_sleep_q), &n);
    }
    walk_io_queue(vp + lay.vp_io_q, &n);
    sort_unique(found, &n);
    return n;
}

/* A parked record's saved stack pointer lies inside its stack (the
 * primordial one, without a stack of its own, is taken as it is). */
static bool saved_sp_fits(uintptr_t t, uintptr_t sp)
{
    uintptr_t stack = safe_word(t + lay.th_stack);
    if (stack == 0)
        return true;
    uintptr_t lo, hi;
    stack_bounds(stack, &lo, &hi);
    return lo < hi && sp > lo && sp <= hi;
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

/* ---- live coroutines on no queue, found by their stacks ----
 * (coroutine_scan.c says how.) What the scan finds is a stack with a
 * record at its top; the record is taken for a live coroutine on no queue
 * only when it is not found already, waits in a state that keeps it off
 * every queue (a condition variable or a mutex without timeout, or
 * suspended: st_usleep without timeout), starts in executable code and
 * has its saved stack pointer inside its stack. A stack on state-threads'
 * free list still holds the record of the coroutine that ended on it:
 * that one ran until its end, so its state is running, and it is left
 * out (the running coroutine is the one found first). The scan ends when
 * none is missing any more; but with thread-local variables, other threads
 * may run schedulers of their own, whose records pass as well: when more
 * than one thread may (its _st_this_thread set, or its pthread_t unknown),
 * it goes on, and if more pass than _st_active_count leaves missing, which
 * are this scheduler's is not known: none is taken, all stay counted. */

#define KNOWN_MAX 256u       /* found records whose stacks are measured */
#define BELOW_TOP_MAX 65536u /* the per-thread data keys and the record */

/* The distance from its stack's stk_top down to a record, measured on the
 * found records that have a stack of their own: the same for all of them
 * (else 0: the records are not carved from their stacks). Their stacks'
 * mappings are scanned first. */
static size_t record_below_top(unsigned n)
{
    size_t d = 0;
    unsigned seen = 0;
    for (unsigned i = 0; i < n && seen < KNOWN_MAX; i++) {
        uintptr_t t = found[i].t, stack = safe_word(t + lay.th_stack);
        if (stack == 0)
            continue; /* the primordial coroutine: the program's stack */
        uintptr_t bottom, top;
        stack_bounds(stack, &bottom, &top);
        if (top <= t || top - t > BELOW_TOP_MAX || top % 4096u != 0 || (d != 0 && top - t != d))
            return 0;
        d = top - t;
        seen++;
        ppx_stack_scan_known(top);
    }
    return d;
}

static bool is_found(uintptr_t t, unsigned n)
{
    unsigned lo = 0, hi = n; /* sorted by sort_unique() */
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (found[mid].t == t)
            return true;
        if (found[mid].t < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

struct scan_state {
    unsigned n, added, missing;
};

static bool read_context(uintptr_t t, const struct st_layout *l, struct ppx_saved_regs *r);

/* A record the scan found: appended after the found ones when it is a
 * live coroutine on no queue; false stops the scan (one too many, or no
 * room). */
static bool take_scanned(uintptr_t t, void *arg)
{
    struct scan_state *s = arg;
    int st = -1;
    struct ppx_saved_regs r;
    if (is_found(t, s->n) || !safe_read(&st, t + lay.th_state, sizeof st) ||
        (st != ST_COND_WAIT && st != ST_LOCK_WAIT && st != ST_SUSPENDED) ||
        !ppx_stack_scan_code(safe_word(t + lay.th_start)) || !read_context(t, &lay, &r) ||
        !saved_sp_fits(t, r.sp))
        return true;
    found[s->n + s->added++] = (struct found_record){t, -1};
    /* one scheduler: done when none is missing; with several, on until
     * one too many (another scheduler's) */
    unsigned enough = vars.tls && co_schedulers > 1 ? s->missing + 1 : s->missing;
    return s->added < enough && s->n + s->added < CO_MAX;
}

/* Up to missing live coroutines on no queue, appended to found[] after
 * its n; how many (0 when more were found than are missing). */
static unsigned scan_off_queue(unsigned n, unsigned missing)
{
    struct scan_state s = {n, 0, missing};
    struct ppx_stack_scan q = {record_below_top(n), lay.th_stack, lay.stk_bottom,
                               lay.stk_top,         take_scanned, &s};
    if (q.below_top == 0 || n >= CO_MAX)
        return 0;
    ppx_stack_scan(&q);
    return s.added <= missing ? s.added : 0;
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

/* A record's saved registers, in the layout's order. */
static bool read_context(uintptr_t t, const struct st_layout *l, struct ppx_saved_regs *r)
{
    unsigned first = l->ctx[0], last = l->ctx[0];
    for (unsigned i = 1; i < 8; i++) {
        first = l->ctx[i] < first ? l->ctx[i] : first;
        last = l->ctx[i] > last ? l->ctx[i] : last;
    }
    uintptr_t w[8], span[CTX_SPAN];
    uintptr_t base = t + l->th_context;
    if (last - first < CTX_SPAN) { /* one read: a dump reads every coroutine's */
        if (!safe_read(span, base + first * sizeof(uintptr_t),
                       (last - first + 1) * sizeof(uintptr_t)))
            return false;
        for (unsigned i = 0; i < 8; i++)
            w[i] = span[l->ctx[i] - first];
    } else {
        for (unsigned i = 0; i < 8; i++)
            if (!safe_read(&w[i], base + l->ctx[i] * sizeof(uintptr_t), sizeof w[i]))
                return false;
    }
    *r = (struct ppx_saved_regs){w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]};
    return true;
}

/* One record into pool entry e; false when it is not one to show. */
static bool take_record(struct co_entry *e, uintptr_t t, int32_t fd, uintptr_t running,
                        uintptr_t idle, const struct st_layout *l, const uintptr_t *thread_pcs,
                        uint32_t thread_depth, unsigned *live)
{
    int st = -1;
    struct ppx_saved_regs r;
    if (!safe_read(&st, t + l->th_state, sizeof st) || !read_context(t, l, &r))
        return false;
    e->thread = (uint64_t)t;
    e->state = wire_state(t == running ? ST_RUNNING : st);
    if (e->state == 0)
        return false; /* not a state of ours: a record being reused */
    if (co_static && t != running && !saved_sp_fits(t, r.sp)) {
        co_mismatched++;
        return false;
    }
    e->due = st == ST_SLEEPING ? safe_word(t + l->th_due) : 0;
    e->fd = st == ST_IO_WAIT ? fd : -1;
    *live += st != ST_ZOMBIE && t != idle;
    if (t == running) {
        e->depth = thread_depth;
        memcpy(e->pcs, thread_pcs, thread_depth * sizeof(uintptr_t));
        return true;
    }
    e->depth = ppx_unwind_saved(e->pcs, ppx_config.max_depth, &r);
    if (e->depth == 0) { /* the loader was busy: the saved pc alone */
        e->pcs[0] = r.pc;
        e->depth = 1;
    }
    return true;
}

void ppx_coroutine_dump_walk(const uintptr_t *thread_pcs, uint32_t thread_depth, uintptr_t sp)
{
    if (!co_wanted)
        return;
    uintptr_t running, vp = 0;
    unsigned n;
    const struct st_layout *l = co_static ? &lay : &st19;
    if (co_static) {
        running = safe_word(var_addr(vars.this_thread));
        if (running == 0 || !runs_scheduler(running, sp) || !claim())
            return;
        vp = var_addr(vars.vp);
        n = collect_static(running, vp);
    } else {
        if (atomic_load_explicit(&st_tid, memory_order_relaxed) != ppx_gettid() || !claim())
            return;
        running = st_self != NULL ? (uintptr_t)st_self() : 0;
        n = atomic_load_explicit(&n_slots, memory_order_acquire);
    }
    uintptr_t idle = vp != 0 ? safe_word(vp + l->vp_idle) : 0;
    unsigned k = 0, live = 0;
    for (unsigned i = 0; i < n; i++) {
        uintptr_t t = co_static ? found[i].t
                                : (uintptr_t)atomic_load_explicit(slot_at(i), memory_order_acquire);
        if (t == 0)
            continue;
        if (k == CO_MAX) {
            co_over++;
            continue;
        }
        k += take_record(co_at(k), t, co_static ? found[i].fd : -1, running, idle, l, thread_pcs,
                         thread_depth, &live);
    }
    co_n = k;
    if (co_mismatched > 0 && k <= 1) {
        /* none parked passed: the layout is not this program's; nothing
         * of it is shown (the flusher turns dumps off) */
        co_n = 0;
        return;
    }
    int active = 0;
    if (!co_static || !vars.has_active ||
        !safe_read(&active, var_addr(vars.active), sizeof active) || active <= 0 ||
        (unsigned)active <= live)
        return;
    /* live ones on no queue: looked for by their stacks */
    unsigned added = co_scan ? scan_off_queue(n, (unsigned)active - live) : 0;
    for (unsigned i = n; i < n + added; i++) {
        if (k == CO_MAX) {
            co_over++;
            continue;
        }
        k += take_record(co_at(k), found[i].t, -1, running, idle, l, thread_pcs, thread_depth,
                         &live);
    }
    co_n = k;
    if ((unsigned)active > live)
        co_unreachable = (unsigned)active - live;
}

static uint64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Which clock a wake-up time is on: state-threads 1.9 reads the wall
 * clock (gettimeofday), SRS's fork on Linux the monotonic one; their
 * values lie decades apart, so the nearer one is it. */
static uint64_t st_clock_now(uint64_t due, uint64_t real_us, uint64_t mono_us)
{
    uint64_t to_real = due > real_us ? due - real_us : real_us - due;
    uint64_t to_mono = due > mono_us ? due - mono_us : mono_us - due;
    return to_mono < to_real ? mono_us : real_us;
}

bool ppx_coroutine_dump_send(struct ppx_encoder *enc, uint64_t seq, pid_t tid, uint32_t thread_id,
                             const char name[WIRE_THREAD_NAME], unsigned *sent)
{
    uint64_t real_us = clock_us(CLOCK_REALTIME), mono_us = clock_us(CLOCK_MONOTONIC);
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
        w.fd = e->fd;
        if (e->fd >= 0)
            w.fd_type = (uint8_t)(ppx_fd_class(e->fd) & 0xfu);
        w.depth = e->depth;
        uint64_t now_us = st_clock_now(e->due, real_us, mono_us);
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
    if (co_wanted && co_mismatched > 0 && co_n == 0)
        say_off("no parked record has its saved stack pointer inside its stack: the layout "
                "does not match");
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
