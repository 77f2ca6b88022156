/* The state-threads layout reader (collector/symbol/st_layout.c) on
 * programs built with -g:
 *  - tests/progs/st_own_layout: records laid out unlike any state-threads
 *    build (tests/progs/st_own_layout.h, included here: every offset and
 *    size read must equal offsetof and sizeof), thread-local scheduler
 *    variables (WIRE_ST_TLS, offsets in the TLS block), the list of every
 *    record (tlink, thread_q);
 *  - tests/progs/st_own_layout_global: plain global variables (virtual
 *    addresses, as its symbol table has them), neither tlink nor thread_q
 *    (WIRE_ST_ABSENT), the other offsets the same;
 *  - tests/progs/single_thread (no state-threads): -1;
 *  - st_parked_static (Debian's libst.a, no DWARF for it), when built: -1;
 *  - the cached reader gives the same layout as the first reading, and
 *    none for a build id that is not the file's. */
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ppx/wire.h>

#include "symbol/symbol.h"
#include "support.h"

#include "progs/st_own_layout.h"

#define PROG(name) TOP_BUILDDIR "/tests/progs/" name

/* The value of symbol name in the ELF file at path (.symtab), 0 if none. */
static uint64_t symbol_value(const char *path, const char *name)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    const unsigned char *b = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (b == MAP_FAILED)
        return 0;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(const void *)b;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(const void *)(b + eh->e_shoff);
    uint64_t value = 0;
    for (unsigned i = 0; i < eh->e_shnum && value == 0; i++) {
        if (sh[i].sh_type != SHT_SYMTAB)
            continue;
        const Elf64_Sym *sym = (const Elf64_Sym *)(const void *)(b + sh[i].sh_offset);
        const char *names = (const char *)b + sh[sh[i].sh_link].sh_offset;
        for (size_t k = 0; k < sh[i].sh_size / sizeof *sym; k++)
            if (strcmp(names + sym[k].st_name, name) == 0 && sym[k].st_shndx != SHN_UNDEF) {
                value = sym[k].st_value;
                break;
            }
    }
    munmap((void *)b, (size_t)st.st_size);
    return value;
}

/* The offsets both builds share. */
/* lp's field is expected (prog: which program, for the message). */
#define SAME(field, expected)                                                                      \
    CHECK(lp->field == (expected), "%s: " #field " %u, expected %zu", prog, (unsigned)lp->field,   \
          (size_t)(expected))

static void check_common(const char *prog, const struct wire_st_layout *lp)
{
    SAME(th_state, offsetof(struct _st_thread, state));
    SAME(th_start, offsetof(struct _st_thread, start));
    SAME(th_arg, offsetof(struct _st_thread, arg));
    SAME(th_stack, offsetof(struct _st_thread, stack));
    SAME(th_links, offsetof(struct _st_thread, links));
    SAME(th_due, offsetof(struct _st_thread, due));
    SAME(th_left, offsetof(struct _st_thread, left));
    SAME(th_right, offsetof(struct _st_thread, right));
    SAME(th_context, offsetof(struct _st_thread, context));
    SAME(stack_size, sizeof(struct _st_stack));
    SAME(stk_bottom, offsetof(struct _st_stack, stk_bottom));
    SAME(stk_top, offsetof(struct _st_stack, stk_top));
    SAME(vp_idle, offsetof(struct _st_vp, idle_thread));
    SAME(vp_run_q, offsetof(struct _st_vp, run_q));
    SAME(vp_io_q, offsetof(struct _st_vp, io_q));
    SAME(vp_zombie_q, offsetof(struct _st_vp, zombie_q));
    SAME(vp_sleep_q, offsetof(struct _st_vp, sleep_q));
    SAME(pollq_size, sizeof(struct _st_pollq));
    SAME(pq_links, offsetof(struct _st_pollq, links));
    SAME(pq_thread, offsetof(struct _st_pollq, thread));
    SAME(pq_pds, offsetof(struct _st_pollq, pds));
    SAME(ctx_words, sizeof(struct _st_jmp_buf) / 8);
    for (unsigned i = 0; i < 8; i++)
        CHECK(lp->ctx_slot[i] == i, "%s: ctx_slot[%u] %u", prog, i, lp->ctx_slot[i]);
}

