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
 * shift every fd the program opens afterwards, so libunwind's pipe2() calls
 * made while the profiler runs get their descriptors moved to high numbers
 * (they still show in /proc/self/fd, close-on-exec). A pipe that fails
 * instead is no way out: every check then fails, stacks end after a frame or
 * two, and each unwind takes libunwind's slow path. Daemons close every fd:
 * libunwind would then read and write whatever the program opens at those
 * numbers next, so the flusher puts the pipe back while the numbers are
 * free, or stops unwinding if the program took them. */
#include "ppx_preload.h"

#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libunwind.h>
#include <link.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
    int base = ppx_high_fd_base();
    for (int i = 0; i < 2; i++) {
        int high = fcntl(fds[i], F_DUPFD_CLOEXEC, base);
        if (high >= 0) {
            close(fds[i]);
            fds[i] = high;
        }
    }
    pthread_mutex_lock(&pipe_mu);
    remember_pipe(fds);
    pthread_mutex_unlock(&pipe_mu);
    label_pipe(fds);
    errno = saved_errno;
    return 0;
}

void ppx_unwind_init(void)
{
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
        placed[i] = fcntl(fresh[i], F_DUPFD_CLOEXEC, unwinder_pipe[i]);
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
    if (inside)
        atomic_store_explicit(&unwind_disabled, true, memory_order_relaxed);
}

static int backtrace_tracked(struct ppx_thread *t, uintptr_t *pcs, int size)
{
    if (PPX_UNLIKELY(t->unwind_slot == 0)) {
        unsigned slot = atomic_fetch_add_explicit(&next_inside_slot, 1, memory_order_relaxed);
        t->unwind_slot = 1 + (slot < INSIDE_SLOTS - 1 ? slot : INSIDE_SLOTS - 1);
    }
    atomic_uint *inside = &inside_unwinder[t->unwind_slot - 1].n;
    bool shared = t->unwind_slot == INSIDE_SLOTS;
    if (PPX_UNLIKELY(shared))
        atomic_fetch_add_explicit(inside, 1, memory_order_relaxed);
    else
        atomic_store_explicit(inside, 1, memory_order_relaxed);
    /* the mark must be in memory before libunwind takes any lock */
    atomic_signal_fence(memory_order_seq_cst);
    int n = unw_backtrace((void **)pcs, size);
    atomic_signal_fence(memory_order_seq_cst);
    if (PPX_UNLIKELY(shared))
        atomic_fetch_sub_explicit(inside, 1, memory_order_relaxed);
    else
        atomic_store_explicit(inside, 0, memory_order_relaxed);
    return n;
}

unsigned ppx_unwind(uintptr_t *pcs, unsigned max_depth, const void *ret)
{
    int n = 0;
    if (atomic_load_explicit(&unwind_ready, memory_order_acquire) &&
        !atomic_load_explicit(&unwind_disabled, memory_order_relaxed))
        n = backtrace_tracked(&ppx_thread, pcs, (int)(max_depth + PPX_UNWIND_SLACK));
    if (n < 0)
        n = 0;
    /* Our frames come first; the caller of the hook starts at ret. */
    unsigned start = 0, count = (unsigned)n;
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
