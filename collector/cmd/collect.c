/* ppx collect: the live collector. A daemon on a Unix socket that any
 * number of targets started with LD_PRELOAD=libppx.so stream to (no
 * variable needed: both default to the same path), serving their profiles
 * over HTTP the way Go's net/http/pprof does (live.h), writing them on
 * request (`ppx snapshot`, ingest.h) and, with -o, when a target exits.
 * Targets that exited while no collector ran left spool files (ingest.h):
 * read at start, and as they appear.
 *
 * Threads: this one reads the targets' streams (ingest.h) under the
 * table's lock (live.h); the HTTP streams has its own; profile files are
 * written by a background worker (live.h). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include "cmd/cmd.h"
#include "live/live.h"
#include "ingest/ingest.h"
#include "pprof/pprof.h"

struct options {
    const char *socket;
    const char *http;
    const char *output;
    bool quiet;
    bool http_allow_any_user;
};

static void help(FILE *out)
{
    fputs("Usage: ppx collect [--socket PATH] [--http [HOST:]PORT [--http-allow-any-user]]\n"
          "                   [-o DIR]\n"
          "\n"
          "The live collector: runs until SIGINT or SIGTERM, collecting the profiles of\n"
          "every program started with LD_PRELOAD=libppx.so by the same user, including\n"
          "programs started before it (they keep retrying, and resend their whole\n"
          "history when they connect).\n"
          "\n"
          "Options:\n"
          "  -s, --socket PATH  listen on PATH (default $PPX_SOCKET if set, else\n"
          "                     $XDG_RUNTIME_DIR/ppx/ppx.sock, else /tmp/ppx-UID/ppx.sock:\n"
          "                     where libppx.so looks; elsewhere, give the targets\n"
          "                     PPX_SOCKET=PATH). The default directory is created mode\n"
          "                     0700 and refused if anyone else can use it; only\n"
          "                     processes of this user may connect. One collector per\n"
          "                     socket (a lock on PATH.lock).\n"
          "      --http ADDR    serve Go's /debug/pprof/ endpoints on ADDR: PORT or\n"
          "                     HOST:PORT, 127.0.0.1 unless a host is given (0.0.0.0:PORT\n"
          "                     for every interface); port 0 picks a free one. Every\n"
          "                     request needs the token written to PATH.token (mode\n"
          "                     0600): the URL printed at start carries it. E.g.\n"
          "                       go tool pprof http://ppx:TOKEN@127.0.0.1:6060/debug/pprof/heap\n"
          "                       curl -H \"Authorization: Bearer $(cat PATH.token)\" URL\n"
          "                     Endpoints: heap, allocs, profile (CPU), syscalls,\n"
          "                     threadcreate, cmdline; ?pid=N selects a process (else all\n"
          "                     are merged, labelled by pid); ?seconds=N the change over the\n"
          "                     next N seconds (at most 600; 8 windows at once); ?hz=N\n"
          "                     on profile (at most 1000); ?debug=1 on heap/allocs the\n"
          "                     legacy text; heap?peak=1 the heap at its peak; timeline\n"
          "                     (JSON, ?format=csv) each process's figures a second.\n"
          "                     /ui/ is a web UI: the processes, and their profiles as\n"
          "                     flame graphs (README \"Web UI\").\n"
          "      --http-allow-any-user  no token: any local user may read the profiles and\n"
          "                     command lines over HTTP, and start CPU sampling\n"
          "  -o, --output DIR   when a target exits, write its profiles into\n"
          "                     DIR/EXE.PID/ (heap.pb.gz, allocs.pb.gz, syscalls.pb.gz,\n"
          "                     cpu.pb.gz, threadcreate.pb.gz, block.pb.gz, mutex.pb.gz,\n"
          "                     peak.pb.gz); at SIGINT/SIGTERM, those of the targets still\n"
          "                     running too\n"
          "  -q, --quiet        no messages but errors\n"
          "  -h, --help         show this help\n"
          "\n"
          "`ppx snapshot [-o DIR] [--pid N]` asks a running collector for profile files.\n"
          "Exited targets stay in the profiles until more than 32 have exited since.\n"
          "Targets that exited while no collector ran left spool files next to the\n"
          "socket: they are read at start and as they appear; with -o each becomes\n"
          "DIR/EXE.PID/ and its file is removed, without -o the files stay.\n",
          out);
}

#define usage_error(fmt, arg) cli_usage_error("collect", fmt, arg)

static int parse_options(int argc, char **argv, struct options *o)
{
    enum { OPT_HTTP = 256, OPT_HTTP_ANY_USER };
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"http", required_argument, NULL, OPT_HTTP},
        {"http-allow-any-user", no_argument, NULL, OPT_HTTP_ANY_USER},
        {"output", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":s:o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (*optarg == 0)
                return usage_error("--socket needs a path%s", "");
            o->socket = optarg;
            break;
        case OPT_HTTP:
            o->http = optarg;
            break;
        case OPT_HTTP_ANY_USER:
            o->http_allow_any_user = true;
            break;
        case 'o':
            if (*optarg == 0)
                return usage_error("-o/--output needs a directory name%s", "");
            o->output = optarg;
            break;
        case 'q':
            o->quiet = true;
            break;
        default:
            return cli_other_option("collect", c, argv, help);
        }
    }
    int rc = cli_no_operands("collect", argc, argv);
    if (rc)
        return rc;
    if (o->http_allow_any_user && !o->http)
        return usage_error("--http-allow-any-user goes with --http%s", "");
    return 0;
}

struct collector {
    struct live *live;
    struct collect_worker *worker;
    struct ingest *streams;
    struct http_server *http; /* NULL without --http */
};

