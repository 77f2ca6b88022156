/* The SIGPROF handler: a tick of a thread's CPU timer becomes a stack in
 * that thread's ring. Async-signal-safe: no malloc, no stdio, never waits
 * for a lock (libunwind's only one, the loader's, is try-locked:
 * stack/loader_lock.c). Why each tick weighs what it does, and when one is
 * dropped: doc/preload.md, "CPU profiles". */
#include "cpu.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_WEIGHT (1u << 20) /* periods one tick may stand for: a sanity bound */

char ppx_cpu_timer_cookie;
/* Ticks dropped or lost: the handlers add, the flusher reads. */
_Atomic uint64_t ppx_cpu_lost_ticks;

/* Samplers of threads started from the flusher, found by tid: published
 * and withdrawn under cpu_mu, read by the handlers without a lock. */
static _Atomic(struct ppx_cpu_sampler *) remote_states[MAX_REMOTE];
static atomic_uint n_remote;

/* The calling thread's sampler, and its sequence number when cached. */
static PPX_TLS struct ppx_cpu_sampler *cpu_self;
static PPX_TLS unsigned cpu_self_seq;

static _Atomic uint64_t unblock_weight; /* periods a tick unblocked in sigprocmask may stand for */
/* libc's pthread_sigmask and sigprocmask, [lo, hi): written once at init */
#define N_MASK_FNS 2u
static struct {
    uintptr_t lo, hi;
} mask_fns[N_MASK_FNS];

/* A thread started from the flusher: its state, found by tid (once; then
 * cached in the thread-local pointer). */
