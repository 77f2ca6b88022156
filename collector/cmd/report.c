/* ppx report: the profiles of a directory written by `ppx record -o` or
 * `ppx snapshot -o`, as one HTML file for a ticket (pprof.h's
 * report_html): a top table per profile, what ppx audit and ppx threads
 * print, and flame graphs drawn by the web UI's viewer (speedscope),
 * inlined from where it is installed. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cmd.h"
#include "live/live.h"
#include "pprof/pprof.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define DEFAULT_ROWS 20
#define DEFAULT_OUTPUT "report.html"

/* The profiles a report shows, in its order. */
static const struct {
    const char *stem, *what;
} kinds[] = {
    {"cpu", "where the CPU time went"},
    {"heap", "memory in use at the end (never freed)"},
    {"peak", "memory in use at the peak"},
    {"allocs", "every allocation of the run"},
    {"syscalls", "the I/O calls"},
    {"threadcreate", "where the threads were created"},
    {"block", "where threads waited (locks, conditions)"},
    {"mutex", "where contended locks were released"},
    {"goroutine", "what every thread was doing (ppx snapshot)"},
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

#define report_error(...) cli_error("report", __VA_ARGS__)

static void help(FILE *out)
{
    fprintf(out,
            "Usage: ppx report [options] DIR\n"
            "\n"
            "Writes one HTML file of the profiles in DIR, as `ppx record -o DIR` or\n"
            "`ppx snapshot -o DIR` wrote them (DIR/heap.pb.gz, ...; without those, the\n"
            "latest numbered snapshot, DIR/heap.N.pb.gz, ...), for a browser without\n"
            "network or collector: attach it to a ticket. It holds:\n"
            "  - flame graphs of the profiles with samples, of any of their sample types,\n"
            "    drawn by speedscope (the viewer of ppx collect's web UI), inlined from\n"
            "    where it is installed ($PPX_UI_DIR/speedscope, the build tree's\n"
            "    ui/node_modules, then ppx's data directory); without it, the page says\n"
            "    so and has the rest;\n"
            "  - a table per profile (cpu, heap, peak, allocs, syscalls, threadcreate,\n"
            "    block, mutex, goroutine), as `go tool pprof -top` prints it for the\n"
            "    profile's default sample type: flat, flat%%, sum%%, cum, cum%%, function;\n"
            "  - what `ppx audit --top N DIR` and `ppx threads --top N DIR` print;\n"
            "  - the profiles themselves, to download and read with go tool pprof.\n"
            "\n"
            "Options:\n"
            "  -o, --output FILE  the page to write (default %s), replaced atomically\n"
            "  --top N            rows of each table, ppx audit's and ppx threads' too\n"
            "                     (default %d)\n"
            "  -h, --help         show this help\n"
            "\n"
            "Exit status: 0 page written, 1 DIR holds no profile or the page cannot be\n"
            "written, or a profile cannot be read (the page is written without it),\n"
            "2 usage error.\n",
            DEFAULT_OUTPUT, DEFAULT_ROWS);
}

struct options {
    const char *dir, *output;
    uint64_t rows;
};

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"top", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct options){.output = DEFAULT_OUTPUT, .rows = DEFAULT_ROWS};
    opterr = 0;
    optind = 1;
    int c;
    /* Options after DIR too: `ppx report DIR -o report.html`. */
    while ((c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (!*optarg)
                return cli_usage_error("report", "-o takes a file name%s", "");
            o->output = optarg;
            break;
        case 't':
            if (!cli_parse_u64(optarg, 1, 1000000, &o->rows))
                return cli_usage_error("report",
                                       "--top takes a number of rows from 1 to "
                                       "1000000, not '%s'",
                                       optarg);
            break;
        default:
            return cli_other_option("report", c, argv, help);
        }
    }
    if (optind >= argc)
        return cli_usage_error("report", "no directory given%s", "");
    if (optind + 1 < argc)
        return cli_usage_error("report", "one directory at a time, not also '%s'",
                               argv[optind + 1]);
    o->dir = argv[optind];
    return -1;
}

/* ---- the files of DIR ------------------------------------------------ */

static bool is_file(const char *dir, const char *name)
{
    char *path = path_join(dir, name);
    struct stat st;
    bool yes = path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    return yes;
}

