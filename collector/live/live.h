/* The live collector (`ppx collect`) while it runs: the process table
 * shared between its threads, the worker thread that writes profile
 * files, and the HTTP server of Go's net/http/pprof endpoints. */
#ifndef PPX_LIVE_H
#define PPX_LIVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <microhttpd.h>
#include "model/model.h"

/* ---- live ---- */
/* The live collector's state shared between its threads: the process
 * table fed by the ingest loop (the main thread), read by the HTTP
 * handlers and the background worker.
 *
 * Locking: the ingest loop holds live_lock() while it decodes (ingest.h
 * hooks), never while it waits. Readers hold it only to copy what they
 * need (model.h) and build profiles from the copies afterwards, under
 * the separate build lock: the symbolizer's cache is not thread-safe, and
 * builds are what takes time (symbolizing a large binary the first time),
 * so they must not stall ingest.
 *
 * Exited processes stay readable (merged into every profile) until more
 * than LIVE_KEEP_EXITED have exited; then the oldest are forgotten. */
#define LIVE_KEEP_EXITED 32u

struct live;

struct live *live_new(void);
void live_free(struct live *l);

/* The table (touched by the ingest loop under live_lock()). */
struct proc_table *live_table(struct live *l);
pthread_mutex_t *live_lock(struct live *l);

/* From the ingest loop, lock held: p's connection ended (it exited, or
 * the collector is stopping). Returns true when p counts as exited (not
 * while stopping). May forget the oldest exited processes. */
bool live_process_ended(struct live *l, struct proc *p);

/* From the ingest loop, lock held: a connection started feeding p (its
 * HELLO, first or again). A target forgets the collector's commands when
 * its connection ends (a daemon closing every descriptor, say): the CPU
 * sampling that profile windows still want is asked for again. */
void live_process_opened(struct live *l, struct proc *p);

/* Copies of the processes a request selects: every one (pid 0) or the
 * latest incarnation of pid. Returns 0 with *out (free with
 * live_free_copies(); NULL when none) and *n, LIVE_NO_SUCH_PID, or -1
 * when out of memory. */
#define LIVE_NO_SUCH_PID 1
int live_copy(struct live *l, uint32_t pid, enum proc_copy_depth depth, struct proc ***out,
              size_t *n);
void live_free_copies(struct proc **procs, size_t n);
/* With live_lock() held: the table's processes a request selects, as
 * live_copy() does, in a malloc'ed array (*count of them); *rc 0,
 * LIVE_NO_SUCH_PID or -1 (out of memory: NULL). */
struct proc **live_select_locked(struct live *l, uint32_t pid, size_t *count, int *rc);

/* What the index page lists of a process. */
struct live_info {
    uint32_t pid;
    uint64_t start_ns, exited_ns; /* CLOCK_REALTIME; exited_ns 0: running */
    char exe[256];
};
/* The processes, in the order they first connected; *out malloc'ed. */
int live_describe(struct live *l, struct live_info **out, size_t *n);

/* Serializes profile builds (symbolizer). */
void live_build_begin(struct live *l);
void live_build_end(struct live *l);

/* Sleeps seconds (a delta profile's window); false, at once, when the
 * collector is stopping. */
bool live_sleep(struct live *l, unsigned seconds);
/* Counts the windows under way: true (and counted until
 * live_window_leave()) while fewer than max are. */
bool live_window_enter(struct live *l, unsigned max);
void live_window_leave(struct live *l);
/* Wakes every live_sleep() for good. */
void live_stop(struct live *l);
bool live_stopping(struct live *l);

uint64_t live_now_ns(void); /* CLOCK_REALTIME */

/* ---- timeline ---- */
/* Starts the thread that takes a point of each connected process's totals
 * every second (model.h, timeline): live_timeline_main(l). It ends with
 * live_stop(); live_free() joins it. false when it could not start. */
bool live_start_timeline(struct live *l);
void *live_timeline_main(void *l);
/* A process's timeline, copied out. */
struct live_timeline {
    uint32_t pid;
    uint64_t start_ns, sample_rate;
    char exe[256];
    struct timeline_point *points; /* oldest first */
    size_t n;
};
/* The timelines of every process (pid 0) or of the latest incarnation of
 * pid: 0 with *out (live_timelines_free()) and *n, LIVE_NO_SUCH_PID, or
 * -1 when out of memory. */
int live_timelines(struct live *l, uint32_t pid, struct live_timeline **out, size_t *n);
void live_timelines_free(struct live_timeline *t, size_t n);

