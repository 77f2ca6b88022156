/* Symbols of a file on disk: its .symtab or .dynsym, from a read-only
 * mapping of the file (no memory from malloc, no stdio), for the
 * coroutine entries (coroutines.c), which stripped .dynsym may lack. */
#include "stack.h"

#include <elf.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

bool ppx_elf_open(const char *path, struct ppx_elf_image *img)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    void *map = MAP_FAILED;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= (off_t)sizeof(Elf64_Ehdr))
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return false;
    img->base = map;
    img->len = (size_t)st.st_size;
    const Elf64_Ehdr *eh = map;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
        eh->e_shentsize == sizeof(Elf64_Shdr) && eh->e_shoff <= img->len &&
        (img->len - eh->e_shoff) / sizeof(Elf64_Shdr) >= eh->e_shnum)
        return true;
    munmap(map, img->len);
    return false;
}

void ppx_elf_close(struct ppx_elf_image *img)
{
    munmap((void *)(uintptr_t)img->base, img->len);
}

/* st_value and st_size of the defined symbol name of kind sym_type
 * (STT_FUNC, STT_OBJECT), from the table of section type (SHT_SYMTAB or
 * SHT_DYNSYM). */
static bool elf_table_symbol(const struct ppx_elf_image *img, uint32_t type, unsigned sym_type,
                             const char *name, uint64_t *value, uint64_t *size)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img->base;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(img->base + eh->e_shoff);
    size_t name_len = strlen(name), len = img->len;
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != type || sh[i].sh_link >= eh->e_shnum ||
            sh[i].sh_entsize != sizeof(Elf64_Sym))
            continue;
        const Elf64_Shdr *strs = &sh[sh[i].sh_link];
        if (sh[i].sh_offset > len || sh[i].sh_size > len - sh[i].sh_offset ||
            strs->sh_offset > len || strs->sh_size > len - strs->sh_offset)
            continue;
        const Elf64_Sym *syms = (const Elf64_Sym *)(img->base + sh[i].sh_offset);
        const char *names = (const char *)(img->base + strs->sh_offset);
        size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
        for (size_t k = 0; k < n; k++) {
            if (ELF64_ST_TYPE(syms[k].st_info) != sym_type || syms[k].st_value == 0 ||
                syms[k].st_shndx == SHN_UNDEF || syms[k].st_name >= strs->sh_size ||
                strs->sh_size - syms[k].st_name <= name_len)
                continue;
            if (memcmp(names + syms[k].st_name, name, name_len + 1) == 0) {
                *value = syms[k].st_value;
                *size = syms[k].st_size;
                return true;
            }
        }
    }
    return false;
}

bool ppx_elf_function(const struct ppx_elf_image *img, const char *name, uint64_t *value,
                      uint64_t *size)
{
    return elf_table_symbol(img, SHT_SYMTAB, STT_FUNC, name, value, size) ||
           elf_table_symbol(img, SHT_DYNSYM, STT_FUNC, name, value, size);
}

bool ppx_elf_object(const struct ppx_elf_image *img, const char *name, uint64_t *value,
                    uint64_t *size)
{
    return elf_table_symbol(img, SHT_SYMTAB, STT_OBJECT, name, value, size) ||
           elf_table_symbol(img, SHT_DYNSYM, STT_OBJECT, name, value, size);
}
