/* stack: call stacks. Unwinding (libunwind) in a hook or in the SIGPROF
 * handler, where stacks of coroutines end, and the table that interns each
 * distinct stack once and carries its heap figures. */
#ifndef PPX_STACK_H
#define PPX_STACK_H

#include "../core/core.h"

#pragma GCC visibility push(hidden)

/* ---- unwind.c ---- */

/* Called once from ppx_init, with the guard held. */
void ppx_unwind_init(void);
/* Fills pcs with up to max_depth return addresses, leaf first, starting at
 * ret (the return address into the caller of the hook). Always >= 1. */
unsigned ppx_unwind(uintptr_t *pcs, unsigned max_depth, const void *ret);
/* The interned stack of the caller of the caller (the hook) of this
 * function's caller, as ppx_stack_intern(t, pcs, ppx_unwind(...)) would
 * give it (t->pcs is used), but a walk that repeats one of this thread's
 * recent walks read for read (same start, same words found on the stack)
 * is not walked or interned again. NULL when out of memory. Guard held,
 * thread buffers taken. */
struct ppx_stack *ppx_stack_sample(struct ppx_tls *t, unsigned max_depth, const void *ret);
/* fork: libunwind's own locks cannot be taken from outside; a child forked
 * while some thread was inside libunwind stops unwinding (it could block on
 * a lock that thread held). */
void ppx_unwind_reset_child(void);

/* ---- code_ranges.c ---- */

/* Whether pc lies in libppx.so's or libunwind's code (set up by init). */
bool ppx_unwind_own_pc(uintptr_t pc);
/* Whether pc lies in libunwind's code. */
bool ppx_unwinder_pc(uintptr_t pc);

/* ---- unwind_signal.c: the SIGPROF handler's walk ---- */

/* For the SIGPROF handler (cpu/), once, outside any handler: where the
 * loader's code lies. */
void ppx_unwind_signal_init(void);
/* In the handler: whether unwinding now could deadlock or read a link map
 * mid-update (the interrupted pc is in ld.so, or the thread is inside
 * dl_iterate_phdr). The tick is then dropped. */
bool ppx_unwind_signal_unsafe(const void *ucontext);
/* In the handler (recursion guard held, ppx_in_signal_walk raised): fills
 * pcs with up to max_depth frames of the interrupted code, from its
 * ucontext_t. The leaf is the interrupted pc + 1 (wire.h), the others
 * return addresses; frames of libppx.so and libunwind dropped.
 * Async-signal-safe, never blocks. 0 when the tick must be dropped (the
 * loader's lock was busy), else >= 1. */
unsigned ppx_unwind_signal(uintptr_t *pcs, unsigned max_depth, const void *ucontext);
/* A parked coroutine's saved registers (the callee-saved ones, the stack
 * pointer after the switch function returned, and its return address). */
struct ppx_saved_regs {
    uintptr_t rbx, rbp, r12, r13, r14, r15, sp, pc;
};
/* As ppx_unwind_signal, from a coroutine's saved context (its leaf, pc,
 * is a return address): the stack of a coroutine parked on the calling
 * thread, up to its entry. In the handler of the thread that runs it
 * (nothing else moves it meanwhile). */
unsigned ppx_unwind_saved(uintptr_t *pcs, unsigned max_depth, const struct ppx_saved_regs *r);
/* > 0 while this thread walks its stack in the SIGPROF handler (every
 * asynchronous signal blocked there): the loader and sigprocmask hooks
 * then behave as the handler needs. Raised by the handler itself. */
extern PPX_TLS unsigned ppx_in_signal_walk;

/* ---- unwind_pipe.c: libunwind's pipe ---- */

/* Flusher: make sure the program has not closed libunwind's pipe. */
void ppx_unwind_check_fds(void);
/* fork's prepare and parent handlers. */
void ppx_unwind_lock(void);
void ppx_unwind_unlock(void);
/* The next pipe2 (ENOSYS if there is none), for the pipe2 hook. */
int ppx_unwind_real_pipe2(int fds[2], int flags);
/* The pipe2 hook: libunwind (guard held) made the pipe fds. Moves it out of
 * the program's descriptor range and remembers it (fds updated). */
