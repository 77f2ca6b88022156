/* The exported malloc family. Each hook calls the next allocator (glibc's,
 * or a preloaded/linked jemalloc or tcmalloc: whatever dlsym(RTLD_NEXT)
 * finds), then charges the thread's sampling countdown; only when that runs
 * out does the slow path (heap/sampler.c) unwind and record.
 *
 * Allocators are never mixed: a function the next allocator does not export
 * (jemalloc has no pvalloc) is emulated with that allocator's own aligned
 * allocation instead of falling through to glibc's, whose blocks the next
 * free() would not know. */
#include "hooks.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* glibc's own entry points: the last resort if dlsym finds nothing. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static void *early_malloc(size_t size);
static void early_free(void *p);
static void *early_calloc(size_t n, size_t m);
static void *early_realloc(void *old, size_t size);

/* Until initialisation has resolved the next allocator, the hot four point
 * at stubs that initialise (or serve from the bootstrap arena): the hooks
 * then need no "are we ready" test of their own. */
struct ppx_real ppx_real = {
    .malloc = early_malloc,
    .free = early_free,
    .calloc = early_calloc,
    .realloc = early_realloc,
};

/* Read while another thread may be publishing them. */
#define REAL(f) (__atomic_load_n(&ppx_real.f, __ATOMIC_RELAXED))
#define PUBLISH(f, v) __atomic_store_n(&ppx_real.f, (v), __ATOMIC_RELEASE)

static size_t page_size = 4096; /* set once at initialisation */
/* The next allocator is glibc's own (set once at initialisation). */
static bool glibc_allocator;
/* The next allocator's own primitives behind the emulations. */
static void *(*next_memalign)(size_t, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);

#define RET __builtin_return_address(0)

/* Charges size bytes to the thread's countdown before the allocation is
 * made: true when it did not run out. The hooks then end in a tail call
 * to the next allocator, with no frame of their own: the cost of a
 * forwarding shim and a thread-local countdown. (A failed allocation is
 * charged too: its bytes only bring the next sample forward.) */
static inline __attribute__((always_inline)) bool charge(size_t size)
{
    struct ppx_tls *t = &ppx_tls;
    if (PPX_LIKELY(size < t->next_sample)) {
        t->next_sample -= size;
        return true;
    }
    return false;
}

/* ---- resolution and emulation ---- */

static size_t round_up_pow2(size_t v)
{
    size_t p = 1;
    while (p < v && p != 0)
        p <<= 1;
    return p;
}

static void *aligned_from_next(size_t align, size_t size)
{
    if (align < sizeof(void *))
        align = sizeof(void *);
    if ((align & (align - 1)) != 0)
        align = round_up_pow2(align); /* glibc's memalign does the same */
    if (align == 0) {
        errno = EINVAL;
        return NULL;
    }
    if (next_memalign != NULL)
        return next_memalign(align, size);
    if (next_posix_memalign != NULL) {
        void *p = NULL;
        int rc = next_posix_memalign(&p, align, size);
        if (rc != 0) {
            errno = rc;
            return NULL;
        }
        return p;
    }
    if (next_aligned_alloc != NULL) {
        size_t rounded = (size + align - 1) & ~(align - 1);
        if (rounded < size) {
            errno = ENOMEM;
            return NULL;
        }
        return next_aligned_alloc(align, rounded);
    }
    errno = ENOMEM;
    return NULL;
}

static void *emul_memalign(size_t align, size_t size)
{
    return aligned_from_next(align, size);
}

static void *emul_aligned_alloc(size_t align, size_t size)
{
    return aligned_from_next(align, size);
}

static int emul_posix_memalign(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    int saved = errno;
    void *p = aligned_from_next(align, size);
    int rc = p == NULL ? (errno != 0 ? errno : ENOMEM) : 0;
    errno = saved;
    if (p != NULL)
        *out = p;
    return rc;
}

static void *emul_valloc(size_t size)
{
    return aligned_from_next(page_size, size);
}

