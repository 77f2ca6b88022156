/* The live collector's HTTP server (libmicrohttpd): Go's net/http/pprof
 * endpoints under /debug/pprof/ (http_profiles.h).
 *
 * Threads: MHD runs its own listening thread and one thread per
 * connection (at most HTTP_MAX_CONNECTIONS), outside the ingest loop. A
 * handler copies what it needs under the table's lock, which the ingest
 * loop holds only while decoding, and builds the profile afterwards; a
 * `seconds=N` request sleeps N seconds in its own thread between two
 * copies, and nothing else waits for it. (The alternative, MHD's sockets
 * polled by the ingest loop, would need no lock, but every profile build
 * and the suspension of every delta request would then run on, or be
 * driven by, the thread that must keep reading the targets.)
 *
 * Every request is checked first (http_auth.h): its URI against
 * HTTP_MAX_URI and HTTP_MAX_ARGS (414), then its access token (401, 403). */
#ifndef PPX_HTTP_H
#define PPX_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include "live.h"

#define HTTP_MAX_CONNECTIONS 64u
#define HTTP_DEFAULT_HOST "127.0.0.1"
/* Longer request targets, or more query arguments, are answered 414. */
#define HTTP_MAX_URI 8192u
#define HTTP_MAX_ARGS 1024u

struct http_server;

struct http_config {
    /* "PORT", "HOST:PORT" or "[IPV6]:PORT"; an empty or missing host is
     * 127.0.0.1 (never every interface: an address other than loopback
     * must be written out). Port 0 picks a free port. */
    const char *spec;
    const char *socket_path;  /* the access token is written next to it (http_auth.h) */
    bool allow_any_user;      /* no token asked */
};

/* Starts serving; NULL with a message in err on failure. */
struct http_server *http_start(const struct http_config *cfg, struct live *l, char *err,
                               size_t errlen);

/* Where it listens, as "http://ppx:TOKEN@127.0.0.1:6060"
 * ("http://[::1]:6060" with no token asked). */
const char *http_url(const struct http_server *h);
/* The token file ("" with no token asked). */
const char *http_token_path(const struct http_server *h);

/* Stops serving: call live_stop() first, so that delta requests return
 * at once; waits for the handlers running. */
void http_stop(struct http_server *h);

#endif
