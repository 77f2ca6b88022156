/* CPU profiles: set-up, the sampling rate, and each thread's sampler
 * (its timer, cpu_timers.c, and its ring) started, ended and recycled,
 * across exec and fork. SIGPROF ticks become stacks in the thread's ring
 * (sigprof_handler.c), which the flusher drains into CPU_SAMPLES
 * (cpu_table.c). The design, and why: doc/preload.md, "CPU profiles". */
#include "cpu.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING_MIN_WORDS 1024u      /* 8 KiB */
#define RING_MAX_WORDS (1u << 17) /* 1 MiB */
#define RING_FLUSHES 2u           /* flush intervals of samples a ring holds */

static pthread_mutex_t cpu_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ppx_owner cpu_mu_owner; /* check builds: who holds cpu_mu */
static atomic_bool configured;      /* PPX_CPU_HZ > 0 or unset (on demand), our handler installed */
static atomic_bool stopped;         /* the program took SIGPROF: for good */
static bool running;                /* under cpu_mu: timers exist (false while exec is under way) */
static bool exec_paused;            /* under cpu_mu */
static uint32_t sampling_hz;        /* under cpu_mu: the timers' rate; 0: none */
static atomic_uint batch_hz;        /* the rate of the samples in the flusher's table */
static struct sigaction our_action; /* set once at init */
static uint64_t ring_words;         /* set once at init */

/* Every sampler ever made: a list that only grows at its head. */
static _Atomic(struct ppx_cpu_sampler *) all_states;
static struct ppx_cpu_sampler *free_states; /* under cpu_mu */

/* ---- the lock ---- */

void ppx_cpu_lock(void)
{
    pthread_mutex_lock(&cpu_mu);
    ppx_owner_take(&cpu_mu_owner);
}

void ppx_cpu_unlock(void)
{
    ppx_owner_drop(&cpu_mu_owner);
    pthread_mutex_unlock(&cpu_mu);
}

void ppx_cpu_check_locked(void)
{
    PPX_CHECK_OWNED(&cpu_mu_owner);
}

/* ---- set-up and rate ---- */

/* Under cpu_mu, or at init (before any timer exists). */
static void set_period(uint32_t hz)
{
    ppx_cpu_timers_set_period(1000000000u / hz);
    ppx_cpu_handler_set_rate(hz);
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

/* Rings big enough for RING_FLUSHES flush intervals of ticks at hz. */
static void size_rings(uint32_t hz)
{
    uint64_t per_flush = (uint64_t)hz * ppx_config.flush_ms / 1000u + 1;
    uint64_t want = RING_FLUSHES * per_flush * (1 + ppx_config.max_depth);
    ring_words = RING_MIN_WORDS;
    while (ring_words < want && ring_words < RING_MAX_WORDS)
        ring_words <<= 1;
}

/* Our SIGPROF action. Other signals wait until the tick is recorded,
 * except those that report a fault: a crash inside the handler must still
 * reach the program's handlers and the debugger. */
static void set_our_action(void)
{
    memset(&our_action, 0, sizeof our_action);
    our_action.sa_sigaction = ppx_cpu_on_sigprof;
    our_action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&our_action.sa_mask);
    sigdelset(&our_action.sa_mask, SIGSEGV);
    sigdelset(&our_action.sa_mask, SIGBUS);
    sigdelset(&our_action.sa_mask, SIGILL);
    sigdelset(&our_action.sa_mask, SIGFPE);
    sigdelset(&our_action.sa_mask, SIGTRAP);
}

void ppx_cpu_init(void)
{
    bool on_demand = !ppx_config.cpu_hz_fixed;
    if ((!on_demand && ppx_config.cpu_hz == 0) || atomic_load(&configured) || atomic_load(&stopped))
        return;
    /* On demand, the rings are sized for the default rate: a faster one
     * asked for may count ticks lost. */
    uint32_t ring_hz = on_demand ? PPX_DEFAULT_CPU_HZ : ppx_config.cpu_hz;
    set_period(ring_hz);
    ppx_cpu_handler_init();
    size_rings(ring_hz);
    ppx_unwind_signal_init();
    set_our_action();
    if (!ppx_sigprof_install(&our_action)) {
        atomic_store(&stopped, true);
        if (!on_demand) /* else said if a collector ever asks */
            say_no_cpu_profile();
        return;
    }
    ppx_cpu_lock();
    sampling_hz = ppx_config.cpu_hz;
    running = sampling_hz != 0;
    ppx_cpu_unlock();
    atomic_store(&configured, true);
}

