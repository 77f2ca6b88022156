/* SIGPROF belongs to the program: sigaction, signal, bsd_signal and sigset.
 *
 * While CPU sampling runs, SIGPROF's real action is cpu.c's handler, and
 * the program sees the action it set itself (SIG_DFL at first): a query
 * reports it, and setting SIG_DFL or SIG_IGN is remembered and reported
 * back while sampling goes on. A program that installs a handler of its
 * own (it profiles itself, or gperftools' libprofiler is loaded) gets it
 * installed exactly as asked; CPU sampling then stops for good, and ppx
 * says so once (cpu.c). SIG_IGN in between discards our pending ticks, so
 * the program's handler sees none of them.
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
 * timer_create: the program's timers and ours (cpu.c) share the user's
 * queued-signal slots (RLIMIT_SIGPENDING). When the program's timer_create
 * fails for want of one (EAGAIN), ppx gives its own timers back, one at a
 * time, until the program's succeeds or ppx has none left: the program gets
 * as many timers as without ppx.
 *
 * The program's action is kept without a lock: two threads racing to set
 * SIGPROF's action see one of them win, as with the real call. */
#include "../ppx_preload.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef sighandler_t (*signal_fn)(int, sighandler_t);
typedef int (*sigprocmask_fn)(int, const sigset_t *, sigset_t *);
typedef int (*timer_create_fn)(clockid_t, struct sigevent *, timer_t *);

static void *next_sigaction, *next_signal, *next_bsd_signal, *next_sysv_signal, *next_sigset,
    *next_sigprocmask, *next_timer_create;

/* Set by ppx_sigprof_install; cleared for good when the program installs
 * a handler of its own. */
static atomic_bool ours;
/* What the program believes SIGPROF's action is (zero: SIG_DFL). */
static struct sigaction program_action;

int ppx_real_sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
    return ((sigaction_fn)ppx_next(&next_sigaction, "sigaction"))(sig, act, oact);
}

static bool is_handler(const struct sigaction *act)
{
    return act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN;
}

bool ppx_sigprof_install(const struct sigaction *handler)
{
    struct sigaction old;
    if (ppx_real_sigaction(SIGPROF, NULL, &old) != 0 || is_handler(&old))
        return false;
    program_action = old;
    atomic_store(&ours, true);
    if (ppx_real_sigaction(SIGPROF, handler, NULL) != 0) {
        atomic_store(&ours, false);
        return false;
    }
    return true;
}

void ppx_sigprof_hand_back(void)
{
    if (!atomic_load(&ours))
        return;
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    ppx_real_sigaction(SIGPROF, &ignore, NULL); /* discards pending ticks */
    ppx_real_sigaction(SIGPROF, &program_action, NULL);
}

void ppx_sigprof_foreign(void)
{
    if (!atomic_load(&ours) || program_action.sa_handler != SIG_DFL)
        return; /* SIG_IGN: as the kernel would */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    atomic_store(&ours, false);
    ppx_real_sigaction(SIGPROF, &dfl, NULL);
    /* blocked while this handler runs: delivered, fatally, on its return */
    syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGPROF);
}

void ppx_sigprof_take_back(const struct sigaction *handler)
{
    if (atomic_load(&ours))
        ppx_real_sigaction(SIGPROF, handler, NULL);
}

/* SIGPROF while ours is installed: the program's view of it. */
static int program_sigaction(const struct sigaction *act, struct sigaction *oact)
{
    struct sigaction prev = program_action;
    if (act != NULL && is_handler(act)) {
        struct sigaction ignore;
        memset(&ignore, 0, sizeof ignore);
        ignore.sa_handler = SIG_IGN;
        atomic_store(&ours, false);
        ppx_cpu_sigprof_taken(); /* stops the timers first */
        ppx_real_sigaction(SIGPROF, &ignore, NULL);
        int rc = ppx_real_sigaction(SIGPROF, act, NULL);
        if (rc != 0)
            return rc;
    } else if (act != NULL) {
        program_action = *act;
    }
    if (oact != NULL)
        *oact = prev;
    return 0;
}

/* Every signal but SIGPROF, and SIGPROF while cpu.c's handler is not
 * installed, goes straight to libc. */
static inline bool passes_through(int sig)
{
    return sig != SIGPROF || !atomic_load_explicit(&ours, memory_order_acquire);
}

PPX_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
    if (PPX_LIKELY(passes_through(sig)))
        return ppx_real_sigaction(sig, act, oact);
    return program_sigaction(act, oact);
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
    if (program_sigaction(&act, &old) != 0)
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
 * call is microseconds on a virtual machine). Inside cpu.c's handler every
 * asynchronous signal is blocked already (its sa_mask), so there those
 * calls are skipped. Everyone else's pass straight through. */
PPX_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    if (PPX_UNLIKELY(ppx_cpu_in_handler != 0) &&
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
        return sigismember(&old_mask, sig) ? SIG_HOLD : program_action.sa_handler;
    }
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = disp;
    sigemptyset(&act.sa_mask);
    if (program_sigaction(&act, &old) != 0 || sigprocmask(SIG_UNBLOCK, &set, &old_mask) != 0)
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
    while (PPX_UNLIKELY(rc != 0) && errno == EAGAIN && ppx_thread.guard == 0 &&
           ppx_cpu_give_back_timer())
        rc = real(clock, ev, id);
    return rc;
}
