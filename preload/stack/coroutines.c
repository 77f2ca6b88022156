/* Coroutine entries: where a walk on a coroutine's own stack must end.
 *
 * state-threads (SRS links it statically; Debian ships libst.so and
 * libst.a) runs each coroutine on an mmap'ed stack of its own, entered by a
 * context switch into _st_thread_main. That frame has no caller: above it
 * lie the coroutine's thread record, its keys, and whatever mapping comes
 * next. libunwind's fast path (unw_backtrace) reads return addresses and
 * saved frame pointers there without checking them, walks on into other
 * coroutines' frames and raw numbers, and faults where those point outside
 * memory; its careful path validates each read (mincore and a pipe write),
 * which turns the garbage into system calls instead.
 *
 * Where the entries are, found once at start (files mapped read-only, no
 * memory of ours from malloc):
 *  - _st_thread_main, in the executable's .symtab or .dynsym, or in those
 *    of the loaded object that defines st_thread_create: its whole range;
 *  - builds that inline _st_thread_main into st_thread_create (Debian's
 *    libst 1.9, both the .so and the .a) have no such symbol. There the
 *    coroutine's code is the stretch of st_thread_create that calls the
 *    start function (its one indirect call) and right after it
 *    st_thread_exit (a direct call): the range holds both return addresses.
 *    If st_thread_create has not exactly one such pair, no entry is assumed
 *    and ppx says so once.
 * Objects loaded later with dlopen are not looked at (README, limits).
 *
 * How walks end there: each range is registered with libunwind as dynamic
 * unwind info (_U_dyn_register), consulted before any object's own: one
 * FDE whose return address and RBP are undefined, DWARF's end of the stack.
 * unw_step then returns 0 at the entry, and unw_backtrace's fast path,
 * which learns each pc's frame through unw_step, caches that pc as a last
 * frame: no walk reads anything above the entry again. The callers also cut
 * their stacks after an entry (ppx_coroutine_cut), should libunwind not.
 * The SIGPROF walk stops before stepping past an entry, so it never looks
 * this info up: libunwind 1.6 keeps the CIE it parses from dynamic info
 * (about 100 bytes of its own pool) instead of freeing it, which the fast
 * path pays once per thread and frame cache. */
#include "stack.h"

#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <libunwind.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ENTRIES 4

struct entry_range {
    uintptr_t lo, hi;
};

static struct entry_range entries[MAX_ENTRIES];
static unsigned n_entries;

/* Per entry: a CIE and an FDE in .eh_frame's format, its one-line search
 * table, and the record libunwind keeps a pointer to (static: registered
 * for good). */
#define EH_BYTES 64
static _Alignas(8) unsigned char eh_frame[MAX_ENTRIES][EH_BYTES];
static int32_t search_table[MAX_ENTRIES][2];
static unw_dyn_info_t dyn_info[MAX_ENTRIES];

bool ppx_coroutine_entry(uintptr_t pc)
{
    for (unsigned i = 0; i < n_entries; i++)
        if (pc >= entries[i].lo && pc < entries[i].hi)
            return true;
    return false;
}

unsigned ppx_coroutine_cut(const uintptr_t *pcs, unsigned n)
{
    if (n_entries == 0)
        return n;
    for (unsigned i = 0; i < n; i++)
        if (ppx_coroutine_entry(pcs[i] - 1)) /* return addresses: the call is before */
            return i + 1;
    return n;
}

/* ---- the entry inlined into st_thread_create ---- */

/* Length of an indirect near call (FF /2, optional REX) at p, 0 if none. */
static size_t indirect_call_len(const unsigned char *p, size_t avail)
{
    size_t i = 0;
    if (avail > 0 && (p[0] & 0xf0) == 0x40)
        i = 1; /* REX */
    if (avail < i + 2 || p[i] != 0xff || ((p[i + 1] >> 3) & 7) != 2)
        return 0;
    unsigned mod = p[i + 1] >> 6, rm = p[i + 1] & 7;
    size_t len = i + 2;
    if (mod == 3)
        return len;
    if (rm == 4) { /* SIB */
        if (avail < len + 1)
            return 0;
        if (mod == 0 && (p[len] & 7) == 5)
            len += 4;
        len++;
    } else if (mod == 0 && rm == 5) {
        len += 4; /* rip-relative */
    }
    len += mod == 1 ? 1 : mod == 2 ? 4 : 0;
    return len <= avail ? len : 0;
}

