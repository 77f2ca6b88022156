/* The CPU-time timers: one per sampled thread, on that thread's own CPU
 * clock, delivering SIGPROF to it (doc/preload.md, "CPU profiles").
 * Created and deleted under cpu_mu, never from the handler. */
#include "cpu.h"

#include <errno.h>
#include <string.h>

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

static uint64_t period_ns; /* under cpu_mu: the timers' period */

void ppx_cpu_timers_set_period(uint64_t ns)
{
    period_ns = ns;
}

bool ppx_cpu_timer_start(struct ppx_cpu_sampler *c)
{
    ppx_cpu_check_locked();
    if (c->has_timer)
        return true;
    if (!ppx_sigqueue_room()) {
        ppx_sigqueue_note_full();
        errno = 0;
        return false;
    }
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGPROF;
    ev.sigev_value.sival_ptr = &ppx_cpu_timer_cookie;
    ev.sigev_notify_thread_id = c->tid;
    timer_t id;
    if (timer_create(ppx_thread_cpu_clock(c->tid), &ev, &id) != 0)
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
    c->has_timer = true;
    ppx_sigqueue_timer_started();
    return true;
}

void ppx_cpu_timer_stop(struct ppx_cpu_sampler *c)
{
    ppx_cpu_check_locked();
    if (!c->has_timer)
        return;
    timer_delete(c->timer);
    c->has_timer = false;
    ppx_sigqueue_timer_stopped();
}

void ppx_cpu_timers_stop_all(void)
{
    for (struct ppx_cpu_sampler *c = ppx_cpu_samplers(); c != NULL; c = c->all_next)
        ppx_cpu_timer_stop(c);
}

bool ppx_cpu_give_back_timer(void)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    if (!ppx_cpu_configured())
        return false;
    struct ppx_tls *t = &ppx_tls;
    int saved_errno = errno;
    t->guard++;
    bool gave = false;
    ppx_cpu_lock();
    for (struct ppx_cpu_sampler *c = ppx_cpu_samplers(); c != NULL && !gave; c = c->all_next) {
        if (c->has_timer) {
            ppx_cpu_timer_stop(c);
            gave = true;
        }
    }
    ppx_sigqueue_reread(); /* the next thread start reads the count again */
    ppx_cpu_unlock();
    t->guard--;
    errno = saved_errno;
    if (gave)
        ppx_log_once(&said,
                     "the program needs the queued-signal slots (ulimit -i) of ppx's CPU timers",
                     ": given back, some threads are no longer in the CPU profile", NULL, NULL);
    return gave;
}

void ppx_cpu_note_timer_failure(int err)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    ppx_log_once(&said, "cannot start a CPU timer: ", strerror(err),
                 "; some threads are not in the CPU profile", NULL);
}

void ppx_cpu_timers_start_active(void)
{
    ppx_cpu_check_locked();
    for (struct ppx_cpu_sampler *c = ppx_cpu_samplers(); c != NULL; c = c->all_next)
        if (atomic_load_explicit(&c->status, memory_order_acquire) == CPU_ACTIVE &&
            !ppx_cpu_timer_start(c) && errno != EINVAL &&
            errno != 0) /* EINVAL: a thread that just ended */
            ppx_cpu_note_timer_failure(errno);
}
