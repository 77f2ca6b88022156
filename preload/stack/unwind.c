/* Call stacks of sampled allocations, with libunwind's unw_backtrace.
 *
 * Caching policy. unw_backtrace's fast path keeps its own per-thread frame
 * cache whatever the policy; the policy only governs the cache of parsed
 * CFI used on that cache's misses. Debian's libunwind 1.6 is built without
 * --enable-per-thread-cache, so UNW_CACHE_PER_THREAD there means one global
 * cache used without its lock (a data race), and UNW_CACHE_GLOBAL holds that
 * lock across dl_iterate_phdr (a deadlock against a thread that allocates
 * while holding the loader lock; fixed upstream by commit 9538c8f).
 * UNW_CACHE_NONE takes neither path: a miss re-parses the CFI, then the
 * frame cache has it.
 *
 * libunwind's pipe. On first use libunwind opens a pipe, through which it
 * checks every address it reads while stepping (Debian builds it with
 * conservative checks). At the lowest free numbers those descriptors would
 * shift every fd the program opens afterwards, and they would count
 * against its RLIMIT_NOFILE, so libunwind's pipe2() calls made while the
 * profiler runs get their descriptors moved above the soft limit where the
 * hard limit allows (fd_place.c), else to high numbers (they still show in
 * /proc/self/fd, close-on-exec). A pipe that fails
 * instead is no way out: every check then fails, stacks end after a frame or
 * two, and each unwind takes libunwind's slow path. Daemons close every fd:
 * libunwind would then read and write whatever the program opens at those
 * numbers next, so the flusher puts the pipe back while the numbers are
 * free, or stops unwinding if the program took them. */
#include "../ppx_preload.h"

#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libunwind.h>
#include <link.h>
#include <signal.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_RANGES 8

struct text_range {
    uintptr_t lo, hi;
};

/* Executable segments of libppx.so and of libunwind: frames of ours. */
static struct text_range own_text[MAX_RANGES];
static unsigned n_own_text;
/* libunwind's alone: whose pipe2() calls are moved. */
static struct text_range unwinder_text[MAX_RANGES];
static unsigned n_unwinder_text;

static atomic_bool unwind_ready;
static atomic_bool unwind_disabled;

/* Which threads are inside unw_backtrace right now, read by the child after
 * fork. Each thread owns a slot (its own cache line) and marks it with plain
 * stores: a locked add per unwind cost more than the rest of a sample's
 * bookkeeping. Threads beyond the slots share the last one, atomically. */
#define INSIDE_SLOTS 1024u
static struct {
    _Alignas(PPX_CACHELINE) atomic_uint n;
} inside_unwinder[INSIDE_SLOTS];
static atomic_uint next_inside_slot;

static int (*next_pipe2)(int[2], int);
static pthread_mutex_t pipe_mu = PTHREAD_MUTEX_INITIALIZER;
static int unwinder_pipe[2] = {-1, -1};
static dev_t unwinder_pipe_dev[2];
static ino_t unwinder_pipe_ino[2];

struct range_query {
    uintptr_t addr;
    struct text_range *out;
    unsigned *n;
};

static int collect_object_text(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct range_query *q = data;
    bool contains = false;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_X) == 0)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (q->addr >= lo && q->addr < lo + ph->p_memsz)
            contains = true;
    }
    if (!contains)
        return 0;
    for (unsigned i = 0; i < info->dlpi_phnum && *q->n < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_X) == 0)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        q->out[(*q->n)++] = (struct text_range){lo, lo + ph->p_memsz};
    }
    return 1;
}

static void collect_text(const void *addr, struct text_range *out, unsigned *n)
{
    struct range_query q = {(uintptr_t)addr, out, n};
    dl_iterate_phdr(collect_object_text, &q);
}

static bool in_ranges(uintptr_t pc, const struct text_range *r, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (pc >= r[i].lo && pc < r[i].hi)
            return true;
    return false;
}

bool ppx_unwind_own_pc(uintptr_t pc)
{
    return in_ranges(pc, own_text, n_own_text);
}

