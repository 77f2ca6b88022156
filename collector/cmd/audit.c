/* ppx audit: reads a syscalls.pb.gz (pprof.h) and prints, for
 * humans, what strace -c prints but per call and descriptor with the call
 * sites behind it, then plain-language hints where the figures call for a
 * change (batching, merging writes, readiness handling). */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "cmd/cmd.h"
#include "symbol/symbol.h"
#include "pprof/pprof.h"

typedef Perftools__Profiles__Profile Profile;
typedef Perftools__Profiles__Sample Sample;
typedef Perftools__Profiles__Location Location;
typedef Perftools__Profiles__Function Function;

#define DEFAULT_TOP 20
#define TOP_CALLERS 3

/* Hint thresholds. A hint needs this many calls at one site, and, when the
 * profile has a duration, this many per second: a few hundred calls in an
 * hour are not worth changing code for. */
#define HINT_MIN_CALLS 1000
#define HINT_MIN_RATE 100.0
#define HINT_SMALL_DATAGRAM 1024.0 /* bytes per call: batching pays off */
#define HINT_SMALL_WRITE 512.0     /* bytes per write on a stream socket */
#define HINT_EAGAIN_SHARE 0.20
#define HINT_EAGAIN_MIN_CALLS 100

enum { T_CALLS, T_TIME, T_BYTES, T_MESSAGES, T_ERRORS, T_EAGAIN, N_TYPES };
static const char *const type_names[N_TYPES][2] = {
    {"calls", "count"},    {"time", "nanoseconds"}, {"bytes", "bytes"},
    {"messages", "count"}, {"errors", "count"},     {"eagain", "count"},
};

struct figures {
    uint64_t v[N_TYPES];
};

/* A caller function and its calls, within a row. */
struct caller {
    char *name;
    uint64_t calls;
    UT_hash_handle hh;
};

/* A table row: one call on one kind of descriptor. */
struct row {
    char *key; /* "call\tdescriptor" */
    char *call, *desc;
    struct figures f;
    struct caller *callers;
    UT_hash_handle hh;
};

/* A call site: the call, the descriptor kind and the first real frame. */
struct site {
    char *key; /* "call\tdescriptor\twhere" */
    char *call, *desc;
    char *where;  /* "function (file:line)" */
    char *caller; /* the function alone, or "0xADDR" */
    struct figures f;
    UT_hash_handle hh;
};

struct audit {
    const char *path;
    const Profile *prof;
    struct pprof_index ix;
    struct row *rows;
    struct site *sites;
    int type_index[N_TYPES]; /* -1: absent (messages may be) */
    struct figures total;
    bool has_pid_labels, pid_matched;
};

#define audit_error(...) cli_error("audit", __VA_ARGS__)