/* ---- commands to the targets (wire.h) ----
 * The ingest loop's server writes them: live_set_sender() gives the
 * function (called with live_lock() held) that writes one to the
 * connection feeding p; 0 when written. Without one, nothing is sent. */
typedef int (*live_send_fn)(void *arg, const struct proc *p, uint32_t type, const void *payload,
                            size_t len);
void live_set_sender(struct live *l, live_send_fn send, void *arg);

/* How long live_flush() waits for the targets' FLUSHED. */
#define LIVE_FLUSH_WAIT_MS 1000
/* Asks the connected processes (every one, or the latest incarnation of
 * pid) to send everything now, and waits until each has answered
 * (FLUSHED), gone, or timeout_ms passed. Returns how many answered. A
 * process that let the deadline pass is neither asked nor waited for
 * again until it answers that request or reconnects: a target whose
 * flusher is stuck costs one wait, not one per request. */
size_t live_flush(struct live *l, uint32_t pid, int timeout_ms);

/* How long live_tasks() waits: the target gives its threads 500 ms to
 * answer (preload/cpu/task_dump.c), then flushes and sends. */
#define LIVE_TASKS_WAIT_MS 3000
/* Asks the connected processes (every one, or the latest incarnation of
 * pid) for a dump of their threads and coroutines (WIRE_CMD_TASKS), and
 * waits until each has sent it whole (proc->dump), gone, or timeout_ms
 * passed. Returns how many answered. Processes that are not connected
 * keep the dump they last sent, if any. */
size_t live_tasks(struct live *l, uint32_t pid, int timeout_ms);

/* A CPU profile's window: the processes asked to sample. */
struct live_proc_id;
struct live_cpu_window {
    struct live_proc_id *procs;
    size_t n;
};
/* Asks the connected processes (every one, or pid) that sample CPU on
 * demand to sample at hz, until live_cpu_end(); concurrent windows share
 * the sampling (the first one's rate), which stops when the last ends.
 * Processes started with PPX_CPU_HZ are left alone. */
void live_cpu_begin(struct live *l, uint32_t pid, uint32_t hz, struct live_cpu_window *w);
void live_cpu_end(struct live *l, struct live_cpu_window *w);

/* ---- collect_worker ---- */
/* The live collector's background thread: writes profile files, so that
 * neither the ingest loop nor a control connection waits for symbolizing
 * and compressing. Jobs run one at a time, in order:
 *  - the final profiles of a process whose connection ended (with -o DIR):
 *    DIR/<exe>.<pid>/heap.pb.gz, allocs.pb.gz, ... (pprof.h);
 *  - a control request (`ppx snapshot`, ingest.h): the profiles of the
 *    selected processes, merged, in the requested directory, plus each
 *    process's own in <exe>.<pid>/ there when several are selected; the
 *    files written are listed back to the client. */
struct collect_worker;

/* out_dir: where exited processes' profiles go (prepared already), or
 * NULL for none; quiet: no message for each process written, only
 * errors. NULL with a message on stderr when the thread cannot start. */
struct collect_worker *collect_worker_start(struct live *l, const char *out_dir, bool quiet);

/* From the ingest loop, table lock held: p's connection ended; exited
 * false when the collector is stopping (p may still run). Copies p when
 * its profiles are to be written. spool: the spool file p was read from
 * (ingest.h), removed once they are; NULL for a connection. */
void collect_worker_process_ended(struct collect_worker *w, const struct proc *p, bool exited,
                                  const char *spool);

/* From the ingest loop: a control connection (ingest.h hooks); the worker
 * owns fd from now on. */
void collect_worker_control(struct collect_worker *w, int fd, const uint8_t *rest, size_t len);

/* Runs every queued job, stops the thread and frees w. */
void collect_worker_finish(struct collect_worker *w);

/* "<exe basename>.<pid>" (".<incarnation>" added after an exec), the
 * name of a process's own directory, made of safe characters only. */
void collect_proc_dirname(const struct proc *p, char *buf, size_t len);

/* ---- http ---- */
/* The live collector's HTTP server (libmicrohttpd): Go's net/http/pprof
 * endpoints under /debug/pprof/ (live.h).
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
 * Every request is checked first (live.h): its URI against
 * HTTP_MAX_URI and HTTP_MAX_ARGS (414), then its access token (401, 403). */
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
    const char *socket_path; /* the access token is written next to it (live.h) */
    bool allow_any_user;     /* no token asked */
};

/* Starts serving; NULL with a message in err on failure. */
struct http_server *http_start(const struct http_config *cfg, struct live *l, char *err,
                               size_t errlen);

/* Where it listens, as "http://ppx:TOKEN@127.0.0.1:6060"
 * ("http://[::1]:6060" with no token asked). */
