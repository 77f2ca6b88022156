/* fork: the locks the hooks and the flusher take are held across fork()
 * (pthread_atfork), so that the child copies every table whole, and the
 * child starts clean: its own identity, tables, buffers and connection. */
#include "hooks.h"

#include <errno.h>
#include <unistd.h>

static bool fork_skipped; /* the forking thread was inside the profiler */

static void atfork_prepare(void)
{
    struct ppx_tls *t = &ppx_tls;
    if (t->guard != 0 || t->holds_lock != 0) {
        /* fork() from a signal handler that interrupted the profiler: our
         * locks may be held by this very thread. */
        fork_skipped = true;
        return;
    }
    t->guard++;
    t->holds_lock++; /* a free() in fork's own code must not take a table lock */
    /* Order: the flusher's locks, then the hooks' (each hook holds one at a
     * time, arena last). */
    ppx_stream_lock();
    ppx_unwind_lock();
    ppx_stacks_lock_all();
    ppx_live_lock_all();
    ppx_arena_lock();
}

static void atfork_parent(void)
{
    struct ppx_tls *t = &ppx_tls;
    if (fork_skipped) {
        fork_skipped = false;
        return;
    }
    ppx_arena_unlock();
    ppx_live_unlock_all();
    ppx_stacks_unlock_all();
    ppx_unwind_unlock();
    ppx_stream_unlock();
    t->holds_lock--;
    t->guard--;
}

static void atfork_child(void)
{
    struct ppx_tls *t = &ppx_tls;
    int saved_errno = errno;
    if (fork_skipped) {
        /* This thread is in the middle of updating a table (the handler
         * that forked will return into it): leave the tables alone, record
         * nothing more, and never talk to the collector. */
        fork_skipped = false;
        atomic_store(&ppx_enabled, false);
        atomic_store(&ppx_io_active, false);
        ppx_flush_disable_child();
        errno = saved_errno;
        return;
    }
    t->holds_lock--;
    t->guard--;
    ppx_incarnation_begin();
    ppx_arena_reset_child();
    ppx_live_reset_child();
    ppx_stacks_reset_child();
    ppx_io_reset_child();
    ppx_lock_reset_child();
    ppx_thread_buffers_reset_child();
    ppx_cpu_reset_child(); /* before the thread registry restarts this thread */
    ppx_threads_reset_child();
    ppx_unwind_reset_child();
    ppx_flush_reset_child();
    ppx_sampler_reset_thread();
    errno = saved_errno;
}

void ppx_fork_handlers_install(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}
