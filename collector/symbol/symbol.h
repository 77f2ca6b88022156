/* Symbolization: runtime addresses of a process's mappings to function,
 * file and line (elfutils libdw), and C++ names for humans. */
#ifndef PPX_SYMBOL_H
#define PPX_SYMBOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "model/model.h"

/* ---- symbolize ---- */
/* Address to function/file/line, from the mapped ELF files (elfutils libdw).
 * One cache for the whole collector, keyed by file and build id, so forked
 * processes sharing a binary are read once. */
struct sym_frame {
    const char *function; /* raw (mangled) symbol name, or NULL when unknown */
    const char *file;     /* source file from DWARF, or NULL */
    int line;             /* 0 when unknown */
};

/* Symbolizes the runtime address pc (already adjusted to lie inside the
 * call instruction) within mapping m. Strings stay valid until
 * sym_cache_free(). Returns 0 when a function name was found, -1 otherwise
 * (out then holds NULLs). */
int sym_lookup(const struct proc_mapping *m, uint64_t pc, struct sym_frame *out);
void sym_cache_free(void);

/* Like sym_lookup, but with the functions inlined at pc: frames[0] is the
 * innermost inlined function (file:line of pc itself), each further frame
 * the function it was inlined into (file:line of the inlined call), and the
 * last one the function whose symbol contains pc. Returns the number of
 * frames stored (at most max, the outermost always kept), 0 when no
 * function name was found. Not thread-safe, like the whole cache. */
int sym_lookup_inline(const struct proc_mapping *m, uint64_t pc, struct sym_frame *frames, int max);
#define SYM_MAX_INLINE 16

/* ---- debug_cache ---- */
/* The separate debug file of the module with this build id, as an
 * uncompressed copy kept on disk in $XDG_CACHE_HOME/ppx/debug (else
 * ~/.cache/ppx/debug; PPX_CACHE=off: none), made on first need from the
 * one shipped in /usr/lib/debug/.build-id when its sections are
 * compressed. Returns the copy's descriptor and its malloc'd path in
 * *copy_path, or -1 (*copy_path untouched) when there is none to use: libdwfl's own
 * lookup then finds what it finds. */
int debug_cache_open(const uint8_t *build_id, size_t build_id_len, char **copy_path);

/* ---- st_layout ---- */
/* state-threads linked into the executable at path, from its DWARF
 * (symbol/st_layout.c): its scheduler's variables and record layouts for
 * a thread dump (wire.h). 0 and *out filled; -1 no DWARF or no
 * state-threads in it; -2 state-threads whose layout is not understood
 * (*why says what). */
int st_layout_read(const char *path, struct wire_st_layout *out, const char **why);
/* The same, read once per path and build id for the collector's life
 * (-2 said once on stderr). Thread-safe. */
int st_layout_of(const char *path, const uint8_t *build_id, size_t build_id_len,
                 struct wire_st_layout *out);
void st_layout_cache_free(void);

/* ---- vdso_image ---- */
/* The kernel's vDSO image as a readable file (symbol/vdso_image.c). */
/* The name targets give their vDSO mapping (preload/mappings.c). */
#define VDSO_MAPPING_NAME "[vdso]"

/* A descriptor on a copy of this process's vDSO, positioned at 0; -1 when
 * there is none. */
int vdso_image_fd(void);

/* ---- demangle ---- */
/* C++ names for humans. The pprof files keep symbol names as the linker
 * knows them (Function.name == system_name, mangled): go tool pprof
 * demangles them itself, as its -symbolize=demangle=... option says.
 * ppx's own texts (ppx audit, ppx threads, heap?debug=1) demangle here,
 * with libstdc++'s demangler. */
/* name demangled in full, as c++filt prints it ("ns::Log::write(int&, char*)"),
 * in a malloc'd string; NULL when name is no mangled C++ name (C names,
 * "0x..." addresses) or out of memory. */
char *demangle_name(const char *name);

/* name for a human in out (outlen > 0): demangled in full when mangled,
 * else as it is; the tail kept (after "...") when too long. Returns out. */
const char *demangle_into(const char *name, char *out, size_t outlen);

/* "ns::Pool::spawn" out of "void ns::Pool::spawn<int>(int) const", as go
 * tool pprof shows names by default: no parameters, template arguments or
 * return type. */
void demangle_simplify(const char *in, char *out, size_t outlen);

/* A symbol name (mangled or not) as go tool pprof shows it by default:
 * demangled, then simplified; the name as it is when nothing is left. */
void demangle_short(const char *name, char *out, size_t outlen);

#endif
