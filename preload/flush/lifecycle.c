/* The process's exit, exec, and fork, as the stream sees them: the final
 * flush (GOODBYE, or a spool file), a flusher that must end before the
 * program's last thread does, and a forked child that starts its own
 * stream. */
#include "flush.h"

#include <errno.h>
#include <unistd.h>

/* The program's last thread is ending, on that thread (cpu/thread_registry.c). glibc
 * ends the process when its last thread ends: that must be this one, as
 * without ppx (its atexit handlers run here, at once), so the flusher ends
 * first. The exit that follows sends the final state from this thread
 * (ppx_flush_shutdown). */
void ppx_flush_last_thread_ending(void)
{
    if (atomic_load_explicit(&ppx_state, memory_order_acquire) != PPX_READY || getpid() != ppx_pid)
        return;
    int saved_errno = errno;
    ppx_tls.guard++;
    ppx_flush_enter();
    bool join = ppx_flusher_stop_locked();
    ppx_flush_leave();
    if (join)
        ppx_flusher_join();
    ppx_tls.guard--;
    errno = saved_errno;
}

/* Whether this thread of this process may run the exit or exec flush: not
 * from inside the profiler (a signal handler), not before initialisation,
 * not in a vfork child (it shares the parent's memory and connection). */
static bool may_flush_here(void)
{
    return atomic_load_explicit(&ppx_state, memory_order_acquire) == PPX_READY &&
           ppx_tls.guard == 0 && getpid() == ppx_pid;
}

void ppx_flush_before_exec(void)
{
    if (!may_flush_here())
        return;
    int saved_errno = errno;
    ppx_tls.guard++;
    ppx_flush_enter();
    /* Not connected and nothing counted (a child about to exec, typically):
     * no connection just to say nothing. */
    if (ppx_stream_connected() || ppx_stacks_any_counted() || ppx_io_any_counted())
        ppx_flush_and_say_goodbye();
    ppx_flush_flags.exec_pending = true; /* the flusher must not reconnect before exec */
    ppx_flush_leave();
    ppx_tls.guard--;
    errno = saved_errno;
}

void ppx_flush_after_exec_failed(void)
{
    if (!may_flush_here())
        return;
    ppx_tls.guard++;
    ppx_flush_enter();
    ppx_flush_flags.exec_pending = false; /* the next flush reconnects and sends it all */
    ppx_flush_leave();
    ppx_tls.guard--;
}

void ppx_flush_shutdown(void)
{
    struct ppx_tls *t = &ppx_tls;
    if (!may_flush_here())
        return; /* exit() from inside the profiler, or from a vfork child */
    int saved_errno = errno;
    t->guard++;
    ppx_flush_enter();
    bool join = ppx_flusher_stop_locked();
    ppx_flush_flags.exec_pending = false; /* a failed exec that went unnoticed */
    ppx_flush_and_say_goodbye();
    ppx_flush_leave();
    if (join)
        ppx_flusher_join();
    t->guard--;
    errno = saved_errno;
}

/* The child of fork: its own process, its own connection (the inherited one
 * is the parent's; our copy is closed, the parent's stays open), no
 * flusher yet (see ppx_flusher_start_if_due). */
void ppx_flush_reset_child(void)
{
    ppx_flusher_reset_child();
    ppx_stream_reset_child();
    ppx_commands_reset();
    ppx_flush_flags.exec_pending = false;
    if (!ppx_flush_flags.stopping)
        ppx_flusher_start_later(ppx_monotonic_ns() + (uint64_t)ppx_config.flush_ms * 1000000ull);
}

/* A child forked from inside the profiler (a signal handler): our copy of
 * the parent's connection goes, and this process sends nothing. */
void ppx_flush_disable_child(void)
{
    ppx_stream_disable_child();
    ppx_flush_flags.silenced = true;
    ppx_flush_flags.stopping = true;
    ppx_flush_flags.flusher_running = false;
    atomic_store_explicit(&ppx_flusher_start_pending, false, memory_order_relaxed);
}
