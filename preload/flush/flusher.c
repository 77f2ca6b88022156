/* The flusher: a thread of the profiler's own that flushes now and then
 * and runs the collector's commands as they come.
 *
 * Its pace follows the profiles (next_pace): PPX_FLUSH_MS while they
 * change fast, up to PPX_FLUSH_IDLE_MS while they are steady.
 *
 * While connected, the flusher sleeps in poll() on the socket, so that a
 * command from the collector wakes it at once. Unconnected, it sleeps on
 * stream_cv. The destructor wakes a poll()ing flusher by shutting the
 * socket's reading side.
 *
 * It starts only once there is a collector: at start if one took the
 * connection (ppx_flush_begin), else when a sampled allocation finds its
 * socket, looking at most once a second (ppx_flusher_start_if_due). A
 * process without one stays as single-threaded as the program made it;
 * the exit flush needs no thread. When the program's last thread ends, the
 * flusher ends first (ppx_flush_last_thread_ending, lifecycle.c), so that
 * glibc's exit runs on the program's thread.
 *
 * Two locks. stream_mu: one user of the connection at a time (the flusher,
 * the exit and exec flushes), held across sends. state_mu (stream/): the
 * stream's state, taken by fork's prepare handler; whoever holds stream_mu
 * holds state_mu too, except while it waits on the collector (a send,
 * poll, the condition wait). A stopped or slow collector therefore never
 * stalls fork(): the child never uses the parent's connection, and starts
 * its stream afresh. Order: stream_mu, then state_mu. */
#include "flush.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define JOIN_BUDGET_NS (2ull * 1000000000ull)
#define FLUSHER_STACK (512u * 1024u)
#define COLLECTOR_CHECK_NS                                                                         \
    1000000000ull /* a process without a flusher looks at most once a second */

/* One user of the connection at a time: the flusher, or the exit and exec
 * flushes (ppx_flush_enter). The flusher sleeps on stream_cv. */
static pthread_mutex_t stream_mu = PTHREAD_MUTEX_INITIALIZER;
struct ppx_owner ppx_stream_mu_owner;
static pthread_cond_t stream_cv;
static pthread_t flusher; /* valid while ppx_flush_flags.flusher_running */
struct ppx_flush_flags ppx_flush_flags;
atomic_bool ppx_flusher_start_pending;
static _Atomic uint64_t start_check_ns; /* CLOCK_MONOTONIC: the next look for a collector */

static void init_cond(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&stream_cv, &attr);
    pthread_condattr_destroy(&attr);
}

void ppx_flush_init(void)
{
    init_cond();
}

void ppx_flush_enter(void)
{
    pthread_mutex_lock(&stream_mu);
    ppx_owner_take(&ppx_stream_mu_owner);
    ppx_stream_lock();
}

void ppx_flush_leave(void)
{
    ppx_stream_unlock();
    ppx_owner_drop(&ppx_stream_mu_owner);
    pthread_mutex_unlock(&stream_mu);
}

/* Sleeps until wake (CLOCK_MONOTONIC ns), running the collector's commands
 * as they come; with stream_mu and state_mu held, released while asleep. */
