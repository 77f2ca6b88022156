#include "live/live.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pprof/pprof.h"

enum {
    EP_DELTA = 1,        /* ?seconds=N gives the change over the next N seconds */
    EP_ALWAYS_DELTA = 2, /* a window always (CPU): HTTP_CPU_DEFAULT_SECONDS by default */
    EP_HEAP_TEXT = 4,    /* ?debug=1: Go's legacy text heap profile */
    EP_TASKS = 8,        /* a dump of every thread and coroutine now; ?debug=1, 2: text */
};

/* One line per profile: adding one is adding it here and to pprof_write(). */
static const struct endpoint {
    const char *name;
    enum pprof_profile profile;
    unsigned flags;
    const char *description;
} endpoints[] = {
    {"allocs", PPROF_PROFILE_ALLOCS, EP_DELTA | EP_HEAP_TEXT,
     "A sampling of all past memory allocations"},
    {"block", PPROF_PROFILE_BLOCK, EP_DELTA,
     "Stack traces that led to blocking on synchronization primitives"},
    {"goroutine", PPROF_PROFILE_GOROUTINE, EP_TASKS,
     "Stack traces of all current threads and state-threads coroutines (ppx: what each "
     "is blocked in, and for how long, with debug=2)"},
    {"heap", PPROF_PROFILE_HEAP, EP_DELTA | EP_HEAP_TEXT,
     "A sampling of memory allocations of live objects"},
    {"mutex", PPROF_PROFILE_MUTEX, EP_DELTA, "Stack traces of holders of contended mutexes"},
    {"profile", PPROF_PROFILE_CPU, EP_ALWAYS_DELTA,
     "CPU profile. You can specify the duration in the seconds GET parameter (default 30). "
     "After you get the profile file, use the go tool pprof command to investigate the profile."},
    {"syscalls", PPROF_PROFILE_SYSCALLS, EP_DELTA,
     "I/O calls per call site (ppx): calls, time, bytes, messages, errors, eagain"},
    {"threadcreate", PPROF_PROFILE_THREADCREATE, EP_DELTA,
     "Stack traces that led to the creation of new OS threads"},
};
#define N_ENDPOINTS (sizeof endpoints / sizeof endpoints[0])

void http_reply_error(struct http_reply *r, unsigned status, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    free(r->body);
    r->body = malloc(len);
    r->len = r->body ? len : 0;
    if (r->body)
        memcpy(r->body, line, len);
    r->status = status;
    r->content_type = "text/plain; charset=utf-8";
    r->attachment[0] = 0;
}

void http_reply_stream(struct http_reply *r, FILE *f, const char *content_type)
{
    if (fclose(f) != 0) {
        http_reply_error(r, 500, "out of memory");
        return;
    }
    r->status = 200;
    r->content_type = content_type;
}

static struct proc *find_base(struct proc **base, size_t n, const struct proc *p)
{
    for (size_t i = 0; i < n; i++)
        if (base[i]->pid == p->pid && base[i]->start_ns == p->start_ns)
            return base[i];
    return NULL;
}

enum {
    SEL_FRESH = 1, /* ask the targets to flush first (live_flush) */
    SEL_CPU = 2,   /* ask them for CPU samples over the window */
};

/* The processes to build from: copies now, or the change over the next
 * seconds. 0, or -1 with the error in r. */