/* ingest.h hook, table lock held. */
static void on_closed(void *arg, struct proc *p)
{
    struct collector *c = arg;
    /* Copy first: live_process_ended() may forget old processes. */
    bool exited = !live_stopping(c->live);
    collect_worker_process_ended(c->worker, p, exited, NULL);
    live_process_ended(c->live, p);
}

/* ingest.h hook, table lock held: a spool file's process, read whole. */
static void on_spooled(void *arg, struct proc *p, const char *path)
{
    struct collector *c = arg;
    collect_worker_process_ended(c->worker, p, true, path);
    live_process_ended(c->live, p);
}

/* ingest.h hook, table lock held. */
static void on_opened(void *arg, struct proc *p)
{
    struct collector *c = arg;
    live_process_opened(c->live, p);
}

/* live.h sender, table lock held: a command to p's connection. */
static int send_command(void *arg, const struct proc *p, uint32_t type, const void *payload,
                        size_t len)
{
    return ingest_command(arg, p, type, payload, len);
}

static void on_control(void *arg, int fd, const uint8_t *rest, size_t len)
{
    struct collector *c = arg;
    collect_worker_control(c->worker, fd, rest, len);
}

/* SIGINT, SIGTERM and SIGHUP end the run; blocked in every thread (the
 * HTTP and worker threads inherit the mask) and read from a signalfd. */
