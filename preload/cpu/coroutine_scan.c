/* Coroutines on no scheduler queue, found by their stacks (for
 * coroutine_dump.c's walk of a state-threads linked into the executable).
 *
 * Outside its debug builds state-threads keeps no list of its coroutines,
 * and one waiting on a condition variable or a mutex without timeout (or
 * in st_usleep(ST_UTIME_NO_TIMEOUT)) is on none of its scheduler's queues,
 * only on the condition's own. But st_thread_create carves every record
 * from the top of the coroutine's own stack (state-threads 1.9 and SRS's
 * fork alike): _st_stack_new maps a segment (a red-zone page, the usable
 * stk_bottom..stk_top, a red-zone page), stk_top is a page boundary
 * (unless stacks are randomized, st_randomize_stacks, off by default), and
 * below it come the per-thread data keys, then the record, so the record
 * lies a fixed distance below stk_top for every coroutine of a build (the
 * caller measures it on the coroutines its walk found). The record's
 * stack member names the calloc'ed stack record, whose stk_top is that
 * boundary again.
 *
 * The segments cannot be told by their mappings: the kernel merges
 * adjacent anonymous mappings of the same protection, the segments with
 * one another and with malloc's or the profiler's, so /proc/self/maps
 * shows one region for hundreds of stacks. So every page boundary of every
 * anonymous read-write region is a candidate stk_top: the word where the
 * record's stack member would be is read, and the candidate is a stack
 * when that word names a stack record whose stk_top is the boundary and
 * whose stk_bottom is a page boundary of the same region below the
 * record. The walk then goes on from stk_bottom: about three probes per
 * stack, one per page in memory elsewhere (mincore says which: memory
 * reserved and never touched is not read), up to 32 probes a system call,
 * at most PROBES_MAX per dump.
 *
 * The flusher lists the regions (and the executable ones, where start
 * functions must be) before the dump's signals; the handler reads every
 * word with process_vm_readv of this process, so a region unmapped since
 * (SRS unmaps stacks it frees) costs a failed read, never a fault. What
 * is found is a stack, and its record's place: whether the record is a
 * live coroutine the caller checks. */
#include "cpu.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>

#define PAGE 4096u
#define REGIONS_MAX 8192u
#define CODE_MAX 1024u
#define PROBES_MAX (1u << 18) /* pages in memory probed: 1 GB */
#define PAGES_MAX (1u << 24)  /* pages looked at: 64 GB of address space */
#define RESIDENCY_WINDOW 256u /* pages a mincore call */
#define BATCH 32u
#define BATCH_NEAR 4u

struct region {
    uintptr_t lo, hi;
};

/* Mapped once by the flusher; rewritten before each dump, read by the
 * handler after the signal. */
static struct {
    struct region anon[REGIONS_MAX];
    struct region code[CODE_MAX];
    bool first[REGIONS_MAX]; /* holds a stack already known: scanned first */
    unsigned n_anon, n_code;
} * maps;

/* ---- in the flusher: /proc/self/maps ---- */

static const char *hex_field(const char *p, uintptr_t *v)
{
    uintptr_t x = 0;
    for (;; p++) {
        unsigned d;
        if (*p >= '0' && *p <= '9')
            d = (unsigned)(*p - '0');
        else if (*p >= 'a' && *p <= 'f')
            d = (unsigned)(*p - 'a' + 10);
        else
            break;
        x = x << 4 | d;
    }
    *v = x;
    return p;
}

static const char *skip_field(const char *p)
{
    while (*p != ' ' && *p != '\0')
        p++;
    while (*p == ' ')
        p++;
    return p;
}

/* One line ("lo-hi perms offset dev inode [path]", maybe cut short: only
 * whether a path follows the inode matters). */