/* N of "stem.N.pb.gz" for a profile stem, else 0. */
static unsigned long snapshot_number(const char *name)
{
    for (size_t k = 0; k < N_KINDS; k++) {
        size_t len = strlen(kinds[k].stem);
        if (strncmp(name, kinds[k].stem, len) != 0 || name[len] != '.')
            continue;
        char *end;
        const char *digits = name + len + 1;
        if (*digits < '1' || *digits > '9')
            continue;
        unsigned long n = strtoul(digits, &end, 10);
        if (strcmp(end, ".pb.gz") == 0)
            return n;
    }
    return 0;
}

/* The suffix of the files to show in suffix: "" for DIR's final files,
 * ".N" for its latest snapshot. False when DIR has neither. */
static bool choose_files(const char *dir, char *suffix, size_t len)
{
    *suffix = 0;
    for (size_t k = 0; k < N_KINDS; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s.pb.gz", kinds[k].stem);
        if (is_file(dir, name))
            return true;
    }
    DIR *d = opendir(dir);
    unsigned long latest = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        unsigned long n = snapshot_number(e->d_name);
        if (n > latest)
            latest = n;
    }
    if (d)
        closedir(d);
    snprintf(suffix, len, ".%lu", latest);
    return latest > 0;
}

/* ---- reading them ----------------------------------------------------- */

struct loaded {
    struct report_profile rp;
    char file[64];
    char *path;
    uint8_t *data;
    struct pprof_top top;
    char *sample_types;
    char error[1024];
    bool found, read;
};

/* p's sample types as report_profile.sample_types says, malloc'ed; names
 * the list could not hold (a space or a colon in them) left out. */
static char *sample_type_list(const Perftools__Profiles__Profile *p)
{
    char *list = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&list, &len);
    if (!f)
        return NULL;
    const char *sep = "";
    for (size_t i = 0; i < p->n_sample_type; i++) {
        int64_t k = p->sample_type[i]->type;
        const char *name = k >= 0 && (size_t)k < p->n_string_table ? p->string_table[k] : "";
        if (*name && !strpbrk(name, " :")) {
            fprintf(f, "%s%s:%" PRId64, sep, name, k);
            sep = " ";
        }
    }
    if (fclose(f) != 0) {
        free(list);
        return NULL;
    }
    return list;
}

/* Reads l's file; false when it is there but cannot be read. */
static bool load_profile(struct loaded *l)
{
    size_t len;
    l->data = pprof_read_raw(l->path, &len, l->error, sizeof l->error);
    Perftools__Profiles__Profile *p =
        l->data ? pprof_parse(l->path, l->data, len, l->error, sizeof l->error) : NULL;
    if (p && pprof_top_make(p, &l->top) < 0) {
        snprintf(l->error, sizeof l->error, "out of memory reading %s", l->path);
        perftools__profiles__profile__free_unpacked(p, NULL);
        p = NULL;
    }
    if (!p) {
        report_error("%s", l->error);
        return false;
    }
    l->rp.data = l->data;
    l->rp.len = len;
    l->rp.top = &l->top;
    l->rp.duration_nanos = p->duration_nanos;
    l->rp.sample_types = l->sample_types = sample_type_list(p);
    l->read = true;
    perftools__profiles__profile__free_unpacked(p, NULL);
    return true;
}

/* What print(out, path, rows, ...) (ppx audit, ppx threads) prints of the
 * loaded profile l, in *t. */
static void command_text(const struct loaded *l, const char *command,
                         int (*print)(FILE *, const char *, size_t, bool, int64_t), size_t rows,
                         struct report_text *t, char **buf, char *error, size_t errlen)
{
    size_t len = 0;
    t->text = NULL;
    t->error = error;
    if (!l || !l->found) {
        snprintf(error, errlen, "No %s file in the directory.", l ? l->file : "such");
        return;
    }
    if (!l->read) {
        snprintf(error, errlen, "%s cannot be read (above).", l->file);
        return;
    }
    FILE *f = open_memstream(buf, &len);
    int rc = f ? print(f, l->path, rows, false, 0) : 1;
    if (f && fclose(f) != 0)
        rc = 1;
    if (rc == 0) {
        t->text = *buf;
        t->len = len;
    } else {
        snprintf(error, errlen, "ppx %s cannot show %s: its message is on stderr.", command,
                 l->file);
    }
}

/* ---- the page ----------------------------------------------------------- */

/* The viewer, inlined, or NULL; why not in looked or error. */
static struct report_viewer *find_viewer(struct report_viewer *v, char *looked, size_t looked_len,
                                         char *error, size_t errlen)
{
    *error = 0;
    char *dir = http_ui_viewer_find(looked, looked_len);
    if (!dir) {
        fprintf(stderr,
                "ppx report: the flame graph viewer (speedscope) is not installed (looked in "
                "%s): the report has the tables only\n",
                looked);
        return NULL;
    }
    int rc = report_viewer_load(dir, v, error, errlen);
    free(dir);
    if (rc < 0) {
        fprintf(stderr, "ppx report: %s: the report has the tables only\n", error);
        return NULL;
    }
    return v;
}

