/* CPU profiles: a CPU-time timer per thread, SIGPROF ticks turned into
 * stacks, CPU_SAMPLES records (wire.h).
 *
 * As Go >= 1.18 does: every registered thread gets its own POSIX timer on
 * its own CPU-time clock (timer_create with SIGEV_THREAD_ID), period
 * 1e9/PPX_CPU_HZ ns of that thread's CPU time, first expiry random within
 * one period. A process-wide setitimer(ITIMER_PROF) would hand each tick
 * to whichever thread happens to run, and undercounts beyond ~2.5 cores
 * (Go issue 35057). The timers tick only while their thread runs, so a
 * sleeping or blocked thread is never interrupted by them.
 *
 * The handler (async-signal-safe: no malloc, no stdio, never waits for a
 * lock; libunwind's only one, the loader's, is try-locked, unwind.c):
 *  - ignores SIGPROF that is not one of our ticks (si_code SI_TIMER and
 *    our cookie in si_value);
 *  - counts 1 + si_overrun periods. The kernel checks CPU timers only at
 *    its scheduler tick (CONFIG_HZ, 100 to 1000), on the thread running
 *    then: above that rate one signal stands for several periods, and a
 *    thread that runs in short bursts (I/O) is caught rarely, with all the
 *    periods it used since. Where the tick catches a thread is a point
 *    drawn in proportion to its CPU time, so those periods go to that
 *    stack. Not so for the periods that piled up while the thread blocked
 *    SIGPROF: they would all go to the call that unblocked it. A signal
 *    delivered inside pthread_sigmask or sigprocmask keeps the weight the
 *    tick explains (2 + hz/100) and counts the rest lost;
 *  - drops and counts (lost) ticks on a thread inside the profiler (the
 *    recursion guard: it may be inside libunwind or a table), on a thread
 *    without a ring, and where unwinding is unsafe (unwind.c);
 *  - unwinds from the ucontext (unwind.c) into the pcs of the thread's
 *    state (only its own handler writes them, guard held) and appends the
 *    stack to the thread's own ring, a single-producer single-consumer
 *    queue of words in pages mapped when the thread starts, never in the
 *    handler. A full ring counts the tick lost. On a thread whose stack
 *    has no room left for a walk (ppx_stack_room) the stack is the
 *    interrupted pc alone.
 * The flusher drains every ring, interns the stacks (stacks.c, with its
 * own ppx_thread), counts them per (stack, thread) in a table of its own,
 * and sends the increments: STACK records, then CPU_SAMPLES.
 *
 * A thread's state (struct ppx_cpu_thread) is never freed, only recycled
 * by the flusher once the thread has ended and its ring is drained. The
 * handler finds it through a thread-local pointer, set by the thread
 * itself; threads started from the flusher (found at start) are looked up
 * by tid, once; the flusher ends those whose CPU clock is gone (a thread
 * that never called a thread hook ends unseen by the registry). States
 * carry a sequence number, bumped on every reuse, so that a stale pointer
 * is never written through.
 *
 * Without PPX_CPU_HZ the handler and the states are set up all the same,
 * but no timer runs until a collector asks (WIRE_CMD_CPU, handled by the
 * flusher: ppx_cpu_set_rate), and they all go when it says stop.
 *
 * Timers are created and deleted under cpu_mu (never from the handler).
 * The program taking SIGPROF for itself stops sampling for good
 * (hooks_signal.c); exec deletes the timers and discards pending ticks,
 * so the new image is not killed by a late SIGPROF; a forked child has no
 * timers (they are not inherited) until its thread registry starts one
 * for the forking thread. */
#include "../ppx_preload.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define RING_MIN_WORDS 1024u        /* 8 KiB */
#define RING_MAX_WORDS (1u << 17)   /* 1 MiB */
#define RING_FLUSHES 2u             /* flush intervals of samples a ring holds */
#define MAX_REMOTE 256u             /* threads started from the flusher, sampled at once */
#define ENTRY_CHUNK_BITS 12
#define ENTRY_CHUNK (1u << ENTRY_CHUNK_BITS)
#define ENTRY_CHUNKS 1024u
#define MAX_ENTRIES (ENTRY_CHUNKS * ENTRY_CHUNK) /* (stack, thread) pairs */
#define SEND_ENTRIES ((256u * 1024u) / sizeof(struct wire_cpu_entry))
#define MAX_WEIGHT (1u << 20) /* periods one tick may stand for: a sanity bound */

enum cpu_status { CPU_FREE, CPU_ACTIVE, CPU_ENDED };

struct ppx_cpu_thread {
    /* the producer: the handler on the owning thread */
    _Alignas(PPX_CACHELINE) _Atomic uint64_t head; /* words written */
    /* the consumer: the flusher */
    _Alignas(PPX_CACHELINE) _Atomic uint64_t tail; /* words consumed */
    /* set while the state is not in use (under cpu_mu), then read-only */
    _Alignas(PPX_CACHELINE) uint64_t *ring;
    uint64_t mask; /* ring words - 1 */
    atomic_uint seq; /* bumped on every reuse */
    atomic_int status; /* enum cpu_status */
    pid_t tid;
    bool remote; /* started from another thread: the handler finds it by tid */
    struct ppx_thread_rec *rec;
    uintptr_t pcs[WIRE_MAX_DEPTH]; /* the handler's walk */
    /* under cpu_mu */
    bool timer_live;
    timer_t timer;
    uint64_t rng;
    struct ppx_cpu_thread *free_next;
    /* immutable once published */
    struct ppx_cpu_thread *all_next;
};

