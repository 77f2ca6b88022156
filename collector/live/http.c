#include "live/live.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <pthread.h>
#include <ppx/wire.h>

#define PREFIX "/debug/pprof/"
/* Idle keep-alive connections are closed after this (seconds); a handler
 * sleeping through a delta window is not idle. */
#define IDLE_TIMEOUT_S 60u

/* How long stopping waits for the requests under way to be answered (a
 * delta's window ends at once: live_stop()). */
#define STOP_WAIT_MS 2000

/* Each connection's memory pool in libmicrohttpd: the request line and
 * headers are read into its first half, and every query argument takes a
 * record of about 64 bytes from the rest. MHD's default (32 KiB) runs out
 * at ~250 arguments and then closes the connection without an answer;
 * with this, HTTP_MAX_URI bytes and HTTP_MAX_ARGS arguments fit with room
 * to spare, and what is beyond them is answered 414 (on_uri). */
#define POOL_BYTES (256u * 1024u)

/* The same libmicrohttpd message is said at most once a second: out of
 * descriptors, its accept loop fails (and says so) as fast as it can. */
#define LOG_INTERVAL_MS 1000
#define LOG_KINDS 8
/* Out of descriptors with no connection of its own, libmicrohttpd 0.9.75
 * polls and fails accept() again at once, for ever ("busy waiting"): its
 * log call, made from that loop, is where it can be slowed down. */
#define ACCEPT_BACKOFF_MS 100
#define BUSY_ACCEPT_MESSAGE "resource limit at FIRST connection"

struct log_kind {
    const char *fmt; /* MHD's format string: one per kind of message */
    long long said_ms;
    unsigned long suppressed;
};

struct http_server {
    struct MHD_Daemon *daemon;
    struct live *live;
    struct http_auth auth;
    struct http_ui *ui;
    atomic_uint active; /* requests between their first call and their completion */
    char url[128];      /* http://HOST:PORT */
    char printed[256];  /* the same with the token as credentials */
    char ui_url[256];   /* the web UI's page, with ?token= */
    pthread_mutex_t log_lock;
    struct log_kind log[LOG_KINDS];
};

/* Under log_lock: whether fmt may be said now; *suppressed gets how many
 * were not since it last was. */
static bool log_allowed(struct http_server *h, const char *fmt, unsigned long *suppressed)
{
    long long now = monotonic_ms();
    struct log_kind *k = NULL, *oldest = &h->log[0];
    for (size_t i = 0; i < LOG_KINDS && !k; i++) {
        if (h->log[i].fmt == fmt)
            k = &h->log[i];
        else if (h->log[i].said_ms < oldest->said_ms)
            oldest = &h->log[i];
    }
    if (!k) {
        *oldest = (struct log_kind){fmt, now, 0};
        *suppressed = 0;
        return true;
    }
    if (now - k->said_ms < LOG_INTERVAL_MS) {
        k->suppressed++;
        return false;
    }
    *suppressed = k->suppressed;
    k->suppressed = 0;
    k->said_ms = now;
    return true;
}

static void mhd_log(void *arg, const char *fmt, va_list ap)
{
    struct http_server *h = arg;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t len = strlen(line);
    while (len > 0 && line[len - 1] == '\n')
        line[--len] = 0;
    unsigned long suppressed = 0;
    pthread_mutex_lock(&h->log_lock);
    bool say = log_allowed(h, fmt, &suppressed);
    pthread_mutex_unlock(&h->log_lock);
    if (say && suppressed)
        fprintf(stderr, "ppx: http: %s (and %lu more times since it was last said)\n", line,
                suppressed);
    else if (say)
        fprintf(stderr, "ppx: http: %s\n", line);
    if (strstr(fmt, BUSY_ACCEPT_MESSAGE))
        nanosleep(&(struct timespec){0, ACCEPT_BACKOFF_MS * 1000000L}, NULL);
}