static void help(FILE *out)
{
    fprintf(out,
            "Usage: ppx audit [options] DIR|FILE\n"
            "\n"
            "Summarizes the I/O calls of a profile written by `ppx record` (DIR/syscalls.pb.gz,\n"
            "or a syscalls.N.pb.gz snapshot, or a per-process PID/syscalls.pb.gz): like\n"
            "`strace -c`, but per call and kind of descriptor, with the functions that make\n"
            "the calls, and hints where the figures suggest a change.\n"
            "\n"
            "Options:\n"
            "  --top N     show the N rows with the most calls (default %d)\n"
            "  --pid N     only the calls of process N (a profile of several processes)\n"
            "  -h, --help  show this help\n"
            "\n"
            "Columns, one row per call and descriptor (socket family/type, file, pipe,\n"
            "chardev, anon, other; - for calls without one, such as poll), most calls first:\n"
            "  calls       calls made (every call is counted, not sampled)\n"
            "  calls/s     calls per second over the profile's duration\n"
            "  share       of all calls in the profile\n"
            "  avg_us      wall time inside the call, microseconds per call\n"
            "  avg_B       bytes moved per call (data calls only)\n"
            "  errors      failed calls other than EAGAIN/EWOULDBLOCK\n"
            "  eagain%%     calls that returned EAGAIN/EWOULDBLOCK: wasted calls\n"
            "  top callers the functions making the call (the frame under the call), with\n"
            "              their share of the row's calls\n"
            "\n"
            "Hints name the call site (function, file:line). A site qualifies with at least\n"
            "%d calls (and %.0f per second when the profile has a duration) for:\n"
            "  - datagram receives (recv, recvfrom, recvmsg, read) averaging under %.0f bytes:\n"
            "    recvmmsg; datagram sends likewise: sendmmsg\n"
            "  - writes to stream sockets averaging under %.0f bytes: merge them (writev) or\n"
            "    buffer\n"
            "and, with at least %d calls, for more than %.0f%% of its calls returning EAGAIN:\n"
            "  check the readiness handling; unless the call is made by a runtime whose design\n"
            "  it is (state-threads' st_read and friends, libuv's loop), which the hint says.\n"
            "\n"
            "Exit status: 0 table printed, 1 the file cannot be read or is no I/O profile,\n"
            "2 usage error.\n",
            DEFAULT_TOP, HINT_MIN_CALLS, HINT_MIN_RATE, HINT_SMALL_DATAGRAM, HINT_SMALL_WRITE,
            HINT_EAGAIN_MIN_CALLS, HINT_EAGAIN_SHARE * 100);
}

/* ---- reading the file --------------------------------------------------- */

static Profile *load_profile(const char *path)
{
    char err[1024];
    Profile *p = pprof_read_file(path, err, sizeof err);
    if (!p)
        audit_error("%s", err);
    return p;
}

/* ---- profile access ----------------------------------------------------- */

static const char *profile_string(const struct audit *a, int64_t i)
{
    return pprof_index_string(&a->ix, i);
}

static const Location *find_location(const struct audit *a, uint64_t id)
{
    return pprof_index_location(&a->ix, id);
}

static const Function *find_function(const struct audit *a, uint64_t id)
{
    return pprof_index_function(&a->ix, id);
}

/* The innermost function at location id: the one that made the call. */
static const Function *location_function(const struct audit *a, uint64_t id, int64_t *line)
{
    const Location *loc = find_location(a, id);
    if (!loc || loc->n_line == 0)
        return NULL;
    if (line)
        *line = loc->line[0]->line;
    return find_function(a, loc->line[0]->function_id);
}

static int index_profile(struct audit *a)
{
    const Profile *p = a->prof;
    if (pprof_index_init(&a->ix, p) < 0)
        return audit_error("out of memory");

    for (int t = 0; t < N_TYPES; t++)
        a->type_index[t] = -1;
    for (size_t i = 0; i < p->n_sample_type; i++)
        for (int t = 0; t < N_TYPES; t++)
            if (strcmp(profile_string(a, p->sample_type[i]->type), type_names[t][0]) == 0 &&
                strcmp(profile_string(a, p->sample_type[i]->unit), type_names[t][1]) == 0)
                a->type_index[t] = (int)i;
    for (int t = 0; t < N_TYPES; t++) {
        if (a->type_index[t] >= 0 || t == T_MESSAGES)
            continue;
        char have[512] = "";
        size_t at = 0;
        for (size_t i = 0; i < p->n_sample_type && at < sizeof have; i++)
            at += (size_t)snprintf(have + at, sizeof have - at, "%s%s/%s", i ? ", " : "",
                                   profile_string(a, p->sample_type[i]->type),
                                   profile_string(a, p->sample_type[i]->unit));
        return audit_error("%s is a pprof profile, but not of I/O calls: it has no %s/%s "
                           "sample type (it has: %s); ppx audit reads the syscalls.pb.gz "
                           "that ppx record writes",
                           a->path, type_names[t][0], type_names[t][1], *have ? have : "none");
    }
    for (size_t i = 0; i < p->n_sample; i++)
        if (p->sample[i]->n_value != p->n_sample_type)
            return audit_error("%s: malformed profile: sample %zu has %zu values for %zu "
                               "sample types",
                               a->path, i, p->sample[i]->n_value, p->n_sample_type);
    return 0;
}

