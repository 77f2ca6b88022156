/* Support code of the pprof writers' unit tests (unit_support.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "support.h"

#include <elf.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "model/model.h"

int unit_failures;

NOINLINE uint64_t unit_return_address(void)
{
    return (uint64_t)(uintptr_t)__builtin_return_address(0);
}

/* realloc, or the test stops: a unit test out of memory has nothing to say. */
static void *unit_grow(void *p, size_t size)
{
    void *grown = realloc(p, size);
    if (!grown) {
        fprintf(stderr, "unit test: out of memory\n");
        abort();
    }
    return grown;
}

/* ---- synthetic process from this process's own mappings ---------------- */

static void read_build_id(const struct dl_phdr_info *info, struct proc_mapping *m)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
        const char *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const char *name = p + sizeof *nh;
            const char *desc = name + ((nh->n_namesz + 3) & ~3u);
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
                nh->n_descsz <= sizeof m->build_id) {
                memcpy(m->build_id, desc, nh->n_descsz);
                m->build_id_len = nh->n_descsz;
                return;
            }
            p = desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
}

struct mapping_walk {
    struct proc *p;
    bool main_only;
};

/* dl_iterate_phdr reports the main program first, with an empty name. */
static int add_object_mappings(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const struct mapping_walk *walk = data;
    struct proc *p = walk->p;
    bool is_main = p->n_mappings == 0 && info->dlpi_name[0] == '\0';
    char path[4096];
    if (is_main) {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0)
            return 0;
        path[n] = '\0';
    } else if (info->dlpi_name[0] == '/' && !walk->main_only) {
        snprintf(path, sizeof path, "%s", info->dlpi_name);
    } else {
        return 0; /* the vdso, or not wanted */
    }
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        if (p->n_mappings == p->cap_mappings) {
            p->cap_mappings = p->cap_mappings ? 2 * p->cap_mappings : 16;
            p->mappings = realloc(p->mappings, p->cap_mappings * sizeof *p->mappings);
        }
        struct proc_mapping *m = &p->mappings[p->n_mappings++];
        memset(m, 0, sizeof *m);
        m->id = (uint32_t)p->n_mappings;
        m->is_main = is_main;
        uint64_t start = info->dlpi_addr + ph->p_vaddr;
        m->start = start & ~(page - 1);
        m->limit = start + ph->p_memsz;
        m->offset = ph->p_offset - (start - m->start);
        m->load_bias = info->dlpi_addr;
        m->path = strdup(path);
        read_build_id(info, m);
    }
    return is_main && walk->main_only; /* nonzero stops the walk */
}

struct proc *unit_proc_new(uint32_t pid, uint64_t sample_rate, uint64_t start_ns, bool main_only)
{
    struct proc *p = calloc(1, sizeof *p);
    p->pid = pid;
    p->sample_rate = sample_rate;
    p->start_ns = start_ns;
    struct mapping_walk walk = {p, main_only};
    dl_iterate_phdr(add_object_mappings, &walk);
    return p;
}

struct proc_stack *unit_proc_add_stack(struct proc *p, uint32_t id, const uint64_t *pcs,
                                       uint32_t depth)
{
    struct proc_stack *s = calloc(1, sizeof *s);
    s->id = id;
    s->depth = depth;
    s->pcs = malloc(depth * sizeof *s->pcs);
    memcpy(s->pcs, pcs, depth * sizeof *pcs);
    HASH_ADD(hh, p->stacks, id, sizeof s->id, s);
    return s;
}

/* The collector's own teardown, so the tests free what it would. */
void unit_proc_free(struct proc *p)
{
    proc_clear(p);
    free(p);
}

/* ---- temporary files ----------------------------------------------------- */

char unit_tmpdir[64];

bool unit_tmpdir_make(const char *name)
{
    snprintf(unit_tmpdir, sizeof unit_tmpdir, "/tmp/ppx-unit-%s-XXXXXX", name);
    if (!mkdtemp(unit_tmpdir)) {
        perror("mkdtemp");
        return false;
    }
    return true;
}

char *unit_tmp_path(const char *name)
{
    static char paths[8][4200];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", unit_tmpdir, name);
    return p;
}

/* ---- reading profiles back ----------------------------------------------- */

Profile *unit_read_profile(const char *path)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = unit_grow(NULL, cap);
    int n;
    while ((n = gzread(gz, buf + len, (unsigned)(cap - len))) > 0) {
        len += (size_t)n;
        if (len == cap)
            buf = unit_grow(buf, cap *= 2);
    }
    gzclose(gz);
    Profile *p = n < 0 ? NULL : perftools__profiles__profile__unpack(NULL, len, buf);
    free(buf);
    return p;
}

/* ---- commands ------------------------------------------------------------ */

char *unit_run(const char *cmd, int *status)
{
    FILE *f = popen(cmd, "r");
    if (!f) {
        *status = -1;
        return strdup("");
    }
    size_t cap = 1 << 16, len = 0, n;
    char *out = unit_grow(NULL, cap);
    while ((n = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap)
            out = unit_grow(out, cap *= 2);
    }
    out[len] = '\0';
    int st = pclose(f);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

int unit_finish(const char *passed_message)
{
    if (unit_failures) {
        fprintf(stderr, "%d check(s) failed\n", unit_failures);
        return 1;
    }
    printf("%s\n", passed_message);
    return 0;
}

const char *unit_pprof_raw_py(void)
{
    static char path[4200];
    const char *top = getenv("top_srcdir");
    snprintf(path, sizeof path, "%s/tests/lib/pprof_raw.py", top && *top ? top : TOP_SRCDIR);
    return path;
}

const char *unit_ppx_bin(void)
{
    static char path[4200];
    const char *top = getenv("top_builddir");
    snprintf(path, sizeof path, "%s/ppx", top && *top ? top : TOP_BUILDDIR);
    return path;
}

char *unit_pprof_query(const char *file, const char *args, int *status)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s' %s 2>&1", unit_pprof_raw_py(), file, args);
    return unit_run(cmd, status);
}

char *unit_go_pprof(const char *args, const char *file, int *status)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd,
             "HOME=\"${HOME:-%s}\" GOTOOLCHAIN=local GOPROXY=off GOFLAGS= "
             "go tool pprof %s '%s' 2>&1",
             unit_tmpdir, args, file);
    return unit_run(cmd, status);
}

long long unit_table_get(const char *table, const char *name, const char *type)
{
    const char *nl = strchr(table, '\n');
    if (!nl)
        return -1;
    int col = -1, i = 0;
    for (const char *p = table; p < nl; i++) {
        size_t len = strcspn(p, "\t\n");
        if (strlen(type) == len && strncmp(p, type, len) == 0)
            col = i;
        p += len;
        if (*p != '\t')
            break;
        p++;
    }
    if (col < 1)
        return -1;
    for (const char *line = nl + 1; *line; line = strchr(line, '\n') + 1) {
        size_t len = strcspn(line, "\t");
        if (strlen(name) == len && strncmp(line, name, len) == 0) {
            const char *p = line;
            for (int c = 0; c < col; c++)
                p = strchr(p, '\t') + 1;
            return atoll(p);
        }
        if (!strchr(line, '\n'))
            break;
    }
    return 0;
}