static int select_procs(struct live *l, const struct http_query *q, unsigned seconds, unsigned sel,
                        struct proc ***procs, size_t *n, struct http_reply *r)
{
    struct proc **base = NULL;
    size_t n_base = 0;
    uint64_t since = 0;
    if (seconds && !live_window_enter(l, HTTP_MAX_WINDOWS)) {
        http_reply_error(r, 429,
                         "too many profile windows under way (at most %u at once, seconds=N "
                         "and profile): try again when one has ended",
                         HTTP_MAX_WINDOWS);
        return -1;
    }
    if (seconds) {
        struct live_cpu_window window = {0};
        if (sel & SEL_CPU)
            live_cpu_begin(l, q->pid, q->hz ? q->hz : HTTP_CPU_DEFAULT_HZ, &window);
        if (sel & SEL_FRESH)
            live_flush(l, q->pid, LIVE_FLUSH_WAIT_MS);
        int rc = live_copy(l, q->pid, PROC_COPY_COUNTERS, &base, &n_base);
        since = live_now_ns();
        bool slept = rc == 0 && live_sleep(l, seconds);
        if (sel & SEL_CPU)
            live_cpu_end(l, &window); /* the flush below brings the last samples */
        live_window_leave(l);
        if (rc == LIVE_NO_SUCH_PID) {
            http_reply_error(r, 404, "no process with pid %u has connected to this collector",
                             q->pid);
            return -1;
        }
        if (rc < 0) {
            http_reply_error(r, 500, "out of memory");
            return -1;
        }
        if (!slept) {
            live_free_copies(base, n_base);
            http_reply_error(r, 503, "the collector is stopping");
            return -1;
        }
    }
    if (sel & SEL_FRESH)
        live_flush(l, q->pid, LIVE_FLUSH_WAIT_MS);
    int rc = live_copy(l, q->pid, PROC_COPY_FULL, procs, n);
    if (rc == 0 && seconds)
        for (size_t i = 0; i < *n; i++)
            proc_copy_subtract((*procs)[i], find_base(base, n_base, (*procs)[i]), since);
    live_free_copies(base, n_base);
    if (rc == LIVE_NO_SUCH_PID) {
        http_reply_error(r, 404, "no process with pid %u has connected to this collector", q->pid);
        return -1;
    }
    if (rc < 0) {
        http_reply_error(r, 500, "out of memory");
        return -1;
    }
    return 0;
}

/* ?sample_index=NAME (or its number, as pprof's option takes either): the
 * name of one of ep's sample types in *type, or false with a 400 in r
 * naming them. */
