/* Which code is whose: the executable segments of libppx.so and of
 * libunwind (frames of ours, dropped from every stack), of libunwind alone
 * (whose pipe2() calls are moved out of the program's way) and of the
 * loader (where a SIGPROF walk must not start). Found once, at
 * initialisation; read-only after, so any thread and any handler reads
 * them without a lock. */
#include "stack.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <link.h>
#include <sys/auxv.h>

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
/* The loader's (ld.so): a tick there is dropped. */
static struct text_range loader_text[MAX_RANGES];
static unsigned n_loader_text;

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

bool ppx_unwinder_pc(uintptr_t pc)
{
    return in_ranges(pc, unwinder_text, n_unwinder_text);
}

bool ppx_loader_pc(uintptr_t pc)
{
    return in_ranges(pc, loader_text, n_loader_text);
}

void ppx_code_ranges_init(void)
{
    collect_text((const void *)ppx_unwind, own_text, &n_own_text);
    collect_text((const void *)unw_backtrace, unwinder_text, &n_unwinder_text);
    for (unsigned i = 0; i < n_unwinder_text && n_own_text < MAX_RANGES; i++)
        own_text[n_own_text++] = unwinder_text[i];
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

void ppx_code_ranges_init_loader(void)
{
    struct loader_query q = {(uintptr_t)getauxval(AT_BASE)};
    if (q.base != 0 && n_loader_text == 0)
        dl_iterate_phdr(collect_loader_text, &q);
}
