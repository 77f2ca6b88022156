/* SIGPROF's real action, between the program and the CPU profile: ours
 * while sampling runs, the program's own view of it kept aside (see
 * hooks/signal.c, whose hooks report and change that view). The program's
 * action is kept without a lock: two threads racing to set SIGPROF's
 * action see one of them win, as with the real call. */
#include "cpu.h"

#include <signal.h>
#include <string.h>

/* Set by ppx_sigprof_install; cleared for good when the program installs
 * a handler of its own. */
static atomic_bool ours;
/* What the program believes SIGPROF's action is (zero: SIG_DFL). */
static struct sigaction program_action;

/* The next sigaction, resolved on first use (then read-only). */
static void *next_sigaction;

int ppx_real_sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
    void *fn = __atomic_load_n(&next_sigaction, __ATOMIC_RELAXED);
    if (PPX_UNLIKELY(fn == NULL))
        fn = ppx_next_symbol(&next_sigaction, "sigaction");
    return ((int (*)(int, const struct sigaction *, struct sigaction *))fn)(sig, act, oact);
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
int ppx_sigprof_program_sigaction(const struct sigaction *act, struct sigaction *oact)
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

bool ppx_sigprof_ours(void)
{
    return atomic_load_explicit(&ours, memory_order_acquire);
}

sighandler_t ppx_sigprof_program_handler(void)
{
    return program_action.sa_handler;
}
