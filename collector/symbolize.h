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

#endif