/* One (stack, thread) pair's samples; flusher only. */
struct cpu_entry {
    uint32_t stack_id, thread_id;
    struct ppx_stack *stack;
    struct ppx_thread_rec *rec;
    uint64_t samples, sent_samples;
    bool pending; /* on the pending list */
};

static pthread_mutex_t cpu_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool configured; /* PPX_CPU_HZ > 0 or unset (on demand), our handler installed */
static atomic_bool stopped;    /* the program took SIGPROF: for good */
static bool running;           /* under cpu_mu: timers exist (false while exec is under way) */
static bool exec_paused;       /* under cpu_mu */
static uint32_t sampling_hz;   /* under cpu_mu: the timers' rate; 0: none */
static atomic_uint batch_hz;   /* the rate of the samples in the flusher's table */
static struct sigaction our_action;
static uint64_t period_ns;     /* under cpu_mu */
static _Atomic uint64_t unblock_weight; /* periods a tick unblocked in sigprocmask may stand for */
/* libc's pthread_sigmask and sigprocmask, [lo, hi) */
#define N_MASK_FNS 2u
static struct {
    uintptr_t lo, hi;
} mask_fns[N_MASK_FNS];
static uint64_t ring_words;
static char timer_cookie; /* its address marks our ticks */

static _Atomic(struct ppx_cpu_thread *) all_states;
static struct ppx_cpu_thread *free_states; /* under cpu_mu */
static _Atomic(struct ppx_cpu_thread *) remote_states[MAX_REMOTE];
static atomic_uint n_remote;

PPX_TLS unsigned ppx_cpu_in_handler;
static PPX_TLS struct ppx_cpu_thread *cpu_self;
static PPX_TLS unsigned cpu_self_seq;

static _Atomic uint64_t lost_ticks;

/* The flusher's table. */
static struct {
    struct cpu_entry *chunks[ENTRY_CHUNKS];
    uint32_t n;
    uint32_t *slots; /* entry index + 1; 0 empty */
    size_t slot_mask;
    uint32_t *pending;
    size_t n_pending, cap_pending;
    struct wire_cpu_entry *out;
    uintptr_t pcs[WIRE_MAX_DEPTH];
    uint64_t sent_generation;
    uint64_t lost;      /* ticks the flusher could not count (no memory) */
    uint64_t sent_lost; /* lost_ticks + lost already sent on sent_generation */
} table;

/* ---- the handler ---- */

static pid_t current_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* A thread started from the flusher: its state, found by tid (once; then
 * cached in the thread-local pointer). */
static struct ppx_cpu_thread *find_remote(void)
{
    if (atomic_load_explicit(&n_remote, memory_order_acquire) == 0)
        return NULL;
    pid_t tid = current_tid();
    for (unsigned i = 0; i < MAX_REMOTE; i++) {
        struct ppx_cpu_thread *c = atomic_load_explicit(&remote_states[i], memory_order_acquire);
        if (c == NULL || c->tid != tid)
            continue;
        unsigned seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        if (atomic_load_explicit(&c->status, memory_order_acquire) != CPU_ACTIVE)
            continue;
        cpu_self = c;
        cpu_self_seq = seq;
        return c;
    }
    return NULL;
}

static struct ppx_cpu_thread *self_state(void)
{
    struct ppx_cpu_thread *c = cpu_self;
    if (c != NULL && atomic_load_explicit(&c->seq, memory_order_acquire) == cpu_self_seq)
        return c;
    cpu_self = NULL;
    return find_remote();
}

static bool ring_put(struct ppx_cpu_thread *c, const uintptr_t *pcs, unsigned depth,
                     uint64_t weight)
{
    uint64_t *ring = c->ring;
    if (ring == NULL)
        return false;
    uint64_t head = atomic_load_explicit(&c->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&c->tail, memory_order_acquire);
    uint64_t need = 1 + (uint64_t)depth;
    if (need > c->mask + 1 - (head - tail))
        return false;
    ring[head & c->mask] = (uint64_t)depth | weight << 32;
    for (unsigned i = 0; i < depth; i++)
        ring[(head + 1 + i) & c->mask] = pcs[i];
    atomic_store_explicit(&c->head, head + need, memory_order_release);
    return true;
}

/* Whether the tick was delivered as the thread unblocked SIGPROF. */
static bool unblocked_here(const void *ucontext)
{
    uintptr_t pc = (uintptr_t)((const ucontext_t *)ucontext)->uc_mcontext.gregs[REG_RIP];
    for (unsigned i = 0; i < N_MASK_FNS; i++)
        if (pc - mask_fns[i].lo < mask_fns[i].hi - mask_fns[i].lo)
            return true;
    return false;
}