static struct ppx_cpu_sampler *find_remote(void)
{
    if (atomic_load_explicit(&n_remote, memory_order_acquire) == 0)
        return NULL;
    pid_t tid = ppx_gettid();
    for (unsigned i = 0; i < MAX_REMOTE; i++) {
        struct ppx_cpu_sampler *c = atomic_load_explicit(&remote_states[i], memory_order_acquire);
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

static struct ppx_cpu_sampler *self_state(void)
{
    struct ppx_cpu_sampler *c = cpu_self;
    if (c != NULL && atomic_load_explicit(&c->seq, memory_order_acquire) == cpu_self_seq)
        return c;
    cpu_self = NULL;
    return find_remote();
}

/* The flusher's wake-up pipe (flush/wake.c), or -1: a ring half full
 * asks for a flush at once, so that the flusher may sleep a second while
 * the ticks come slowly. Set by the flusher; read by the handlers. */
static _Atomic int waker_fd = -1;
static struct ppx_fd_identity waker_id;

void ppx_cpu_set_waker(int fd, const struct ppx_fd_identity *id)
{
    atomic_store_explicit(&waker_fd, -1, memory_order_release);
    if (fd < 0)
        return;
    waker_id = *id;
    atomic_store_explicit(&waker_fd, fd, memory_order_release);
}

/* One byte into the pipe, if that descriptor is still the pipe (a program
 * may close every descriptor and open a file at that number). */
static void wake_flusher(void)
{
    int fd = atomic_load_explicit(&waker_fd, memory_order_acquire);
    if (!ppx_fd_is(fd, &waker_id))
        return;
    char b = 1;
    ssize_t n = write(fd, &b, 1); /* non-blocking: a full pipe has its byte already */
    (void)n;
}

static bool ring_put(struct ppx_cpu_sampler *c, const uintptr_t *pcs, unsigned depth,
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
    uint64_t half = (c->mask + 1) / 2;
    if (head - tail < half && head + need - tail >= half)
        wake_flusher();
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

/* Sent by someone (kill, tgkill, sigqueue) or by the program's own
 * ITIMER_PROF (SI_KERNEL): the program's action applies. A timer signal
 * that is not our current one may be a stale tick of ours (one queued
 * before an exec): never fatal. */
static void not_our_tick(const siginfo_t *si)
{
    if (si != NULL && (si->si_code == SI_USER || si->si_code == SI_TKILL ||
                       si->si_code == SI_QUEUE || si->si_code == SI_KERNEL)) {
        int saved_errno = errno;
        ppx_sigprof_foreign();
        errno = saved_errno;
    }
}

/* The periods the tick stands for (doc/preload.md), capped; what goes
 * over the cap is counted lost. */
static uint64_t tick_weight(const siginfo_t *si, const void *ucontext)
{
    uint64_t weight = 1 + (si->si_overrun > 0 ? (uint64_t)si->si_overrun : 0);
    uint64_t cap = unblocked_here(ucontext)
                       ? atomic_load_explicit(&unblock_weight, memory_order_relaxed)
                       : MAX_WEIGHT;
    if (weight > cap) {
        atomic_fetch_add_explicit(&ppx_cpu_lost_ticks, weight - cap, memory_order_relaxed);
        weight = cap;
    }
    return weight;
}

/* Walks the interrupted stack into the thread's ring (guard held); false
 * when the tick is dropped. */
static inline bool record_tick(const void *ucontext, uint64_t weight)
{
    struct ppx_cpu_sampler *c = self_state();
    if (c == NULL || ppx_unwind_signal_unsafe(ucontext))
        return false;
    ppx_in_signal_walk++;
    atomic_signal_fence(memory_order_seq_cst);
    unsigned depth = 1;
    if (PPX_LIKELY(ppx_stack_room()))
        depth = ppx_unwind_signal(c->pcs, ppx_config.max_depth, ucontext);
    else /* the leaf alone (wire.h: interrupted pc + 1) */
        c->pcs[0] = (uintptr_t)((const ucontext_t *)ucontext)->uc_mcontext.gregs[REG_RIP] + 1;
    atomic_signal_fence(memory_order_seq_cst);
    ppx_in_signal_walk--;
    return depth != 0 && ring_put(c, c->pcs, depth, weight);
}

void ppx_cpu_on_sigprof(int sig, siginfo_t *si, void *ucontext)
{
    (void)sig;
    if (si != NULL && si->si_code == SI_QUEUE && si->si_pid == ppx_pid &&
        ppx_task_dump_signal(si->si_value.sival_ptr, ucontext))
        return;
    if (si == NULL || si->si_code != SI_TIMER || si->si_value.sival_ptr != &ppx_cpu_timer_cookie) {
        not_our_tick(si);
        return;
    }
    int saved_errno = errno;
    uint64_t weight = tick_weight(si, ucontext);
    struct ppx_tls *t = &ppx_tls;
    bool recorded = false;
    if (t->guard == 0) {
        t->guard++;
        recorded = record_tick(ucontext, weight);
        t->guard--;
    }
    if (!recorded)
        atomic_fetch_add_explicit(&ppx_cpu_lost_ticks, weight, memory_order_relaxed);
    errno = saved_errno;
}

/* Where libc's signal-mask calls lie: the next definitions (ours of
 * sigprocmask only passes through), their sizes from the dynamic symbol
 * table. */
void ppx_cpu_handler_init(void)
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

void ppx_cpu_handler_set_rate(uint32_t hz)
{
    atomic_store_explicit(&unblock_weight, 2 + hz / 100, memory_order_relaxed);
}

bool ppx_cpu_publish_remote(struct ppx_cpu_sampler *c)
{
    ppx_cpu_check_locked();
    for (unsigned i = 0; i < MAX_REMOTE; i++) {
        struct ppx_cpu_sampler *none = NULL;
        if (atomic_compare_exchange_strong_explicit(&remote_states[i], &none, c,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            atomic_fetch_add_explicit(&n_remote, 1, memory_order_release);
            return true;
        }
    }
    return false;
}

void ppx_cpu_unpublish_remote(struct ppx_cpu_sampler *c)
{
    ppx_cpu_check_locked();
    for (unsigned i = 0; i < MAX_REMOTE; i++) {
        struct ppx_cpu_sampler *expected = c;
        if (atomic_compare_exchange_strong_explicit(&remote_states[i], &expected, NULL,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            atomic_fetch_sub_explicit(&n_remote, 1, memory_order_release);
            return;
        }
    }
}

void ppx_cpu_handler_adopt(struct ppx_cpu_sampler *c, unsigned seq)
{
    cpu_self_seq = seq;
    cpu_self = c;
}

void ppx_cpu_handler_forget(struct ppx_cpu_sampler *c)
{
    if (cpu_self == c) {
        cpu_self = NULL;
        atomic_signal_fence(memory_order_seq_cst);
    }
}

void ppx_cpu_handler_reset_child(pid_t self)
{
    for (unsigned i = 0; i < MAX_REMOTE; i++)
        atomic_store_explicit(&remote_states[i], NULL, memory_order_relaxed);
    atomic_store_explicit(&n_remote, 0, memory_order_relaxed);
    if (cpu_self != NULL && cpu_self->tid != self)
        cpu_self = NULL;
    atomic_store_explicit(&ppx_cpu_lost_ticks, 0, memory_order_relaxed);
}