int ppx_high_fd_base(void)
{
    struct rlimit rl;
    long limit = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 30) ? (1l << 30)
                                                                          : (long)rl.rlim_cur;
    long base = limit - 64;
    if (base > 1000)
        base = 1000; /* higher only grows the kernel's fd table for nothing */
    if (base < 100)
        base = limit > 100 ? 100 : limit / 2;
    return base < 3 ? 3 : (int)base;
}

static int real_pipe2(int fds[2], int flags)
{
    if (next_pipe2 == NULL)
        next_pipe2 = (int (*)(int[2], int))dlsym(RTLD_NEXT, "pipe2");
    if (next_pipe2 == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return next_pipe2(fds, flags);
}

/* Called with pipe_mu held. */
static void remember_pipe(const int fds[2])
{
    for (int i = 0; i < 2; i++) {
        struct stat st;
        unwinder_pipe[i] = fds[i];
        if (fstat(fds[i], &st) == 0) {
            unwinder_pipe_dev[i] = st.st_dev;
            unwinder_pipe_ino[i] = st.st_ino;
        }
    }
}

/* Exported only to catch libunwind's own pipe (see above); every other
 * caller's pipe2 passes straight through. */
static void label_pipe(const int fds[2])
{
    if (atomic_load_explicit(&ppx_io_active, memory_order_relaxed)) {
        ppx_fd_set_class(fds[0], PPX_FD_CLASS(WIRE_FD_PIPE, 0, 0));
        ppx_fd_set_class(fds[1], PPX_FD_CLASS(WIRE_FD_PIPE, 0, 0));
    }
}

PPX_EXPORT int pipe2(int fds[2], int flags)
{
    int rc = real_pipe2(fds, flags);
    if (rc == 0)
        label_pipe(fds); /* for the I/O hooks' descriptor classes (fd_class.c) */
    if (rc != 0 || ppx_thread.guard == 0 ||
        !in_ranges((uintptr_t)__builtin_return_address(0), unwinder_text, n_unwinder_text))
        return rc;
    int saved_errno = errno;
    for (int i = 0; i < 2; i++)
        fds[i] = ppx_fd_above_limit(fds[i]);
    pthread_mutex_lock(&pipe_mu);
    remember_pipe(fds);
    pthread_mutex_unlock(&pipe_mu);
    label_pipe(fds);
    errno = saved_errno;
    return 0;
}

/* ---- the loader's lock ----
 *
 * libunwind calls dl_iterate_phdr for every frame it steps through, and
 * dl_iterate_phdr takes the loader's recursive dl_load_write_lock. That
 * deadlocks: in a child forked while another thread held the
 * lock (dlclose, dl_iterate_phdr), where its owner no longer exists; and
 * in the SIGPROF handler, if the interrupted thread was itself between
 * taking the lock and recording itself as owner (or the reverse on
 * release), or while the lock's holder waits for a lock the interrupted
 * code holds. The lock is glibc's private business, so it is found, once,
 * by looking: inside a dl_iterate_phdr callback it is the one recursive
 * mutex in ld.so's _rtld_global owned by the calling thread. If it is not
 * found (another libc), the SIGPROF handler falls back to counting this
 * thread's dl_iterate_phdr calls (the hook below), and a fork child
 * unwinds as before. */

struct glibc_mutex { /* the head of glibc's struct __pthread_mutex_s */
    int lock;
    unsigned count;
    int owner;
    unsigned nusers;
    int kind;
};
#define GLIBC_MUTEX_RECURSIVE 1

static const struct glibc_mutex *loader_lock;

/* SIGPROF handlers at the loader's lock now: trying to take it, waiting
 * for it, or holding it (the dl_iterate_phdr hook). Every thread's CPU
 * timer fires at the same scheduler tick, so handlers on different cores
 * reach that lock at the same moment: one that finds it held while another
 * handler is there (a walk of a few microseconds, which waits for nothing
 * of ours) waits for it briefly instead of dropping its tick, which would
 * bias the profile against whichever thread comes second. Counted before
 * the try-lock (a handler that has just taken the lock is already counted)
 * until after the unlock. Held by anyone else, the tick is dropped. */
static atomic_uint handlers_at_lock;
#define HANDLER_WAIT_SPINS 2000u /* pauses: tens of microseconds at most */

struct lock_search {
    const unsigned char *lo;
    size_t size;
    int tid;
    const struct glibc_mutex *found;
    unsigned matches;
};

static int find_loader_lock(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)info;
    (void)size;
    struct lock_search *q = data;
    for (size_t off = 0; off + sizeof(struct glibc_mutex) <= q->size; off += sizeof(int)) {
        const struct glibc_mutex *m = (const struct glibc_mutex *)(q->lo + off);
        if (m->lock != 0 && m->owner == q->tid && m->count >= 1 && m->nusers >= 1 &&
            (m->kind & 0x7f) == GLIBC_MUTEX_RECURSIVE) {
            q->found = m;
            q->matches++;
        }
    }
    return 1; /* the lock is held for the whole iteration: one call is enough */
}