static bool sample_type_asked(const struct endpoint *ep, const char *asked, const char **type,
                              struct http_reply *r)
{
    const char *const(*types)[2];
    size_t n;
    const char *own;
    if (pprof_describe(ep->profile, &types, &n, &own) < 0) {
        http_reply_error(r, 500, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(types[i][0], asked) == 0) {
            *type = types[i][0];
            return true;
        }
    char *end;
    unsigned long index = strtoul(asked, &end, 10); /* ULONG_MAX when too large */
    if (asked[0] >= '0' && asked[0] <= '9' && *end == 0 && index < n) {
        *type = types[index][0];
        return true;
    }
    char names[256] = "";
    for (size_t i = 0, len = 0; i < n && len < sizeof names; i++)
        len +=
            (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", types[i][0]);
    http_reply_error(r, 400, "invalid value for \"sample_index\" - %s has %s (not \"%.64s\")",
                     ep->name, names, asked);
    return false;
}

/* What a profile request builds from its processes: a text form (debug=N)
 * or the pprof profile which, with its default sample type (NULL: the
 * writer's) and the attachment's name suffix. */
struct build {
    enum pprof_profile which;
    const char *default_type;
    const char *suffix;
    int (*text)(struct proc *const *procs, size_t n, long debug, char **out, size_t *len);
    long debug;
};

static int heap_text(struct proc *const *procs, size_t n, long debug, char **out, size_t *len)
{
    (void)debug; /* one text form */
    return heap_text_write(procs, n, out, len);
}

static int goroutine_text(struct proc *const *procs, size_t n, long debug, char **out, size_t *len)
{
    return goroutine_text_write(procs, n, (int)debug, out, len);
}

/* Builds b from procs (copies, freed here) into r, under the build lock. */
static void reply_built(struct live *l, const struct endpoint *ep, const struct build *b,
                        struct proc **procs, size_t n, struct http_reply *r)
{
    char err[512] = "";
    int rc;
    live_build_begin(l);
    if (b->text) {
        rc = b->text(procs, n, b->debug, &r->body, &r->len);
        if (rc < 0)
            snprintf(err, sizeof err, "out of memory");
    } else {
        struct pprof_sink mem = {.name = ep->name, .default_type = b->default_type}; /* in memory */
        rc = pprof_write(b->which, procs, n, n > 1, live_now_ns(), &mem, err, sizeof err);
        r->body = (char *)mem.data;
        r->len = mem.len;
    }
    live_build_end(l);
    live_free_copies(procs, n);
    if (rc < 0) {
        http_reply_error(r, 500, "cannot build the %s profile: %s", ep->name, err);
        return;
    }
    r->status = 200;
    if (b->text) {
        r->content_type = "text/plain; charset=utf-8";
    } else {
        r->content_type = "application/octet-stream";
        snprintf(r->attachment, sizeof r->attachment, "%s%s", ep->name, b->suffix);
    }
}

/* goroutine: every connected process selected is asked for a dump now;
 * the text forms (debug=1, 2) or the pprof one. */
static void serve_tasks(struct live *l, const struct endpoint *ep, const struct http_query *q,
                        struct http_reply *r)
{
    if (q->seconds) {
        http_reply_error(r, 400, "\"seconds\" parameter is not supported for this profile type");
        return;
    }
    if (q->debug > 2) {
        http_reply_error(r, 400, "debug=%ld is not supported for %s (0, 1 or 2)", q->debug,
                         ep->name);
        return;
    }
    live_tasks(l, q->pid, LIVE_TASKS_WAIT_MS);
    struct proc **procs;
    size_t n;
    if (select_procs(l, q, 0, 0, &procs, &n, r) < 0)
        return;
    /* what runs now: processes that have exited are left out */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (procs[i]->connected)
            procs[kept++] = procs[i];
        else
            proc_copy_free(procs[i]);
    }
    n = kept;
    struct build b = {ep->profile, NULL, "", q->debug ? goroutine_text : NULL, q->debug};
    reply_built(l, ep, &b, procs, n, r);
}

static void serve_profile(struct live *l, const struct endpoint *ep, const struct http_query *q,
                          struct http_reply *r)
{
    if (ep->flags & EP_TASKS) {
        serve_tasks(l, ep, q, r);
        return;
    }
    if (q->seconds && !(ep->flags & (EP_DELTA | EP_ALWAYS_DELTA))) {
        http_reply_error(r, 400, "\"seconds\" parameter is not supported for this profile type");
        return;
    }
    if (q->debug && !(ep->flags & EP_HEAP_TEXT)) {
        http_reply_error(r, 400, "debug=%ld is not supported for %s: it is a binary profile only",
                         q->debug, ep->name);
        return;
    }
    if (q->debug && q->seconds) {
        http_reply_error(r, 400, "seconds and debug params are incompatible");
        return;
    }
    if (q->peak && (ep->profile != PPROF_PROFILE_HEAP || q->seconds || q->debug)) {
        http_reply_error(r, 400,
                         "peak=1 is the heap profile at its peak: on heap alone, "
                         "without seconds or debug");
        return;
    }
    if (q->debug && q->sample_index) {
        http_reply_error(r, 400,
                         "sample_index and debug params are incompatible: the text "
                         "profile carries every figure");
        return;
    }
    const char *sample_type = NULL;
    if (q->sample_index && !sample_type_asked(ep, q->sample_index, &sample_type, r))
        return;
    unsigned seconds = q->seconds;
    if (!seconds && (ep->flags & EP_ALWAYS_DELTA))
        seconds = HTTP_CPU_DEFAULT_SECONDS;