static void *emul_pvalloc(size_t size)
{
    size_t rounded = (size + page_size - 1) & ~(page_size - 1);
    if (rounded < size) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned_from_next(page_size, rounded == 0 ? page_size : rounded);
}

static void *emul_calloc(size_t n, size_t m)
{
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = REAL(malloc)(total);
    if (p != NULL)
        memset(p, 0, total);
    return p;
}

static size_t emul_malloc_usable_size(void *p)
{
    (void)p;
    return 0; /* another allocator's answer could crash; 0 is always safe */
}

struct object_query {
    uintptr_t addr;
    const void *object; /* the object's program headers: unique per object */
};

static int find_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct object_query *q = data;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && q->addr >= lo && q->addr < lo + ph->p_memsz) {
            q->object = info->dlpi_phdr;
            return 1;
        }
    }
    return 0;
}

/* The loaded object that holds addr (dladdr would also look for the nearest
 * symbol, a slow scan of libc's symbol table). */
static const void *object_of(const void *addr)
{
    struct object_query q = {(uintptr_t)addr, NULL};
    if (addr != NULL)
        dl_iterate_phdr(find_object, &q);
    return q.object;
}

/* name from the next object, but only if it is the allocator's own. */
static void *next_from(const char *name, const void *allocator)
{
    void *fn = dlsym(RTLD_NEXT, name);
    if (fn == NULL || allocator == NULL)
        return fn;
    return object_of(fn) == allocator ? fn : NULL;
}

/* The aligned allocators and the extras, from the allocator's own object
 * (base) where it has them (next_memalign is known already). */
static void resolve_extras(const void *base)
{
    next_posix_memalign = (int (*)(void **, size_t, size_t))next_from("posix_memalign", base);
    next_aligned_alloc = (void *(*)(size_t, size_t))next_from("aligned_alloc", base);
    ppx_real.valloc = (void *(*)(size_t))next_from("valloc", base);
    ppx_real.pvalloc = (void *(*)(size_t))next_from("pvalloc", base);
    ppx_real.malloc_usable_size = (size_t(*)(void *))next_from("malloc_usable_size", base);

    if (next_memalign == NULL && next_posix_memalign == NULL && next_aligned_alloc == NULL) {
        /* An allocator without any aligned allocation: what the program
         * would have called without us. */
        next_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
        next_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    }
}

/* What the next allocator lacks, emulated with what it has. */
static void emulate_missing(void)
{
    ppx_real.memalign = next_memalign != NULL ? next_memalign : emul_memalign;
    ppx_real.posix_memalign =
        next_posix_memalign != NULL ? next_posix_memalign : emul_posix_memalign;
    ppx_real.aligned_alloc = next_aligned_alloc != NULL ? next_aligned_alloc : emul_aligned_alloc;
    if (ppx_real.valloc == NULL)
        ppx_real.valloc = emul_valloc;
    if (ppx_real.pvalloc == NULL)
        ppx_real.pvalloc = emul_pvalloc;
    if (ppx_real.malloc_usable_size == NULL)
        ppx_real.malloc_usable_size = emul_malloc_usable_size;
}

void ppx_hooks_resolve(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    if (ps > 0)
        page_size = (size_t)ps;

    void *next_malloc = dlsym(RTLD_NEXT, "malloc");
    void *next_free = dlsym(RTLD_NEXT, "free");
    void *next_realloc = dlsym(RTLD_NEXT, "realloc");
    const void *base = object_of(next_malloc);
    void *(*real_malloc)(size_t) = (void *(*)(size_t))next_malloc;
    void (*real_free)(void *) = (void (*)(void *))next_free;
    void *(*real_realloc)(void *, size_t) = (void *(*)(void *, size_t))next_realloc;
    void *(*real_calloc)(size_t, size_t);

    if (next_malloc == NULL || next_free == NULL || next_realloc == NULL) {
        real_malloc = __libc_malloc;
        real_free = __libc_free;
        real_realloc = __libc_realloc;
        real_calloc = __libc_calloc;
        next_memalign = __libc_memalign;
        base = NULL;
        glibc_allocator = true;
    } else {
        glibc_allocator = base != NULL && base == object_of((const void *)__libc_malloc);
        real_calloc = (void *(*)(size_t, size_t))next_from("calloc", base);
        next_memalign = (void *(*)(size_t, size_t))next_from("memalign", base);
    }
    resolve_extras(base);
    emulate_missing();
    /* malloc before calloc: the calloc emulation calls it */
    PUBLISH(malloc, real_malloc);
    PUBLISH(free, real_free);
    PUBLISH(realloc, real_realloc);
    PUBLISH(calloc, real_calloc != NULL ? real_calloc : emul_calloc);
}

