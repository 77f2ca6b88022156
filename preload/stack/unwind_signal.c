/* Unwinding from a signal: the SIGPROF handler's walk (cpu/).
 *
 * unw_init_local2 from the interrupted context, then unw_step. This runs
 * in a signal handler that may have interrupted anything, so the walk is
 * defensive:
 *  - Never waiting for the loader's lock (loader_lock.c): its
 *    holder (dlclose, say) may be waiting for a lock the interrupted code
 *    holds (malloc's, a table's of ours). libunwind's dl_iterate_phdr
 *    calls come through its hook (loader_lock.c), which in the handler only
 *    try-locks it; busy, the walk ends and the tick is dropped. Dropped
 *    too: the interrupted pc in ld.so (the link map may be mid-update).
 *    Where that lock was not found, ticks on a thread inside
 *    dl_iterate_phdr are dropped, and the rest may block.
 *  - Each frame's SP must lie above the previous one and within
 *    SIGNAL_STACK_SPAN above the interrupted SP; a coroutine switch
 *    (state-threads swaps stacks in assembly without unwind info) or a
 *    corrupt frame would otherwise send the walk through garbage.
 *    libunwind itself validates the addresses it reads (Debian builds it
 *    with conservative checks), so garbage ends the walk instead of
 *    faulting.
 *  - At a coroutine entry (coroutines.c) the walk stops before stepping
 *    past it: what lies beyond is the top of the coroutine's stack, not a
 *    caller.
 * Frames of libppx.so and libunwind are dropped, as for heap stacks. */

#include "stack.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

#define SIGNAL_STACK_SPAN ((uintptr_t)64 << 20)
#define SIGNAL_EXTRA_STEPS 32 /* frames of ours that may be skipped */

PPX_TLS unsigned ppx_in_signal_walk;

void ppx_unwind_signal_init(void)
{
    ppx_loader_resolve();
    ppx_code_ranges_init_loader();
}

bool ppx_unwind_signal_unsafe(const void *ucontext)
{
    const ucontext_t *uc = ucontext;
    if (ppx_loader_pc((uintptr_t)uc->uc_mcontext.gregs[REG_RIP]))
        return true;
    return ppx_loader_lock_signal_unsafe();
}

/* The walk from a context: a signal frame's (the leaf is the interrupted
 * pc, stored + 1), or a coroutine's saved one (the leaf is a return
 * address already). */
static unsigned walk_context(uintptr_t *pcs, unsigned max_depth, const void *ucontext,
                             bool signal_frame)
{
    const ucontext_t *uc = ucontext;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t sp0 = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t leaf = signal_frame ? pc + 1 : pc;
    if (max_depth == 0)
        return 0;
    /* The leaf (wire.h): kept even if the walk fails. */
    pcs[0] = leaf;
    if (!ppx_unwind_usable())
        return 1;
    struct ppx_tls *t = &ppx_tls;
    unw_cursor_t cursor;
    unsigned n = 0;
    ppx_loader_refused = false;
    ppx_unwinder_enter(t);
    /* libunwind reads the registers from the context, which on x86-64 is
     * a ucontext_t: the kernel's signal frame is one. */
    if (unw_init_local2(&cursor, (unw_context_t *)(uintptr_t)ucontext,
                        signal_frame ? UNW_INIT_SIGNAL_FRAME : 0) == 0) {
        uintptr_t prev_sp = sp0;
        for (unsigned step = 0; step < max_depth + SIGNAL_EXTRA_STEPS && n < max_depth; step++) {
            unw_word_t ip = 0, sp = 0;
            if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0 ||
                unw_get_reg(&cursor, UNW_REG_SP, &sp) < 0)
                break;
            if (step > 0 && (sp <= prev_sp || sp - sp0 > SIGNAL_STACK_SPAN))
                break;
            prev_sp = sp;
            bool interrupted = signal_frame && step == 0;
            if (!ppx_unwind_own_pc(ip))
                pcs[n++] = interrupted ? ip + 1 : ip;
            if (ppx_coroutine_entry(interrupted ? ip : ip - 1))
                break;
            if (unw_step(&cursor) <= 0)
                break;
        }
    }
    ppx_unwinder_leave(t);
    if (ppx_loader_refused)
        return 0; /* a stack cut short where the loader was busy: dropped */
    if (n == 0) {
        pcs[0] = leaf; /* all frames were ours: keep where it was */
        n = 1;
    }
    return n;
}

unsigned ppx_unwind_signal(uintptr_t *pcs, unsigned max_depth, const void *ucontext)
{
    return walk_context(pcs, max_depth, ucontext, true);
}

unsigned ppx_unwind_saved(uintptr_t *pcs, unsigned max_depth, const struct ppx_saved_regs *r)
{
    ucontext_t uc;
    memset(&uc, 0, sizeof uc);
    uc.uc_mcontext.gregs[REG_RIP] = (greg_t)r->pc;
    uc.uc_mcontext.gregs[REG_RSP] = (greg_t)r->sp;
    uc.uc_mcontext.gregs[REG_RBP] = (greg_t)r->rbp;
    uc.uc_mcontext.gregs[REG_RBX] = (greg_t)r->rbx;
    uc.uc_mcontext.gregs[REG_R12] = (greg_t)r->r12;
    uc.uc_mcontext.gregs[REG_R13] = (greg_t)r->r13;
    uc.uc_mcontext.gregs[REG_R14] = (greg_t)r->r14;
    uc.uc_mcontext.gregs[REG_R15] = (greg_t)r->r15;
    return walk_context(pcs, max_depth, &uc, false);
}