const char *http_url(const struct http_server *h);
/* The web UI's page, as "http://127.0.0.1:6060/ui/?token=TOKEN". */
const char *http_ui_url(const struct http_server *h);
/* The token file ("" with no token asked). */
const char *http_token_path(const struct http_server *h);

/* Stops serving: call live_stop() first, so that delta requests return
 * at once; waits for the handlers running. */
void http_stop(struct http_server *h);

/* ---- http_auth ---- */
/* Who may read the live collector's profiles over HTTP.
 *
 * Loopback is shared by every user of the machine, and the profiles hold
 * what the socket's 0700 directory keeps from them (command lines,
 * mappings, stacks, and CPU sampling started on demand). So by default
 * every request must carry a token the collector draws at start
 * (getrandom) and writes, mode 0600, next to its socket
 * (SOCKET.token, README "Access"): only the collector's own user can read
 * it. A request gives it in one of three ways:
 *   - URL credentials, http://ppx:TOKEN@HOST:PORT/... (HTTP Basic, any
 *     user name): what the collector prints, and the only form that
 *     `go tool pprof` also sends with its /debug/pprof/symbol POSTs (it
 *     builds their URL from the profile's with the query dropped);
 *   - ?token=TOKEN in the query;
 *   - the header `Authorization: Bearer TOKEN`.
 * --http-allow-any-user turns the check off (no token, no file). */
#define HTTP_TOKEN_BYTES 16 /* drawn; written as twice as many hex digits */
#define HTTP_TOKEN_SUFFIX ".token"

struct http_auth {
    bool required;
    char token[2 * HTTP_TOKEN_BYTES + 1];
    char path[4096]; /* the token file; "" when none was written */
};

/* Draws the token and writes it atomically to SOCKET_PATH.token (0600),
 * unless allow_any_user. 0, or -1 with a message in err. */
int http_auth_init(struct http_auth *a, const char *socket_path, bool allow_any_user, char *err,
                   size_t errlen);

/* Removes the token file (the collector is stopping). */
void http_auth_cleanup(struct http_auth *a);

enum http_auth_result {
    HTTP_AUTH_OK,
    HTTP_AUTH_MISSING, /* no token given: 401 */
    HTTP_AUTH_WRONG,   /* a token, not ours: 403 */
};
/* The request's verdict; *in_query tells whether the token came as
 * ?token= (the index page's links then carry it on). */
enum http_auth_result http_auth_check(const struct http_auth *a, struct MHD_Connection *c,
                                      bool *in_query);

/* ---- http_profiles ---- */
/* The endpoints under /debug/pprof/, with the semantics of Go's
 * net/http/pprof: the index page, cmdline, and the profiles (heap,
 * allocs, profile = CPU, threadcreate, and ppx's own syscalls), built in
 * memory from copies of the live processes (live.h).
 *
 * ?pid=N selects one process (its latest incarnation); without it every
 * process the collector holds, running or recently exited, is merged and
 * each sample labelled with its pid (as ppx record does). ?seconds=N makes
 * a delta profile over the next N seconds (model.h); `profile` is
 * always one (default 30 s, as Go: the target samples CPU continuously,
 * so the window's samples are its CPU profile). ?debug=1 on heap and
 * allocs gives Go's legacy text format (pprof.h). ?gc is accepted and
 * ignored (there is no collector to run). */
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
    uint32_t pid;           /* 0: every process */
    unsigned seconds;       /* 0: not given */
    long debug;             /* 0: binary profile */
    bool csv;               /* timeline: format=csv (else JSON) */
    bool peak;              /* heap: peak=1, the heap at its peak */
    unsigned hz;            /* profile: CPU samples per second asked of the targets; 0: not given */
    const char *link_token; /* the index page's links carry ?token= (it came so); or NULL */
    /* The profile's default sample type, a name or number; or NULL. */
    const char *sample_index;
    /* The web UI's links to profiles: on this origin ("http://HOST:PORT"),
     * or NULL for relative ones (http.c). */
    const char *link_origin;
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

/* The binary profiles served, for the web UI: the i-th one's name, its
 * sample types (static, (type, unit) each) and default type; false past
 * the last. window: always a window (profile, CPU). */
struct http_profile_info {
    const char *name;
    bool window;
    const char *const (*sample_types)[2];
    size_t n_sample_types;
    const char *default_type;
};
bool http_profiles_info(size_t i, struct http_profile_info *out);