void ppx_unwind_pipe_adopt(int fds[2]);

/* ---- stack_table.c: interned stacks ---- */

/* A stack's heap figures, or one stripe's share of them. */
struct ppx_stack_figures {
    uint64_t alloc_objects, alloc_bytes, free_objects, free_bytes;
};

/* Each thread adds to one stripe of a stack's counters (threads take
 * stripes in turn), each stripe on a line of its own: threads that allocate
 * or free through the same stack (under exact mode, every call) do not
 * pull one line back and forth, and a count touches that line alone: the
 * stripe carries its own dirty mark and link. The flusher adds the stripes
 * up. */
#define PPX_STACK_STRIPES 4
struct ppx_stack_stripe {
    _Alignas(PPX_CACHELINE) _Atomic uint64_t alloc_objects; /* the stripe starts a line */
    _Atomic uint64_t alloc_bytes, free_objects, free_bytes;
    atomic_uint dirty; /* on the dirty list, or will be */
    struct ppx_stack_stripe *dirty_next;
    struct ppx_stack *stack; /* whose stripe this is */
};
_Static_assert(sizeof(struct ppx_stack_stripe) == PPX_CACHELINE, "a stripe is one line");

struct ppx_stack {
    uint32_t id;
    uint32_t pad0;
    /* flusher only: figures already sent on connection sent_generation */
    uint64_t sent_generation;
    uint64_t sent_alloc_objects, sent_alloc_bytes, sent_free_objects, sent_free_bytes;
    /* immutable once published */
    uint64_t hash;
    uint32_t depth;
    uint32_t pad;
    /* hot: updated by the hooks */
    struct ppx_stack_stripe stripes[PPX_STACK_STRIPES];
    uintptr_t pcs[];
};

void ppx_stacks_init(void);
/* The stack's record, created if new. NULL when out of memory. */
struct ppx_stack *ppx_stack_intern(struct ppx_tls *t, const uintptr_t *pcs, unsigned depth);
void ppx_stack_count_alloc(struct ppx_stack *s, uint64_t bytes);
void ppx_stack_count_free(struct ppx_stack *s, uint64_t bytes);
/* s's figures so far: every stripe's frees, then every stripe's
 * allocations (seq_cst), so that a free is never seen without its alloc. */
void ppx_stack_figures(const struct ppx_stack *s, struct ppx_stack_figures *out);
/* Whether anything was counted since start (or fork). */
bool ppx_stacks_any_counted(void);
/* Stacks ever interned; ids are 0..count-1. */
uint32_t ppx_stacks_count(void);
/* The record of id, NULL if it is not published yet. */
struct ppx_stack *ppx_stack_get(uint32_t id);
/* Takes the whole dirty list: stripes whose counts changed, each once,
 * linked by dirty_next (a stack may be there once per stripe). */
struct ppx_stack_stripe *ppx_stacks_take_dirty(void);
/* Puts back a stripe taken from the dirty list, still dirty. */
void ppx_stacks_requeue(struct ppx_stack_stripe *st);
void ppx_stacks_lock_all(void);
void ppx_stacks_unlock_all(void);
void ppx_stacks_reset_child(void);

/* ---- inside this stage only ---- */

/* unwind.c: unwinding is set up and was not stopped; stop it for good
 * (said once, with why). */
bool ppx_unwind_usable(void);
bool ppx_unwind_disabled(void);
void ppx_unwind_disable(const char *why);
/* unwind.c: marks the calling thread as inside libunwind, for a child
 * forked meanwhile (lock-free: also from the SIGPROF handler). */
void ppx_unwinder_enter(struct ppx_tls *t);
void ppx_unwinder_leave(struct ppx_tls *t);

/* frame_cache.c: walks by rules learned per return address. */
/* The n >= 1 return addresses from ra up (ra: where the frame whose CFA is
 * sp returns to; rbp: the value of rbp in ra's frame), at most max; 0 when
 * a frame's rule is not known (*learnable: a learning walk may find it) or
 * the walk cannot go on this way (unw_backtrace can). reads (or NULL)
 * gets the words the walk depended on. */