#define EXIT_CALL_WITHIN 16 /* bytes between the start call and st_thread_exit's */

/* In code (size bytes at address addr): the one indirect call followed
 * closely by a direct call. Its range: from the start call's return
 * address - 1 to the exit call's return address, so that both return
 * addresses, looked up as address - 1, fall inside. */
static bool find_inlined_entry(const unsigned char *code, size_t size, uintptr_t addr,
                               struct entry_range *out)
{
    unsigned found = 0;
    for (size_t i = 0; i < size; i++) {
        size_t len = indirect_call_len(code + i, size - i);
        if (len == 0)
            continue;
        size_t after = i + len;
        for (size_t j = after; j < after + EXIT_CALL_WITHIN && j + 5 <= size; j++) {
            if (code[j] == 0xe8) {
                *out = (struct entry_range){addr + after - 1, addr + j + 5};
                found++;
                break;
            }
        }
        i = after - 1; /* past it: without its REX prefix it would match again */
    }
    return found == 1;
}

/* ---- registering an entry with libunwind ---- */

struct byte_writer {
    unsigned char *p;
    size_t n;
};

static void put_u8(struct byte_writer *w, unsigned v)
{
    if (w->n < EH_BYTES)
        w->p[w->n] = (unsigned char)v;
    w->n++;
}

static void put_u32(struct byte_writer *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        put_u8(w, (v >> (8 * i)) & 0xff);
}

