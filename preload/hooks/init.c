/* Lifecycle of libppx.so: lazy initialisation (the hooks run long before
 * our constructor: libc and other libraries' constructors allocate first),
 * the constructor that connects (and starts the flusher if a collector
 * listens), and the destructor that sends the last figures. The
 * environment it reads: core/config.c; fork: fork.c. */
#include "hooks.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

void *ppx_next_fn(void **slot, const char *name)
{
    if (atomic_load_explicit(&ppx_state, memory_order_acquire) == PPX_UNINIT)
        ppx_init(); /* resolves them all, unless this thread is inside it */
    return ppx_next_symbol(slot, name);
}

void ppx_next_resolve_all(void **slots, const char *const *names, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (__atomic_load_n(&slots[i], __ATOMIC_ACQUIRE) == NULL)
            ppx_next_fn(&slots[i], names[i]);
}

void ppx_init(void)
{
    int expected = PPX_UNINIT;
    if (!atomic_compare_exchange_strong(&ppx_state, &expected, PPX_INITIALIZING))
        return;
    struct ppx_tls *t = &ppx_tls;
    int saved_errno = errno;
    t->guard++;
    ppx_log_remember_stderr();
    /* Allocations from here until READY (dlsym's among them) are served by
     * the bootstrap arena. */
    ppx_hooks_resolve();
    ppx_io_hooks_resolve();
    ppx_fd_hooks_resolve();
    ppx_lock_hooks_resolve();
    ppx_config_load();
    ppx_incarnation_begin();
    ppx_stacks_init();
    bool tables = ppx_live_init(ppx_hooks_glibc_allocator());
    ppx_flush_init();
    ppx_unwind_init();
    ppx_ticks_init();
    ppx_io_init();
    if (tables)
        ppx_threads_init(ppx_flush_last_thread_ending); /* and the CPU profile (cpu/) */
    atomic_store(&ppx_enabled, tables);
    atomic_store(&ppx_io_active, tables && ppx_config.syscalls);
    ppx_lock_init(tables);
    t->guard--;
    errno = saved_errno;
    PPX_CHECK(atomic_load(&ppx_state) == PPX_INITIALIZING);
    atomic_store_explicit(&ppx_state, PPX_READY, memory_order_release);
}

/* ---- constructor and destructor ---- */

/* glibc calls ELF constructors with (argc, argv, envp). */
__attribute__((constructor)) static void ppx_constructor(int argc, char **argv, char **envp)
{
    (void)envp;
    ppx_init();
    /* Another thread may still be initialising (a library constructor
     * started it); give it a moment, never wait forever. */
    for (int i = 0; i < 2000 && atomic_load(&ppx_state) != PPX_READY; i++) {
        struct timespec pause = {0, 500000};
        nanosleep(&pause, NULL);
    }
    if (atomic_load(&ppx_state) != PPX_READY) {
        ppx_flusher_start_later(0); /* the first sample looks for a collector */
        return;
    }
    struct ppx_tls *t = &ppx_tls;
    t->guard++;
    ppx_stream_set_cmdline(argc, argv);
    /* Let the next allocator set itself up (jemalloc registers its own fork
     * handlers then) before we register ours: ours then run first in the
     * parent and last in the child, after the allocator is usable again. */
    ppx_real.free(ppx_real.malloc(1));
    ppx_fork_handlers_install();
    t->guard--;
    ppx_flush_begin();
}

__attribute__((destructor)) static void ppx_destructor(void)
{
    ppx_flush_shutdown();
}
