/* The web UI under /ui/ (live.h): the page listing the processes with
 * links into the flame graph viewer, and the viewer's own files. */
#include "live/live.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PPX_UI_DATADIR
#define PPX_UI_DATADIR "/usr/local/share/ppx/ui"
#endif
/* The build tree: its ppx, and where scripts/deps put the viewer. */
#ifndef PPX_BUILD_PPX
#define PPX_BUILD_PPX ""
#endif
#ifndef PPX_BUILD_VIEWER
#define PPX_BUILD_VIEWER ""
#endif

#define VIEWER_INDEX "index.html"

struct http_ui {
    char *viewer;      /* the viewer's directory, resolved (realpath); NULL: none */
    char looked[1024]; /* where it was looked for, for the message */
};

/* dir (resolved) when it holds the viewer's index.html. */
static char *viewer_at(const char *dir)
{
    char index[PATH_MAX];
    if (!*dir || (size_t)snprintf(index, sizeof index, "%s/" VIEWER_INDEX, dir) >= sizeof index ||
        access(index, R_OK) != 0)
        return NULL;
    return realpath(dir, NULL);
}

static bool running_from_build_tree(void)
{
    if (!*PPX_BUILD_PPX)
        return false;
    char *self = realpath("/proc/self/exe", NULL), *built = realpath(PPX_BUILD_PPX, NULL);
    bool same = self && built && strcmp(self, built) == 0;
    free(self);
    free(built);
    return same;
}

/* dir, resolved, if it holds the viewer and none was found yet; dir is
 * added to looked either way. */
static void look(char **viewer, char *looked, size_t looked_len, const char *dir)
{
    if (*viewer)
        return;
    size_t len = strlen(looked);
    snprintf(looked + len, looked_len - len, "%s%s", len ? ", " : "", dir);
    *viewer = viewer_at(dir);
}

char *http_ui_viewer_find(char *looked, size_t looked_len)
{
    char *viewer = NULL;
    const char *env = getenv("PPX_UI_DIR");
    char dir[PATH_MAX];
    *looked = 0;
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s/%s", env, HTTP_UI_VIEWER);
        look(&viewer, looked, looked_len, dir);
    } else {
        if (running_from_build_tree())
            look(&viewer, looked, looked_len, PPX_BUILD_VIEWER);
        look(&viewer, looked, looked_len, PPX_UI_DATADIR "/" HTTP_UI_VIEWER);
    }
    return viewer;
}

struct http_ui *http_ui_new(void)
{
    struct http_ui *ui = calloc(1, sizeof *ui);
    if (!ui)
        return NULL;
    ui->viewer = http_ui_viewer_find(ui->looked, sizeof ui->looked);
    if (!ui->viewer)
        fprintf(stderr,
                "ppx: the web UI's flame graph viewer (speedscope) is not installed (looked in "
                "%s): %s lists the processes and their raw profiles only (scripts/deps and make "
                "install put it there; PPX_UI_DIR names another place)\n",
                ui->looked, HTTP_UI_PREFIX);
    return ui;
}

void http_ui_free(struct http_ui *ui)
{
    if (!ui)
        return;
    free(ui->viewer);
    free(ui);
}

bool http_ui_public(const char *url)
{
    return strncmp(url, HTTP_UI_PREFIX HTTP_UI_VIEWER, strlen(HTTP_UI_PREFIX HTTP_UI_VIEWER)) == 0;
}

/* ---- the viewer's files ---- */

static const struct {
    const char *suffix, *type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
    {".md", "text/plain; charset=utf-8"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".svg", "image/svg+xml"},
    {".woff2", "font/woff2"},
    {".wasm", "application/wasm"},
};

static const char *content_type(const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++) {
        size_t n = strlen(content_types[i].suffix);
        if (len > n && strcmp(name + len - n, content_types[i].suffix) == 0)
            return content_types[i].type;
    }
    return "application/octet-stream";
}

/* A path inside the viewer's directory: components of [A-Za-z0-9._-],
 * none empty or starting with '.' (so no "..", no hidden files). */
static bool safe_name(const char *name)
{
    bool component_start = true;
    for (const char *p = name; *p; p++) {
        if (*p == '/') {
            if (component_start)
                return false;
            component_start = true;
            continue;
        }
        if (component_start && *p == '.')
            return false;
        component_start = false;
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
            return false;
    }
    return !component_start;
}

/* The whole of the regular file path (at most HTTP_UI_MAX_FILE bytes) in
 * r's body; -1 with errno otherwise. */