void ppx_cpu_set_rate(uint32_t hz)
{
    if (hz != 0 && !ppx_config.cpu_hz_fixed && atomic_load(&stopped))
        say_no_cpu_profile();
    if (ppx_config.cpu_hz_fixed || hz > WIRE_MAX_CPU_HZ ||
        !atomic_load_explicit(&configured, memory_order_acquire))
        return;
    ppx_cpu_lock();
    if (!atomic_load(&stopped) && !exec_paused && hz != sampling_hz) {
        ppx_cpu_timers_stop_all();
        sampling_hz = hz;
        running = hz != 0;
        if (running) {
            set_period(hz);
            ppx_cpu_timers_start_active();
        }
    }
    ppx_cpu_unlock();
}

bool ppx_cpu_sampling(void)
{
    ppx_cpu_lock();
    bool on = running && sampling_hz != 0;
    ppx_cpu_unlock();
    return on;
}

uint32_t ppx_cpu_sample_hz(void)
{
    return atomic_load_explicit(&batch_hz, memory_order_relaxed);
}

/* A sampler with a fresh ring, not yet in use. */
static struct ppx_cpu_sampler *state_get(void)
{
    PPX_CHECK_OWNED(&cpu_mu_owner);
    struct ppx_cpu_sampler *c = free_states;
    if (c != NULL) {
        free_states = c->free_next;
    } else {
        c = ppx_arena_alloc(sizeof *c, PPX_CACHELINE);
        if (c == NULL)
            return NULL;
        struct ppx_cpu_sampler *head = atomic_load_explicit(&all_states, memory_order_relaxed);
        do {
            c->all_next = head;
        } while (!atomic_compare_exchange_weak_explicit(&all_states, &head, c, memory_order_release,
                                                        memory_order_relaxed));
    }
    PPX_CHECK(atomic_load_explicit(&c->status, memory_order_acquire) == CPU_FREE);
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

/* Back to the free list; its ring goes. */
static void state_put(struct ppx_cpu_sampler *c)
{
    PPX_CHECK_OWNED(&cpu_mu_owner);
    atomic_fetch_add_explicit(&c->seq, 1, memory_order_release);
    atomic_store_explicit(&c->status, CPU_FREE, memory_order_release);
    if (c->ring != NULL)
        ppx_pages_free(c->ring, (c->mask + 1) * sizeof *c->ring);
    c->ring = NULL;
    c->rec = NULL;
    c->free_next = free_states;
    free_states = c;
}

void ppx_cpu_thread_started(struct ppx_thread_record *r)
{
    if (r == NULL || !atomic_load_explicit(&configured, memory_order_acquire) ||
        atomic_load(&stopped) || atomic_load_explicit(&r->cpu, memory_order_acquire) != NULL)
        return;
    struct ppx_tls *t = &ppx_tls;
    int saved_errno = errno;
    t->guard++;
    bool remote = r->tid != ppx_gettid();
    int err = 0;
    ppx_cpu_lock();
    struct ppx_cpu_sampler *c = atomic_load(&stopped) ? NULL : state_get();
    if (c != NULL) {
        c->tid = r->tid;
        c->rec = r;
        c->remote = remote;
        /* While exec is under way the state waits without a timer; a failed
         * exec starts it with the others. */
        if (running && !ppx_cpu_timer_start(c)) {
            err = errno;
            state_put(c);
            c = NULL;
        }
    }
    if (c != NULL) {
        unsigned seq = atomic_load_explicit(&c->seq, memory_order_relaxed);
        atomic_store_explicit(&c->status, CPU_ACTIVE, memory_order_release);
        if (remote && !ppx_cpu_publish_remote(c))
            err = EAGAIN; /* never found by its handler: its ticks count lost */
        atomic_store_explicit(&r->cpu, c, memory_order_release);
        if (!remote)
            ppx_cpu_handler_adopt(c, seq);
    }
    ppx_cpu_unlock();
    if (err != 0)
        ppx_cpu_note_timer_failure(err);
    t->guard--;
    errno = saved_errno;
}

void ppx_cpu_thread_ended(struct ppx_thread_record *r)
{
    if (r == NULL)
        return;
    struct ppx_cpu_sampler *c = atomic_exchange_explicit(&r->cpu, NULL, memory_order_acq_rel);
    if (c == NULL)
        return;
    struct ppx_tls *t = &ppx_tls;
    int saved_errno = errno;
    t->guard++;
    ppx_cpu_handler_forget(c);
    ppx_cpu_lock();
    ppx_cpu_timer_stop(c);
    if (c->remote)
        ppx_cpu_unpublish_remote(c);
    /* the flusher drains what is left, then recycles it */
    atomic_store_explicit(&c->status, CPU_ENDED, memory_order_release);
    ppx_cpu_unlock();
    t->guard--;
    errno = saved_errno;
}

void ppx_cpu_sigprof_taken(void)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    bool first = atomic_load(&configured) && !atomic_exchange(&stopped, true);
    struct ppx_tls *t = &ppx_tls;
    int saved_errno = errno;
    t->guard++;
    ppx_cpu_lock();
    /* Nothing stops if no timer ran (on demand, and nobody asked): silence. */
    bool was_sampling = first && (running || exec_paused);
    running = false;
    ppx_cpu_timers_stop_all();
    ppx_cpu_unlock();
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
    struct ppx_tls *t = &ppx_tls;
    int saved_errno = errno;
    t->guard++;
    ppx_cpu_lock();
    if (running) {
        running = false;
        exec_paused = true;
        ppx_cpu_timers_stop_all();
        /* Ticks already queued would reach the new image, where SIGPROF
         * terminates: discard them. */
        ppx_sigprof_hand_back();
    }
    ppx_cpu_unlock();
    t->guard--;
    errno = saved_errno;
}