    struct proc **procs;
    size_t n;
    unsigned sel = SEL_FRESH | (ep->flags & EP_ALWAYS_DELTA ? SEL_CPU : 0);
    if (select_procs(l, q, seconds, sel, &procs, &n, r) < 0)
        return;
    struct build b = {q->peak ? PPROF_PROFILE_PEAK : ep->profile, sample_type,
                      seconds   ? "-delta"
                      : q->peak ? "-peak"
                                : "",
                      q->debug ? heap_text : NULL, q->debug};
    reply_built(l, ep, &b, procs, n, r);
}

/* Go's: the arguments separated by NUL bytes. With several processes, one
 * line each: pid, a tab, the arguments separated by spaces. */
static void serve_cmdline(struct live *l, const struct http_query *q, struct http_reply *r)
{
    struct proc **procs;
    size_t n;
    if (select_procs(l, q, 0, 0, &procs, &n, r) < 0)
        return;
    FILE *f = open_memstream(&r->body, &r->len);
    if (!f) {
        live_free_copies(procs, n);
        http_reply_error(r, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct proc *p = procs[i];
        size_t len = p->cmdline_len;
        /* /proc/PID/cmdline ends with a NUL; Go's join does not. */
        if (len && p->cmdline[len - 1] == 0)
            len--;
        if (n == 1) {
            fwrite(p->cmdline, 1, len, f);
            continue;
        }
        fprintf(f, "%u\t", p->pid);
        for (size_t k = 0; k < len; k++)
            fputc(p->cmdline[k] ? p->cmdline[k] : ' ', f);
        fputc('\n', f);
    }
    live_free_copies(procs, n);
    http_reply_stream(r, f, "text/plain; charset=utf-8");
}

void http_duration(FILE *f, uint64_t ns)
{
    uint64_t s = ns / 1000000000u;
    if (s >= 86400)
        fprintf(f, "%llud", (unsigned long long)(s / 86400));
    if (s >= 3600)
        fprintf(f, "%02lluh", (unsigned long long)(s / 3600 % 24));
    if (s >= 60)
        fprintf(f, "%02llum", (unsigned long long)(s / 60 % 60));
    fprintf(f, "%02llus", (unsigned long long)(s % 60));
}

/* Links to every profile, for one process (pid) or all merged (0); with
 * the token when the page was asked with ?token= (a browser given the
 * token as the URL's password sends it again by itself). */
static void profile_links(FILE *f, uint32_t pid, const char *token)
{
    char args[96] = "";
    size_t len = 0;
    if (pid)
        len += (size_t)snprintf(args + len, sizeof args - len, "&amp;pid=%u", pid);
    if (token)
        snprintf(args + len, sizeof args - len, "&amp;token=%s", token);
    for (size_t i = 0; i < N_ENDPOINTS; i++) {
        const struct endpoint *ep = &endpoints[i];
        const char *debug = ep->flags & EP_HEAP_TEXT ? "&amp;debug=1"
                            : ep->flags & EP_TASKS   ? "&amp;debug=2"
                                                     : "";
        char all[128];
        snprintf(all, sizeof all, "%s%s", args, debug);
        fprintf(f, "<a href='%s%s%s'>%s</a> ", ep->name, all[0] ? "?" : "",
                all[0] ? all + strlen("&amp;") : "", ep->name);
    }
    fprintf(f, "<a href='cmdline%s%s'>cmdline</a> ", args[0] ? "?" : "",
            args[0] ? args + strlen("&amp;") : "");
    fprintf(f, "<a href='timeline%s%s'>timeline</a>", args[0] ? "?" : "",
            args[0] ? args + strlen("&amp;") : "");
}

void http_process_cells(FILE *f, const struct live_info *p, uint64_t now)
{
    uint64_t end = p->exited_ns ? p->exited_ns : now;
    html_escaped(f, p->exe);
    fprintf(f, "</td><td>%s", p->exited_ns ? "exited " : "running");
    if (p->exited_ns) {
        http_duration(f, now > p->exited_ns ? now - p->exited_ns : 0);
        fputs(" ago", f);
    }
    fputs("</td><td>", f);
    http_duration(f, end > p->start_ns ? end - p->start_ns : 0);
    fputs("</td><td>", f);
}

static void serve_index(struct live *l, const struct http_query *q, struct http_reply *r)
{
    struct live_info *info;
    size_t n;
    if (live_describe(l, &info, &n) < 0) {
        http_reply_error(r, 500, "out of memory");
        return;
    }
    FILE *f = open_memstream(&r->body, &r->len);
    if (!f) {
        free(info);
        http_reply_error(r, 500, "out of memory");
        return;
    }
    uint64_t now = live_now_ns();
    fputs("<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n"
          ".profile-name{\n\tdisplay:inline-block;\n\twidth:6rem;\n}\n"
          "td{\n\tpadding-right:1.5rem;\n}\n</style>\n</head>\n<body>\n"
          "/debug/pprof/ (ppx collector)<br>\n<br>\n",
          f);
    fprintf(f, "Profiles of every process below, merged, each sample labelled with its pid:<br>\n");
    profile_links(f, 0, q->link_token);
    fprintf(f,
            "<br>\n<br>\n%zu process%s:\n<table>\n"
            "<thead><td>PID</td><td>Executable</td><td>State</td><td>Uptime</td>"
            "<td>Profiles</td></thead>\n",
            n, n == 1 ? "" : "es");
    for (size_t i = 0; i < n; i++) {
        const struct live_info *p = &info[i];
        fprintf(f, "<tr><td>%u</td><td>", p->pid);
        http_process_cells(f, p, now);
        profile_links(f, p->pid, q->link_token);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n<p>\nProfile Descriptions:\n<ul>\n", f);
    for (size_t i = 0; i < N_ENDPOINTS; i++)
        fprintf(f, "<li><div class=profile-name>%s: </div> %s</li>\n", endpoints[i].name,
                endpoints[i].description);
    fputs("<li><div class=profile-name>cmdline: </div> The command line invocation of the "
          "program</li>\n"
          "<li><div class=profile-name>timeline: </div> Heap in use, allocation, CPU and I/O "
          "rates and threads, a point a second over the last hour (ppx; JSON, format=csv for "
          "CSV)</li>\n"
          "</ul>\nQuery parameters: pid=N selects one process; seconds=N on heap, allocs, "
          "block, mutex, syscalls and threadcreate gives the change over the next N seconds; hz=N "
          "on profile "
          "sets the CPU sampling rate asked of processes started without PPX_CPU_HZ (100, at most "
          "1000); "
          "debug=1 on heap and allocs gives the legacy text format; peak=1 on heap gives the heap "
          "at its peak; debug=1 on goroutine groups equal stacks as text, debug=2 gives every "
          "thread and coroutine.\n</p>\n</body>\n</html>\n",
          f);
    free(info);
    http_reply_stream(r, f, "text/html; charset=utf-8");
}

void http_profiles_serve(struct live *l, const char *name, const struct http_query *q,
                         struct http_reply *r)
{
    if (*name == 0) {
        serve_index(l, q, r);
        return;
    }
    if (strcmp(name, "cmdline") == 0) {
        serve_cmdline(l, q, r);
        return;
    }
    if (strcmp(name, "timeline") == 0) {
        http_timeline_serve(l, q, r);
        return;
    }
    for (size_t i = 0; i < N_ENDPOINTS; i++)
        if (strcmp(name, endpoints[i].name) == 0) {
            serve_profile(l, &endpoints[i], q, r);
            return;
        }
    http_reply_error(r, 404, "Unknown profile");
}

bool http_profiles_info(size_t i, struct http_profile_info *out)
{
    if (i >= N_ENDPOINTS)
        return false;
    const struct endpoint *ep = &endpoints[i];
    *out = (struct http_profile_info){.name = ep->name, .window = ep->flags & EP_ALWAYS_DELTA};
    if (pprof_describe(ep->profile, &out->sample_types, &out->n_sample_types, &out->default_type) <
        0)
        out->n_sample_types = 0;
    return true;
}