static int read_whole(const char *path, struct http_reply *r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > HTTP_UI_MAX_FILE) {
        close(fd);
        errno = ENOENT;
        return -1;
    }
    r->body = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (r->body && got < (size_t)st.st_size) {
        ssize_t n = read(fd, r->body + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!r->body || got != (size_t)st.st_size) {
        int saved = r->body ? EIO : ENOMEM;
        free(r->body);
        r->body = NULL;
        errno = saved;
        return -1;
    }
    r->len = got;
    return 0;
}

static void serve_viewer_file(const struct http_ui *ui, const char *name, struct http_reply *r)
{
    if (!ui || !ui->viewer) {
        http_reply_error(r, 404, "the flame graph viewer (speedscope) is not installed");
        return;
    }
    if (!*name)
        name = VIEWER_INDEX;
    char path[PATH_MAX];
    if (!safe_name(name) ||
        (size_t)snprintf(path, sizeof path, "%s/%s", ui->viewer, name) >= sizeof path) {
        http_reply_error(r, 404, "404 page not found: no such file in the viewer");
        return;
    }
    /* Symbolic links inside the directory are followed, none out of it. */
    errno = 0;
    char *real = realpath(path, NULL);
    size_t root = strlen(ui->viewer);
    if (!real || strncmp(real, ui->viewer, root) != 0 || real[root] != '/' ||
        read_whole(real, r) < 0) {
        bool oom = errno == ENOMEM;
        free(real);
        if (oom)
            http_reply_error(r, 500, "out of memory");
        else
            http_reply_error(r, 404, "404 page not found: no such file in the viewer");
        return;
    }
    free(real);
    r->status = 200;
    r->content_type = content_type(name);
}

/* ---- the page ---- */

/* s percent-encoded but for RFC 3986's unreserved characters: safe in a
 * URL's fragment and query, and in an HTML attribute. */
static void url_encoded(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            fputc(*p, f);
        else
            fprintf(f, "%%%02X", *p);
    }
}

static const char *basename_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

/* pi's k-th sample type: its default first, then the others in their
 * order; NULL past the last. */
static const char *nth_type(const struct http_profile_info *pi, size_t k)
{
    if (k == 0 || !pi->default_type)
        return pi->default_type;
    for (size_t i = 0; i < pi->n_sample_types; i++)
        if (strcmp(pi->sample_types[i][0], pi->default_type) != 0 && --k == 0)
            return pi->sample_types[i][0];
    return NULL;
}

/* One link per sample type of profile pi, for one process (pid) or all
 * merged (pid 0, exe ""): into the viewer, or to the raw profile
 * without one; with q's token and origin (http.c, ui_links()). */
static void profile_links(FILE *f, const struct http_ui *ui, const struct http_profile_info *pi,
                          uint32_t pid, const char *exe, const struct http_query *q)
{
    const char *token = q->link_token, *origin = q->link_origin;
    fprintf(f, "<div class=links><span class=profile>%s", pi->name);
    if (pi->window)
        fprintf(f, " (%u s)", HTTP_UI_CPU_SECONDS);
    fputs("</span>", f);
    const char *type;
    for (size_t k = 0; (type = nth_type(pi, k)); k++) {
        char url[512];
        int len = snprintf(url, sizeof url, "%s/debug/pprof/%s?sample_index=%s",
                           origin ? origin : "", pi->name, type);
        if (pid)
            len += snprintf(url + len, sizeof url - (size_t)len, "&pid=%u", pid);
        if (pi->window)
            len +=
                snprintf(url + len, sizeof url - (size_t)len, "&seconds=%u", HTTP_UI_CPU_SECONDS);
        if (token)
            snprintf(url + len, sizeof url - (size_t)len, "&token=%s", token);
        fprintf(f, " <a data-profile=%s data-sample-type=%s href='", pi->name, type);
        if (!ui || !ui->viewer) {
            html_escaped(f, url);
            fprintf(f, "'>%s</a>", type);
            continue;
        }
        char title[512];
        if (pid)
            snprintf(title, sizeof title, "%s %s, pid %u (%s)", pi->name, type, pid,
                     basename_of(exe));
        else
            snprintf(title, sizeof title, "%s %s, every process", pi->name, type);
        fputs(HTTP_UI_VIEWER VIEWER_INDEX "#profileURL=", f);
        url_encoded(f, url);
        fputs("&amp;title=", f);
        url_encoded(f, title);
        fprintf(f, "'>%s</a>", type);
    }
    fputs("</div>\n", f);
}

static void all_profile_links(FILE *f, const struct http_ui *ui, uint32_t pid, const char *exe,
                              const struct http_query *q)
{
    struct http_profile_info pi;
    for (size_t i = 0; http_profiles_info(i, &pi); i++)
        profile_links(f, ui, &pi, pid, exe, q);
}

/* ---- the timeline charts ---- */
/* Each process's timeline (live.h) as small charts drawn here (SVG), one
 * per figure, over the points held (the last hour at most). */
