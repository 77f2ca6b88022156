/* Decompressed copies of separate debug files, kept on disk per build id.
 * Distributions ship debug files with SHF_COMPRESSED sections, and libdw
 * inflates every .debug_* section the first time any DWARF is asked for:
 * ~60 ms for glibc's, paid by each `ppx record` however few addresses the
 * profiles reference. An uncompressed copy is mapped instead of inflated,
 * and opens in well under a millisecond.
 *
 * A copy is written once (a temporary name, then rename) and, whenever
 * read, is untrusted input: it must be a regular file of this user, an ELF
 * file whose sections all lie within it, none compressed, with the build
 * id it is named for; else it is ignored and made again. Its DWARF is then
 * read by libdw as carefully as any file a target maps. */
#include "symbol/symbol.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

/* A sanity bound on a copy (glibc's is 10 MiB). */
#define COPY_MAX ((off_t)1 << 30)

/* $XDG_CACHE_HOME/ppx/debug, else ~/.cache/ppx/debug, malloc'ed; NULL when
 * PPX_CACHE=off (or 0) or there is no home. */
static char *cache_dir(void)
{
    const char *off = getenv("PPX_CACHE");
    if (off && (strcmp(off, "off") == 0 || strcmp(off, "0") == 0))
        return NULL;
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    char buf[4096];
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, sizeof buf, "%s/ppx/debug", xdg);
    else if (home && home[0] == '/')
        n = snprintf(buf, sizeof buf, "%s/.cache/ppx/debug", home);
    else
        return NULL;
    if (n < 0 || (size_t)n >= sizeof buf)
        return NULL;
    return strdup(buf);
}

/* Whether elf has a compressed section worth inflating once for all. */
static bool has_compressed(Elf *elf)
{
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn));) {
        GElf_Shdr sh;
        if (gelf_getshdr(scn, &sh) && (sh.sh_flags & SHF_COMPRESSED))
            return true;
    }
    return false;
}

/* Whether the note section scn holds the GNU build id id[0..len). */
static bool has_build_id(Elf_Scn *scn, const uint8_t *id, size_t len)
{
    Elf_Data *data = elf_getdata(scn, NULL);
    GElf_Nhdr nh;
    size_t name_off, desc_off;
    for (size_t off = 0; data && (off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0;) {
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && nh.n_descsz == len &&
            memcmp((const char *)data->d_buf + name_off, "GNU", 4) == 0 &&
            memcmp((const char *)data->d_buf + desc_off, id, len) == 0)
            return true;
    }
    return false;
}

/* Whether the copy (fd, file_size bytes) is sound: an ELF file whose
 * sections lie within it, none compressed, with this build id. */
static bool copy_sound(int fd, off_t file_size, const uint8_t *id, size_t len)
{
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!elf)
        return false;
    GElf_Ehdr eh;
    bool ok = elf_kind(elf) == ELF_K_ELF && gelf_getehdr(elf, &eh) != NULL;
    bool id_found = false;
    for (Elf_Scn *scn = NULL; ok && (scn = elf_nextscn(elf, scn));) {
        GElf_Shdr sh;
        ok = gelf_getshdr(scn, &sh) != NULL && !(sh.sh_flags & SHF_COMPRESSED) &&
             (sh.sh_type == SHT_NOBITS || (sh.sh_offset <= (uint64_t)file_size &&
                                           sh.sh_size <= (uint64_t)file_size - sh.sh_offset));
        if (ok && sh.sh_type == SHT_NOTE && !id_found)
            id_found = has_build_id(scn, id, len);
    }
    elf_end(elf);
    return ok && id_found;
}

/* The copy at path when it is sound: its descriptor, else -1. */
static int open_copy(const char *path, const uint8_t *id, size_t len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        st.st_size <= COPY_MAX && copy_sound(fd, st.st_size, id, len))
        return fd;
    close(fd);
    return -1;
}

/* The debug file as shipped, where libdwfl looks first: the build-id tree
 * of /usr/lib/debug. Its descriptor when it has compressed sections (only
 * then is a copy worth it), else -1. */
static int open_shipped(const char *hex)
{
    char path[4096];
    snprintf(path, sizeof path, "/usr/lib/debug/.build-id/%.2s/%s.debug", hex, hex + 2);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    Elf *elf =
        fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? elf_begin(fd, ELF_C_READ_MMAP, NULL) : NULL;
    bool worth = elf && elf_kind(elf) == ELF_K_ELF && has_compressed(elf);
    if (elf)
        elf_end(elf);
    if (worth)
        return fd;
    close(fd);
    return -1;
}

static bool copy_bytes(int from, int to)
{
    struct stat st;
    if (fstat(from, &st) < 0 || st.st_size > COPY_MAX)
        return false;
    off_t off = 0;
    while (off < st.st_size) {
        ssize_t n = sendfile(to, from, &off, (size_t)(st.st_size - off));
        if (n <= 0)
            return false;
    }
    return true;
}

/* Inflates every compressed section of the file fd in place; libelf
 * lays the sections out again (a debug file loads nothing, so its file
 * offsets are free to move). */
static bool inflate_in_place(int fd)
{
    Elf *elf = elf_begin(fd, ELF_C_RDWR, NULL);
    if (!elf)
        return false;
    bool ok = elf_kind(elf) == ELF_K_ELF;
    for (Elf_Scn *scn = NULL; ok && (scn = elf_nextscn(elf, scn));) {
        GElf_Shdr sh;
        ok = gelf_getshdr(scn, &sh) != NULL;
        if (ok && (sh.sh_flags & SHF_COMPRESSED))
            ok = elf_compress(scn, 0, 0) == 1;
    }
    ok = ok && elf_update(elf, ELF_C_WRITE) >= 0;
    elf_end(elf);
    return ok;
}

/* Writes the copy of debug_fd as path, atomically. */
static void write_copy(int debug_fd, const char *path)
{
    size_t len = strlen(path);
    char *tmp = malloc(len + sizeof ".tmp.XXXXXX");
    if (!tmp)
        return;
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(tmp);
        return;
    }
    bool ok = copy_bytes(debug_fd, fd) && inflate_in_place(fd);
    if (close(fd) < 0)
        ok = false;
    if (!ok || rename(tmp, path) < 0)
        unlink(tmp);
    free(tmp);
}

int debug_cache_open(const uint8_t *build_id, size_t build_id_len, char **copy_path)
{
    if (build_id_len < 2 || build_id_len > 64 || elf_version(EV_CURRENT) == EV_NONE)
        return -1;
    char *dir = cache_dir();
    if (!dir)
        return -1;
    char hex[2 * 64 + sizeof ".debug"];
    hex_encode(hex, build_id, build_id_len);
    strcat(hex, ".debug");
    char *path = path_join(dir, hex);
    int fd = path ? open_copy(path, build_id, build_id_len) : -1;
    if (path && fd < 0) {
        hex[2 * build_id_len] = 0;
        int shipped = open_shipped(hex);
        char *failed = NULL;
        if (shipped >= 0 && path_make_dirs(dir, 0700, &failed) == 0) {
            write_copy(shipped, path);
            fd = open_copy(path, build_id, build_id_len);
        }
        free(failed);
        if (shipped >= 0)
            close(shipped);
    }
    free(dir);
    if (fd >= 0)
        *copy_path = path;
    else
        free(path);
    return fd;
}