static void on_sigprof(int sig, siginfo_t *si, void *ucontext)
{
    (void)sig;
    if (si == NULL || si->si_code != SI_TIMER || si->si_value.sival_ptr != &timer_cookie) {
        /* Sent by someone (kill, tgkill, sigqueue) or by the program's own
         * ITIMER_PROF (SI_KERNEL): the program's action applies. A timer
         * signal that is not our current one may be a stale tick of ours
         * (one queued before an exec): never fatal. */
        if (si != NULL && (si->si_code == SI_USER || si->si_code == SI_TKILL ||
                           si->si_code == SI_QUEUE || si->si_code == SI_KERNEL)) {
            int saved_errno = errno;
            ppx_sigprof_foreign();
            errno = saved_errno;
        }
        return;
    }
    int saved_errno = errno;
    uint64_t weight = 1 + (si->si_overrun > 0 ? (uint64_t)si->si_overrun : 0);
    uint64_t cap = unblocked_here(ucontext)
                       ? atomic_load_explicit(&unblock_weight, memory_order_relaxed)
                       : MAX_WEIGHT;
    if (weight > cap) {
        atomic_fetch_add_explicit(&lost_ticks, weight - cap, memory_order_relaxed);
        weight = cap;
    }
    struct ppx_thread *t = &ppx_thread;
    bool recorded = false;
    if (t->guard == 0) {
        t->guard++;
        struct ppx_cpu_thread *c = self_state();
        if (c != NULL && !ppx_unwind_signal_unsafe(ucontext)) {
            ppx_cpu_in_handler++;
            atomic_signal_fence(memory_order_seq_cst);
            unsigned depth = 1;
            if (PPX_LIKELY(ppx_stack_room()))
                depth = ppx_unwind_signal(c->pcs, ppx_config.max_depth, ucontext);
            else /* the leaf alone (wire.h: interrupted pc + 1) */
                c->pcs[0] = (uintptr_t)((const ucontext_t *)ucontext)->uc_mcontext.gregs[REG_RIP] + 1;
            atomic_signal_fence(memory_order_seq_cst);
            ppx_cpu_in_handler--;
            recorded = depth != 0 && ring_put(c, c->pcs, depth, weight);
        }
        t->guard--;
    }
    if (!recorded)
        atomic_fetch_add_explicit(&lost_ticks, weight, memory_order_relaxed);
    errno = saved_errno;
}

/* ---- timers ---- */

/* The CPU-time clock of thread tid, as the kernel's MAKE_THREAD_CPUCLOCK
 * (CPUCLOCK_SCHED | CPUCLOCK_PERTHREAD): what CLOCK_THREAD_CPUTIME_ID is
 * for the calling thread, usable from another thread of the process. */
static clockid_t thread_cpu_clock(pid_t tid)
{
    return (clockid_t)((~(unsigned)tid << 3) | 6u);
}

/* ---- the per-user limit of queued signals ----
 *
 * Each POSIX timer holds one queued-signal slot for its whole life, counted
 * against the user's RLIMIT_SIGPENDING (`ulimit -i`), which every process
 * of the user shares: the program's own timer_create, sigqueue and queued
 * real-time signals fail with EAGAIN once it is used up. ppx takes at most
 * half of what the user's other timers and signals leave: a thread that
 * would need more goes unsampled (said once). The count and limit
 * are read from /proc/self/status (SigQ: used/limit); a budget drawn from
 * the last reading spares most thread starts the read. */

#define SIGQ_BUDGET_MAX 1024u

static uint64_t live_timers;       /* under cpu_mu: ours, in this process */
static uint64_t sigq_budget;       /* under cpu_mu: timers allowed before the next reading */
static char status_buf[8192];      /* under cpu_mu */

static bool parse_u64_at(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    if (s == end || *s < '0' || *s > '9')
        return false;
    for (; s < end && *s >= '0' && *s <= '9'; s++)
        x = x * 10 + (uint64_t)(*s - '0');
    *p = s;
    *v = x;
    return true;
}

/* Under cpu_mu: SigQ of /proc/self/status, without malloc or stdio. */
static bool read_sigq(uint64_t *used, uint64_t *limit)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t len = 0;
    ssize_t n;
    while (len < sizeof status_buf &&
           (n = (ssize_t)syscall(SYS_read, fd, status_buf + len, sizeof status_buf - len)) > 0)
        len += (size_t)n;
    syscall(SYS_close, fd);
    static const char key[] = "\nSigQ:";
    const char *at = memmem(status_buf, len, key, sizeof key - 1);
    if (at == NULL)
        return false;
    const char *p = at + sizeof key - 1, *end = status_buf + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (!parse_u64_at(&p, end, used) || p == end || *p++ != '/')
        return false;
    return parse_u64_at(&p, end, limit);
}

/* Under cpu_mu: whether one more timer keeps ours within half of what the
 * user's other queued signals leave. Unreadable: yes, as the kernel
 * decides then. */
static bool sigqueue_room(void)
{
    if (sigq_budget > 0) {
        sigq_budget--;
        return true;
    }
    uint64_t used, limit;
    int saved_errno = errno;
    bool known = read_sigq(&used, &limit);
    errno = saved_errno;
    if (!known)
        return true;
    uint64_t others = used > live_timers ? used - live_timers : 0;
    uint64_t share = limit > others ? (limit - others) / 2 : 0;
    if (live_timers + 1 > share)
        return false;
    /* the next quarter of what is left without reading again */
    sigq_budget = (share - live_timers - 1) / 4;
    if (sigq_budget > SIGQ_BUDGET_MAX)
        sigq_budget = SIGQ_BUDGET_MAX;
    return true;
}