static void flusher_sleep(uint64_t wake)
{
    while (!ppx_flush_flags.stopping) {
        uint64_t now = ppx_monotonic_ns();
        if (now >= wake)
            return;
        if (ppx_stream_connected() && ppx_stream_still_ours() && !ppx_flush_flags.exec_pending) {
            struct pollfd pfd[2] = {{.fd = ppx_stream_socket(), .events = POLLIN},
                                    {.fd = ppx_wake_fd(), .events = POLLIN}};
            uint64_t left_ms = (wake - now + 999999u) / 1000000u;
            ppx_flush_leave();
            int rc =
                poll(pfd, pfd[1].fd >= 0 ? 2 : 1, left_ms > INT32_MAX ? INT32_MAX : (int)left_ms);
            ppx_flush_enter();
            if (rc > 0 && pfd[1].fd >= 0 && pfd[1].revents != 0) {
                ppx_wake_drain(); /* a CPU ring is half full: flush now */
                return;
            }
            if (rc > 0 && !ppx_flush_flags.stopping && !ppx_flush_flags.exec_pending &&
                ppx_stream_connected()) {
                ppx_flush_read_commands();
                /* a CPU profile just asked for fills rings sized for the fast pace */
                uint64_t fast = ppx_monotonic_ns() + (uint64_t)ppx_config.flush_ms * 1000000ull;
                if (wake > fast && ppx_cpu_sampling())
                    wake = fast;
            }
            continue;
        }
        struct timespec deadline = {(time_t)(wake / 1000000000ull), (long)(wake % 1000000000ull)};
        ppx_stream_unlock();
        ppx_owner_drop(&ppx_stream_mu_owner);
        int rc = pthread_cond_timedwait(&stream_cv, &stream_mu, &deadline);
        ppx_owner_take(&ppx_stream_mu_owner);
        ppx_stream_lock();
        if (rc == ETIMEDOUT)
            return;
    }
}

/* ---- the flusher thread ---- */

/* How long until the next flush. PPX_FLUSH_MS while the heap moves fast
 * (the collector follows its peak); while it does not, each quiet flush
 * doubles the distance, up to PPX_FLUSH_IDLE_MS: a steady server pays a
 * flush a second, not ten (each wakes the process and costs system calls
 * on both sides). A CPU profile's rings, sized for the fast pace, wake the
 * flusher when half full (wake.c); without that pipe, a CPU profile keeps
 * the fast pace. The collector's requests never wait for the pace: they
 * ask for a flush. */
static uint32_t next_pace(uint32_t pace_ms)
{
    if (ppx_heap_moving() || (ppx_cpu_sampling() && ppx_wake_fd() < 0))
        return ppx_config.flush_ms;
    uint32_t next = pace_ms * 2u;
    if (next < pace_ms || next > ppx_config.flush_idle_ms)
        next = ppx_config.flush_idle_ms;
    return next;
}

static void *flusher_main(void *arg)
{
    (void)arg;
    ppx_tls.guard++; /* for good: nothing this thread does is profiled */
    prctl(PR_SET_NAME, "ppx-flusher", 0, 0, 0);
    /* Threads that existed before us get their records and CPU timers now
     * (not under stream_mu: it may wait for threads being started). */
    ppx_threads_scan();
    ppx_flush_enter();
    uint32_t pace_ms = ppx_config.flush_ms;
    while (!ppx_flush_flags.stopping) {
        flusher_sleep(ppx_monotonic_ns() + (uint64_t)pace_ms * 1000000ull);
        if (ppx_flush_flags.stopping)
            break;
        ppx_flush_locked();
        pace_ms = next_pace(pace_ms);
        if (ppx_threads_none_left()) {
            /* main called pthread_exit and the program's last thread has
             * gone: glibc would exit now, were this thread not one too.
             * Our destructor does nothing on this thread: flush here. */
            ppx_flush_flags.stopping = true;
            ppx_flush_and_say_goodbye();
            ppx_flush_flags.flusher_running = false;
            ppx_flush_leave();
            exit(0);
        }
    }
    ppx_flush_leave();
    return NULL;
}

/* Say HELLO (and the mappings) before main() runs, so the collector knows
 * this process even if it dies at once. Without a collector this is one
 * stat(). Whether a collector took it. */
static bool connect_now(void)
{
    ppx_flush_enter();
    ppx_flush_locked();
    bool connected = ppx_stream_connected();
    ppx_flush_leave();
    return connected;
}