/* ---- aggregation -------------------------------------------------------- */

/* "inet/dgram" for sockets, the descriptor type otherwise, "-" for none. */
static void describe_fd(const struct audit *a, const Sample *s, char *out, size_t outlen)
{
    const char *fd = pprof_index_label_str(&a->ix, s, "fd");
    if (fd && strcmp(fd, "socket") == 0) {
        const char *family = pprof_index_label_str(&a->ix, s, "family");
        const char *type = pprof_index_label_str(&a->ix, s, "socktype");
        snprintf(out, outlen, "%s/%s", family ? family : "?", type ? type : "?");
    } else {
        snprintf(out, outlen, "%s", fd ? fd : "-");
    }
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* "function (file:line)", "function", or "0xADDR" for the caller frame;
 * C++ functions demangled. */
static char *describe_site(const struct audit *a, uint64_t location_id)
{
    char buf[1024], name_buf[512];
    int64_t line = 0;
    const Function *f = location_id ? location_function(a, location_id, &line) : NULL;
    const char *name =
        f ? demangle_into(profile_string(a, f->name), name_buf, sizeof name_buf) : "";
    const char *file = f ? profile_string(a, f->filename) : "";
    if (*name && *file && line > 0)
        snprintf(buf, sizeof buf, "%s (%s:%" PRId64 ")", name, base_name(file), line);
    else if (*name)
        snprintf(buf, sizeof buf, "%s", name);
    else {
        const Location *loc = location_id ? find_location(a, location_id) : NULL;
        snprintf(buf, sizeof buf, "0x%" PRIx64, loc ? loc->address : 0);
    }
    return strdup(buf);
}

static char *caller_name(const struct audit *a, uint64_t location_id)
{
    const Function *f = location_id ? location_function(a, location_id, NULL) : NULL;
    if (f && *profile_string(a, f->name)) {
        char *demangled = demangle_name(profile_string(a, f->name));
        return demangled ? demangled : strdup(profile_string(a, f->name));
    }
    const Location *loc = location_id ? find_location(a, location_id) : NULL;
    char buf[32];
    snprintf(buf, sizeof buf, "0x%" PRIx64, loc ? loc->address : 0);
    return strdup(buf);
}

static void add_figures(struct figures *to, const struct figures *f)
{
    for (int t = 0; t < N_TYPES; t++)
        to->v[t] = to->v[t] + f->v[t] < to->v[t] ? UINT64_MAX : to->v[t] + f->v[t];
}

/* "call<TAB>descriptor", and for a site "<TAB>where" after it. */
static char *make_key(const char *call, const char *desc, const char *where)
{
    size_t len = strlen(call) + strlen(desc) + (where ? strlen(where) : 0) + 3;
    char *key = malloc(len);
    if (key && where)
        snprintf(key, len, "%s\t%s\t%s", call, desc, where);
    else if (key)
        snprintf(key, len, "%s\t%s", call, desc);
    return key;
}

static int add_caller(struct row *r, char *name, uint64_t calls)
{
    struct caller *c;
    HASH_FIND_STR(r->callers, name, c);
    if (c) {
        free(name);
    } else {
        c = calloc(1, sizeof *c);
        if (!c) {
            free(name);
            return -1;
        }
        c->name = name;
        HASH_ADD_KEYPTR(hh, r->callers, c->name, strlen(c->name), c);
    }
    c->calls += calls;
    return 0;
}

static int add_to_row(struct audit *a, const char *call, const char *desc, uint64_t caller_loc,
                      const struct figures *f)
{
    char *key = make_key(call, desc, NULL);
    if (!key)
        return -1;
    struct row *r;
    HASH_FIND_STR(a->rows, key, r);
    if (r) {
        free(key);
    } else {
        r = calloc(1, sizeof *r);
        char *call_copy = strdup(call), *desc_copy = strdup(desc);
        if (!r || !call_copy || !desc_copy) {
            free(r);
            free(call_copy);
            free(desc_copy);
            free(key);
            return -1;
        }
        r->key = key;
        r->call = call_copy;
        r->desc = desc_copy;
        HASH_ADD_KEYPTR(hh, a->rows, r->key, strlen(r->key), r);
    }
    add_figures(&r->f, f);
    char *name = caller_name(a, caller_loc);
    return name ? add_caller(r, name, f->v[T_CALLS]) : -1;
}

static int add_to_site(struct audit *a, const char *call, const char *desc, uint64_t caller_loc,
                       const struct figures *f)
{
    /* Keyed by what the hint names: two calls in one function without
     * line numbers are one site to a reader. */
    char *where = describe_site(a, caller_loc);
    char *key = where ? make_key(call, desc, where) : NULL;
    if (!key) {
        free(where);
        return -1;
    }
    struct site *s;
    HASH_FIND_STR(a->sites, key, s);
    if (s) {
        free(key);
        free(where);
    } else {
        s = calloc(1, sizeof *s);
        char *call_copy = strdup(call), *desc_copy = strdup(desc);
        char *caller = caller_name(a, caller_loc);
        if (!s || !call_copy || !desc_copy || !where || !caller) {
            free(s);
            free(call_copy);
            free(desc_copy);
            free(where);
            free(caller);
            free(key);
            return -1;
        }
        s->key = key;
        s->call = call_copy;
        s->desc = desc_copy;
        s->where = where;
        s->caller = caller;
        HASH_ADD_KEYPTR(hh, a->sites, s->key, strlen(s->key), s);
    }
    add_figures(&s->f, f);
    return 0;
}

static int aggregate(struct audit *a, bool want_pid, int64_t pid)
{
    const Profile *p = a->prof;
    for (size_t i = 0; i < p->n_sample; i++) {
        const Sample *s = p->sample[i];
        int64_t spid;
        if (pprof_index_label_num(&a->ix, s, "pid", &spid)) {
            a->has_pid_labels = true;
            if (want_pid && spid != pid)
                continue;
        } else if (want_pid) {
            continue;
        }
        a->pid_matched = true;
        if (s->n_location_id == 0)
            continue;
        const Function *leaf = location_function(a, s->location_id[0], NULL);
        const char *call = leaf ? profile_string(a, leaf->name) : "";
        if (!*call)
            call = "?";
        char desc[64];
        describe_fd(a, s, desc, sizeof desc);
        struct figures f = {{0}};
        for (int t = 0; t < N_TYPES; t++)
            if (a->type_index[t] >= 0 && s->value[a->type_index[t]] > 0)
                f.v[t] = (uint64_t)s->value[a->type_index[t]];
        uint64_t caller_loc = s->n_location_id > 1 ? s->location_id[1] : 0;
        if (add_to_row(a, call, desc, caller_loc, &f) < 0 ||
            add_to_site(a, call, desc, caller_loc, &f) < 0)
            return audit_error("out of memory");
        add_figures(&a->total, &f);
    }
    return 0;
}

/* ---- output ------------------------------------------------------------- */

static bool in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(name, *list) == 0)
            return true;
    return false;
}