bool ppx_hooks_glibc_allocator(void)
{
    return glibc_allocator;
}

/* ---- before initialisation is complete ---- */

/* Returns true when the real functions may be used now. Otherwise the caller
 * serves the request from the bootstrap arena: this thread is inside dlsym,
 * or another thread is still initialising (waiting for it could deadlock
 * if it needs a lock this thread holds, e.g. the loader's). */
static __attribute__((noinline)) bool early(void)
{
    ppx_init();
    return ppx_hooks_ready();
}

static bool valid_posix_align(size_t align)
{
    return align >= sizeof(void *) && (align & (align - 1)) == 0;
}

/* The stubs in ppx_real until initialisation is done. */

static void *early_malloc(size_t size)
{
    if (early())
        return REAL(malloc)(size);
    return ppx_bootstrap_alloc(size, 16);
}

static void early_free(void *p)
{
    if (early())
        REAL(free)(p);
    /* else: cannot happen, only the bootstrap arena has served so far */
}

static void *early_calloc(size_t n, size_t m)
{
    if (early())
        return REAL(calloc)(n, m);
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return ppx_bootstrap_alloc(total, 16); /* never reused: already zero */
}

/* Bootstrap blocks never get here (their grains are marked in the live
 * filter, so realloc takes its slow path). */
static void *early_realloc(void *old, size_t size)
{
    if (early())
        return REAL(realloc)(old, size);
    if (old != NULL) {
        errno = ENOMEM; /* cannot happen before initialisation */
        return NULL;
    }
    return ppx_bootstrap_alloc(size, 16);
}

/* ---- the hooks ---- */

PPX_EXPORT void *malloc(size_t size)
{
    if (PPX_LIKELY(charge(size)))
        return REAL(malloc)(size);
    return ppx_malloc_sampled(size, RET);
}

/* The test also lets NULL through (grain 0, practically never marked) and
 * the bootstrap arena's blocks (aligned, their grains always marked): the
 * slow path sorts them out. Out of line, so that free()'s common path
 * saves no register and ends in a jump to the next allocator: 4
 * instructions (objdump), none of them a load but the mask's. */
static __attribute__((noinline)) void free_maybe_sampled(void *p)
{
    if (ppx_sample_free(p))
        REAL(free)(p);
}

PPX_EXPORT void free(void *p)
{
    if (PPX_UNLIKELY(ppx_live_maybe(p)))
        free_maybe_sampled(p);
    else
        REAL(free)(p);
}

PPX_EXPORT void *calloc(size_t n, size_t m)
{
    size_t total;
    /* an overflow is calloc's to refuse, and nothing is charged */
    if (PPX_UNLIKELY(__builtin_mul_overflow(n, m, &total)) || PPX_LIKELY(charge(total)))
        return REAL(calloc)(n, m);
    return ppx_calloc_sampled(n, m, total, RET);
}

static void *realloc_from_bootstrap(void *old, size_t size, const void *ret)
{
    void *p = charge(size) ? REAL(malloc)(size) : ppx_malloc_sampled(size, ret);
    if (p == NULL)
        return NULL;
    size_t old_size = ppx_bootstrap_size(old);
    memcpy(p, old, old_size < size ? old_size : size);
    return p;
}

