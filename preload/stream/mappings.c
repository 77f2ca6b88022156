/* Where code lives: one wire MAPPING per executable PT_LOAD segment of every
 * loaded ELF object, with the object's path and GNU build id, so that the
 * collector can symbolize return addresses.
 *
 * Only the flusher thread (or the exit flush, under the same lock) comes
 * here. dl_iterate_phdr runs its callback under the loader's lock, so the
 * callback only copies into a private scratch area: no lock of ours, no
 * allocation. dlpi_adds/dlpi_subs tell whether anything was loaded or
 * unloaded since the last scan; if not, the scan stops at the first object.
 * Segments of unloaded objects stay known: old stacks still point there. */
#include "stream.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#define SCRATCH_SEGMENTS 4096u
#define SCRATCH_PATHS (1u << 20)

struct segment {
    uint64_t start, limit, offset, load_bias;
    uint32_t flags;
    uint32_t build_id_len;
    uint32_t path_off, path_len;
    uint8_t build_id[WIRE_MAX_BUILD_ID];
};

struct scratch {
    struct segment segs[SCRATCH_SEGMENTS];
    char paths[SCRATCH_PATHS];
};

struct mapping_rec {
    struct mapping_rec *next;
    struct wire_mapping wire;
    uint64_t sent_generation;
    uint8_t build_id[WIRE_MAX_BUILD_ID];
    char path[];
};

struct scan {
    struct scratch *scratch;
    size_t n_segs, paths_used;
    unsigned objects;
    bool force, unchanged, truncated;
    unsigned long long adds, subs;
    bool have_counts;
    const char *exe;
    size_t exe_len;
    size_t page_size;
};

static struct scratch *scratch;
static struct mapping_rec *mappings;
static struct mapping_rec **mappings_tail = &mappings;
static uint32_t next_mapping_id;
static bool scanned;
static unsigned long long seen_adds, seen_subs;
static char exe_path[WIRE_MAX_PATH + 1];
static size_t exe_path_len;

size_t ppx_exe_path(char *buf, size_t cap)
{
    if (cap == 0)
        return 0;
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n > 0) {
        buf[n] = '\0';
        return (size_t)n;
    }
    /* no /proc: the name the kernel executed, if it is absolute */
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    size_t len = execfn != NULL ? strlen(execfn) : 0;
    if (len == 0 || len >= cap)
        len = 0;
    else
        memcpy(buf, execfn, len);
    buf[len] = '\0';
    return len;
}

static size_t note_align(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* The GNU build id from the object's PT_NOTE segments, already in memory. */
static uint32_t find_build_id(const struct dl_phdr_info *info, uint8_t *out)
{
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        size_t align = ph->p_align == 8 ? 8 : 4;
        const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
        const unsigned char *end = p + ph->p_memsz;
        while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)p;
            size_t name_off = sizeof *nh;
            size_t desc_off = name_off + note_align(nh->n_namesz, align);
            size_t next = desc_off + note_align(nh->n_descsz, align);
            if (next > (size_t)(end - p) || next < desc_off)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
                memcmp(p + name_off, "GNU", 4) == 0 && nh->n_descsz > 0 &&
                nh->n_descsz <= WIRE_MAX_BUILD_ID) {
                memcpy(out, p + desc_off, nh->n_descsz);
                return nh->n_descsz;
            }
            p += next;
        }
    }
    return 0;
}

/* The vDSO: its ELF header is the one the kernel announced. */
static bool is_vdso(const struct dl_phdr_info *info)
{
    uintptr_t ehdr = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    return ehdr != 0 && info->dlpi_phdr != NULL &&
           (uintptr_t)info->dlpi_phdr - ehdr < sizeof(ElfW(Ehdr)) + 64u * sizeof(ElfW(Phdr));
}

/* The object's path into the scratch area; false to skip the object
 * (anything without a file). The vDSO is named [vdso]: the collector reads
 * its own copy, the same kernel's. */
static bool object_path(struct scan *sc, const struct dl_phdr_info *info, bool is_main,
                        uint32_t *off, uint32_t *len)
{
    const char *name = info->dlpi_name != NULL ? info->dlpi_name : "";
    char *dst = sc->scratch->paths + sc->paths_used;
    size_t room = SCRATCH_PATHS - sc->paths_used;
    size_t n = 0;
    if (is_main) {
        if (sc->exe_len == 0 || sc->exe_len >= room)
            return false;
        memcpy(dst, sc->exe, sc->exe_len);
        n = sc->exe_len;
    } else if (is_vdso(info)) {
        static const char vdso[] = "[vdso]"; /* collector/vdso_image.h */
        n = sizeof vdso - 1;
        if (n >= room)
            return false;
        memcpy(dst, vdso, n);
    } else if (name[0] == '/') {
        n = strlen(name);
        if (n >= room)
            return false;
        memcpy(dst, name, n);
    } else if (strchr(name, '/') != NULL) {
        /* dlopen'ed by a relative path */
        if (room < 2 || getcwd(dst, room - 1) == NULL)
            return false;
        n = strlen(dst);
        size_t rest = strlen(name);
        if (n + 1 + rest >= room)
            return false;
        dst[n++] = '/';
        memcpy(dst + n, name, rest);
        n += rest;
    } else {
        return false;
    }
    if (n == 0 || n > WIRE_MAX_PATH)
        return false;
    *off = (uint32_t)sc->paths_used;
    *len = (uint32_t)n;
    sc->paths_used += n;
    return true;
}

