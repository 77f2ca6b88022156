#include "live/live.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "symbol/symbol.h"

static const struct proc_mapping *find_mapping(struct proc *const *procs, size_t n, uint64_t addr)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < procs[i]->n_mappings; k++) {
            const struct proc_mapping *m = &procs[i]->mappings[k];
            if (addr >= m->start && addr < m->limit)
                return m;
        }
    return NULL;
}

/* The next address of "0x1+0x2+..." from *p; false at the end. */
static bool next_address(const char **p, const char *end, uint64_t *addr)
{
    while (*p < end) {
        const char *word = *p;
        const char *plus = memchr(word, '+', (size_t)(end - word));
        const char *stop = plus ? plus : end;
        *p = plus ? plus + 1 : end;
        char buf[32];
        size_t len = (size_t)(stop - word);
        if (len == 0 || len >= sizeof buf)
            continue;
        memcpy(buf, word, len);
        buf[len] = 0;
        char *tail;
        unsigned long long v = strtoull(buf, &tail, 0); /* as Go's ParseUint(word, 0, 64) */
        if (*tail == 0 && v != 0) {
            *addr = v;
            return true;
        }
    }
    return false;
}

void http_symbol_serve(struct live *l, const char *query, size_t len, struct http_reply *r)
{
    struct proc **procs = NULL;
    size_t n = 0;
    if (len > 0 && live_copy(l, 0, PROC_COPY_MAPPINGS, &procs, &n) < 0) {
        http_reply_error(r, 500, "out of memory");
        return;
    }
    FILE *f = open_memstream(&r->body, &r->len);
    if (!f) {
        live_free_copies(procs, n);
        http_reply_error(r, 500, "out of memory");
        return;
    }
    /* pprof only checks that this is not 0: there are symbols. */
    fputs("num_symbols: 1\n", f);
    const char *p = query, *end = query + len;
    uint64_t addr;
    live_build_begin(l);
    while (next_address(&p, end, &addr)) {
        const struct proc_mapping *m = find_mapping(procs, n, addr);
        struct sym_frame frame;
        if (m && sym_lookup(m, addr, &frame) == 0)
            fprintf(f, "%#" PRIx64 " %s\n", addr, frame.function);
    }
    live_build_end(l);
    live_free_copies(procs, n);
    http_reply_stream(r, f, "text/plain; charset=utf-8");
}