static void check_vars(const char *prog, const char *path, const struct wire_st_layout *l)
{
    CHECK(l->this_vp == symbol_value(path, "_st_this_vp"), "%s: this_vp %#llx", prog,
          (unsigned long long)l->this_vp);
    CHECK(l->this_thread == symbol_value(path, "_st_this_thread"), "%s: this_thread %#llx", prog,
          (unsigned long long)l->this_thread);
    CHECK(l->active_count == symbol_value(path, "_st_active_count"), "%s: active_count %#llx", prog,
          (unsigned long long)l->active_count);
    CHECK(l->this_vp != l->this_thread && l->this_thread != l->active_count,
          "%s: three variables, three places", prog);
}

static void thread_local_build(void)
{
    const char *path = PROG("st_own_layout"), *why = NULL, *prog = "st_own_layout";
    struct wire_st_layout l;
    const struct wire_st_layout *lp = &l;
    memset(&l, 0xee, sizeof l);
    int rc = st_layout_read(path, &l, &why);
    CHECK(rc == 0, "st_own_layout: %d (%s)", rc, why ? why : "");
    if (rc != 0)
        return;
    CHECK(l.flags == WIRE_ST_TLS, "st_own_layout: flags %u", l.flags);
    check_common("st_own_layout", &l);
    check_vars("st_own_layout", path, &l);
    SAME(thread_size, sizeof(struct _st_thread));
    SAME(vp_size, sizeof(struct _st_vp));
    SAME(th_tlink, offsetof(struct _st_thread, tlink));
    SAME(vp_thread_q, offsetof(struct _st_vp, thread_q));

    struct wire_st_layout cached;
    CHECK(st_layout_of(path, NULL, 0, &cached) == 0 && st_layout_of(path, NULL, 0, &cached) == 0 &&
              memcmp(&cached, &l, sizeof l) == 0,
          "st_own_layout: the cached layout differs");
    /* a file whose build id is not the target's: not its program */
    CHECK(st_layout_of(path, (const uint8_t *)"other", 5, &cached) == -1,
          "st_own_layout: a layout for another build id");
}

static void global_build(void)
{
    const char *path = PROG("st_own_layout_global"), *why = NULL, *prog = "st_own_layout_global";
    struct wire_st_layout l;
    const struct wire_st_layout *lp = &l;
    int rc = st_layout_read(path, &l, &why);
    CHECK(rc == 0, "st_own_layout_global: %d (%s)", rc, why ? why : "");
    if (rc != 0)
        return;
    CHECK(l.flags == 0, "st_own_layout_global: flags %u", l.flags);
    check_common("st_own_layout_global", &l);
    check_vars("st_own_layout_global", path, &l);
    /* the list nodes are last in their records: the records are shorter by them */
    SAME(thread_size, sizeof(struct _st_thread) - sizeof(struct _st_clist));
    SAME(vp_size, sizeof(struct _st_vp) - sizeof(struct _st_clist));
    SAME(th_tlink, WIRE_ST_ABSENT);
    SAME(vp_thread_q, WIRE_ST_ABSENT);
}
#undef SAME

static void without_state_threads(void)
{
    struct wire_st_layout l;
    const char *why = NULL;
    CHECK(st_layout_read(PROG("single_thread"), &l, &why) == -1, "single_thread: a layout");
    CHECK(st_layout_read(PROG("no_such_program"), &l, &why) == -1, "a missing file: a layout");
    if (access(PROG("st_parked_static"), X_OK) == 0)
        CHECK(st_layout_read(PROG("st_parked_static"), &l, &why) == -1,
              "st_parked_static: a layout from Debian's libst.a, which has no DWARF");
}

int main(void)
{
    thread_local_build();
    global_build();
    without_state_threads();
    st_layout_cache_free();
    return unit_finish("st_layout: all checks passed");
}
