/* /debug/pprof/symbol, as Go's net/http/pprof serves it: pprof's client
 * (`go tool pprof URL`) posts the addresses its profile left without
 * function names ("0x4a3f10+0x4a4020+..."), after local symbolization,
 * and fails the whole fetch when this answer is not 200. Here the
 * addresses are runtime addresses of the processes the collector holds
 * (the query, ?pid included, is not passed on by pprof): each is looked
 * up in the first process with a mapping holding it (different processes'
 * mappings rarely overlap under ASLR, and where they do, the same file
 * usually sits there). The text profile (heap?debug=1) of a stripped
 * program gets its names this way. */
#ifndef PPX_HTTP_SYMBOL_H
#define PPX_HTTP_SYMBOL_H

#include <stddef.h>
#include "http_profiles.h"
#include "live.h"

/* Bytes of addresses a request may post. */
#define HTTP_SYMBOL_MAX_BODY (4u << 20)

/* query: the addresses separated by '+' (POST body, or the GET query),
 * len bytes; none: Go's "num_symbols: 1" alone. */
void http_symbol_serve(struct live *l, const char *query, size_t len, struct http_reply *r);

#endif