void ppx_cpu_after_exec_failed(void)
{
    if (!atomic_load(&configured) || getpid() != ppx_pid)
        return;
    struct ppx_tls *t = &ppx_tls;
    int saved_errno = errno;
    t->guard++;
    ppx_cpu_lock();
    if (exec_paused && !atomic_load(&stopped)) {
        exec_paused = false;
        running = true;
        ppx_sigprof_take_back(&our_action);
        for (struct ppx_cpu_sampler *c = atomic_load_explicit(&all_states, memory_order_acquire);
             c != NULL; c = c->all_next)
            if (atomic_load_explicit(&c->status, memory_order_acquire) == CPU_ACTIVE)
                ppx_cpu_timer_start(c); /* a thread that just ended: EINVAL, no timer */
    }
    ppx_cpu_unlock();
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
    ppx_owner_reset(&cpu_mu_owner);
    ppx_owner_take(&cpu_mu_owner); /* for the checks: only this thread exists */
    ppx_coroutine_reset_child();
    pid_t self = ppx_gettid();
    free_states = NULL;
    for (struct ppx_cpu_sampler *c = atomic_load_explicit(&all_states, memory_order_acquire);
         c != NULL; c = c->all_next) {
        int status = atomic_load_explicit(&c->status, memory_order_relaxed);
        if (status != CPU_FREE && c->tid == self && c->has_timer)
            continue;
        c->has_timer = false; /* timers are not inherited */
        if (status == CPU_FREE) {
            c->free_next = free_states;
            free_states = c;
        } else {
            if (c->rec != NULL)
                atomic_store_explicit(&c->rec->cpu, NULL, memory_order_relaxed);
            state_put(c);
        }
    }
    ppx_cpu_handler_reset_child(self);
    if (!ppx_config.cpu_hz_fixed) {
        /* a collector asked the parent, not this new process */
        for (struct ppx_cpu_sampler *c = atomic_load_explicit(&all_states, memory_order_acquire);
             c != NULL; c = c->all_next)
            ppx_cpu_timer_stop(c);
        sampling_hz = 0;
    }
    running = !atomic_load(&stopped) && sampling_hz != 0;
    exec_paused = false;
    uint64_t timers = 0;
    for (struct ppx_cpu_sampler *c = atomic_load_explicit(&all_states, memory_order_acquire);
         c != NULL; c = c->all_next)
        timers += c->has_timer;
    ppx_sigqueue_recount(timers);
    ppx_cpu_table_reset_child();
    ppx_owner_drop(&cpu_mu_owner);
}

/* A thread started from elsewhere (found at start) ends without telling
 * us when it never called a thread hook: its CPU clock is gone. */
int ppx_cpu_sampler_check_gone(struct ppx_cpu_sampler *c)
{
    struct timespec ts;
    if (clock_gettime(ppx_thread_cpu_clock(c->tid), &ts) == 0 || errno != EINVAL)
        return CPU_ACTIVE;
    struct ppx_thread_record *r = c->rec;
    struct ppx_cpu_sampler *expected = c;
    if (atomic_compare_exchange_strong(&r->cpu, &expected, NULL)) {
        ppx_cpu_lock();
        ppx_cpu_timer_stop(c);
        ppx_cpu_unpublish_remote(c);
        atomic_store_explicit(&c->status, CPU_ENDED, memory_order_release);
        ppx_cpu_unlock();
    }
    return atomic_load_explicit(&c->status, memory_order_acquire);
}

void ppx_cpu_sampler_recycle(struct ppx_cpu_sampler *c)
{
    PPX_CHECK(atomic_load_explicit(&c->status, memory_order_acquire) == CPU_ENDED);
    ppx_cpu_lock();
    state_put(c);
    ppx_cpu_unlock();
}

struct ppx_cpu_sampler *ppx_cpu_samplers(void)
{
    return atomic_load_explicit(&all_states, memory_order_acquire);
}

bool ppx_cpu_configured(void)
{
    return atomic_load_explicit(&configured, memory_order_acquire);
}