static int setup_signals(void)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* One descriptor per target: raise the soft limit as far as allowed. */
static void raise_nofile(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static bool stop_requested(int sfd)
{
    struct signalfd_siginfo si;
    bool stop = false;
    while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
        stop = true;
    return stop;
}

/* Stops what start_collector() started, in the order that lets every
 * part finish: delta requests return at once; then the targets still
 * connected get their profiles written (the closed hook, as the
 * connections close). */
static void stop_collector(struct collector *c)
{
    live_stop(c->live);
    http_stop(c->http);
    ingest_read_available(c->streams);
    live_set_sender(c->live, NULL, NULL); /* the worker may still take a snapshot */
    ingest_close(c->streams);
    collect_worker_finish(c->worker);
    live_free(c->live);
}

/* The shared state, the socket, the worker thread and the HTTP server,
 * wired together. 0, or -1 after saying why and stopping what started. */
static int start_collector(struct collector *c, const struct options *opt, const char *socket_path)
{
    char err[1024] = "";
    c->live = live_new();
    if (!c->live) {
        fprintf(stderr, "ppx: out of memory\n");
        return -1;
    }
    c->streams = ingest_open(socket_path, live_table(c->live), err, sizeof err);
    if (!c->streams) {
        fprintf(stderr, "%s\n", err);
        live_free(c->live);
        return -1;
    }
    if (!live_start_timeline(c->live))
        fprintf(stderr, "ppx: cannot start the timeline thread: no timelines\n");
    c->worker = collect_worker_start(c->live, opt->output, opt->quiet);
    struct http_config http_cfg = {opt->http, socket_path, opt->http_allow_any_user};
    if (c->worker && opt->http && !(c->http = http_start(&http_cfg, c->live, err, sizeof err)))
        fprintf(stderr, "%s\n", err);
    if (!c->worker || (opt->http && !c->http)) {
        collect_worker_finish(c->worker);
        ingest_close(c->streams);
        live_free(c->live);
        return -1;
    }
    struct ingest_hooks hooks = {
        .lock = live_lock(c->live),
        .check_uid = true,
        .uid = geteuid(),
        .closed = on_closed,
        .opened = on_opened,
        .control_magic = CONTROL_MAGIC,
        .control = on_control,
        .arg = c,
    };
    ingest_set_hooks(c->streams, &hooks);
    live_set_sender(c->live, send_command, c->streams);
    return 0;
}

static void announce(const struct collector *c, const struct options *opt, const char *socket_path)
{
    fprintf(stderr, "ppx: collecting on %s", socket_path);
    if (c->http)
        fprintf(stderr, "; profiles at %s/debug/pprof/", http_url(c->http));
    if (c->http && http_token_path(c->http)[0])
        fprintf(stderr, " (token in %s)", http_token_path(c->http));
    else if (c->http)
        fprintf(stderr, " (any local user may read them: --http-allow-any-user)");
    if (c->http)
        fprintf(stderr, "; web UI at %s", http_ui_url(c->http));
    if (opt->output)
        fprintf(stderr, "; exited targets' profiles into %s/", opt->output);
    fprintf(stderr, "\n");
}

/* Reads the targets' streams until a signal on sfd asks to stop: spool
 * files left by targets that exited while no collector ran, then new
 * ones as they appear (one may have found no collector just before this
 * one). 0, or 1 when polling failed. */
static int collect_until_stopped(struct collector *c, const struct options *opt,
                                 const char *socket_path, int sfd)
{
    struct spool *spool = spool_new(socket_path, opt->output != NULL, live_table(c->live),
                                    live_lock(c->live), on_spooled, c);
    long long next_scan = 0;
    int rc = 0;
    for (;;) {
        if (spool && monotonic_ms() >= next_scan) {
            spool_scan(spool);
            next_scan = monotonic_ms() + SPOOL_SCAN_MS;
        }
        int ready = ingest_poll(c->streams, spool ? SPOOL_SCAN_MS : -1, sfd);
        if (ready < 0) {
            fprintf(stderr, "ppx: poll: %s\n", strerror(errno));
            rc = 1;
            break;
        }
        if (ready == 1 && stop_requested(sfd))
            break;
    }
    spool_free(spool);
    return rc;
}

static int run_collector(const struct options *opt, const char *socket_path, int sfd)
{
    struct collector c = {0};
    if (start_collector(&c, opt, socket_path) < 0)
        return 1;
    if (!opt->quiet)
        announce(&c, opt, socket_path);
    int rc = collect_until_stopped(&c, opt, socket_path, sfd);
    stop_collector(&c);
    return rc;
}

int cmd_collect(int argc, char **argv)
{
    struct options opt = {0};
    int rc = parse_options(argc, argv, &opt);
    if (rc)
        return rc;
    char err[1024] = "", socket_path[4096];
    bool chosen = socket_path_choose(opt.socket, socket_path, sizeof socket_path);
    if (socket_dir_prepare(socket_path, !chosen, err, sizeof err) < 0 ||
        socket_lock(socket_path, err, sizeof err) < 0 ||
        (opt.output && output_dir_prepare(opt.output, err, sizeof err) < 0)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    raise_nofile();
    int sfd = setup_signals();
    if (sfd < 0) {
        fprintf(stderr, "ppx: cannot set up signal handling: %s\n", strerror(errno));
        return 1;
    }
    rc = run_collector(&opt, socket_path, sfd);
    close(sfd);
    return rc;
}