struct ppx_walk_reads {
    uintptr_t *addr, *val; /* each word the walk read, in order */
    unsigned n, cap;       /* n > cap: there were more */
    bool rbp_used;         /* the walk used the rbp it started with */
};
unsigned ppx_frames_walk(struct ppx_tls *t, uintptr_t *pcs, unsigned max, uintptr_t sp,
                         uintptr_t rbp, uintptr_t ra, bool *learnable, bool *unconfirmed,
                         struct ppx_walk_reads *reads);
/* The walk of pcs[0..n) matched unw_backtrace: its rules are confirmed
 * (*unconfirmed: ppx_frames_walk used a rule that was not). */
void ppx_frames_confirm(struct ppx_tls *t, const uintptr_t *pcs, unsigned n);
/* 0 while the frame cache is off, else a number that changes whenever
 * rules may have been forgotten. */
unsigned ppx_frames_epoch(void);
/* With libunwind from the caller, learning each frame's rule: the return
 * addresses of the frames above the one whose CFA is start_sp, at most
 * max; 0 when libunwind cannot walk there or a frame has no such rule.
 * Called inside ppx_unwinder_enter/leave. */
unsigned ppx_frames_learn(uintptr_t *pcs, unsigned max, uintptr_t start_sp);
bool ppx_frames_usable(void);
void ppx_frames_disable(const char *why);

/* unwind_pipe.c */
void ppx_unwind_pipe_resolve(void);
void ppx_unwind_pipe_reset_child(void);

/* code_ranges.c: found once, at initialisation (the loader's for the
 * SIGPROF walk). */
void ppx_code_ranges_init(void);
void ppx_code_ranges_init_loader(void);
bool ppx_loader_pc(uintptr_t pc);

/* loader_lock.c: the loader's lock and the dl_iterate_phdr hook. */
struct dl_phdr_info;
typedef int (*dl_iterate_fn)(int (*)(struct dl_phdr_info *, size_t, void *), void *);
/* The next dl_iterate_phdr. */
dl_iterate_fn ppx_loader_resolve(void);
/* Once, at initialisation: finds glibc's lock (none if not glibc). */
void ppx_loader_lock_locate(void);
/* In the handler: whether the walk could wait for the lock. */
bool ppx_loader_lock_signal_unsafe(void);
/* The handler's walk met a busy loader lock (and was cut short). */
extern PPX_TLS bool ppx_loader_refused;
/* Child of fork: whether the lock is held (by a thread gone for good). */
bool ppx_loader_lock_reset_child(void);

/* coroutines.c */

/* Once, from ppx_unwind_init (guard held): finds state-threads' coroutine
 * entry in the executable and in the object that defines st_thread_create,
 * and registers it with libunwind as the end of the stack. */
void ppx_coroutines_init(void);
/* Whether pc lies in a coroutine entry (pc as libunwind looks it up: an
 * interrupted pc, or a return address - 1). Async-signal-safe. */
bool ppx_coroutine_entry(uintptr_t pc);
/* How many of the n return addresses pcs[] (leaf first) to keep: up to and
 * including the first one in a coroutine entry. */
unsigned ppx_coroutine_cut(const uintptr_t *pcs, unsigned n);
/* state-threads linked into the executable (libst.a, SRS): where its
 * scheduler's variables are (runtime addresses) and their sizes, from the
 * executable's symbols; all 0 when it has none. For thread dumps. */
struct ppx_st_scheduler {
    uintptr_t vp, this_thread, active_count;
    uint64_t vp_size;
};
extern struct ppx_st_scheduler ppx_st_scheduler;

/* elf_symbols.c: a file's symbols, from a read-only mapping. */
struct ppx_elf_image {
    const unsigned char *base;
    size_t len;
};
bool ppx_elf_open(const char *path, struct ppx_elf_image *img);
void ppx_elf_close(struct ppx_elf_image *img);
/* st_value and st_size of the defined function name (.symtab, else .dynsym). */
bool ppx_elf_function(const struct ppx_elf_image *img, const char *name, uint64_t *value,
                      uint64_t *size);
/* The same for a variable. */
bool ppx_elf_object(const struct ppx_elf_image *img, const char *name, uint64_t *value,
                    uint64_t *size);

#pragma GCC visibility pop

#endif