/* "PORT", ":PORT", "HOST:PORT", "[V6]:PORT" into host and port. */
static int split_spec(const char *spec, char *host, size_t hostlen, const char **port, char *err,
                      size_t errlen)
{
    const char *colon;
    snprintf(host, hostlen, "%s", HTTP_DEFAULT_HOST);
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':' || close == spec + 1) {
            snprintf(err, errlen, "ppx: --http %s: expected [ADDRESS]:PORT", spec);
            return -1;
        }
        snprintf(host, hostlen, "%.*s", (int)(close - spec - 1), spec + 1);
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon && colon != spec)
            snprintf(host, hostlen, "%.*s", (int)(colon - spec), spec);
    }
    *port = colon ? colon + 1 : spec;
    char *end;
    errno = 0;
    unsigned long v = strtoul(*port, &end, 10);
    if (**port < '0' || **port > '9' || *end || errno || v > 65535) {
        snprintf(err, errlen, "ppx: --http %s: the port must be a number from 0 to 65535", spec);
        return -1;
    }
    return 0;
}

static int listen_on(const char *spec, char *url, size_t urllen, char *err, size_t errlen)
{
    char host[256];
    const char *port;
    if (split_spec(spec, host, sizeof host, &port, err, errlen) < 0)
        return -1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "ppx: --http %s: %s", spec, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (ai->ai_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        snprintf(err, errlen, "ppx: cannot listen on %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    char numeric[INET6_ADDRSTRLEN + 8], service[16];
    if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0 ||
        getnameinfo((struct sockaddr *)&sa, salen, numeric, sizeof numeric, service, sizeof service,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(err, errlen, "ppx: cannot tell where %s listens: %s", spec, strerror(errno));
        close(fd);
        return -1;
    }
    if (sa.ss_family == AF_INET6)
        snprintf(url, urllen, "http://[%s]:%s", numeric, service);
    else
        snprintf(url, urllen, "http://%s:%s", numeric, service);
    return fd;
}

/* ---- requests ---- */

struct args {
    struct http_query q;
    char error[256];
};

/* A decimal number in [min, max], nothing else. */
static bool parse_number(const char *s, unsigned long long min, unsigned long long max,
                         unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9' || strlen(s) > 19)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static enum MHD_Result each_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    struct args *a = cls;
    unsigned long long v;
    if (a->error[0])
        return MHD_NO;
    if (strcmp(key, "pid") == 0) {
        if (!parse_number(value, 1, UINT32_MAX, &v))
            snprintf(a->error, sizeof a->error,
                     "invalid value for \"pid\" - must be a process id (a positive integer)");
        else
            a->q.pid = (uint32_t)v;
    } else if (strcmp(key, "seconds") == 0) {
        if (!parse_number(value, 1, UINT64_MAX, &v))
            snprintf(a->error, sizeof a->error,
                     "invalid value for \"seconds\" - must be a positive integer");
        else if (v > HTTP_MAX_SECONDS)
            snprintf(a->error, sizeof a->error,
                     "invalid value for \"seconds\" - at most %u (a longer window: "
                     "take two profiles and compare them with go tool pprof -base)",
                     HTTP_MAX_SECONDS);
        else
            a->q.seconds = (unsigned)v;
    } else if (strcmp(key, "hz") == 0) {
        if (!parse_number(value, 1, UINT64_MAX, &v))
            snprintf(a->error, sizeof a->error,
                     "invalid value for \"hz\" - must be a positive integer");
        else if (v > HTTP_MAX_HZ)
            snprintf(a->error, sizeof a->error,
                     "invalid value for \"hz\" - at most %u samples per second over HTTP "
                     "(PPX_CPU_HZ sets more, up to %u, when the program starts)",
                     HTTP_MAX_HZ, WIRE_MAX_CPU_HZ);
        else
            a->q.hz = (unsigned)v;
    } else if (strcmp(key, "peak") == 0) {
        if (!parse_number(value, 0, 1, &v))
            snprintf(a->error, sizeof a->error, "invalid value for \"peak\" - 0 or 1");
        else
            a->q.peak = v == 1;
    } else if (strcmp(key, "format") == 0) {
        if (!value || (strcmp(value, "csv") != 0 && strcmp(value, "json") != 0))
            snprintf(a->error, sizeof a->error,
                     "invalid value for \"format\" - json or csv (timeline)");
        else
            a->q.csv = strcmp(value, "csv") == 0;
    } else if (strcmp(key, "sample_index") == 0) {
        if (!value || !*value)
            snprintf(a->error, sizeof a->error,
                     "invalid value for \"sample_index\" - a sample type's name (inuse_space)");
        else
            a->q.sample_index = value; /* checked against the profile's types */
    } else if (strcmp(key, "debug") == 0) {
        if (!parse_number(value, 0, 1000000, &v))
            snprintf(a->error, sizeof a->error,
                     "invalid value for \"debug\" - must be a non-negative integer");
        else
            a->q.debug = (long)v;
    }
    /* "gc" (run the garbage collector first) has no meaning here, and
     * other arguments are ignored, as by Go's handlers. */
    return a->error[0] ? MHD_NO : MHD_YES;
}

static enum MHD_Result send_reply(struct MHD_Connection *c, struct http_reply *r,
                                  const char *extra_header, const char *extra_value)
{
    struct MHD_Response *resp;
    if (r->body)
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    r->body = NULL; /* the response owns it now */
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    if (r->status >= 400) /* pprof shows the body of such an answer */
        MHD_add_response_header(resp, "X-Go-Pprof", "1");
    if (r->attachment[0]) {
        char disposition[128];
        snprintf(disposition, sizeof disposition, "attachment; filename=\"%s\"", r->attachment);
        MHD_add_response_header(resp, "Content-Disposition", disposition);
    }
    if (extra_header)
        MHD_add_response_header(resp, extra_header, extra_value);
    enum MHD_Result rc = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* A request's own state, from the moment its request line is read
 * (on_uri) to MHD's completion notice; the body of a POST to
 * /debug/pprof/symbol gathers here as it arrives. */
struct upload {
    char *data;
    size_t len;
    bool too_big;
    bool started;   /* the body follows: the next calls bring it */
    bool checked;   /* URI and access checked, at the first call */
    bool uri_long;  /* longer than HTTP_MAX_URI */
    bool many_args; /* more than HTTP_MAX_ARGS arguments */
};

/* MHD's URI callback: called once per request with the whole request
 * target, before MHD splits the query into arguments; what it returns is
 * the request's *con_cls. A query with more arguments than the pool holds
 * would make MHD close the connection without an answer: it is cut here
 * (the target lives in the connection's own read buffer, which MHD
 * parses right after this call), and on_request answers 414. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)c;
    struct http_server *h = cls;
    struct upload *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    atomic_fetch_add(&h->active, 1);
    const char *query = strchr(uri, '?');
    size_t args = query ? 1 : 0;
    for (const char *p = query; p && *p; p++)
        args += *p == '&';
    u->uri_long = strlen(uri) > HTTP_MAX_URI;
    u->many_args = args > HTTP_MAX_ARGS;
    if ((u->uri_long || u->many_args) && query)
        ((char *)query)[1] = 0;
    return u;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)c;
    (void)why;
    struct http_server *h = cls;
    struct upload *u = *con_cls;
    if (u) {
        free(u->data);
        free(u);
        *con_cls = NULL;
        atomic_fetch_sub(&h->active, 1);
    }
}

static void append_upload(struct upload *u, const char *data, size_t len)
{
    if (u->too_big || u->len + len > HTTP_SYMBOL_MAX_BODY) {
        u->too_big = true;
        return;
    }
    char *grown = realloc(u->data, u->len + len);
    if (!grown) {
        u->too_big = true;
        return;
    }
    memcpy(grown + u->len, data, len);
    u->data = grown;
    u->len += len;
}

/* GET /debug/pprof/symbol?0x1+0x2: MHD takes "0x1 0x2" for an argument's
 * name. */
static enum MHD_Result each_symbol_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    (void)kind;
    (void)value;
    struct upload *u = cls;
    if (strcmp(key, "token") == 0)
        return MHD_YES;
    if (u->len)
        append_upload(u, "+", 1);
    append_upload(u, key, strlen(key));
    for (size_t i = 0; i < u->len; i++)
        if (u->data[i] == ' ')
            u->data[i] = '+';
    return MHD_YES;
}

static enum MHD_Result serve_symbol(struct http_server *h, struct MHD_Connection *c,
                                    const char *method, const char *upload_data,
                                    size_t *upload_size, struct upload *u)
{
    struct http_reply r = {0};
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
        struct upload args = {0};
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, each_symbol_arg, &args);
        if (args.too_big)
            http_reply_error(&r, 413, "too many addresses");
        else
            http_symbol_serve(h->live, args.data, args.len, &r);
        free(args.data);
        return send_reply(c, &r, NULL, NULL);
    }
    if (!u->started) { /* the headers: the body follows */
        u->started = true;
        return MHD_YES;
    }
    if (*upload_size) {
        append_upload(u, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (u->too_big)
        http_reply_error(&r, 413, "too many addresses: at most %u bytes", HTTP_SYMBOL_MAX_BODY);
    else
        http_symbol_serve(h->live, u->data, u->len, &r);
    return send_reply(c, &r, NULL, NULL);
}

/* The checks made before anything else, at a request's first call (its
 * headers read): a URI over the limits, then the access token (but for
 * the web UI's viewer files, live.h). True with the refusal in r. */
static bool refuse_request(struct http_server *h, struct MHD_Connection *c, const char *url,
                           const struct upload *u, struct http_reply *r, bool *query_token)
{
    if (u->uri_long) {
        http_reply_error(r, 414, "URI too long: at most %u bytes", HTTP_MAX_URI);
        return true;
    }
    if (u->many_args) {
        http_reply_error(r, 414, "URI too long: at most %u query arguments", HTTP_MAX_ARGS);
        return true;
    }
    if (http_ui_public(url))
        return false;
    switch (http_auth_check(&h->auth, c, query_token)) {
    case HTTP_AUTH_OK:
        return false;
    case HTTP_AUTH_MISSING:
        http_reply_error(r, 401,
                         "ppx collect: this server needs its access token, which only the "
                         "collector's user can read in %s: give it as the URL's password "
                         "(http://ppx:TOKEN@HOST:PORT/debug/pprof/..., what go tool pprof "
                         "needs), ?token=TOKEN, or the header 'Authorization: Bearer TOKEN'",
                         h->auth.path);
        return true;
    case HTTP_AUTH_WRONG:
        http_reply_error(r, 403,
                         "ppx collect: wrong access token: the collector's token is in %s "
                         "(a restarted collector draws a new one)",
                         h->auth.path);
        return true;
    }
    return false;
}

static enum MHD_Result send_refusal(struct MHD_Connection *c, struct http_reply *r)
{
    if (r->status == 401) /* a browser asks for the token (as the password) */
        return send_reply(c, r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"ppx collect\"");
    return send_reply(c, r, NULL, NULL);
}

/* The web UI's links (live.h): the viewer cannot use credentials given in
 * the page's URL (fetch() refuses a URL that holds them, and a relative
 * URL inherits the page's), so they carry the token however the page was
 * asked, and after a page asked with Basic credentials they name this
 * server without them (its Host as the browser wrote it). */
static void ui_links(const struct http_server *h, struct MHD_Connection *c, struct http_query *q,
                     char *origin, size_t len)
{
    q->link_token = h->auth.required ? h->auth.token : NULL;
    const char *auth =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Basic ", 6) != 0)
        return;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    static const char host_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789.-:[]";
    if (host && *host && strlen(host) < 256 && host[strspn(host, host_chars)] == 0)
        snprintf(origin, len, "http://%s", host);
    else
        snprintf(origin, len, "%s", h->url);
    q->link_origin = origin;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct http_server *h = cls;
    struct http_reply r = {0};
    struct upload *u = *con_cls;
    if (!u) { /* on_uri could not allocate it */
        u = calloc(1, sizeof *u);
        if (!u)
            return MHD_NO;
        *con_cls = u;
        atomic_fetch_add(&h->active, 1);
    }
    /* Only a POST's body brings more calls: they were let through. */
    bool query_token = false;
    if (!u->checked) {
        u->checked = true;
        if (refuse_request(h, c, url, u, &r, &query_token))
            return send_refusal(c, &r);
    }
    bool get =
        strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    bool symbol = strcmp(url, PREFIX "symbol") == 0;
    if (symbol && (get || strcmp(method, MHD_HTTP_METHOD_POST) == 0))
        return serve_symbol(h, c, method, upload_data, upload_size, u);
    if (!get) {
        http_reply_error(&r, 405, "method not allowed: the profiles are read with GET");
        return send_reply(c, &r, MHD_HTTP_HEADER_ALLOW, symbol ? "GET, HEAD, POST" : "GET, HEAD");
    }
    if (strcmp(url, "/debug/pprof") == 0) {
        http_reply_error(&r, 301, "moved to /debug/pprof/");
        return send_reply(c, &r, MHD_HTTP_HEADER_LOCATION, PREFIX);
    }
    if (strcmp(url, "/ui") == 0) {
        http_reply_error(&r, 301, "moved to " HTTP_UI_PREFIX);
        return send_reply(c, &r, MHD_HTTP_HEADER_LOCATION, HTTP_UI_PREFIX);
    }
    bool ui = strncmp(url, HTTP_UI_PREFIX, strlen(HTTP_UI_PREFIX)) == 0;
    if (!ui && strncmp(url, PREFIX, strlen(PREFIX)) != 0) {
        http_reply_error(&r, 404,
                         "404 page not found: the profiles are under " PREFIX
                         ", the web UI at " HTTP_UI_PREFIX);
        return send_reply(c, &r, NULL, NULL);
    }
    const char *name = ui ? "" : url + strlen(PREFIX);
    struct args a = {0};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, each_arg, &a);
    a.q.link_token = query_token ? h->auth.token : NULL;
    if (a.error[0])
        http_reply_error(&r, 400, "%s", a.error);
    else if (ui) {
        char origin[300];
        ui_links(h, c, &a.q, origin, sizeof origin);
        http_ui_serve(h->ui, h->live, url + strlen(HTTP_UI_PREFIX), &a.q, &r);
    } else if (strchr(name, '/'))
        http_reply_error(&r, 404, "Unknown profile");
    else
        http_profiles_serve(h->live, name, &a.q, &r);
    return send_reply(c, &r, NULL, NULL);
}

/* The URL printed at start: with the token as its password, so that it
 * works as is with go tool pprof and curl. */
static void printed_url(struct http_server *h)
{
    const char *rest = h->url + strlen("http://");
    if (h->auth.required)
        snprintf(h->printed, sizeof h->printed, "http://ppx:%s@%s", h->auth.token, rest);
    else
        snprintf(h->printed, sizeof h->printed, "%s", h->url);
    /* A browser may refuse credentials in a URL: the query works in all. */
    snprintf(h->ui_url, sizeof h->ui_url, "%s" HTTP_UI_PREFIX "%s%s", h->url,
             h->auth.required ? "?token=" : "", h->auth.required ? h->auth.token : "");
}

static void server_free(struct http_server *h)
{
    http_auth_cleanup(&h->auth);
    http_ui_free(h->ui);
    pthread_mutex_destroy(&h->log_lock);
    free(h);
}

struct http_server *http_start(const struct http_config *cfg, struct live *l, char *err,
                               size_t errlen)
{
    struct http_server *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "ppx: out of memory");
        return NULL;
    }
    h->live = l;
    pthread_mutex_init(&h->log_lock, NULL);
    int fd = listen_on(cfg->spec, h->url, sizeof h->url, err, errlen);
    if (fd < 0) {
        server_free(h);
        return NULL;
    }
    if (http_auth_init(&h->auth, cfg->socket_path, cfg->allow_any_user, err, errlen) < 0) {
        close(fd);
        server_free(h);
        return NULL;
    }
    printed_url(h);
    h->ui = http_ui_new();
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)POOL_BYTES, MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, errlen, "ppx: cannot start the HTTP server on %s", cfg->spec);
        close(fd);
        server_free(h);
        return NULL;
    }
    return h;
}

const char *http_url(const struct http_server *h)
{
    return h->printed;
}

const char *http_ui_url(const struct http_server *h)
{
    return h->ui_url;
}

const char *http_token_path(const struct http_server *h)
{
    return h->auth.path;
}

void http_stop(struct http_server *h)
{
    if (!h)
        return;
    /* Answer what is under way (a delta request now says the collector is
     * stopping) before the connections close. */
    for (int waited = 0; atomic_load(&h->active) > 0 && waited < STOP_WAIT_MS; waited += 10)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    MHD_stop_daemon(h->daemon);
    server_free(h);
}