static int write_page(const char *output, const struct report_page *page)
{
    char *html = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&html, &len);
    if (!f)
        return report_error("out of memory");
    report_html_write(f, page);
    if (fclose(f) != 0) {
        free(html);
        return report_error("out of memory");
    }
    int rc = file_write_atomic(output, html, len);
    int e = errno;
    free(html);
    if (rc < 0)
        return report_error("cannot write %s: %s", output, strerror(e));
    return 0;
}

static int run_report(const struct options *o, struct loaded *loaded)
{
    char suffix[32];
    if (!choose_files(o->dir, suffix, sizeof suffix))
        return report_error("no profiles in %s: it has none of cpu.pb.gz, heap.pb.gz, "
                            "allocs.pb.gz, ... (ppx record -o DIR and ppx snapshot -o DIR "
                            "write them)",
                            o->dir);
    struct report_profile profiles[N_KINDS];
    size_t n = 0, unreadable = 0;
    struct loaded *syscalls = NULL, *threads = NULL;
    for (size_t k = 0; k < N_KINDS; k++) {
        struct loaded *l = &loaded[k];
        snprintf(l->file, sizeof l->file, "%s%s.pb.gz", kinds[k].stem, suffix);
        l->rp = (struct report_profile){
            .stem = kinds[k].stem, .file = l->file, .what = kinds[k].what, .error = l->error};
        if (strcmp(kinds[k].stem, "syscalls") == 0)
            syscalls = l;
        if (strcmp(kinds[k].stem, "threadcreate") == 0)
            threads = l;
        if (!is_file(o->dir, l->file))
            continue;
        l->found = true;
        if (!(l->path = path_join(o->dir, l->file)))
            return report_error("out of memory");
        if (!load_profile(l))
            unreadable++;
        profiles[n++] = l->rp;
    }

    char *audit_buf = NULL, *threads_buf = NULL;
    char audit_error[1200], threads_error[1200];
    struct report_text texts[2] = {{.id = "audit", .title = "I/O calls: ppx audit"},
                                   {.id = "threads", .title = "Threads: ppx threads"}};
    command_text(syscalls, "audit", audit_print, (size_t)o->rows, &texts[0], &audit_buf,
                 audit_error, sizeof audit_error);
    command_text(threads, "threads", threads_print, (size_t)o->rows, &texts[1], &threads_buf,
                 threads_error, sizeof threads_error);

    struct report_viewer viewer;
    char looked[1024] = "", viewer_error[1024] = "";
    struct report_page page = {
        .dir = o->dir,
        .version = PACKAGE_VERSION,
        .profiles = profiles,
        .n_profiles = n,
        .texts = texts,
        .n_texts = 2,
        .viewer = find_viewer(&viewer, looked, sizeof looked, viewer_error, sizeof viewer_error),
        .viewer_looked = looked,
        .viewer_error = *viewer_error ? viewer_error : NULL,
        .top_rows = (size_t)o->rows,
    };
    int rc = write_page(o->output, &page);
    if (rc == 0)
        fprintf(stderr, "ppx report: wrote %s: %zu profile%s of %s%s%s\n", o->output, n,
                n == 1 ? "" : "s", o->dir, page.viewer ? ", with flame graphs" : "",
                unreadable ? " (some could not be read: above)" : "");
    if (page.viewer)
        report_viewer_free(&viewer);
    free(audit_buf);
    free(threads_buf);
    return rc ? rc : unreadable ? 1 : 0;
}

int cmd_report(int argc, char **argv)
{
    struct options o;
    int status = parse_options(argc, argv, &o);
    if (status >= 0)
        return status;
    struct stat st;
    if (stat(o.dir, &st) < 0)
        return report_error("cannot read %s: %s", o.dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return report_error("%s is not a directory: ppx report reads the directory that ppx "
                            "record -o DIR or ppx snapshot -o DIR wrote",
                            o.dir);
    struct loaded loaded[N_KINDS];
    memset(loaded, 0, sizeof loaded);
    int rc = run_report(&o, loaded);
    for (size_t k = 0; k < N_KINDS; k++) {
        free(loaded[k].path);
        free(loaded[k].data);
        pprof_top_free(&loaded[k].top);
        free(loaded[k].sample_types);
    }
    return rc;
}