static void take_line(const char *line)
{
    uintptr_t lo, hi;
    const char *p = hex_field(line, &lo);
    if (*p != '-')
        return;
    p = hex_field(p + 1, &hi);
    if (*p != ' ' || hi <= lo || strlen(p + 1) < 4)
        return;
    const char *perms = p + 1;
    if (perms[2] == 'x') {
        if (maps->n_code < CODE_MAX)
            maps->code[maps->n_code++] = (struct region){lo, hi};
        return;
    }
    if (memcmp(perms, "rw-p", 4) != 0)
        return;
    p = skip_field(skip_field(skip_field(perms))); /* perms, offset, dev */
    bool inode_zero = p[0] == '0' && (p[1] == ' ' || p[1] == '\0' || p[1] == '\n');
    p = skip_field(p);
    /* unnamed: not [heap] (malloc's, stacks are mapped), [stack], a file */
    if (inode_zero && (*p == '\0' || *p == '\n') && maps->n_anon < REGIONS_MAX)
        maps->anon[maps->n_anon++] = (struct region){lo, hi};
}

bool ppx_stack_scan_prepare(void)
{
    if (maps == NULL && (maps = ppx_pages_alloc(sizeof *maps)) == NULL)
        return false;
    maps->n_anon = maps->n_code = 0;
    memset(maps->first, 0, sizeof maps->first);
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[4096], line[256];
    size_t len = 0;
    bool cut = false; /* the rest of a line too long is dropped */
    long n;
    while ((n = syscall(SYS_read, fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        for (long i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                line[len] = '\0';
                take_line(line);
                len = 0;
                cut = false;
            } else if (!cut && len + 1 < sizeof line) {
                line[len++] = buf[i];
            } else {
                cut = true;
            }
        }
    syscall(SYS_close, fd);
    return n == 0 && maps->n_anon > 0;
}

/* ---- in the handler ---- */

bool ppx_read_self(void *dst, uintptr_t src, size_t len)
{
    struct iovec local = {dst, len}, remote = {(void *)src, len};
    return src != 0 &&
           syscall(SYS_process_vm_readv, (long)ppx_pid, &local, 1L, &remote, 1L, 0L) == (long)len;
}

static uintptr_t read_word(uintptr_t src)
{
    uintptr_t v = 0;
    return ppx_read_self(&v, src, sizeof v) ? v : 0;
}

/* The index of the region of r[0..n) (sorted, as /proc lists them) that
 * holds a; n when none does. */
static unsigned region_of(const struct region *r, unsigned n, uintptr_t a)
{
    unsigned lo = 0, hi = n;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (a < r[mid].lo)
            hi = mid;
        else if (a >= r[mid].hi)
            lo = mid + 1;
        else
            return mid;
    }
    return n;
}

bool ppx_stack_scan_code(uintptr_t pc)
{
    return maps != NULL && region_of(maps->code, maps->n_code, pc) < maps->n_code;
}

void ppx_stack_scan_known(uintptr_t top)
{
    if (maps == NULL || top == 0)
        return;
    /* top ends the stack's usable part: its last byte is in the region */
    unsigned i = region_of(maps->anon, maps->n_anon, top - 1);
    if (i < maps->n_anon)
        maps->first[i] = true;
}

/* The words at addr[0..n) into val (0 where unreadable): one system call
 * while all are readable, process_vm_readv stopping at the first that is
 * not. */
static void read_words(const uintptr_t *addr, uintptr_t *val, unsigned n)
{
    struct iovec local[BATCH], remote[BATCH];
    for (unsigned done = 0; done < n;) {
        unsigned k = n - done;
        for (unsigned i = 0; i < k; i++) {
            val[done + i] = 0;
            local[i] = (struct iovec){&val[done + i], sizeof(uintptr_t)};
            remote[i] = (struct iovec){(void *)addr[done + i], sizeof(uintptr_t)};
        }
        long r = syscall(SYS_process_vm_readv, (long)ppx_pid, local, (long)k, remote, (long)k, 0L);
        unsigned got = r > 0 ? (unsigned)((size_t)r / sizeof(uintptr_t)) : 0;
        if (got < k)
            val[done + got] = 0; /* the one that failed; go on after it */
        done += got + 1;
    }
}

struct scan {
    const struct ppx_stack_scan *s;
    unsigned probes, pages;
    bool stop;
};

/* Whether stk_top at top, with the stack record named at stack, is a
 * stack of region r; its stk_bottom in *bottom. */
static bool is_stack(const struct ppx_stack_scan *s, const struct region *r, uintptr_t top,
                     uintptr_t stack, uintptr_t *bottom)
{
    if (stack == 0 || stack % sizeof(uintptr_t) != 0 || read_word(stack + s->stk_top) != top)
        return false;
    *bottom = read_word(stack + s->stk_bottom);
    return *bottom % PAGE == 0 && *bottom >= r->lo && *bottom < top - s->below_top;
}

/* Which pages of a region are in memory (mincore), a window at a time:
 * a page never touched is not probed, so that a scan neither reads nor
 * fills in the page tables of memory reserved and never used. */
struct residency {
    uintptr_t lo, hi;
    bool known;
    unsigned char vec[RESIDENCY_WINDOW];
};

static bool resident(struct residency *w, const struct region *r, uintptr_t addr)
{
    uintptr_t page = addr & ~(uintptr_t)(PAGE - 1);
    if (page < w->lo || page >= w->hi) { /* the window ending at this page */
        w->hi = page + PAGE;
        w->lo = w->hi - r->lo > RESIDENCY_WINDOW * PAGE ? w->hi - RESIDENCY_WINDOW * PAGE : r->lo;
        w->known = syscall(SYS_mincore, w->lo, w->hi - w->lo, w->vec) == 0;
    }
    return !w->known || (w->vec[(page - w->lo) / PAGE] & 1) != 0; /* unknown: probed */
}

/* One region, from its top down. */
static void scan_region(struct scan *sc, const struct region *r)
{
    const struct ppx_stack_scan *s = sc->s;
    struct residency w = {0, 0, false, {0}};
    uintptr_t top = r->hi & ~(uintptr_t)(PAGE - 1);
    unsigned batch = BATCH;
    while (!sc->stop && top >= r->lo + s->below_top && sc->probes < PROBES_MAX &&
           sc->pages < PAGES_MAX) {
        uintptr_t tops[BATCH], addr[BATCH], val[BATCH];
        unsigned n = 0;
        uintptr_t p = top;
        for (; n < batch && p >= r->lo + s->below_top && sc->pages < PAGES_MAX; p -= PAGE) {
            sc->pages++;
            uintptr_t word = p - s->below_top + s->th_stack;
            if (resident(&w, r, word)) {
                tops[n] = p;
                addr[n++] = word;
            }
        }
        read_words(addr, val, n);
        sc->probes += n;
        uintptr_t next = p, bottom; /* below the batch */
        batch = BATCH;
        for (unsigned i = 0; i < n; i++)
            if (is_stack(s, r, tops[i], val[i], &bottom)) {
                sc->stop = !s->take(tops[i] - s->below_top, s->arg);
                /* the next stack ends at or below its bottom, most often
                 * two red-zone pages below: a few probes first (each page
                 * probed may be one the kernel has to fill in) */
                next = bottom;
                batch = BATCH_NEAR;
                break;
            }
        if (next >= top)
            break;
        top = next;
    }
}

void ppx_stack_scan(const struct ppx_stack_scan *s)
{
    if (maps == NULL || s->below_top == 0 || s->below_top % sizeof(uintptr_t) != 0 ||
        s->th_stack + sizeof(uintptr_t) > s->below_top)
        return;
    struct scan sc = {s, 0, 0, false};
    /* the regions holding the stacks known first: new stacks are mapped
     * next to the others */
    for (unsigned pass = 0; pass < 2; pass++)
        for (unsigned i = maps->n_anon; i-- > 0 && !sc.stop;)
            if (maps->first[i] == (pass == 0))
                scan_region(&sc, &maps->anon[i]);
}