#define CHART_WIDTH 180
#define CHART_HEIGHT 32
/* At most one point drawn per this many pixels: a bucket's peak. */
#define CHART_POINTS (CHART_WIDTH / 2)

static const struct chart_series {
    const char *name, *label;
    bool bytes; /* else a count, or cores */
    const char *unit;
    size_t offset; /* of its double in struct http_timeline_row; threads: SIZE_MAX */
} chart_series[] = {
    {"inuse_bytes", "heap in use", true, "", offsetof(struct http_timeline_row, inuse_bytes)},
    {"alloc_bytes_per_s", "allocation", true, "/s",
     offsetof(struct http_timeline_row, alloc_bytes_s)},
    {"cpu_cores", "CPU", false, " cores", offsetof(struct http_timeline_row, cpu_cores)},
    {"io_calls_per_s", "I/O calls", false, "/s", offsetof(struct http_timeline_row, io_calls_s)},
    {"threads", "threads", false, "", SIZE_MAX},
};
#define N_CHART_SERIES (sizeof chart_series / sizeof chart_series[0])

static double series_value(const struct chart_series *s, const struct http_timeline_row *r)
{
    if (s->offset == SIZE_MAX)
        return r->threads;
    double v;
    memcpy(&v, (const char *)r + s->offset, sizeof v);
    return v;
}

static void human(FILE *f, double v, const struct chart_series *s)
{
    static const char *const bytes[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t i = 0;
    if (s->bytes) {
        while (v >= 1024 && i + 1 < sizeof bytes / sizeof bytes[0]) {
            v /= 1024;
            i++;
        }
        fprintf(f, i ? "%.1f %s%s" : "%.0f %s%s", v, bytes[i], s->unit);
    } else if (v >= 1e6) {
        fprintf(f, "%.1fM%s", v / 1e6, s->unit);
    } else if (v >= 1e4) {
        fprintf(f, "%.1fk%s", v / 1e3, s->unit);
    } else {
        fprintf(f,
                v == (double)(long long)v ? "%.0f%s"
                : v < 0.1                 ? "%.3f%s"
                                          : "%.2f%s",
                v, s->unit);
    }
}

/* One figure's chart over rows[0..n), n > 0. */
static void chart(FILE *f, const struct chart_series *s, const struct http_timeline_row *rows,
                  size_t n)
{
    double peak = 0;
    for (size_t k = 0; k < n; k++)
        if (series_value(s, &rows[k]) > peak)
            peak = series_value(s, &rows[k]);
    double last = series_value(s, &rows[n - 1]);
    fprintf(f,
            "<div class=chart><span class=label>%s</span><svg data-series=%s data-peak=%.3f "
            "data-last=%.3f width=%d height=%d viewBox='0 0 %d %d'><polyline fill=none "
            "stroke='#3366cc' stroke-width=1.5 points='",
            s->label, s->name, peak, last, CHART_WIDTH, CHART_HEIGHT, CHART_WIDTH, CHART_HEIGHT);
    size_t buckets = n < CHART_POINTS ? n : CHART_POINTS;
    for (size_t b = 0; b < buckets; b++) {
        double v = 0;
        for (size_t k = b * n / buckets; k < (b + 1) * n / buckets; k++)
            if (series_value(s, &rows[k]) > v)
                v = series_value(s, &rows[k]);
        double x = buckets > 1 ? (double)b * (CHART_WIDTH - 1) / (double)(buckets - 1) : 0;
        double y = CHART_HEIGHT - 1 - (peak > 0 ? v / peak * (CHART_HEIGHT - 2) : 0);
        fprintf(f, "%s%.1f,%.1f", b ? " " : "", x, y);
    }
    fputs("'/></svg><span class=value>now ", f);
    human(f, last, s);
    fputs(", peak ", f);
    human(f, peak, s);
    fputs("</span></div>\n", f);
}

static void timeline_charts(FILE *f, const struct live_timeline *t)
{
    struct http_timeline_row *rows = t && t->n ? malloc(t->n * sizeof *rows) : NULL;
    if (!rows) {
        fputs(t && t->n ? "out of memory" : "no point yet (one a second)", f);
        return;
    }
    for (size_t k = 0; k < t->n; k++)
        rows[k] = http_timeline_row_at(t->points, k, t->start_ns);
    fprintf(f, "<div class=charts data-points=%zu>\n", t->n);
    for (size_t i = 0; i < N_CHART_SERIES; i++)
        chart(f, &chart_series[i], rows, t->n);
    fputs("</div>", f);
    free(rows);
}

static const struct live_timeline *timeline_of(const struct live_timeline *t, size_t n,
                                               const struct live_info *p)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].pid == p->pid && t[i].start_ns == p->start_ns)
            return &t[i];
    return NULL;
}