static void start_flusher(void)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    ppx_flush_enter();
    if (!ppx_flush_flags.flusher_running && !ppx_flush_flags.stopping) {
        /* here: before main() when a collector is there at start */
        ppx_task_dir_open();
        ppx_wake_open();
        /* Every signal blocked: the program's signals never land on our thread. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, FLUSHER_STACK);
        int rc = pthread_create(&flusher, &attr, flusher_main, NULL);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == 0)
            ppx_flush_flags.flusher_running = true;
        else
            ppx_log_once(&said, "cannot start the flusher thread: ", strerror(rc),
                         "; data is sent at exit only", NULL);
    }
    ppx_flush_leave();
}

/* The flusher starts from the allocation slow path once a collector's
 * socket is there, looked for from after_ns on (ppx_flusher_start_if_due). */
void ppx_flusher_start_later(uint64_t after_ns)
{
    atomic_store_explicit(&start_check_ns, after_ns, memory_order_relaxed);
    atomic_store_explicit(&ppx_flusher_start_pending, true, memory_order_release);
}

/* Whether a collector's socket is there. A stale one (a collector killed)
 * starts a flusher that finds nobody: it then looks every interval, as it
 * does after a collector went away. */
static bool collector_socket_exists(void)
{
    struct stat st;
    return stat(ppx_config.socket_path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* From the constructor. No thread without a collector to talk to: a
 * process with one thread stays single-threaded (unshare(CLONE_NEWUSER)
 * and the like need it), and its state goes out at exit (or to a spool
 * file); the flusher starts when a collector shows up. */
void ppx_flush_begin(void)
{
    struct ppx_tls *t = &ppx_tls;
    int saved_errno = errno;
    t->guard++;
    if (connect_now())
        start_flusher();
    else
        ppx_flusher_start_later(ppx_monotonic_ns() + COLLECTOR_CHECK_NS);
    t->guard--;
    errno = saved_errno;
}

/* From the allocation slow path, on the program's threads (never in a
 * signal handler: malloc is not async-signal-safe). A forked child looks
 * one interval after the fork: one that execs (or exits) at once never pays
 * for a thread, and one that lives on is flushed like its parent. */
void ppx_flusher_start_if_due(void)
{
    if (PPX_LIKELY(!atomic_load_explicit(&ppx_flusher_start_pending, memory_order_relaxed)))
        return;
    uint64_t now = ppx_monotonic_ns();
    if (now < atomic_load_explicit(&start_check_ns, memory_order_relaxed) ||
        !atomic_exchange_explicit(&ppx_flusher_start_pending, false, memory_order_acq_rel))
        return;
    struct ppx_tls *t = &ppx_tls;
    int saved_errno = errno;
    t->guard++;
    if (collector_socket_exists())
        start_flusher();
    else
        ppx_flusher_start_later(now + COLLECTOR_CHECK_NS);
    t->guard--;
    errno = saved_errno;
}

/* Waits for the flusher to end (stopping set, and woken), within a budget:
 * one stuck in a send gives up at its timeout. */
void ppx_flusher_join(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t until = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec + JOIN_BUDGET_NS;
    struct timespec deadline = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
    pthread_timedjoin_np(flusher, NULL, &deadline);
}

/* Stops the flusher for good (stream_mu and state_mu held); whether there
 * is one to join. */
bool ppx_flusher_stop_locked(void)
{
    ppx_flush_flags.stopping = true;
    atomic_store_explicit(&ppx_flusher_start_pending, false, memory_order_relaxed);
    pthread_cond_broadcast(&stream_cv);
    /* a flusher in poll() on the socket: readable (end of stream) now */
    if (ppx_stream_connected() && ppx_stream_still_ours())
        shutdown(ppx_stream_socket(), SHUT_RD);
    bool join = ppx_flush_flags.flusher_running;
    ppx_flush_flags.flusher_running = false;
    return join;
}

/* The child of fork: no flusher yet (see ppx_flusher_start_if_due). */
void ppx_flusher_reset_child(void)
{
    ppx_wake_reset_child();
    pthread_mutex_init(&stream_mu, NULL); /* the parent's flusher may be sending */
    ppx_owner_reset(&ppx_stream_mu_owner);
    init_cond();
    ppx_flush_flags.flusher_running = false;
}