static void locate_loader_lock(void)
{
    void *rtld = dlsym(RTLD_DEFAULT, "_rtld_global");
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (rtld == NULL || dladdr1(rtld, &info, (void **)&sym, RTLD_DL_SYMENT) == 0 || sym == NULL ||
        sym->st_size < sizeof(struct glibc_mutex))
        return;
    struct lock_search q = {rtld, sym->st_size, (int)syscall(SYS_gettid), NULL, 0};
    dl_iterate_phdr(find_loader_lock, &q);
    if (q.matches == 1)
        loader_lock = q.found;
}

/* Whether taking the loader's lock now could block: someone holds it, and
 * it is not (fully) this thread. */
static bool loader_lock_busy(void)
{
    const struct glibc_mutex *m = loader_lock;
    if (m == NULL)
        return false;
    if (__atomic_load_n(&m->lock, __ATOMIC_RELAXED) == 0)
        return false; /* the common case: no system call */
    return __atomic_load_n(&m->owner, __ATOMIC_RELAXED) != (int)syscall(SYS_gettid);
}

void ppx_unwind_init(void)
{
    locate_loader_lock();
    collect_text((const void *)ppx_unwind, own_text, &n_own_text);
    collect_text((const void *)unw_backtrace, unwinder_text, &n_unwinder_text);
    for (unsigned i = 0; i < n_unwinder_text && n_own_text < MAX_RANGES; i++)
        own_text[n_own_text++] = unwinder_text[i];
    /* This runs libunwind's one-time setup, here, under our guard: its pipe
     * goes through pipe2() above. (No warm-up unwind: the first one costs a
     * 256 KiB frame cache, which a process that never samples should not
     * pay.) */
    if (next_pipe2 == NULL)
        next_pipe2 = (int (*)(int[2], int))dlsym(RTLD_NEXT, "pipe2");
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_NONE);
    ppx_coroutines_init();
    atomic_store_explicit(&unwind_ready, true, memory_order_release);
}

static void disable_unwinding(const char *why)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    atomic_store_explicit(&unwind_disabled, true, memory_order_relaxed);
    ppx_log_once(&said, why, "; recording only the caller of malloc from now on", NULL, NULL);
}

enum pipe_end_state { END_OURS, END_GONE, END_TAKEN };

static enum pipe_end_state pipe_end(int i)
{
    struct stat st;
    if (fstat(unwinder_pipe[i], &st) != 0)
        return errno == EBADF ? END_GONE : END_OURS;
    if (st.st_dev == unwinder_pipe_dev[i] && st.st_ino == unwinder_pipe_ino[i])
        return END_OURS;
    return END_TAKEN;
}

/* Both ends were closed by the program: a fresh pipe at the same numbers,
 * taken only while they are free (F_DUPFD takes the lowest free number at
 * or above the one asked, so it never replaces a descriptor of the
 * program's). */
