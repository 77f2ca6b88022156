/* SIGPROF belongs to the program: sigaction, signal, bsd_signal and sigset.
 *
 * While CPU sampling runs, SIGPROF's real action is cpu/'s handler, and
 * the program sees the action it set itself (kept in cpu/sigprof_action.c) (SIG_DFL at first): a
 * query reports it, and setting SIG_DFL or SIG_IGN is remembered and reported back while sampling
 * goes on. A program that installs a handler of its own (it profiles itself, or gperftools'
 * libprofiler is loaded) gets it installed exactly as asked; CPU sampling then stops for good, and
 * ppx says so once (cpu/cpu.c). SIG_IGN in between discards our pending ticks, so the program's
 * handler sees none of them.
 *
 * Every other signal goes straight through. glibc's signal() (alias
 * bsd_signal), __sysv_signal() (what strict ISO C programs call for
 * signal()) and sigset() call its internal sigaction, not the exported
 * one, so each is hooked.
 * (A program that sets SIGPROF with the raw system call is not seen.)
 *
 * sigprocmask is hooked only to spare libunwind's calls inside the SIGPROF
 * handler (below).
 *
 * timer_create: the program's timers and ours (cpu/) share the user's
 * queued-signal slots (RLIMIT_SIGPENDING). When the program's timer_create
 * fails for want of one (EAGAIN), ppx gives its own timers back, one at a
 * time, until the program's succeeds or ppx has none left: the program gets
 * as many timers as without ppx.
 *
 * The program's action is kept without a lock: two threads racing to set
 * SIGPROF's action see one of them win, as with the real call. */
#include "hooks.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef sighandler_t (*signal_fn)(int, sighandler_t);
typedef int (*sigprocmask_fn)(int, const sigset_t *, sigset_t *);
typedef int (*timer_create_fn)(clockid_t, struct sigevent *, timer_t *);

static void *next_signal, *next_bsd_signal, *next_sysv_signal, *next_sigset, *next_sigprocmask,
    *next_timer_create;

/* Every signal but SIGPROF, and SIGPROF while cpu/'s handler is not
 * installed, goes straight to libc. */
static inline bool passes_through(int sig)
{
    return sig != SIGPROF || !ppx_sigprof_ours();
}

/* The next sigaction; like every hook's next function, found once the
 * library is initialised. */
static int real_sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
    if (atomic_load_explicit(&ppx_state, memory_order_acquire) == PPX_UNINIT)
        ppx_init();
    return ppx_real_sigaction(sig, act, oact);
}

PPX_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
    if (PPX_LIKELY(passes_through(sig)))
        return real_sigaction(sig, act, oact);
    return ppx_sigprof_program_sigaction(act, oact);
}

/* signal() on SIGPROF while ours is installed: the program's action set
 * with flags, its handler blocking SIGPROF unless SA_NODEFER; the previous
 * handler, or SIG_ERR. */
static sighandler_t program_signal(sighandler_t handler, int flags)
{
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    if (!(flags & SA_NODEFER))
        sigaddset(&act.sa_mask, SIGPROF);
    act.sa_flags = flags;
    if (ppx_sigprof_program_sigaction(&act, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

/* signal() as glibc does it: BSD semantics, the signal blocked in its
 * handler, system calls restarted. */
static sighandler_t bsd_semantics(sighandler_t handler)
{
    return program_signal(handler, SA_RESTART);
}

PPX_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    if (PPX_LIKELY(passes_through(sig)))
        return ((signal_fn)ppx_next(&next_signal, "signal"))(sig, handler);
    return bsd_semantics(handler);
}

/* glibc declares it only for old X/Open levels */
sighandler_t bsd_signal(int sig, sighandler_t handler);

PPX_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
    if (PPX_LIKELY(passes_through(sig)))
        return ((signal_fn)ppx_next(&next_bsd_signal, "bsd_signal"))(sig, handler);
    return bsd_semantics(handler);
}

/* System V semantics: reset to SIG_DFL on delivery, not blocked in its
 * handler. Strict ISO C programs (-std=c11) call this for signal(). */
static sighandler_t sysv_semantics(sighandler_t handler)
{
    return program_signal(handler, SA_RESETHAND | SA_NODEFER);
}

PPX_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
    if (PPX_LIKELY(passes_through(sig)))
        return ((signal_fn)ppx_next(&next_sysv_signal, "__sysv_signal"))(sig, handler);
    return sysv_semantics(handler);
}

PPX_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
    return __sysv_signal(sig, handler);
}

/* libunwind blocks every signal around each dl_iterate_phdr and each use
 * of its memory pool: dozens of sigprocmask calls per stack, which cost
 * more than the rest of a SIGPROF tick's unwinding together (a system
 * call is microseconds on a virtual machine). Inside cpu/'s handler every
 * asynchronous signal is blocked already (its sa_mask), so there those
 * calls are skipped. Everyone else's pass straight through. */
PPX_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    if (PPX_UNLIKELY(ppx_in_signal_walk != 0) &&
        ppx_unwind_own_pc((uintptr_t)__builtin_return_address(0))) {
        if (old != NULL)
            sigfillset(old); /* only ever given back to the call below */
        return 0;
    }
    return ((sigprocmask_fn)ppx_next(&next_sigprocmask, "sigprocmask"))(how, set, old);
}

/* sigset() as glibc does it (System V: SIG_HOLD blocks the signal). */
PPX_EXPORT sighandler_t sigset(int sig, sighandler_t disp)
{
    if (PPX_LIKELY(passes_through(sig)))
        return ((signal_fn)ppx_next(&next_sigset, "sigset"))(sig, disp);
    sigset_t set, old_mask;
    sigemptyset(&set);
    sigaddset(&set, sig);
    if (disp == SIG_HOLD) {
        if (sigprocmask(SIG_BLOCK, &set, &old_mask) != 0)
            return SIG_ERR;
        return sigismember(&old_mask, sig) ? SIG_HOLD : ppx_sigprof_program_handler();
    }
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = disp;
    sigemptyset(&act.sa_mask);
    if (ppx_sigprof_program_sigaction(&act, &old) != 0 ||
        sigprocmask(SIG_UNBLOCK, &set, &old_mask) != 0)
        return SIG_ERR;
    return sigismember(&old_mask, sig) ? SIG_HOLD : old.sa_handler;
}

/* dlsym finds glibc's default version (GLIBC_2.34's, the same code as
 * 2.3.3's); the 2.2.5 compatibility one serves binaries built before 2003. */
PPX_EXPORT int timer_create(clockid_t clock, struct sigevent *restrict ev, timer_t *restrict id)
{
    timer_create_fn real = (timer_create_fn)ppx_next(&next_timer_create, "timer_create");
    int rc = real(clock, ev, id);
    /* ppx's own calls (guard held) never take the program's place */
    while (PPX_UNLIKELY(rc != 0) && errno == EAGAIN && ppx_tls.guard == 0 &&
           ppx_cpu_give_back_timer())
        rc = real(clock, ev, id);
    return rc;
}
