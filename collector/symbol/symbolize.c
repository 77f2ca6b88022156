/* Symbolization with elfutils libdwfl: one Dwfl session per ELF file, the
 * file reported at bias 0 so that lookups use ELF virtual addresses
 * (runtime pc - load_bias), whatever address each process loaded it at.
 * Results are cached per (file, address); everything handed out points
 * into libdw's own data or the cache and lives until sym_cache_free(). */
#include "symbol/symbol.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sym_entry {
    uint64_t addr;     /* ELF virtual address */
    int n;             /* frames found, 0 = unknown */
    char *unversioned; /* the function name without its @VERSION suffix, owned */
    UT_hash_handle hh;
    struct sym_frame frames[]; /* innermost first */
};

/* A compilation unit's address range, DWARF addresses. */
struct cu_range {
    Dwarf_Addr lo, hi;
    Dwarf_Die *cu; /* owned by libdw */
};

struct sym_file {
    char *key; /* path, NUL, hex build id */
    Dwfl *dwfl;
    Dwfl_Module *mod; /* NULL: unusable, every lookup is unknown */
    GElf_Addr bias;   /* module address minus ELF address (0 when reported at 0) */
    struct sym_entry *entries;
    struct cu_range *cu_ranges; /* sorted by lo; built on first need */
    size_t n_cu_ranges;
    bool cu_ranges_built;
    UT_hash_handle hh;
};

struct sym_warned {
    UT_hash_handle hh;
    char path[]; /* key */
};

/* The one cache (symbol.h): owned by whoever builds profiles, one thread
 * at a time (the live collector's build lock), freed by sym_cache_free(). */
static struct sym_file *files;
static struct sym_warned *warned; /* files said unreadable, said once */

static bool first_time(const char *path);

/* libdwfl opens the candidates for a separate debug file without care:
 * a FIFO at one of them would stall every build (the build lock is held).
 * Those that lie beside the program, where whoever wrote the program may
 * put anything (DIR/LINK, DIR/.debug/LINK, /usr/lib/debug/DIR/LINK; LINK
 * its .gnu_debuglink, else NAME.debug as libdwfl tries), are looked at
 * first: one that is there and no regular file rules them all out. */
static bool there_but_not_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

static bool debuglink_candidates_safe(const char *file_name, const char *debuglink)
{
    const char *slash = file_name ? strrchr(file_name, '/') : NULL;
    if (!slash)
        return true;
    int dirlen = (int)(slash - file_name);
    char name[512], path[4096];
    if (!debuglink) {
        snprintf(name, sizeof name, "%s.debug", slash + 1);
        debuglink = name;
    }
    snprintf(path, sizeof path, "%.*s/%s", dirlen, file_name, debuglink);
    if (there_but_not_regular(path))
        return false;
    snprintf(path, sizeof path, "%.*s/.debug/%s", dirlen, file_name, debuglink);
    if (there_but_not_regular(path))
        return false;
    snprintf(path, sizeof path, "/usr/lib/debug%.*s/%s", dirlen, file_name, debuglink);
    return !there_but_not_regular(path);
}

/* The inflated copy of the module's debug file from the cache (symbol.h),
 * or -1. Asked before libdwfl's own lookup: when that one finds the file
 * by build id it keeps the Elf it opened, and libdw would then inflate
 * every compressed section again, however few addresses are looked up. */
static int cached_copy(Dwfl_Module *mod, char **name)
{
    const unsigned char *bits;
    GElf_Addr vaddr;
    int len = dwfl_module_build_id(mod, &bits, &vaddr);
    return len > 0 ? debug_cache_open(bits, (size_t)len, name) : -1;
}

/* Separate debug info from the local disk only. libdw's standard lookup
 * ends by asking debuginfod servers when DEBUGINFOD_URLS is set (Debian's
 * profile.d sets it): a profiler writing its output must not stall on
 * downloads, so then only the local /usr/lib/debug/.build-id tree is used. */
static int find_debuginfo_local(Dwfl_Module *mod, void **userdata, const char *modname,
                                GElf_Addr base, const char *file_name, const char *debuglink_file,
                                GElf_Word debuglink_crc, char **debuginfo_file_name)
{
    if (!debuglink_candidates_safe(file_name, debuglink_file)) {
        if (first_time(file_name))
            fprintf(stderr,
                    "ppx: %s: a candidate for its separate debug file is not a regular "
                    "file: symbolized from its own symbols only\n",
                    file_name);
        return -1;
    }
    int fd = cached_copy(mod, debuginfo_file_name);
    if (fd >= 0)
        return fd;
    const char *urls = getenv("DEBUGINFOD_URLS");
    if (urls && urls[0])
        return dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
                                            debuglink_crc, debuginfo_file_name);
    return dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
                                        debuglink_crc, debuginfo_file_name);
}

