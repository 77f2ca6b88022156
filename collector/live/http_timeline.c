/* /debug/pprof/timeline (live.h): the timelines as JSON or CSV. Cumulative
 * totals become rates between consecutive points (the first point's since
 * the process started), so that a rate times the time since the point
 * before, summed, gives the whole; a drop (the process reconnected and is
 * resending its counters from zero) counts as none. */
#include "live/live.h"

#include <stdlib.h>
#include <string.h>

static double rate(double now, double before, double seconds)
{
    return now > before && seconds > 0 ? (now - before) / seconds : 0;
}

struct http_timeline_row http_timeline_row_at(const struct timeline_point *pts, size_t i,
                                              uint64_t start_ns)
{
    const struct proc_totals *c = &pts[i].totals;
    struct http_timeline_row r = {
        .t_s = (double)pts[i].t_ns / 1e9,
        .inuse_bytes = c->inuse_bytes > 0 ? c->inuse_bytes : 0,
        .inuse_objects = c->inuse_objects > 0 ? c->inuse_objects : 0,
        .threads = c->threads,
    };
    static const struct proc_totals none;
    const struct proc_totals *b = i ? &pts[i - 1].totals : &none;
    uint64_t since = i ? pts[i - 1].t_ns : start_ns;
    double s = pts[i].t_ns > since ? (double)(pts[i].t_ns - since) / 1e9 : 0;
    r.alloc_bytes_s = rate(c->alloc_bytes, b->alloc_bytes, s);
    r.alloc_objects_s = rate(c->alloc_objects, b->alloc_objects, s);
    r.cpu_cores = rate((double)c->cpu_ns, (double)b->cpu_ns, s) / 1e9;
    r.io_calls_s = rate((double)c->io_calls, (double)b->io_calls, s);
    r.io_bytes_s = rate((double)c->io_bytes, (double)b->io_bytes, s);
    return r;
}

#define COLUMNS                                                                                    \
    "time_s", "inuse_bytes", "inuse_objects", "alloc_bytes_per_s", "alloc_objects_per_s",          \
        "cpu_cores", "io_calls_per_s", "io_bytes_per_s", "threads"
static const char *const columns[] = {COLUMNS};
#define N_COLUMNS (sizeof columns / sizeof columns[0])

static void print_row(FILE *f, const struct http_timeline_row *r, const char *sep)
{
    /* Points come at their figures' arrival, not on whole seconds: the rates
     * keep their fractions (and the times their microseconds), so that rate
     * times interval, summed, gives the counts back. */
    fprintf(f, "%.6f%s%.0f%s%.0f%s%.3f%s%.3f%s%.6f%s%.3f%s%.3f%s%u", r->t_s, sep, r->inuse_bytes,
            sep, r->inuse_objects, sep, r->alloc_bytes_s, sep, r->alloc_objects_s, sep,
            r->cpu_cores, sep, r->io_calls_s, sep, r->io_bytes_s, sep, r->threads);
}

/* s as a JSON string (the executable's path comes from the target). */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(f, "\\u%04x", *p); /* bytes, not decoded UTF-8: unambiguous */
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void write_json(FILE *f, const struct live_timeline *t, size_t n)
{
    fputs("{\"interval_s\":1,\"columns\":[", f);
    for (size_t c = 0; c < N_COLUMNS; c++)
        fprintf(f, "%s\"%s\"", c ? "," : "", columns[c]);
    fputs("],\"processes\":[", f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s\n{\"pid\":%u,\"start_s\":%.6f,\"sample_rate\":%llu,\"exe\":", i ? "," : "",
                t[i].pid, (double)t[i].start_ns / 1e9, (unsigned long long)t[i].sample_rate);
        json_string(f, t[i].exe);
        fputs(",\"points\":[", f);
        for (size_t k = 0; k < t[i].n; k++) {
            struct http_timeline_row r = http_timeline_row_at(t[i].points, k, t[i].start_ns);
            fputs(k ? ",\n[" : "\n[", f);
            print_row(f, &r, ",");
            fputc(']', f);
        }
        fputs("]}", f);
    }
    fputs("\n]}\n", f);
}

static void write_csv(FILE *f, const struct live_timeline *t, size_t n)
{
    fputs("pid", f);
    for (size_t c = 0; c < N_COLUMNS; c++)
        fprintf(f, ",%s", columns[c]);
    fputc('\n', f);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < t[i].n; k++) {
            struct http_timeline_row r = http_timeline_row_at(t[i].points, k, t[i].start_ns);
            fprintf(f, "%u,", t[i].pid);
            print_row(f, &r, ",");
            fputc('\n', f);
        }
}

void http_timeline_serve(struct live *l, const struct http_query *q, struct http_reply *r)
{
    struct live_timeline *t;
    size_t n;
    int rc = live_timelines(l, q->pid, &t, &n);
    if (rc == LIVE_NO_SUCH_PID) {
        http_reply_error(r, 404, "no process %u", q->pid);
        return;
    }
    FILE *f = rc == 0 ? open_memstream(&r->body, &r->len) : NULL;
    if (!f) {
        live_timelines_free(t, n);
        http_reply_error(r, 500, "out of memory");
        return;
    }
    if (q->csv)
        write_csv(f, t, n);
    else
        write_json(f, t, n);
    live_timelines_free(t, n);
    http_reply_stream(r, f, q->csv ? "text/csv; charset=utf-8" : "application/json");
}