static void note_sigqueue_full(void)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    ppx_log_once(&said, "the user's queued-signal limit (ulimit -i) is half used up by CPU timers",
                 "; more threads are not in the CPU profile, and the program keeps the rest", NULL,
                 NULL);
}

/* Under cpu_mu. false with errno 0: refused by the rule above. */
static bool start_timer(struct ppx_cpu_thread *c)
{
    if (c->timer_live)
        return true;
    if (!sigqueue_room()) {
        note_sigqueue_full();
        errno = 0;
        return false;
    }
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGPROF;
    ev.sigev_value.sival_ptr = &timer_cookie;
    ev.sigev_notify_thread_id = c->tid;
    timer_t id;
    if (timer_create(thread_cpu_clock(c->tid), &ev, &id) != 0)
        return false;
    if (c->rng == 0)
        c->rng = ppx_random_seed(c);
    /* A random first expiry, so that threads started together do not tick
     * in step, and short threads are sampled without bias. */
    uint64_t first = 1 + ppx_random_next(&c->rng) % period_ns;
    struct itimerspec its = {
        .it_interval = {(time_t)(period_ns / 1000000000u), (long)(period_ns % 1000000000u)},
        .it_value = {(time_t)(first / 1000000000u), (long)(first % 1000000000u)},
    };
    if (timer_settime(id, 0, &its, NULL) != 0) {
        timer_delete(id);
        return false;
    }
    c->timer = id;
    c->timer_live = true;
    live_timers++;
    return true;
}

/* Under cpu_mu. */
static void stop_timer(struct ppx_cpu_thread *c)
{
    if (!c->timer_live)
        return;
    timer_delete(c->timer);
    c->timer_live = false;
    live_timers--;
}

static void stop_all_timers(void)
{
    for (struct ppx_cpu_thread *c = atomic_load_explicit(&all_states, memory_order_acquire);
         c != NULL; c = c->all_next)
        stop_timer(c);
}

bool ppx_cpu_give_back_timer(void)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    if (!atomic_load_explicit(&configured, memory_order_acquire))
        return false;
    struct ppx_thread *t = &ppx_thread;
    int saved_errno = errno;
    t->guard++;
    bool gave = false;
    pthread_mutex_lock(&cpu_mu);
    for (struct ppx_cpu_thread *c = atomic_load_explicit(&all_states, memory_order_acquire);
         c != NULL && !gave; c = c->all_next) {
        if (c->timer_live) {
            stop_timer(c);
            gave = true;
        }
    }
    sigq_budget = 0; /* the next thread start reads the count again */
    pthread_mutex_unlock(&cpu_mu);
    t->guard--;
    errno = saved_errno;
    if (gave)
        ppx_log_once(&said, "the program needs the queued-signal slots (ulimit -i) of ppx's CPU timers",
                     ": given back, some threads are no longer in the CPU profile", NULL, NULL);
    return gave;
}

static void note_timer_failure(int err)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    ppx_log_once(&said, "cannot start a CPU timer: ", strerror(err),
                 "; some threads are not in the CPU profile", NULL);
}

/* ---- thread states ---- */

/* Where libc's signal-mask calls lie: the next definitions (ours of
 * sigprocmask only passes through), their sizes from the dynamic symbol
 * table. */
static void find_mask_fns(void)
{
    static const char *const names[N_MASK_FNS] = {"pthread_sigmask", "sigprocmask"};
    for (unsigned i = 0; i < N_MASK_FNS; i++) {
        void *fn = dlsym(RTLD_NEXT, names[i]);
        Dl_info info;
        const ElfW(Sym) *sym = NULL;
        if (fn == NULL || dladdr1(fn, &info, (void **)&sym, RTLD_DL_SYMENT) == 0 || sym == NULL)
            continue;
        mask_fns[i].lo = (uintptr_t)fn;
        mask_fns[i].hi = (uintptr_t)fn + (sym->st_size != 0 ? sym->st_size : 1);
    }
}

/* Under cpu_mu. */
static void set_period(uint32_t hz)
{
    period_ns = 1000000000u / hz;
    atomic_store_explicit(&unblock_weight, 2 + hz / 100, memory_order_relaxed);
    atomic_store_explicit(&batch_hz, hz, memory_order_relaxed);
}

/* SIGPROF is the program's: said once, and only to someone who asked for
 * a CPU profile (PPX_CPU_HZ, or a collector). */
static void say_no_cpu_profile(void)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    ppx_log_once(&said, "the program has its own SIGPROF handler: no CPU profile", NULL, NULL,
                 NULL);
}

