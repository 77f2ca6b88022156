/* Address to function/file/line, from the mapped ELF files (elfutils libdw).
 * One cache for the whole collector, keyed by file and build id, so forked
 * processes sharing a binary are read once. */
#ifndef PPX_SYMBOLIZE_H
#define PPX_SYMBOLIZE_H

#include <stdint.h>
#include "process.h"

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
int sym_lookup_inline(const struct proc_mapping *m, uint64_t pc, struct sym_frame *frames,
                      int max);
#define SYM_MAX_INLINE 16

#endif