static const char *const data_calls[] = {"read",     "write",    "readv",   "writev",  "pread",
                                         "pwrite",   "preadv",   "pwritev", "recv",    "send",
                                         "recvfrom", "sendto",   "recvmsg", "sendmsg", "recvmmsg",
                                         "sendmmsg", "sendfile", "splice",  NULL};
static const char *const datagram_receives[] = {"recv", "recvfrom", "recvmsg",
                                                "read", "readv",    NULL};
static const char *const datagram_sends[] = {"send", "sendto", "sendmsg", "write", "writev", NULL};
static const char *const stream_writes[] = {"write", "send", "sendto", "sendmsg", "writev", NULL};
static const char *const write_calls[] = {"write",    "writev", "pwrite",  "pwritev",
                                          "send",     "sendto", "sendmsg", "sendmmsg",
                                          "sendfile", "splice", "connect", NULL};

static int by_calls_row(const void *x, const void *y)
{
    const struct row *a = *(const struct row *const *)x, *b = *(const struct row *const *)y;
    if (a->f.v[T_CALLS] != b->f.v[T_CALLS])
        return a->f.v[T_CALLS] > b->f.v[T_CALLS] ? -1 : 1;
    return strcmp(a->key, b->key);
}

static int by_calls_caller(const void *x, const void *y)
{
    const struct caller *a = *(const struct caller *const *)x;
    const struct caller *b = *(const struct caller *const *)y;
    if (a->calls != b->calls)
        return a->calls > b->calls ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int by_calls_site(const void *x, const void *y)
{
    const struct site *a = *(const struct site *const *)x, *b = *(const struct site *const *)y;
    if (a->f.v[T_CALLS] != b->f.v[T_CALLS])
        return a->f.v[T_CALLS] > b->f.v[T_CALLS] ? -1 : 1;
    return strcmp(a->where, b->where);
}

static double per_call(uint64_t v, uint64_t calls)
{
    return calls ? (double)v / (double)calls : 0;
}

static void print_callers(FILE *out, const struct row *r)
{
    size_t n = HASH_COUNT(r->callers);
    const struct caller **list = malloc((n ? n : 1) * sizeof *list);
    if (!list)
        return;
    size_t i = 0;
    for (const struct caller *c = r->callers; c; c = c->hh.next)
        list[i++] = c;
    qsort(list, n, sizeof *list, by_calls_caller);
    for (i = 0; i < n && i < TOP_CALLERS; i++)
        fprintf(out, "%s%s %.0f%%", i ? ", " : "", list[i]->name,
                100 * per_call(list[i]->calls, r->f.v[T_CALLS]));
    if (n > TOP_CALLERS)
        fprintf(out, ", +%zu more", n - TOP_CALLERS);
    free(list);
}

static void print_table(FILE *out, const struct audit *a, size_t top, double seconds)
{
    size_t n = HASH_COUNT(a->rows);
    struct row **rows = malloc((n ? n : 1) * sizeof *rows);
    if (!rows)
        return;
    size_t i = 0;
    for (struct row *r = a->rows; r; r = r->hh.next)
        rows[i++] = r;
    qsort(rows, n, sizeof *rows, by_calls_row);
    fprintf(out, "%-12s %-13s %12s %10s %6s %9s %9s %9s %7s  %s\n", "call", "descriptor", "calls",
            "calls/s", "share", "avg_us", "avg_B", "errors", "eagain%", "top callers");
    for (i = 0; i < n && i < top; i++) {
        const struct row *r = rows[i];
        uint64_t calls = r->f.v[T_CALLS];
        char rate[32], bytes[32];
        if (seconds > 0)
            snprintf(rate, sizeof rate, "%.1f", (double)calls / seconds);
        else
            snprintf(rate, sizeof rate, "-");
        if (in_list(r->call, data_calls) && calls)
            snprintf(bytes, sizeof bytes, "%.1f", per_call(r->f.v[T_BYTES], calls));
        else
            snprintf(bytes, sizeof bytes, "-");
        fprintf(out, "%-12s %-13s %12" PRIu64 " %10s %5.1f%% %9.2f %9s %9" PRIu64 " %6.1f%%  ",
                r->call, r->desc, calls, rate, 100 * per_call(calls, a->total.v[T_CALLS]),
                per_call(r->f.v[T_TIME], calls) / 1000, bytes, r->f.v[T_ERRORS],
                100 * per_call(r->f.v[T_EAGAIN], calls));
        print_callers(out, r);
        fputc('\n', out);
    }
    if (n > top)
        fprintf(out, "(%zu more rows: --top %zu shows them)\n", n - top, n);
    free(rows);
}

static bool frequent(const struct site *s, double seconds)
{
    uint64_t calls = s->f.v[T_CALLS];
    return calls >= HINT_MIN_CALLS && (seconds <= 0 || (double)calls / seconds >= HINT_MIN_RATE);
}

static bool is_socket(const struct site *s, const char *type)
{
    const char *slash = strchr(s->desc, '/');
    return slash && strcmp(slash + 1, type) == 0;
}

/* Runtimes whose I/O functions make EAGAIN part of the design: a
 * coroutine's call is tried first and the coroutine waits for readiness
 * only after EAGAIN (state-threads: about one EAGAIN per wait), or an event
 * loop reads and accepts until EAGAIN after each readiness event (libuv:
 * one EAGAIN per event). At their call sites a high EAGAIN share says
 * nothing about the program's readiness handling. Matched on the function
 * that made the call. */
struct eagain_by_design {
    const char *runtime, *why;
    const char *const *callers;
};
static const char *const st_callers[] = {
    "st_read",        "st_read_fully", "st_read_resid",   "st_readv",    "st_readv_resid",
    "st_recv",        "st_recvfrom",   "st_recvmsg",      "st_recvmmsg", "st_write",
    "st_write_resid", "st_writev",     "st_writev_resid", "st_send",     "st_sendto",
    "st_sendmsg",     "st_sendmmsg",   "st_accept",       "st_connect",  NULL};
static const char *const uv_callers[] = {"uv__read",        "uv__server_io", "uv__udp_recvmsg",
                                         "uv__udp_io",      "uv__write",     "uv__try_write",
                                         "uv__udp_sendmsg", "uv__stream_io", NULL};
static const struct eagain_by_design by_design[] = {
    {"state-threads",
     "a coroutine tries the call first and waits for readiness only after "
     "EAGAIN, so about one call per wait returns it",
     st_callers},
    {"libuv",
     "its loop reads or accepts until EAGAIN after each readiness event, so one "
     "call per event returns it",
     uv_callers},
};

static const struct eagain_by_design *eagain_runtime(const struct site *s)
{
    for (size_t i = 0; i < sizeof by_design / sizeof by_design[0]; i++)
        if (in_list(s->caller, by_design[i].callers))
            return &by_design[i];
    return NULL;
}

static void eagain_hint(FILE *out, const struct site *s, double eagain)
{
    const struct eagain_by_design *rt = eagain_runtime(s);
    if (rt) {
        fprintf(out,
                "- %.0f%% of %s calls at %s returned EAGAIN: by design of %s (%s); not a "
                "readiness bug, though each is a system call\n",
                100 * eagain, s->call, s->where, rt->runtime, rt->why);
        return;
    }
    bool writes = in_list(s->call, write_calls);
    fprintf(out, "- %.0f%% of %s calls at %s returned EAGAIN: check readiness handling (%s)\n",
            100 * eagain, s->call, s->where,
            writes ? "after EAGAIN, wait for writability (EPOLLOUT) before writing again"
                   : "after EAGAIN, wait for readability (EPOLLIN) before reading again; a "
                     "loop that reads until EAGAIN after each readiness event makes one such "
                     "call per event, which is expected");
}

/* Prints the hints for s; returns how many. */
static int site_hints(FILE *out, const struct site *s, double seconds)
{
    int n = 0;
    uint64_t calls = s->f.v[T_CALLS];
    double avg_bytes = per_call(s->f.v[T_BYTES], calls);
    double eagain = per_call(s->f.v[T_EAGAIN], calls);
    if (frequent(s, seconds) && is_socket(s, "dgram") && avg_bytes < HINT_SMALL_DATAGRAM) {
        const char *batch = in_list(s->call, datagram_receives) ? "recvmmsg"
                            : in_list(s->call, datagram_sends)  ? "sendmmsg"
                                                                : NULL;
        if (batch) {
            fprintf(out,
                    "- %s at %s: %" PRIu64 " calls on %s sockets, %.0f bytes per call on "
                    "average: consider %s to batch datagrams (many per call)\n",
                    s->call, s->where, calls, s->desc, avg_bytes, batch);
            n++;
        }
    }
    if (frequent(s, seconds) && is_socket(s, "stream") && in_list(s->call, stream_writes) &&
        avg_bytes < HINT_SMALL_WRITE) {
        fprintf(out,
                "- %s at %s: %" PRIu64 " writes to %s sockets, %.0f bytes each on average: "
                "consider merging writes (writev) or buffering\n",
                s->call, s->where, calls, s->desc, avg_bytes);
        n++;
    }
    if (calls >= HINT_EAGAIN_MIN_CALLS && eagain > HINT_EAGAIN_SHARE) {
        eagain_hint(out, s, eagain);
        n++;
    }
    return n;
}

static void print_hints(FILE *out, const struct audit *a, double seconds)
{
    size_t n = HASH_COUNT(a->sites);
    struct site **sites = malloc((n ? n : 1) * sizeof *sites);
    if (!sites)
        return;
    size_t i = 0;
    for (struct site *s = a->sites; s; s = s->hh.next)
        sites[i++] = s;
    qsort(sites, n, sizeof *sites, by_calls_site);
    fprintf(out, "\nHints:\n");
    int hints = 0;
    for (i = 0; i < n; i++)
        hints += site_hints(out, sites[i], seconds);
    if (hints == 0)
        fprintf(out, "none: no call site's figures suggest a change\n");
    free(sites);
}

static void free_audit(struct audit *a)
{
    struct row *r, *rtmp;
    HASH_ITER(hh, a->rows, r, rtmp)
    {
        struct caller *c, *ctmp;
        HASH_ITER(hh, r->callers, c, ctmp)
        {
            HASH_DEL(r->callers, c);
            free(c->name);
            free(c);
        }
        HASH_DEL(a->rows, r);
        free(r->key);
        free(r->call);
        free(r->desc);
        free(r);
    }
    struct site *s, *stmp;
    HASH_ITER(hh, a->sites, s, stmp)
    {
        HASH_DEL(a->sites, s);
        free(s->key);
        free(s->call);
        free(s->desc);
        free(s->where);
        free(s->caller);
        free(s);
    }
    pprof_index_free(&a->ix);
}

int audit_print(FILE *out, const char *path, size_t top, bool want_pid, int64_t pid)
{
    Profile *prof = load_profile(path);
    if (!prof)
        return 1;
    struct audit a = {.path = path, .prof = prof};
    int rc = index_profile(&a);
    if (rc == 0)
        rc = aggregate(&a, want_pid, pid);
    if (rc == 0 && want_pid && !a.pid_matched) {
        if (a.has_pid_labels)
            rc = audit_error("%s has no calls of pid %" PRId64, path, pid);
        else
            rc = audit_error("%s has no pid labels (it holds one process, or none): "
                             "leave out --pid",
                             path);
    }
    if (rc == 0) {
        double seconds = (double)prof->duration_nanos / 1e9;
        fprintf(out, "%s: %" PRIu64 " I/O calls", path, a.total.v[T_CALLS]);
        if (want_pid)
            fprintf(out, " of pid %" PRId64, pid);
        if (seconds > 0)
            fprintf(out, " in %.3f s", seconds);
        fprintf(out, ", %" PRIu64 " failed (%" PRIu64 " EAGAIN)\n",
                a.total.v[T_ERRORS] + a.total.v[T_EAGAIN], a.total.v[T_EAGAIN]);
        if (a.total.v[T_CALLS] == 0 && HASH_COUNT(a.rows) == 0) {
            fprintf(out, "no I/O calls recorded\n");
        } else {
            fputc('\n', out);
            print_table(out, &a, top, seconds);
            print_hints(out, &a, seconds);
        }
    }
    free_audit(&a);
    perftools__profiles__profile__free_unpacked(prof, NULL);
    return rc;
}

int cmd_audit(int argc, char **argv)
{
    struct cli_report_args a = {.top = DEFAULT_TOP};
    int status = cli_report_args("audit", argc, argv, 1000000, "rows", "syscalls.pb.gz", help, &a);
    if (status >= 0)
        return status;
    int rc = audit_print(stdout, a.path, (size_t)a.top, a.want_pid, (int64_t)a.pid);
    free(a.path);
    return rc;
}