void ppx_cpu_init(void)
{
    bool on_demand = !ppx_config.cpu_hz_fixed;
    if ((!on_demand && ppx_config.cpu_hz == 0) || atomic_load(&configured) ||
        atomic_load(&stopped))
        return;
    /* On demand, the rings are sized for the default rate: a faster one
     * asked for may count ticks lost. */
    uint32_t ring_hz = on_demand ? PPX_DEFAULT_CPU_HZ : ppx_config.cpu_hz;
    set_period(ring_hz);
    find_mask_fns();
    uint64_t per_flush = (uint64_t)ring_hz * ppx_config.flush_ms / 1000u + 1;
    uint64_t want = RING_FLUSHES * per_flush * (1 + ppx_config.max_depth);
    ring_words = RING_MIN_WORDS;
    while (ring_words < want && ring_words < RING_MAX_WORDS)
        ring_words <<= 1;
    ppx_unwind_signal_init();
    memset(&our_action, 0, sizeof our_action);
    our_action.sa_sigaction = on_sigprof;
    our_action.sa_flags = SA_SIGINFO | SA_RESTART;
    /* Other signals wait until the tick is recorded, except those that
     * report a fault: a crash inside the handler must still reach the
     * program's handlers and the debugger. */
    sigfillset(&our_action.sa_mask);
    sigdelset(&our_action.sa_mask, SIGSEGV);
    sigdelset(&our_action.sa_mask, SIGBUS);
    sigdelset(&our_action.sa_mask, SIGILL);
    sigdelset(&our_action.sa_mask, SIGFPE);
    sigdelset(&our_action.sa_mask, SIGTRAP);
    if (!ppx_sigprof_install(&our_action)) {
        atomic_store(&stopped, true);
        if (!on_demand) /* else said if a collector ever asks */
            say_no_cpu_profile();
        return;
    }
    pthread_mutex_lock(&cpu_mu);
    sampling_hz = ppx_config.cpu_hz;
    running = sampling_hz != 0;
    pthread_mutex_unlock(&cpu_mu);
    atomic_store(&configured, true);
}

/* Under cpu_mu. */
static void start_active_timers(void)
{
    for (struct ppx_cpu_thread *c = atomic_load_explicit(&all_states, memory_order_acquire);
         c != NULL; c = c->all_next)
        if (atomic_load_explicit(&c->status, memory_order_acquire) == CPU_ACTIVE &&
            !start_timer(c) && errno != EINVAL && errno != 0) /* EINVAL: a thread that just ended */
            note_timer_failure(errno);
}

void ppx_cpu_set_rate(uint32_t hz)
{
    if (hz != 0 && !ppx_config.cpu_hz_fixed && atomic_load(&stopped))
        say_no_cpu_profile();
    if (ppx_config.cpu_hz_fixed || hz > WIRE_MAX_CPU_HZ ||
        !atomic_load_explicit(&configured, memory_order_acquire))
        return;
    pthread_mutex_lock(&cpu_mu);
    if (!atomic_load(&stopped) && !exec_paused && hz != sampling_hz) {
        stop_all_timers();
        sampling_hz = hz;
        running = hz != 0;
        if (running) {
            set_period(hz);
            start_active_timers();
        }
    }
    pthread_mutex_unlock(&cpu_mu);
}

uint32_t ppx_cpu_sample_hz(void)
{
    return atomic_load_explicit(&batch_hz, memory_order_relaxed);
}

/* Under cpu_mu: a state with a fresh ring, not yet in use. */
static struct ppx_cpu_thread *state_get(void)
{
    struct ppx_cpu_thread *c = free_states;
    if (c != NULL) {
        free_states = c->free_next;
    } else {
        c = ppx_arena_alloc(sizeof *c, PPX_CACHELINE);
        if (c == NULL)
            return NULL;
        struct ppx_cpu_thread *head = atomic_load_explicit(&all_states, memory_order_relaxed);
        do {
            c->all_next = head;
        } while (!atomic_compare_exchange_weak_explicit(&all_states, &head, c,
                                                        memory_order_release,
                                                        memory_order_relaxed));
    }
    c->ring = ppx_pages_alloc(ring_words * sizeof *c->ring);
    if (c->ring == NULL) {
        c->free_next = free_states;
        free_states = c;
        return NULL;
    }
    c->mask = ring_words - 1;
    atomic_store_explicit(&c->head, 0, memory_order_relaxed);
    atomic_store_explicit(&c->tail, 0, memory_order_relaxed);
    return c;
}

/* Under cpu_mu: back to the free list; its ring goes. */
static void state_put(struct ppx_cpu_thread *c)
{
    atomic_fetch_add_explicit(&c->seq, 1, memory_order_release);
    atomic_store_explicit(&c->status, CPU_FREE, memory_order_release);
    if (c->ring != NULL)
        ppx_pages_free(c->ring, (c->mask + 1) * sizeof *c->ring);
    c->ring = NULL;
    c->rec = NULL;
    c->free_next = free_states;
    free_states = c;
}