/* Never called: every module is reported with its file already open. */
static int find_elf_none(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                         char **file_name, Elf **elfp)
{
    (void)mod, (void)userdata, (void)modname, (void)base, (void)file_name, (void)elfp;
    return -1;
}

/* libdwfl reads it through offline_callbacks; never written: NULL, the
 * default search path. */
static char *debuginfo_path;
static const Dwfl_Callbacks offline_callbacks = {
    .find_elf = find_elf_none,
    .find_debuginfo = find_debuginfo_local,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path,
};

/* A file that cannot be read is said once, however many processes map it.
 * Names that are not absolute paths ([vdso]) are no files at all. The
 * vDSO is read from the collector's own copy (symbol.h): the same
 * kernel's, as the build id check confirms. */
static bool first_time(const char *path)
{
    if (path[0] != '/')
        return false;
    struct sym_warned *w;
    HASH_FIND_STR(warned, path, w);
    if (w)
        return false;
    size_t len = strlen(path);
    w = calloc(1, sizeof *w + len + 1);
    if (w) {
        memcpy(w->path, path, len + 1);
        HASH_ADD_KEYPTR(hh, warned, w->path, len, w);
    }
    return true;
}

static void warn_once(const char *path, const char *why)
{
    if (first_time(path))
        fprintf(stderr, "ppx: cannot symbolize %s: %s\n", path, why);
}

/* A mapping's path comes from the target (or a spool file), and is
 * opened while every profile build waits (live.h's build lock): it may
 * name anything by now. A FIFO would block the open (no writer) or the
 * reads, a device or /proc file would be read as if it were the ELF file:
 * only a regular file is read, and the open itself never waits. */
static int open_regular(const char *path)
{
    if (path[0] != '/') {
        errno = ENOENT; /* "[heap]" and the like: no file, and never cwd-relative */
        return -1;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -2;
    }
    return fd;
}

/* Opens path in its own Dwfl, reported at base 0. Returns the module, or
 * NULL after a warning. */
static Dwfl_Module *open_module(struct sym_file *f, const struct proc_mapping *m)
{
    bool vdso = strcmp(m->path, VDSO_MAPPING_NAME) == 0;
    int fd = vdso ? vdso_image_fd() : open_regular(m->path);
    if (fd == -2) {
        warn_once(m->path, "not a regular file");
        return NULL;
    }
    if (fd < 0) {
        warn_once(m->path, strerror(errno));
        return NULL;
    }
    f->dwfl = dwfl_begin(&offline_callbacks);
    if (!f->dwfl) {
        close(fd);
        warn_once(m->path, dwfl_errmsg(-1));
        return NULL;
    }
    dwfl_report_begin(f->dwfl);
    /* ET_DYN with add_p_vaddr: placed at its own p_vaddr, i.e. bias 0;
     * ET_EXEC ignores the base. On success fd belongs to libdwfl. */
    Dwfl_Module *mod = dwfl_report_elf(f->dwfl, m->path, m->path, fd, 0, true);
    if (!mod) {
        close(fd);
        warn_once(m->path, dwfl_errmsg(-1));
        return NULL;
    }
    dwfl_report_end(f->dwfl, NULL, NULL);
    if (!dwfl_module_getelf(mod, &f->bias)) {
        warn_once(m->path, dwfl_errmsg(-1));
        return NULL;
    }
    const unsigned char *bits;
    GElf_Addr vaddr;
    int len = dwfl_module_build_id(mod, &bits, &vaddr);
    if (len > 0 && m->build_id_len > 0 &&
        ((size_t)len != m->build_id_len || memcmp(bits, m->build_id, m->build_id_len) != 0)) {
        warn_once(m->path, "build id differs from the one the process loaded "
                           "(file replaced since?)");
        return NULL;
    }
    return mod;
}

static struct sym_file *file_for(const struct proc_mapping *m)
{
    if (!m || !m->path)
        return NULL;
    size_t plen = strlen(m->path);
    size_t blen = m->build_id_len <= sizeof m->build_id ? m->build_id_len : 0;
    size_t klen = plen + 1 + 2 * blen;
    char *key = malloc(klen + 1);
    if (!key)
        return NULL;
    memcpy(key, m->path, plen + 1);
    hex_encode(key + plen + 1, m->build_id, blen);