static __attribute__((noinline)) void *realloc_slow(void *old, size_t size, const void *ret)
{
    if (old != NULL && ppx_bootstrap_owns(old))
        return realloc_from_bootstrap(old, size, ret);
    /* The old block leaves the live table before the real realloc: once it
     * returns, its address may already belong to another thread. */
    struct ppx_live_entry old_entry;
    bool tracked = old != NULL && ppx_sample_forget(old, &old_entry);
    void *p = REAL(realloc)(old, size);
    if (p == NULL && (size != 0 || old == NULL)) {
        /* failed: the old block is untouched, and so are the figures */
        if (tracked)
            ppx_sample_restore(&old_entry);
        return NULL;
    }
    if (tracked)
        ppx_sample_count_free(&old_entry);
    /* p NULL: realloc(p, 0) freed p, as glibc's does */
    return charge(size) ? p : ppx_recorded_after(p, 0, size, true, ret);
}

/* Out of line, as the sampled paths: the common path keeps no frame. */
static __attribute__((noinline)) void *realloc_sampled(void *old, size_t size, const void *ret)
{
    return ppx_recorded_after(REAL(realloc)(old, size), 0, size, true, ret);
}

static inline __attribute__((always_inline)) void *realloc_impl(void *old, size_t size,
                                                                const void *ret)
{
    if (PPX_UNLIKELY(ppx_live_maybe(old)))
        return realloc_slow(old, size, ret);
    if (PPX_LIKELY(charge(size)))
        return REAL(realloc)(old, size);
    return realloc_sampled(old, size, ret);
}

PPX_EXPORT void *realloc(void *old, size_t size)
{
    return realloc_impl(old, size, RET);
}

PPX_EXPORT void *reallocarray(void *old, size_t n, size_t m)
{
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc_impl(old, total, RET);
}

PPX_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (PPX_UNLIKELY(!ppx_hooks_ready()) && !early()) {
        if (!valid_posix_align(align))
            return EINVAL;
        void *p = ppx_bootstrap_alloc(size, align);
        if (p == NULL)
            return ENOMEM;
        *out = p;
        return 0;
    }
    int rc = ppx_real.posix_memalign(out, align, size);
    if (rc == 0 && !charge(size))
        *out = ppx_recorded_after(*out, align, size, false, RET);
    return rc;
}

PPX_EXPORT void *aligned_alloc(size_t align, size_t size)
{
    if (PPX_UNLIKELY(!ppx_hooks_ready()) && !early())
        return ppx_bootstrap_alloc(size, round_up_pow2(align));
    void *p = ppx_real.aligned_alloc(align, size);
    return charge(size) ? p : ppx_recorded_after(p, align, size, false, RET);
}

PPX_EXPORT void *memalign(size_t align, size_t size)
{
    if (PPX_UNLIKELY(!ppx_hooks_ready()) && !early())
        return ppx_bootstrap_alloc(size, round_up_pow2(align));
    void *p = ppx_real.memalign(align, size);
    return charge(size) ? p : ppx_recorded_after(p, align, size, false, RET);
}

PPX_EXPORT void *valloc(size_t size)
{
    if (PPX_UNLIKELY(!ppx_hooks_ready()) && !early())
        return ppx_bootstrap_alloc(size, page_size);
    void *p = ppx_real.valloc(size);
    return charge(size) ? p : ppx_recorded_after(p, page_size, size, false, RET);
}

PPX_EXPORT void *pvalloc(size_t size)
{
    if (PPX_UNLIKELY(!ppx_hooks_ready()) && !early()) {
        size_t rounded = (size + page_size - 1) & ~(page_size - 1);
        return ppx_bootstrap_alloc(rounded == 0 ? page_size : rounded, page_size);
    }
    void *p = ppx_real.pvalloc(size); /* page-aligned: never moved */
    return charge(size) ? p : ppx_recorded_after(p, page_size, size, false, RET);
}

PPX_EXPORT size_t malloc_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    if (ppx_bootstrap_owns(p))
        return ppx_bootstrap_size(p);
    if (PPX_UNLIKELY(!ppx_hooks_ready()) && !early())
        return 0;
    return ppx_real.malloc_usable_size(p);
}