static bool publish_remote(struct ppx_cpu_thread *c)
{
    for (unsigned i = 0; i < MAX_REMOTE; i++) {
        struct ppx_cpu_thread *none = NULL;
        if (atomic_compare_exchange_strong_explicit(&remote_states[i], &none, c,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            atomic_fetch_add_explicit(&n_remote, 1, memory_order_release);
            return true;
        }
    }
    return false;
}

static void unpublish_remote(struct ppx_cpu_thread *c)
{
    for (unsigned i = 0; i < MAX_REMOTE; i++) {
        struct ppx_cpu_thread *expected = c;
        if (atomic_compare_exchange_strong_explicit(&remote_states[i], &expected, NULL,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            atomic_fetch_sub_explicit(&n_remote, 1, memory_order_release);
            return;
        }
    }
}

void ppx_cpu_thread_started(struct ppx_thread_rec *r)
{
    if (r == NULL || !atomic_load_explicit(&configured, memory_order_acquire) ||
        atomic_load(&stopped) || atomic_load_explicit(&r->cpu, memory_order_acquire) != NULL)
        return;
    struct ppx_thread *t = &ppx_thread;
    int saved_errno = errno;
    t->guard++;
    bool remote = r->tid != current_tid();
    int err = 0;
    pthread_mutex_lock(&cpu_mu);
    struct ppx_cpu_thread *c = atomic_load(&stopped) ? NULL : state_get();
    if (c != NULL) {
        c->tid = r->tid;
        c->rec = r;
        c->remote = remote;
        /* While exec is under way the state waits without a timer; a failed
         * exec starts it with the others. */
        if (running && !start_timer(c)) {
            err = errno;
            state_put(c);
            c = NULL;
        }
    }
    if (c != NULL) {
        unsigned seq = atomic_load_explicit(&c->seq, memory_order_relaxed);
        atomic_store_explicit(&c->status, CPU_ACTIVE, memory_order_release);
        if (remote && !publish_remote(c))
            err = EAGAIN; /* never found by its handler: its ticks count lost */
        atomic_store_explicit(&r->cpu, c, memory_order_release);
        if (!remote) {
            cpu_self_seq = seq;
            cpu_self = c;
        }
    }
    pthread_mutex_unlock(&cpu_mu);
    if (err != 0)
        note_timer_failure(err);
    t->guard--;
    errno = saved_errno;
}

void ppx_cpu_thread_ended(struct ppx_thread_rec *r)
{
    if (r == NULL)
        return;
    struct ppx_cpu_thread *c = atomic_exchange_explicit(&r->cpu, NULL, memory_order_acq_rel);
    if (c == NULL)
        return;
    struct ppx_thread *t = &ppx_thread;
    int saved_errno = errno;
    t->guard++;
    if (cpu_self == c) {
        cpu_self = NULL;
        atomic_signal_fence(memory_order_seq_cst);
    }
    pthread_mutex_lock(&cpu_mu);
    stop_timer(c);
    if (c->remote)
        unpublish_remote(c);
    /* the flusher drains what is left, then recycles it */
    atomic_store_explicit(&c->status, CPU_ENDED, memory_order_release);
    pthread_mutex_unlock(&cpu_mu);
    t->guard--;
    errno = saved_errno;
}

void ppx_cpu_sigprof_taken(void)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    bool first = atomic_load(&configured) && !atomic_exchange(&stopped, true);
    struct ppx_thread *t = &ppx_thread;
    int saved_errno = errno;
    t->guard++;
    pthread_mutex_lock(&cpu_mu);
    /* Nothing stops if no timer ran (on demand, and nobody asked): silence. */
    bool was_sampling = first && (running || exec_paused);
    running = false;
    stop_all_timers();
    pthread_mutex_unlock(&cpu_mu);
    t->guard--;
    errno = saved_errno;
    if (was_sampling)
        ppx_log_once(&said, "the program installs its own SIGPROF handler: CPU profiling stops",
                     " (the samples so far are kept)", NULL, NULL);
}

/* ---- exec ---- */

void ppx_cpu_before_exec(void)
{
    /* Not in a vfork child: it has no timers, and shares our memory. */
    if (!atomic_load(&configured) || atomic_load(&stopped) || getpid() != ppx_pid)
        return;
    struct ppx_thread *t = &ppx_thread;
    int saved_errno = errno;
    t->guard++;
    pthread_mutex_lock(&cpu_mu);
    if (running) {
        running = false;
        exec_paused = true;
        stop_all_timers();
        /* Ticks already queued would reach the new image, where SIGPROF
         * terminates: discard them. */
        ppx_sigprof_hand_back();
    }
    pthread_mutex_unlock(&cpu_mu);
    t->guard--;
    errno = saved_errno;
}

void ppx_cpu_after_exec_failed(void)
{
    if (!atomic_load(&configured) || getpid() != ppx_pid)
        return;
    struct ppx_thread *t = &ppx_thread;
    int saved_errno = errno;
    t->guard++;
    pthread_mutex_lock(&cpu_mu);
    if (exec_paused && !atomic_load(&stopped)) {
        exec_paused = false;
        running = true;
        ppx_sigprof_take_back(&our_action);
        for (struct ppx_cpu_thread *c = atomic_load_explicit(&all_states, memory_order_acquire);
             c != NULL; c = c->all_next)
            if (atomic_load_explicit(&c->status, memory_order_acquire) == CPU_ACTIVE)
                start_timer(c); /* a thread that just ended: EINVAL, no timer */
    }
    pthread_mutex_unlock(&cpu_mu);
    t->guard--;
    errno = saved_errno;
}

/* ---- fork ---- */

/* The child has only the forking thread, and no timers. Every state goes
 * back to the free list, except one already started in the child (the
 * thread registry may have restarted the forking thread first). */
void ppx_cpu_reset_child(void)
{
    pthread_mutex_init(&cpu_mu, NULL);
    pid_t self = current_tid();
    free_states = NULL;
    for (unsigned i = 0; i < MAX_REMOTE; i++)
        atomic_store_explicit(&remote_states[i], NULL, memory_order_relaxed);
    atomic_store_explicit(&n_remote, 0, memory_order_relaxed);
    for (struct ppx_cpu_thread *c = atomic_load_explicit(&all_states, memory_order_acquire);
         c != NULL; c = c->all_next) {
        int status = atomic_load_explicit(&c->status, memory_order_relaxed);
        if (status != CPU_FREE && c->tid == self && c->timer_live)
            continue;
        c->timer_live = false; /* timers are not inherited */
        if (status == CPU_FREE) {
            c->free_next = free_states;
            free_states = c;
        } else {
            if (c->rec != NULL)
                atomic_store_explicit(&c->rec->cpu, NULL, memory_order_relaxed);
            state_put(c);
        }
    }
    if (cpu_self != NULL && cpu_self->tid != self)
        cpu_self = NULL;
    if (!ppx_config.cpu_hz_fixed) {
        /* a collector asked the parent, not this new process */
        for (struct ppx_cpu_thread *c = atomic_load_explicit(&all_states, memory_order_acquire);
             c != NULL; c = c->all_next)
            stop_timer(c);
        sampling_hz = 0;
    }
    running = !atomic_load(&stopped) && sampling_hz != 0;
    exec_paused = false;
    live_timers = 0;
    for (struct ppx_cpu_thread *c = atomic_load_explicit(&all_states, memory_order_acquire);
         c != NULL; c = c->all_next)
        live_timers += c->timer_live;
    sigq_budget = 0;
    atomic_store_explicit(&lost_ticks, 0, memory_order_relaxed);
    /* the flusher's table: the parent's figures and thread ids mean nothing here */
    for (uint32_t i = 0; i < table.n; i++) {
        struct cpu_entry *e = &table.chunks[i >> ENTRY_CHUNK_BITS][i & (ENTRY_CHUNK - 1)];
        memset(e, 0, sizeof *e);
    }
    table.n = 0;
    if (table.slots != NULL)
        memset(table.slots, 0, (table.slot_mask + 1) * sizeof *table.slots);
    table.n_pending = 0;
    table.sent_generation = 0;
    table.lost = 0;
    table.sent_lost = 0;
}

/* ---- the flusher: draining and counting ---- */

static inline struct cpu_entry *entry_at(uint32_t i)
{
    return &table.chunks[i >> ENTRY_CHUNK_BITS][i & (ENTRY_CHUNK - 1)];
}

static inline uint64_t entry_key(uint32_t stack_id, uint32_t thread_id)
{
    return (uint64_t)stack_id << 32 | thread_id;
}

static void slots_insert(uint32_t *slots, size_t mask, uint32_t index)
{
    const struct cpu_entry *e = entry_at(index);
    size_t i = ppx_mix64(entry_key(e->stack_id, e->thread_id)) & mask;
    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = index + 1;
}

static bool slots_grow(void)
{
    size_t cap = table.slots == NULL ? 4096 : 2 * (table.slot_mask + 1);
    uint32_t *slots = ppx_pages_alloc(cap * sizeof *slots);
    if (slots == NULL)
        return false;
    for (uint32_t i = 0; i < table.n; i++)
        slots_insert(slots, cap - 1, i);
    if (table.slots != NULL)
        ppx_pages_free(table.slots, (table.slot_mask + 1) * sizeof *table.slots);
    table.slots = slots;
    table.slot_mask = cap - 1;
    return true;
}

static bool pending_push(uint32_t index)
{
    if (table.n_pending == table.cap_pending) {
        size_t cap = table.cap_pending == 0 ? 4096 : 2 * table.cap_pending;
        uint32_t *grown = ppx_pages_alloc(cap * sizeof *grown);
        if (grown == NULL)
            return false;
        if (table.pending != NULL) {
            memcpy(grown, table.pending, table.n_pending * sizeof *grown);
            ppx_pages_free(table.pending, table.cap_pending * sizeof *grown);
        }
        table.pending = grown;
        table.cap_pending = cap;
    }
    table.pending[table.n_pending++] = index;
    entry_at(index)->pending = true;
    return true;
}

/* The index of (s, r)'s entry, created if new; UINT32_MAX when out of room. */
static uint32_t entry_find(struct ppx_stack *s, struct ppx_thread_rec *r)
{
    if ((table.n + 1) * 2 > table.slot_mask + 1 && !slots_grow())
        return UINT32_MAX;
    uint64_t key = entry_key(s->id, r->id);
    size_t i = ppx_mix64(key) & table.slot_mask;
    for (; table.slots[i] != 0; i = (i + 1) & table.slot_mask) {
        const struct cpu_entry *e = entry_at(table.slots[i] - 1);
        if (entry_key(e->stack_id, e->thread_id) == key)
            return table.slots[i] - 1;
    }
    uint32_t index = table.n;
    if (index >= MAX_ENTRIES)
        return UINT32_MAX;
    struct cpu_entry **chunk = &table.chunks[index >> ENTRY_CHUNK_BITS];
    if (*chunk == NULL && (*chunk = ppx_pages_alloc(ENTRY_CHUNK * sizeof **chunk)) == NULL)
        return UINT32_MAX;
    *entry_at(index) = (struct cpu_entry){.stack_id = s->id, .thread_id = r->id, .stack = s,
                                          .rec = r};
    table.n++;
    table.slots[i] = index + 1;
    return index;
}

static void count_sample(struct ppx_thread_rec *r, unsigned depth, uint64_t weight)
{
    struct ppx_stack *s = ppx_stack_intern(&ppx_thread, table.pcs, depth);
    uint32_t index = s != NULL ? entry_find(s, r) : UINT32_MAX;
    if (index == UINT32_MAX || (!entry_at(index)->pending && !pending_push(index))) {
        table.lost += weight;
        return;
    }
    entry_at(index)->samples += weight;
}

/* Everything the ring holds now. */
static void drain(struct ppx_cpu_thread *c)
{
    uint64_t head = atomic_load_explicit(&c->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
    const uint64_t *ring = c->ring;
    while (tail != head) {
        uint64_t word = ring[tail & c->mask];
        unsigned depth = (unsigned)(word & 0xffffffffu);
        uint64_t weight = word >> 32;
        if (depth == 0 || depth > WIRE_MAX_DEPTH || weight == 0 || depth + 1 > head - tail) {
            tail = head; /* cannot happen; never read past what was written */
            break;
        }
        for (unsigned i = 0; i < depth; i++)
            table.pcs[i] = (uintptr_t)ring[(tail + 1 + i) & c->mask];
        tail += 1 + depth;
        count_sample(c->rec, depth, weight);
    }
    atomic_store_explicit(&c->tail, tail, memory_order_release);
}

/* A thread started from elsewhere (found at start) ends without telling
 * us when it never called a thread hook: its CPU clock is gone. */
static int check_remote_gone(struct ppx_cpu_thread *c)
{
    struct timespec ts;
    if (clock_gettime(thread_cpu_clock(c->tid), &ts) == 0 || errno != EINVAL)
        return CPU_ACTIVE;
    struct ppx_thread_rec *r = c->rec;
    struct ppx_cpu_thread *expected = c;
    if (atomic_compare_exchange_strong(&r->cpu, &expected, NULL)) {
        pthread_mutex_lock(&cpu_mu);
        stop_timer(c);
        unpublish_remote(c);
        atomic_store_explicit(&c->status, CPU_ENDED, memory_order_release);
        pthread_mutex_unlock(&cpu_mu);
    }
    return atomic_load_explicit(&c->status, memory_order_acquire);
}

static void drain_all(void)
{
    for (struct ppx_cpu_thread *c = atomic_load_explicit(&all_states, memory_order_acquire);
         c != NULL; c = c->all_next) {
        int status = atomic_load_explicit(&c->status, memory_order_acquire);
        if (status == CPU_FREE || c->rec == NULL)
            continue;
        if (status == CPU_ACTIVE && c->remote)
            status = check_remote_gone(c);
        drain(c);
        if (status == CPU_ENDED) {
            pthread_mutex_lock(&cpu_mu);
            state_put(c);
            pthread_mutex_unlock(&cpu_mu);
        }
    }
}

/* ---- the flusher: sending ---- */

static bool tables_ready(void)
{
    if (table.out == NULL)
        table.out = ppx_pages_alloc(SEND_ENTRIES * sizeof *table.out);
    return table.out != NULL;
}

/* A fresh connection: every pair again, from zero. */
static void resend_all(uint64_t gen)
{
    table.n_pending = 0;
    for (uint32_t i = 0; i < table.n; i++) {
        struct cpu_entry *e = entry_at(i);
        e->sent_samples = 0;
        e->pending = false;
        if (e->samples != 0 && !pending_push(i))
            break; /* no memory: the rest waits for the next connection */
    }
    table.sent_lost = 0;
    table.sent_generation = gen;
}

static bool emit_batch(struct ppx_encoder *enc, size_t n, uint64_t lost)
{
    uint32_t hz = ppx_cpu_sample_hz();
    struct wire_cpu_samples h = {(uint32_t)n, hz != 0 ? hz : PPX_DEFAULT_CPU_HZ, lost};
    return ppx_emit(enc, WIRE_CPU_SAMPLES, &h, sizeof h, table.out, n * sizeof *table.out, NULL,
                    0);
}

bool ppx_cpu_send(struct ppx_encoder *enc, uint64_t gen)
{
    if (!atomic_load_explicit(&configured, memory_order_acquire) || !tables_ready())
        return true;
    drain_all();
    if (table.sent_generation != gen)
        resend_all(gen);
    uint64_t lost_now = atomic_load_explicit(&lost_ticks, memory_order_relaxed) + table.lost;
    uint64_t lost = lost_now - table.sent_lost;
    size_t n = 0, kept = 0;
    for (size_t i = 0; i < table.n_pending; i++) {
        uint32_t index = table.pending[i];
        struct cpu_entry *e = entry_at(index);
        /* The thread's THREAD record is not out on this connection yet
         * (registered after threads.c's part of this flush): next time. */
        if (e->rec->sent_generation != gen) {
            table.pending[kept++] = index;
            continue;
        }
        e->pending = false;
        if (e->samples == e->sent_samples)
            continue;
        if (!ppx_stream_send_stack(enc, e->stack))
            return false;
        table.out[n++] = (struct wire_cpu_entry){
            .stack_id = e->stack_id, .thread_id = e->thread_id,
            .samples = e->samples - e->sent_samples};
        e->sent_samples = e->samples;
        if (n == SEND_ENTRIES) {
            if (!emit_batch(enc, n, lost))
                return false;
            n = 0;
            lost = 0;
        }
    }
    table.n_pending = kept;
    if (n != 0 || lost != 0) {
        if (!emit_batch(enc, n, lost))
            return false;
    }
    table.sent_lost = lost_now;
    return true;
}