    struct sym_file *f;
    HASH_FIND(hh, files, key, klen, f);
    if (f) {
        free(key);
        return f;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        free(key);
        return NULL;
    }
    f->key = key;
    f->mod = open_module(f, m);
    HASH_ADD_KEYPTR(hh, files, f->key, klen, f);
    return f;
}

static const char *attr_string(Dwarf_Die *die, unsigned int name)
{
    Dwarf_Attribute attr;
    if (!dwarf_attr_integrate(die, name, &attr))
        return NULL;
    return dwarf_formstring(&attr);
}

/* The name pprof should see for an inlined function: its linkage (mangled)
 * name when it has one, as the symbol table would give it, else its name. */
static const char *inlined_name(Dwarf_Die *die)
{
    const char *name = attr_string(die, DW_AT_linkage_name);
    if (!name)
        name = attr_string(die, DW_AT_MIPS_linkage_name);
    if (!name)
        name = attr_string(die, DW_AT_name);
    return name;
}

static void call_site(Dwarf_Die *cu, Dwarf_Die *inlined, const char **file, int *line)
{
    Dwarf_Attribute attr;
    Dwarf_Word value;
    *file = NULL;
    *line = 0;
    if (dwarf_attr(inlined, DW_AT_call_line, &attr) && dwarf_formudata(&attr, &value) == 0 &&
        value <= 0x7fffffff)
        *line = (int)value;
    Dwarf_Files *files_table;
    size_t nfiles;
    if (dwarf_attr(inlined, DW_AT_call_file, &attr) && dwarf_formudata(&attr, &value) == 0 &&
        dwarf_getsrcfiles(cu, &files_table, &nfiles) == 0 && value < nfiles)
        *file = dwarf_filesrc(files_table, value, NULL, NULL);
}