static void page_head(FILE *f, const struct http_ui *ui, const char *token)
{
    fputs("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=utf-8>\n<title>ppx collect</title>\n"
          /* no /favicon.ico request: it would need the token */
          "<link rel=icon href='data:,'>\n"
          "<style>\nbody{font-family:sans-serif;margin:1.5rem;}\n"
          "table{border-collapse:collapse;}\n"
          "td,th{padding:.4rem 1.2rem .4rem 0;vertical-align:top;text-align:left;}\n"
          "tr{border-top:1px solid #ddd;}\n"
          ".profile{display:inline-block;width:8rem;}\n"
          ".links{white-space:nowrap;}\n"
          ".exe{max-width:14rem;overflow-wrap:anywhere;}\n"
          ".missing{background:#fff3cd;padding:.5rem;}\n"
          ".chart{white-space:nowrap;font-size:.85rem;}\n"
          ".chart .label{display:inline-block;width:6rem;}\n"
          ".chart svg{vertical-align:middle;background:#f6f8fb;margin-right:.5rem;}\n"
          "</style>\n</head>\n<body>\n"
          "<h1>ppx collect</h1>\n",
          f);
    if (!ui || !ui->viewer)
        fprintf(f,
                "<p class=missing id=viewer-missing>The flame graph viewer (speedscope) is not "
                "installed: the links below are the raw profiles (read them with go tool pprof). "
                "scripts/deps installs it (npm ci in ui/), make install puts it under %s; "
                "PPX_UI_DIR names another place.</p>\n",
                PPX_UI_DATADIR);
    fprintf(f,
            "<p>Each link opens a profile in the flame graph viewer, with that sample type; "
            "CPU profiles are taken over the next %u seconds. Raw profiles, for go tool pprof: "
            "<a href='/debug/pprof/%s%s'>/debug/pprof/</a>.</p>\n",
            HTTP_UI_CPU_SECONDS, token ? "?token=" : "", token ? token : "");
}

static void serve_page(const struct http_ui *ui, struct live *l, const struct http_query *q,
                       struct http_reply *r)
{
    struct live_info *info;
    size_t n, n_timelines = 0;
    struct live_timeline *timelines = NULL;
    if (live_describe(l, &info, &n) < 0) {
        http_reply_error(r, 500, "out of memory");
        return;
    }
    FILE *f = open_memstream(&r->body, &r->len);
    if (!f || live_timelines(l, 0, &timelines, &n_timelines) < 0) {
        if (f)
            fclose(f);
        free(r->body);
        r->body = NULL;
        free(info);
        http_reply_error(r, 500, "out of memory");
        return;
    }
    const char *token = q->link_token;
    uint64_t now = live_now_ns();
    page_head(f, ui, token);
    fprintf(f,
            "<table id=processes>\n<thead><tr><th>PID</th><th>Executable</th><th>State</th>"
            "<th>Uptime</th><th>Profiles</th><th>Timeline (a point a second, the last hour; "
            "<a href='/debug/pprof/timeline%s%s'>JSON</a>)</th></tr></thead>\n<tbody>\n",
            token ? "?token=" : "", token ? token : "");
    for (size_t i = 0; i < n; i++) {
        const struct live_info *p = &info[i];
        fprintf(f, "<tr class=process data-pid=%u><td>%u</td><td class=exe>", p->pid, p->pid);
        http_process_cells(f, p, now);
        all_profile_links(f, ui, p->pid, p->exe, q);
        fputs("</td><td>", f);
        timeline_charts(f, timeline_of(timelines, n_timelines, p));
        fputs("</td></tr>\n", f);
    }
    if (n > 1) {
        fputs("<tr class=merged><td></td><td>every process, merged (samples labelled with their "
              "pid)</td><td></td><td></td><td colspan=2>",
              f);
        all_profile_links(f, ui, 0, "", q);
        fputs("</td></tr>\n", f);
    }
    fprintf(f, "</tbody>\n</table>\n%s</body>\n</html>\n",
            n ? "" : "<p id=no-process>No process has connected yet.</p>\n");
    free(info);
    live_timelines_free(timelines, n_timelines);
    http_reply_stream(r, f, "text/html; charset=utf-8");
}

void http_ui_serve(const struct http_ui *ui, struct live *l, const char *name,
                   const struct http_query *q, struct http_reply *r)
{
    if (*name == 0)
        serve_page(ui, l, q, r);
    else if (strncmp(name, HTTP_UI_VIEWER, strlen(HTTP_UI_VIEWER)) == 0)
        serve_viewer_file(ui, name + strlen(HTTP_UI_VIEWER), r);
    else
        http_reply_error(r, 404, "404 page not found: the web UI is " HTTP_UI_PREFIX);
}