static bool restore_pipe(void)
{
    int fresh[2];
    if (real_pipe2(fresh, O_CLOEXEC | O_NONBLOCK) != 0)
        return false;
    int placed[2];
    for (int i = 0; i < 2; i++)
        placed[i] = ppx_fd_dup_from(fresh[i], unwinder_pipe[i]);
    close(fresh[0]);
    close(fresh[1]);
    if (placed[0] == unwinder_pipe[0] && placed[1] == unwinder_pipe[1]) {
        remember_pipe(placed);
        return true;
    }
    for (int i = 0; i < 2; i++)
        if (placed[i] >= 0)
            close(placed[i]);
    return false;
}

void ppx_unwind_check_fds(void)
{
    if (atomic_load_explicit(&unwind_disabled, memory_order_relaxed))
        return;
    int saved_errno = errno;
    pthread_mutex_lock(&pipe_mu);
    if (unwinder_pipe[0] >= 0 && unwinder_pipe[1] >= 0) {
        enum pipe_end_state r = pipe_end(0), w = pipe_end(1);
        if (r == END_TAKEN || w == END_TAKEN || (r == END_GONE) != (w == END_GONE))
            disable_unwinding("the program replaced libunwind's descriptors");
        else if (r == END_GONE && !restore_pipe())
            disable_unwinding("the program took libunwind's descriptor numbers");
    }
    pthread_mutex_unlock(&pipe_mu);
    errno = saved_errno;
}

void ppx_unwind_lock(void)
{
    pthread_mutex_lock(&pipe_mu);
}

void ppx_unwind_unlock(void)
{
    pthread_mutex_unlock(&pipe_mu);
}