static int cu_range_cmp(const void *a, const void *b)
{
    const struct cu_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Every CU's ranges from the CUs themselves. libdw 0.188 finds a CU by
 * address through .debug_aranges only, which clang does not emit: without
 * this, clang-built code would have no file:line. */
static void build_cu_ranges(struct sym_file *f)
{
    f->cu_ranges_built = true;
    size_t cap = 0;
    Dwarf_Addr dbias;
    for (Dwarf_Die *cu = NULL; (cu = dwfl_module_nextcu(f->mod, cu, &dbias));) {
        Dwarf_Addr base, lo, hi;
        for (ptrdiff_t off = 0; (off = dwarf_ranges(cu, off, &base, &lo, &hi)) > 0;) {
            if (lo >= hi)
                continue;
            if (f->n_cu_ranges == cap) {
                size_t ncap = cap ? 2 * cap : 64;
                struct cu_range *grown = realloc(f->cu_ranges, ncap * sizeof *grown);
                if (!grown)
                    goto sort;
                f->cu_ranges = grown;
                cap = ncap;
            }
            f->cu_ranges[f->n_cu_ranges++] = (struct cu_range){lo, hi, cu};
        }
    }
sort:
    qsort(f->cu_ranges, f->n_cu_ranges, sizeof *f->cu_ranges, cu_range_cmp);
}

static Dwarf_Die *cu_by_ranges(struct sym_file *f, Dwarf_Addr dwarf_addr)
{
    if (!f->cu_ranges_built)
        build_cu_ranges(f);
    size_t lo = 0, hi = f->n_cu_ranges; /* first range with lo > addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->cu_ranges[mid].lo <= dwarf_addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Ranges of different CUs do not overlap; a few steps back covers
     * a CU whose range list has gaps. */
    for (size_t i = lo; i > 0 && lo - i < 8; i--)
        if (dwarf_addr < f->cu_ranges[i - 1].hi)
            return f->cu_ranges[i - 1].cu;
    return NULL;
}

/* Fills frames[0..max) for the module address addr (innermost first);
 * returns the count. The symbol table names the outermost function, the
 * line table the innermost position, DWARF scopes what lies between. */
static int resolve(struct sym_file *f, GElf_Addr addr, struct sym_frame *frames, int max)
{
    GElf_Off offset;
    GElf_Sym sym;
    const char *name = dwfl_module_addrinfo(f->mod, addr, &offset, &sym, NULL, NULL, NULL);
    if (!name || !name[0])
        return 0;

    Dwarf_Addr dbias = 0;
    Dwarf_Die *cu = dwfl_module_addrdie(f->mod, addr, &dbias);
    if (!cu && dwfl_module_getdwarf(f->mod, &dbias))
        cu = cu_by_ranges(f, addr - dbias);

    const char *file = NULL;
    int line = 0;
    Dwarf_Line *l = cu ? dwarf_getsrc_die(cu, addr - dbias) : NULL;
    if (l && (file = dwarf_linesrc(l, NULL, NULL)) && dwarf_lineno(l, &line) != 0)
        line = 0;

    int n = 0;
    Dwarf_Die *scopes = NULL;
    int nscopes = cu ? dwarf_getscopes(cu, addr - dbias, &scopes) : 0;
    for (int i = 0; i < nscopes && n < max - 1; i++) {
        int tag = dwarf_tag(&scopes[i]);
        if (tag == DW_TAG_subprogram)
            break;
        if (tag != DW_TAG_inlined_subroutine)
            continue;
        const char *iname = inlined_name(&scopes[i]);
        if (!iname)
            break;
        frames[n].function = iname;
        frames[n].file = file;
        frames[n].line = line;
        n++;
        /* The caller's position is where this one was inlined. */
        call_site(cu, &scopes[i], &file, &line);
    }
    free(scopes);
    frames[n].function = name;
    frames[n].file = file;
    frames[n].line = line;
    return n + 1;
}

static struct sym_entry *entry_for(struct sym_file *f, GElf_Addr addr)
{
    struct sym_entry *e;
    HASH_FIND(hh, f->entries, &addr, sizeof addr, e);
    if (e)
        return e;
    struct sym_frame frames[SYM_MAX_INLINE];
    int n = f->mod ? resolve(f, addr, frames, SYM_MAX_INLINE) : 0;
    e = calloc(1, sizeof *e + (size_t)n * sizeof e->frames[0]);
    if (!e)
        return NULL;
    e->addr = addr;
    e->n = n;
    memcpy(e->frames, frames, (size_t)n * sizeof frames[0]);
    /* Symbol-table names of versioned symbols read "memcpy@@GLIBC_2.14":
     * the version says nothing about the code and splits one function in
     * two across builds, so profiles name the function alone. */
    const char *at = n > 0 ? strchr(frames[n - 1].function, '@') : NULL;
    if (at && at != frames[n - 1].function) {
        e->unversioned = strndup(frames[n - 1].function, (size_t)(at - frames[n - 1].function));
        if (e->unversioned)
            e->frames[n - 1].function = e->unversioned;
    }
    HASH_ADD(hh, f->entries, addr, sizeof e->addr, e);
    return e;
}

static struct sym_entry *lookup(const struct proc_mapping *m, uint64_t pc)
{
    struct sym_file *f = file_for(m);
    if (!f || !f->mod)
        return NULL;
    return entry_for(f, (GElf_Addr)(pc - m->load_bias) + f->bias);
}

int sym_lookup(const struct proc_mapping *m, uint64_t pc, struct sym_frame *out)
{
    memset(out, 0, sizeof *out);
    struct sym_entry *e = lookup(m, pc);
    if (!e || e->n == 0)
        return -1;
    /* Symbol of the enclosing function, position of pc itself. */
    out->function = e->frames[e->n - 1].function;
    out->file = e->frames[0].file;
    out->line = e->frames[0].line;
    return 0;
}

int sym_lookup_inline(const struct proc_mapping *m, uint64_t pc, struct sym_frame *frames, int max)
{
    struct sym_entry *e = lookup(m, pc);
    if (!e || e->n == 0 || max <= 0)
        return 0;
    if (e->n <= max) {
        memcpy(frames, e->frames, (size_t)e->n * sizeof frames[0]);
        return e->n;
    }
    /* Too deep: keep the innermost ones and the outermost function. */
    memcpy(frames, e->frames, (size_t)(max - 1) * sizeof frames[0]);
    frames[max - 1] = e->frames[e->n - 1];
    return max;
}

void sym_cache_free(void)
{
    struct sym_file *f, *ftmp;
    HASH_ITER(hh, files, f, ftmp)
    {
        struct sym_entry *e, *etmp;
        HASH_ITER(hh, f->entries, e, etmp)
        {
            HASH_DEL(f->entries, e);
            free(e->unversioned);
            free(e);
        }
        HASH_DEL(files, f);
        free(f->cu_ranges);
        if (f->dwfl)
            dwfl_end(f->dwfl);
        free(f->key);
        free(f);
    }
    /* The set of files already warned about stays: a later snapshot
     * should not repeat the warnings. */
}
