/* The endpoints under /debug/pprof/, with the semantics of Go's
 * net/http/pprof: the index page, cmdline, and the profiles (heap,
 * allocs, profile = CPU, threadcreate, and ppx's own syscalls), built in
 * memory from copies of the live processes (live.h).
 *
 * ?pid=N selects one process (its latest incarnation); without it every
 * process the collector holds, running or recently exited, is merged and
 * each sample labelled with its pid (as ppx record does). ?seconds=N makes
 * a delta profile over the next N seconds (proc_copy.h); `profile` is
 * always one (default 30 s, as Go: the target samples CPU continuously,
 * so the window's samples are its CPU profile). ?debug=1 on heap and
 * allocs gives Go's legacy text format (heap_text.h). ?gc is accepted and
 * ignored (there is no collector to run). */
#ifndef PPX_HTTP_PROFILES_H
#define PPX_HTTP_PROFILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "live.h"

/* A window longer than this is two profiles compared with -base. */
#define HTTP_MAX_SECONDS 600u
#define HTTP_CPU_DEFAULT_SECONDS 30u
/* profile: the rate asked of targets that sample CPU on demand, and the
 * most a request may ask (PPX_CPU_HZ at start allows more) */
#define HTTP_CPU_DEFAULT_HZ 100u
#define HTTP_MAX_HZ 1000u
/* Windows (seconds=N, and profile) under way at once: each holds one of
 * the HTTP_MAX_CONNECTIONS connections for its length, and more are
 * refused at once (429), so that slow requests never take every
 * connection. */
#define HTTP_MAX_WINDOWS 8u

/* A request's arguments, syntax already checked (http.c). */
struct http_query {
    uint32_t pid;     /* 0: every process */
    unsigned seconds; /* 0: not given */
    long debug;       /* 0: binary profile */
    unsigned hz;      /* profile: CPU samples per second asked of the targets; 0: not given */
    const char *link_token; /* the index page's links carry ?token= (it came so); or NULL */
};

struct http_reply {
    unsigned status;
    const char *content_type;
    char *body; /* malloc'ed, len bytes */
    size_t len;
    char attachment[64]; /* Content-Disposition file name; "" for none */
};

/* Serves /debug/pprof/NAME (NAME "" for the index page). Fills r, also
 * for errors (4xx/5xx with a one-line text body). May sleep for a delta's
 * window: call it from a thread of its own (http.c). */
void http_profiles_serve(struct live *l, const char *name, const struct http_query *q,
                         struct http_reply *r);

/* Sets r to an error: status and one line of text. */
void http_reply_error(struct http_reply *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Ends a body written through open_memstream(&r->body, &r->len): 200 with
 * content_type, or 500 when the stream could not be written. */
void http_reply_stream(struct http_reply *r, FILE *f, const char *content_type);

#endif