static void put_u64(struct byte_writer *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void pad_to_4(struct byte_writer *w, size_t start)
{
    while ((w->n - start) % 4 != 0)
        put_u8(w, 0); /* DW_CFA_nop */
}

#define DW_CFA_def_cfa 0x0c
#define DW_CFA_undefined 0x07
#define DWARF_RSP 7
#define DWARF_RBP 6
#define DWARF_RA 16

/* A CIE (CFA = RSP + 8; return address and RBP undefined) and one FDE for
 * [pc_begin, pc_begin + range), absolute 8-byte addresses. Returns the
 * FDE's offset. */
static size_t write_eh_frame(unsigned char *buf, uint64_t pc_begin, uint64_t range)
{
    struct byte_writer w = {buf, 0};
    put_u32(&w, 0); /* CIE length, below */
    put_u32(&w, 0); /* CIE id in .eh_frame */
    put_u8(&w, 1);  /* version */
    put_u8(&w, 'z');
    put_u8(&w, 'R');
    put_u8(&w, 0);
    put_u8(&w, 1);    /* code alignment */
    put_u8(&w, 0x78); /* data alignment -8 */
    put_u8(&w, DWARF_RA);
    put_u8(&w, 1);    /* augmentation data: */
    put_u8(&w, 0x00); /* FDE addresses DW_EH_PE_absptr */
    put_u8(&w, DW_CFA_def_cfa);
    put_u8(&w, DWARF_RSP);
    put_u8(&w, 8);
    put_u8(&w, DW_CFA_undefined);
    put_u8(&w, DWARF_RA);
    put_u8(&w, DW_CFA_undefined);
    put_u8(&w, DWARF_RBP);
    pad_to_4(&w, 0);
    uint32_t cie_len = (uint32_t)(w.n - 4);
    memcpy(buf, &cie_len, 4);

    size_t fde = w.n;
    put_u32(&w, 0);                   /* FDE length, below */
    put_u32(&w, (uint32_t)(fde + 4)); /* back to the CIE, from this field */
    put_u64(&w, pc_begin);
    put_u64(&w, range);
    put_u8(&w, 0); /* augmentation data: none */
    pad_to_4(&w, fde);
    uint32_t fde_len = (uint32_t)(w.n - fde - 4);
    memcpy(buf + fde, &fde_len, 4);
    return fde;
}

static void register_entry(unsigned i)
{
    uintptr_t segbase = (uintptr_t)eh_frame[i];
    /* libunwind looks ip - segbase - load_offset up in the 32-bit search
     * table and adds load_offset to the FDE's addresses: with load_offset
     * = lo - segbase, the table holds offset 0 and the FDE starts at
     * segbase, wherever the entry lies. */
    uintptr_t load_offset = entries[i].lo - segbase;
    size_t fde = write_eh_frame(eh_frame[i], segbase, entries[i].hi - entries[i].lo);
    search_table[i][0] = 0;
    search_table[i][1] = (int32_t)fde;
    unw_dyn_info_t *di = &dyn_info[i];
    memset(di, 0, sizeof *di);
    di->start_ip = entries[i].lo;
    di->end_ip = entries[i].hi;
    di->format = UNW_INFO_FORMAT_REMOTE_TABLE;
    di->load_offset = load_offset;
    di->u.rti.segbase = segbase;
    di->u.rti.table_len = 1; /* in words: the one 8-byte entry */
    di->u.rti.table_data = (unw_word_t)(uintptr_t)search_table[i];
    _U_dyn_register(di);
}

/* ---- finding the entries ---- */

static void add_entry(uintptr_t lo, uintptr_t hi)
{
    if (hi <= lo || n_entries == MAX_ENTRIES || ppx_coroutine_entry(lo))
        return;
    entries[n_entries] = (struct entry_range){lo, hi};
    register_entry(n_entries);
    n_entries++;
}

struct ppx_st_scheduler ppx_st_scheduler;

/* The scheduler's variables of a state-threads linked into the executable
 * (Debian's libst.so hides them: its coroutines are found by hooks). */
static void find_scheduler(const struct ppx_elf_image *img, uintptr_t bias)
{
    uint64_t vp, vp_size, this_thread, this_size, active, active_size;
    if (!ppx_elf_object(img, "_st_this_vp", &vp, &vp_size) ||
        !ppx_elf_object(img, "_st_this_thread", &this_thread, &this_size) ||
        !ppx_elf_object(img, "_st_active_count", &active, &active_size) ||
        this_size != sizeof(void *) || active_size != sizeof(int))
        return;
    ppx_st_scheduler =
        (struct ppx_st_scheduler){bias + vp, bias + this_thread, bias + active, vp_size};
}

/* path: an object loaded at bias. */
static void scan_object(const char *path, uintptr_t bias, bool executable)
{
    struct ppx_elf_image img;
    if (!ppx_elf_open(path, &img))
        return;
    uint64_t value, size;
    if (executable)
        find_scheduler(&img, bias);
    if (ppx_elf_function(&img, "_st_thread_main", &value, &size)) {
        add_entry(bias + value, bias + value + (size != 0 ? size : 1));
    } else if (ppx_elf_function(&img, "st_thread_create", &value, &size) && size != 0) {
        struct entry_range r;
        if (find_inlined_entry((const unsigned char *)(bias + value), size, bias + value, &r))
            add_entry(r.lo, r.hi);
        else {
            static atomic_flag said = ATOMIC_FLAG_INIT;
            ppx_log_once(&said, "no coroutine entry found in st_thread_create of ", path,
                         ": stacks of its coroutines may run past their start", NULL);
        }
    }
    ppx_elf_close(&img);
}

struct object_query {
    uintptr_t addr; /* st_thread_create, if some object exports it */
    uintptr_t exe_bias;
    uintptr_t lib_bias;
    char lib_path[256];
    bool lib_found;
};

static int find_objects(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct object_query *q = data;
    if (q->exe_bias == (uintptr_t)-1) {
        q->exe_bias = info->dlpi_addr; /* the first object is the executable */
        return 0;
    }
    if (q->addr == 0 || info->dlpi_name == NULL || info->dlpi_name[0] != '/')
        return 0;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && q->addr >= lo && q->addr < lo + ph->p_memsz &&
            strlen(info->dlpi_name) < sizeof q->lib_path) {
            strcpy(q->lib_path, info->dlpi_name);
            q->lib_bias = info->dlpi_addr;
            q->lib_found = true;
            return 1;
        }
    }
    return 0;
}

void ppx_coroutines_init(void)
{
    struct object_query q = {0};
    q.exe_bias = (uintptr_t)-1;
    /* RTLD_NEXT: libppx.so's own st_thread_create (the hook of thread
     * dumps) comes first; the executable, before it, is scanned anyway */
    q.addr = (uintptr_t)dlsym(RTLD_NEXT, "st_thread_create");
    dl_iterate_phdr(find_objects, &q);
    if (q.exe_bias != (uintptr_t)-1)
        scan_object("/proc/self/exe", q.exe_bias, true);
    if (q.lib_found)
        scan_object(q.lib_path, q.lib_bias, false);
}