/* A duration as 1d02h03m04s. */
void http_duration(FILE *f, uint64_t ns);
/* The executable, state ("running", "exited N ago") and uptime cells of a
 * process's row (its executable's <td> already open), ending in an open
 * <td>: the index page's and the web UI's rows. */
void http_process_cells(FILE *f, const struct live_info *p, uint64_t now);

/* ---- http_timeline ---- */
/* /debug/pprof/timeline: each process's figures a second over the last
 * hour (JSON, or CSV with format=csv): heap in use (scaled as the heap
 * profile), allocation, CPU and I/O rates, running threads. */
void http_timeline_serve(struct live *l, const struct http_query *q, struct http_reply *r);
/* The figures of one point: levels as they are, rates per second since
 * the point before. */
struct http_timeline_row {
    double t_s; /* seconds since the epoch */
    double inuse_bytes, inuse_objects;
    double alloc_bytes_s, alloc_objects_s;
    double cpu_cores; /* CPU seconds per second */
    double io_calls_s, io_bytes_s;
    uint32_t threads;
};
/* Point i of pts; the one before the first is the process's start
 * (start_ns), with nothing counted yet. */
struct http_timeline_row http_timeline_row_at(const struct timeline_point *pts, size_t i,
                                              uint64_t start_ns);

/* Sets r to an error: status and one line of text. */
void http_reply_error(struct http_reply *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Ends a body written through open_memstream(&r->body, &r->len): 200 with
 * content_type, or 500 when the stream could not be written. */
void http_reply_stream(struct http_reply *r, FILE *f, const char *content_type);

/* ---- http_ui ---- */
/* The web UI under /ui/ (README "Web UI"): the page /ui/ lists the
 * processes, as /debug/pprof/ does, each with links that open one of its
 * profiles, with a chosen sample type (?sample_index=), in a flame graph
 * viewer: speedscope (npm's package, a dependency installed with ppx, not
 * code of this tree), whose files are served from /ui/speedscope/. The
 * viewer fetches the profile from this server (same origin), given its
 * URL in the page's fragment (#profileURL=...&title=...).
 *
 * The viewer's files are the only ones served without the token: they
 * are the package's, the same for everyone, and hold nothing of the
 * targets; a page opened with ?token= could not pass the token on to the
 * scripts and styles it loads. The page /ui/ itself and the profiles need
 * it as every other request does; the page's links carry ?token= (the
 * viewer can use no other way: http.c, ui_links()).
 *
 * The viewer is looked for, in order: $PPX_UI_DIR/speedscope (only
 * there when PPX_UI_DIR is set); when ppx runs from its build tree, the
 * tree's ui/node_modules/speedscope/dist/release (scripts/deps installs
 * it); $(pkgdatadir)/ui/speedscope (make install). Without one, /ui/
 * still lists the processes, links the raw profiles and says the viewer
 * is missing (said once on stderr at start too). Only regular files under
 * the viewer's directory are served (names of letters, digits, '-', '_'
 * and '.', no component starting with '.', nothing reached through a
 * symbolic link out of it); anything else is 404. */
#define HTTP_UI_PREFIX "/ui/"
#define HTTP_UI_VIEWER "speedscope/"
/* A CPU profile opened from the UI: a window of this many seconds. */
#define HTTP_UI_CPU_SECONDS 10u
/* The largest viewer file served (speedscope's largest is 0.5 MiB); each
 * is read whole into its answer. */
#define HTTP_UI_MAX_FILE (16u << 20)

/* The viewer's directory, resolved (malloc'ed), where the paragraph above
 * says; NULL when there is none, with the places looked in in looked
 * (ppx report inlines the viewer from there too). */
char *http_ui_viewer_find(char *looked, size_t looked_len);

struct http_ui;
/* Finds the viewer; NULL only when out of memory (then /ui/ says so). */
struct http_ui *http_ui_new(void);
void http_ui_free(struct http_ui *ui);
/* Whether url (the request's path) is one of the viewer's files: served
 * without the token. */
bool http_ui_public(const char *url);
/* Serves HTTP_UI_PREFIX NAME: "" the page, HTTP_UI_VIEWER... the viewer's
 * files. ui may be NULL (no viewer). */
void http_ui_serve(const struct http_ui *ui, struct live *l, const char *name,
                   const struct http_query *q, struct http_reply *r);

/* ---- http_symbol ---- */
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
/* Bytes of addresses a request may post. */
#define HTTP_SYMBOL_MAX_BODY (4u << 20)

/* query: the addresses separated by '+' (POST body, or the GET query),
 * len bytes; none: Go's "num_symbols: 1" alone. */
void http_symbol_serve(struct live *l, const char *query, size_t len, struct http_reply *r);

#endif