static int scan_object(struct dl_phdr_info *info, size_t size, void *data)
{
    struct scan *sc = data;
    bool first = sc->objects++ == 0;
    if (first && size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        sc->have_counts = true;
        sc->adds = info->dlpi_adds;
        sc->subs = info->dlpi_subs;
        if (!sc->force && scanned && sc->adds == seen_adds && sc->subs == seen_subs) {
            sc->unchanged = true;
            return 1;
        }
    }
    bool is_main = first && (info->dlpi_name == NULL || info->dlpi_name[0] == '\0');
    uint32_t path_off, path_len;
    if (!object_path(sc, info, is_main, &path_off, &path_len))
        return 0;
    uint8_t build_id[WIRE_MAX_BUILD_ID];
    uint32_t build_id_len = find_build_id(info, build_id);
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_X) == 0)
            continue;
        if (sc->n_segs == SCRATCH_SEGMENTS) {
            sc->truncated = true;
            return 1;
        }
        struct segment *seg = &sc->scratch->segs[sc->n_segs++];
        uint64_t runtime = info->dlpi_addr + ph->p_vaddr;
        uint64_t start = runtime & ~(uint64_t)(sc->page_size - 1);
        seg->start = start;
        seg->limit = runtime + ph->p_memsz;
        seg->offset = ph->p_offset >= runtime - start ? ph->p_offset - (runtime - start) : 0;
        seg->load_bias = info->dlpi_addr;
        seg->flags = is_main ? WIRE_MAPPING_MAIN : 0;
        seg->build_id_len = build_id_len;
        memcpy(seg->build_id, build_id, build_id_len);
        seg->path_off = path_off;
        seg->path_len = path_len;
    }
    return 0;
}

static bool known(const struct segment *seg, const char *path)
{
    for (const struct mapping_rec *m = mappings; m != NULL; m = m->next) {
        if (m->wire.start == seg->start && m->wire.limit == seg->limit &&
            m->wire.offset == seg->offset && m->wire.load_bias == seg->load_bias &&
            m->wire.path_len == seg->path_len && memcmp(m->path, path, seg->path_len) == 0)
            return true;
    }
    return false;
}

static void remember(const struct segment *seg, const char *path)
{
    struct mapping_rec *m = ppx_arena_alloc(sizeof *m + seg->path_len, 16);
    if (m == NULL) {
        ppx_note_lost("out of memory for the mapping table");
        return;
    }
    m->wire = (struct wire_mapping){
        .id = next_mapping_id++,
        .flags = seg->flags,
        .start = seg->start,
        .limit = seg->limit,
        .offset = seg->offset,
        .load_bias = seg->load_bias,
        .build_id_len = seg->build_id_len,
        .path_len = seg->path_len,
    };
    memcpy(m->build_id, seg->build_id, seg->build_id_len);
    memcpy(m->path, path, seg->path_len);
    *mappings_tail = m;
    mappings_tail = &m->next;
}

static void rescan(bool force)
{
    if (scratch == NULL) {
        scratch = ppx_pages_alloc(sizeof *scratch);
        if (scratch == NULL)
            return;
    }
    if (exe_path_len == 0)
        exe_path_len = ppx_exe_path(exe_path, sizeof exe_path);
    long ps = sysconf(_SC_PAGESIZE);
    struct scan sc = {
        .scratch = scratch,
        .force = force || !scanned,
        .exe = exe_path,
        .exe_len = exe_path_len,
        .page_size = ps > 0 ? (size_t)ps : 4096,
    };
    dl_iterate_phdr(scan_object, &sc);
    if (sc.unchanged)
        return;
    for (size_t i = 0; i < sc.n_segs; i++) {
        const struct segment *seg = &scratch->segs[i];
        const char *path = scratch->paths + seg->path_off;
        if (!known(seg, path))
            remember(seg, path);
    }
    scanned = true;
    /* A truncated scan, or one without counters, is redone next time. */
    seen_adds = sc.have_counts && !sc.truncated ? sc.adds : ~0ull;
    seen_subs = sc.have_counts && !sc.truncated ? sc.subs : ~0ull;
}

bool ppx_mappings_send(struct ppx_encoder *enc, uint64_t gen, bool force_scan)
{
    rescan(force_scan);
    for (struct mapping_rec *m = mappings; m != NULL; m = m->next) {
        if (m->sent_generation == gen)
            continue;
        if (!ppx_emit(enc, WIRE_MAPPING, &m->wire, sizeof m->wire, m->build_id,
                      m->wire.build_id_len, m->path, m->wire.path_len))
            return false;
        m->sent_generation = gen;
    }
    return true;
}