void ppx_unwind_reset_child(void)
{
    pthread_mutex_init(&pipe_mu, NULL);
    unsigned used = atomic_load_explicit(&next_inside_slot, memory_order_relaxed);
    bool inside = false;
    for (unsigned i = 0; i < INSIDE_SLOTS && i < used; i++) {
        if (atomic_load_explicit(&inside_unwinder[i].n, memory_order_relaxed) != 0)
            inside = true;
        atomic_store_explicit(&inside_unwinder[i].n, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&handlers_at_lock, 0, memory_order_relaxed);
    /* Only this thread exists now: a loader lock still held was held by
     * another thread at fork, and stays held for good. */
    if (loader_lock != NULL && __atomic_load_n(&loader_lock->lock, __ATOMIC_RELAXED) != 0)
        inside = true;
    if (inside)
        atomic_store_explicit(&unwind_disabled, true, memory_order_relaxed);
}

/* Marks this thread as inside libunwind (see inside_unwinder). Also from
 * the SIGPROF handler: a lock-free add, no allocation. */
static void enter_unwinder(struct ppx_thread *t)
{
    if (PPX_UNLIKELY(t->unwind_slot == 0)) {
        unsigned slot = atomic_fetch_add_explicit(&next_inside_slot, 1, memory_order_relaxed);
        t->unwind_slot = 1 + (slot < INSIDE_SLOTS - 1 ? slot : INSIDE_SLOTS - 1);
    }
    atomic_uint *inside = &inside_unwinder[t->unwind_slot - 1].n;
    if (PPX_UNLIKELY(t->unwind_slot == INSIDE_SLOTS))
        atomic_fetch_add_explicit(inside, 1, memory_order_relaxed);
    else
        atomic_store_explicit(inside, 1, memory_order_relaxed);
    /* the mark must be in memory before libunwind takes any lock */
    atomic_signal_fence(memory_order_seq_cst);
}

static void leave_unwinder(struct ppx_thread *t)
{
    atomic_signal_fence(memory_order_seq_cst);
    atomic_uint *inside = &inside_unwinder[t->unwind_slot - 1].n;
    if (PPX_UNLIKELY(t->unwind_slot == INSIDE_SLOTS))
        atomic_fetch_sub_explicit(inside, 1, memory_order_relaxed);
    else
        atomic_store_explicit(inside, 0, memory_order_relaxed);
}

static int backtrace_tracked(struct ppx_thread *t, uintptr_t *pcs, int size)
{
    enter_unwinder(t);
    int n = unw_backtrace((void **)pcs, size);
    leave_unwinder(t);
    return n;
}

unsigned ppx_unwind(uintptr_t *pcs, unsigned max_depth, const void *ret)
{
    int n = 0;
    if (PPX_UNLIKELY(!ppx_stack_room())) {
        pcs[0] = (uintptr_t)ret; /* no room for a walk: the caller alone */
        return 1;
    }
    if (atomic_load_explicit(&unwind_ready, memory_order_acquire) &&
        !atomic_load_explicit(&unwind_disabled, memory_order_relaxed))
        n = backtrace_tracked(&ppx_thread, pcs, (int)(max_depth + PPX_UNWIND_SLACK));
    if (n < 0)
        n = 0;
    /* Our frames come first; the caller of the hook starts at ret. */
    unsigned start = 0, count = ppx_coroutine_cut(pcs, (unsigned)n);
    while (start < count && start < PPX_UNWIND_SLACK && pcs[start] != (uintptr_t)ret)
        start++;
    if (start == count || start == PPX_UNWIND_SLACK) {
        start = 0; /* ret not seen (a tail call?): drop what lies in our text */
        while (start < count && in_ranges(pcs[start], own_text, n_own_text))
            start++;
    }
    unsigned depth = count - start;
    if (depth > max_depth)
        depth = max_depth;
    if (depth == 0) {
        pcs[0] = (uintptr_t)ret;
        return 1;
    }
    if (start != 0)
        memmove(pcs, pcs + start, depth * sizeof *pcs);
    return depth;
}

/* ---- unwinding from a signal (cpu.c's SIGPROF handler) ----
 *
 * unw_init_local2 from the interrupted context, then unw_step. This runs
 * in a signal handler that may have interrupted anything, so the walk is
 * defensive:
 *  - Never waiting for the loader's lock (see "the loader's lock"): its
 *    holder (dlclose, say) may be waiting for a lock the interrupted code
 *    holds (malloc's, a table's of ours). libunwind's dl_iterate_phdr
 *    calls come through the hook below, which in the handler only
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

#define SIGNAL_STACK_SPAN ((uintptr_t)64 << 20)
#define SIGNAL_EXTRA_STEPS 32 /* frames of ours that may be skipped */

static struct text_range loader_text[MAX_RANGES];
static unsigned n_loader_text;
static PPX_TLS unsigned dl_iterate_depth;
static PPX_TLS bool loader_refused; /* the handler's walk met a busy loader lock */

typedef int (*dl_iterate_fn)(int (*)(struct dl_phdr_info *, size_t, void *), void *);
static dl_iterate_fn next_dl_iterate_phdr;

static dl_iterate_fn resolve_dl_iterate_phdr(void)
{
    dl_iterate_fn fn = __atomic_load_n(&next_dl_iterate_phdr, __ATOMIC_ACQUIRE);
    if (fn == NULL) {
        fn = (dl_iterate_fn)dlsym(RTLD_NEXT, "dl_iterate_phdr");
        __atomic_store_n(&next_dl_iterate_phdr, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

/* After a failed try-lock in a handler (counted in handlers_at_lock):
 * true once the lock is ours. */
static bool wait_for_handler(pthread_mutex_t *lock)
{
    for (unsigned i = 0; i < HANDLER_WAIT_SPINS; i++) {
        if (atomic_load_explicit(&handlers_at_lock, memory_order_acquire) <= 1)
            return false; /* only this one: the holder is no handler */
        __builtin_ia32_pause();
        if (pthread_mutex_trylock(lock) == 0)
            return true;
    }
    return false;
}

PPX_EXPORT int dl_iterate_phdr(int (*callback)(struct dl_phdr_info *, size_t, void *), void *data)
{
    dl_iterate_fn real = resolve_dl_iterate_phdr();
    if (real == NULL)
        return 0;
    if (PPX_UNLIKELY(ppx_cpu_in_handler != 0) && loader_lock != NULL) {
        /* libunwind, in the SIGPROF handler: never wait for the lock (its
         * holder may wait for a lock the interrupted code holds). */
        pthread_mutex_t *lock = (pthread_mutex_t *)(uintptr_t)loader_lock;
        atomic_fetch_add_explicit(&handlers_at_lock, 1, memory_order_acq_rel);
        if (pthread_mutex_trylock(lock) != 0 && !wait_for_handler(lock)) {
            atomic_fetch_sub_explicit(&handlers_at_lock, 1, memory_order_acq_rel);
            loader_refused = true;
            return 0;
        }
        int rc = real(callback, data); /* takes it again: recursive */
        pthread_mutex_unlock(lock);
        atomic_fetch_sub_explicit(&handlers_at_lock, 1, memory_order_acq_rel);
        return rc;
    }
    dl_iterate_depth++;
    atomic_signal_fence(memory_order_seq_cst);
    int rc = real(callback, data);
    atomic_signal_fence(memory_order_seq_cst);
    dl_iterate_depth--;
    return rc;
}

struct loader_query {
    uintptr_t base;
};

static int collect_loader_text(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const struct loader_query *q = data;
    if (info->dlpi_addr != q->base)
        return 0;
    for (unsigned i = 0; i < info->dlpi_phnum && n_loader_text < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_X) == 0)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        loader_text[n_loader_text++] = (struct text_range){lo, lo + ph->p_memsz};
    }
    return 1;
}

void ppx_unwind_signal_init(void)
{
    resolve_dl_iterate_phdr();
    struct loader_query q = {(uintptr_t)getauxval(AT_BASE)};
    if (q.base != 0 && n_loader_text == 0)
        dl_iterate_phdr(collect_loader_text, &q);
}

bool ppx_unwind_signal_unsafe(const void *ucontext)
{
    const ucontext_t *uc = ucontext;
    if (in_ranges((uintptr_t)uc->uc_mcontext.gregs[REG_RIP], loader_text, n_loader_text))
        return true;
    if (loader_lock == NULL)
        return dl_iterate_depth != 0;
    /* busy with another thread's handler at it: the walk may wait */
    return loader_lock_busy() &&
           atomic_load_explicit(&handlers_at_lock, memory_order_acquire) == 0;
}

unsigned ppx_unwind_signal(uintptr_t *pcs, unsigned max_depth, const void *ucontext)
{
    const ucontext_t *uc = ucontext;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t sp0 = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    if (max_depth == 0)
        return 0;
    /* The leaf, interrupted pc + 1 (wire.h): kept even if the walk fails. */
    pcs[0] = pc + 1;
    if (!atomic_load_explicit(&unwind_ready, memory_order_acquire) ||
        atomic_load_explicit(&unwind_disabled, memory_order_relaxed))
        return 1;
    struct ppx_thread *t = &ppx_thread;
    unw_cursor_t cursor;
    unsigned n = 0;
    loader_refused = false;
    enter_unwinder(t);
    /* libunwind reads the registers from the context, which on x86-64 is
     * a ucontext_t: the kernel's signal frame is one. */
    if (unw_init_local2(&cursor, (unw_context_t *)(uintptr_t)ucontext, UNW_INIT_SIGNAL_FRAME) ==
        0) {
        uintptr_t prev_sp = sp0;
        for (unsigned step = 0; step < max_depth + SIGNAL_EXTRA_STEPS && n < max_depth; step++) {
            unw_word_t ip = 0, sp = 0;
            if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0 ||
                unw_get_reg(&cursor, UNW_REG_SP, &sp) < 0)
                break;
            if (step > 0 && (sp <= prev_sp || sp - sp0 > SIGNAL_STACK_SPAN))
                break;
            prev_sp = sp;
            if (!in_ranges(ip, own_text, n_own_text))
                pcs[n++] = step == 0 ? ip + 1 : ip;
            if (ppx_coroutine_entry(step == 0 ? ip : ip - 1))
                break;
            if (unw_step(&cursor) <= 0)
                break;
        }
    }
    leave_unwinder(t);
    if (loader_refused)
        return 0; /* a stack cut short where the loader was busy: dropped */
    if (n == 0) {
        pcs[0] = pc + 1; /* all frames were ours: keep where it was */
        n = 1;
    }
    return n;
}
