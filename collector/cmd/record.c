/* ppx record: runs a command under libppx.so, collects its stream and
 * writes its profiles when it exits. The command's stdin, stdout, stderr,
 * signals and exit status pass through. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cmd/cmd.h"
#include "model/model.h"
#include "pprof/pprof.h"
#include "ingest/ingest.h"

/* After the command exits, how long to wait for the streams of processes
 * still writing (its surviving children, or ones exiting right now). */
#define DRAIN_MS 2000

struct options {
    const char *output;
    const char *rate;
    const char *max_depth;
    const char *flush_ms;
    bool quiet;
    char **argv; /* the command */
};

/* Signals relayed to the command. SIGINT, SIGQUIT, SIGTSTP and SIGWINCH
 * are not: the terminal sends them to the whole foreground process group,
 * which the command shares with ppx, so relaying would deliver them twice. */
static const int forwarded[] = {SIGTERM, SIGHUP, SIGUSR2, SIGCONT, SIGALRM};
static const int ignored[] = {SIGINT, SIGQUIT, SIGPIPE};

/* What ppx changed in its own process and the command must not inherit. */
struct saved_state {
    sigset_t mask;
    struct sigaction ignored[sizeof ignored / sizeof ignored[0]];
    struct rlimit nofile;
    const struct target_env *env;
};

static void help(FILE *out)
{
    fputs("Usage: ppx record [options] [--] COMMAND [ARGS...]\n"
          "\n"
          "Runs COMMAND with libppx.so preloaded, collects its memory allocations, I/O\n"
          "calls, threads and CPU time and, when it exits, writes its heap, allocation,\n"
          "I/O call, CPU and thread creation profiles in pprof format.\n"
          "COMMAND's stdin, stdout, stderr, signals and exit status pass through.\n"
          "Processes it forks and programs it execs are profiled too.\n"
          "\n"
          "Options:\n"
          "  -o, --output DIR   write the profiles into DIR, created if missing\n"
          "                     (default ./ppx-COMMAND-PID/, PID being COMMAND's pid)\n"
          "      --rate BYTES   sample one allocation per BYTES allocated bytes on\n"
          "                     average (sets PPX_SAMPLE_RATE; default 524288, as Go's\n"
          "                     MemProfileRate); profiles are scaled back to totals\n"
          "      --exact        record every allocation, unscaled (same as --rate 1)\n"
          "      --max-depth N  keep at most N frames per stack, 1..256 (sets\n"
          "                     PPX_MAX_DEPTH; default 64)\n"
          "      --flush-ms N   the target sends its new data every N milliseconds\n"
          "                     (sets PPX_FLUSH_MS; default 100)\n"
          "  -q, --quiet        do not print the summary line\n"
          "  -h, --help         show this help\n"
          "\n"
          "Files written in DIR:\n"
          "  heap.pb.gz         memory in use when COMMAND exited, i.e. what it leaked\n"
          "                     (default sample type inuse_space)\n"
          "  allocs.pb.gz       all allocations of the run (default sample type\n"
          "                     alloc_space)\n"
          "  syscalls.pb.gz     the I/O calls of the run (read, write, recvmsg, sendmsg,\n"
          "                     epoll_wait, ...) per call site: calls, time, bytes,\n"
          "                     messages, errors, eagain (default sample type calls);\n"
          "                     each stack's leaf names the call. Summarize it with\n"
          "                     ppx audit DIR\n"
          "  cpu.pb.gz          where the CPU time went, sampled per thread at PPX_CPU_HZ\n"
          "                     (default 100) ticks per CPU second; labels thread (name)\n"
          "                     and tid on every sample, e.g.\n"
          "                     go tool pprof -top -tagfocus thread=worker DIR/cpu.pb.gz\n"
          "  threadcreate.pb.gz where threads were created, one sample per thread with\n"
          "                     its name, tid, times and CPU time in labels. Summarize it\n"
          "                     with ppx threads DIR\n"
          "  block.pb.gz        where threads waited for mutexes, rwlocks, condition\n"
          "                     variables and semaphores (contentions, delay), sampled\n"
          "                     as Go does at PPX_BLOCK_RATE ns (default 100000)\n"
          "  mutex.pb.gz        where the threads were that released a mutex or rwlock\n"
          "                     others waited for, and how long they waited; 1 in\n"
          "                     PPX_MUTEX_FRACTION (default 10) contentions, scaled\n"
          "  peak.pb.gz         memory in use at the flush where the most was in use\n"
          "                     (the heap at its peak; exact with --exact)\n"
          "  heap.N.pb.gz, allocs.N.pb.gz, syscalls.N.pb.gz, cpu.N.pb.gz,\n"
          "  threadcreate.N.pb.gz, block.N.pb.gz, mutex.N.pb.gz, peak.N.pb.gz\n"
          "                     snapshot N (1, 2, ...), written whenever ppx receives\n"
          "                     SIGUSR1: kill -USR1 <pid of ppx>\n"
          "  PID/heap.pb.gz, PID/allocs.pb.gz, ... PID/mutex.pb.gz\n"
          "                     with several processes (fork, exec): each one's own\n"
          "                     profiles; PID.I/ for the I-th program exec'd by PID.\n"
          "                     The files in DIR then merge all processes and label\n"
          "                     every sample with its pid.\n"
          "Read them with: go tool pprof -top DIR/heap.pb.gz\n"
          "\n"
          "Signals: ppx ignores SIGINT and SIGQUIT (the terminal sends them to COMMAND\n"
          "too) and relays SIGTERM, SIGHUP, SIGUSR2, SIGCONT and SIGALRM to COMMAND.\n"
          "\n"
          "Exit status: COMMAND's; when a signal killed COMMAND, ppx kills itself with\n"
          "the same signal. ppx's own failures: 2 usage error, 1 cannot set up (output\n"
          "directory, libppx.so), 126 COMMAND not executable, 127 COMMAND not found.\n"
          "\n"
          "Statically linked programs cannot be profiled (LD_PRELOAD cannot interpose\n"
          "them): ppx says so and runs them unprofiled.\n"
          "\n"
          "Environment: PPX_LIB, the path of libppx.so (default: found next to ppx);\n"
          "PPX_CPU_HZ, CPU samples per CPU second of each thread, 0 to 10000 (default\n"
          "100; 0: no CPU profile).\n",
          out);
}

#define usage_error(fmt, arg) cli_usage_error("record", fmt, arg)

enum { OPT_RATE = 256, OPT_EXACT, OPT_MAX_DEPTH, OPT_FLUSH_MS };

/* One option (getopt's c and optarg) into o: 0, or a usage error's exit
 * status. */
static int take_option(int c, struct options *o, bool *exact, char **argv)
{
    switch (c) {
    case 'o':
        /* "-o -- cmd" would take "--" for the directory. */
        if (*optarg == 0 || *optarg == '-')
            return usage_error("-o/--output needs a directory name, not '%s' "
                               "(write ./-name for a name starting with '-')",
                               optarg);
        o->output = optarg;
        return 0;
    case OPT_RATE:
        if (!cli_parse_u64(optarg, 1, UINT64_C(1) << 40, NULL))
            return usage_error("--rate takes a number of bytes from 1 to 2^40, not '%s'", optarg);
        o->rate = optarg;
        return 0;
    case OPT_EXACT:
        *exact = true;
        return 0;
    case OPT_MAX_DEPTH:
        if (!cli_parse_u64(optarg, 1, 256, NULL))
            return usage_error("--max-depth takes a number of frames from 1 to 256, not '%s'",
                               optarg);
        o->max_depth = optarg;
        return 0;
    case OPT_FLUSH_MS:
        if (!cli_parse_u64(optarg, 1, 3600000, NULL))
            return usage_error("--flush-ms takes milliseconds from 1 to 3600000, not '%s'", optarg);
        o->flush_ms = optarg;
        return 0;
    case 'q':
        o->quiet = true;
        return 0;
    default:
        return cli_other_option("record", c, argv, help);
    }
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"rate", required_argument, NULL, OPT_RATE},
        {"exact", no_argument, NULL, OPT_EXACT},
        {"max-depth", required_argument, NULL, OPT_MAX_DEPTH},
        {"flush-ms", required_argument, NULL, OPT_FLUSH_MS},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool exact = false;
    opterr = 0;
    optind = 1;
    int c;
    /* "+": stop at COMMAND, whose own options are not ours. */
    while ((c = getopt_long(argc, argv, "+:o:qh", longopts, NULL)) != -1) {
        int rc = take_option(c, o, &exact, argv);
        if (rc)
            return rc;
    }
    if (exact) {
        if (o->rate && strcmp(o->rate, "1") != 0)
            return usage_error("--exact contradicts --rate %s", o->rate);
        o->rate = "1";
    }
    if (optind >= argc)
        return usage_error("no command to run%s", "");
    o->argv = argv + optind;
    return 0;
}

static void in_child(void *arg)
{
    const struct saved_state *s = arg;
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        sigaction(ignored[i], &s->ignored[i], NULL);
    setrlimit(RLIMIT_NOFILE, &s->nofile);
    sigprocmask(SIG_SETMASK, &s->mask, NULL);
    if (target_setenv(s->env) < 0) {
        fprintf(stderr, "ppx: cannot set the environment: %s\n", strerror(errno));
        _exit(125);
    }
}

/* Sets ppx's own signal handling up; returns the signalfd, -1 on error. */
static int setup_signals(struct saved_state *s)
{
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        sigaction(ignored[i], &ign, &s->ignored[i]);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGUSR1);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(&set, forwarded[i]);
    if (sigprocmask(SIG_BLOCK, &set, &s->mask) < 0)
        return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Many forked targets mean many connections: raise the soft limit on open
 * files for ppx (the command gets the original back). */
static void raise_nofile(struct saved_state *s)
{
    if (getrlimit(RLIMIT_NOFILE, &s->nofile) < 0)
        return;
    struct rlimit more = s->nofile;
    more.rlim_cur = more.rlim_max;
    setrlimit(RLIMIT_NOFILE, &more);
}

/* A private directory for the socket: only this user can connect. */
static char *make_socket_dir(char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    /* sun_path is 108 bytes: a long TMPDIR cannot hold the socket. */
    if (!tmp || *tmp != '/' || strlen(tmp) > 60)
        tmp = "/tmp";
    char *dir = path_join(tmp, "ppx-XXXXXX");
    if (!dir || !mkdtemp(dir)) {
        snprintf(err, errlen, "ppx: cannot create a private directory in %s: %s", tmp,
                 strerror(errno));
        free(dir);
        return NULL;
    }
    return dir;
}

static void die_like(int status)
{
    if (WIFEXITED(status))
        exit(WEXITSTATUS(status));
    int sig = WTERMSIG(status);
    /* Re-raise so the shell sees the same death, without a core of ppx. */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    exit(128 + sig); /* a signal whose default is not to terminate */
}

struct run {
    const struct options *opt;
    const char *dir;
    struct proc_table *table;
    struct ingest *streams;
    pid_t child;
    unsigned snapshots;
    struct record_warm *warm; /* NULL once stopped */
};

static void write_snapshot(struct run *r)
{
    /* the symbolization makes what copies it needs from now on (libdw on
     * one thread) */
    record_warm_finish(r->warm);
    r->warm = NULL;
    ingest_read_available(r->streams);
    unsigned n = ++r->snapshots;
    if (output_write(r->dir, r->table, n, false) == 0 && !r->opt->quiet)
        fprintf(stderr,
                "ppx: wrote snapshot %u in %s: heap.%u.pb.gz, allocs.%u.pb.gz, "
                "syscalls.%u.pb.gz, cpu.%u.pb.gz, threadcreate.%u.pb.gz, block.%u.pb.gz, "
                "mutex.%u.pb.gz, peak.%u.pb.gz\n",
                n, r->dir, n, n, n, n, n, n, n, n);
}

/* Handles the pending signals; returns true once the command has exited,
 * with its wait status in *status. */
static bool handle_signals(struct run *r, int sfd, int *status)
{
    struct signalfd_siginfo si;
    bool exited = false;
    while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD) {
            pid_t w = waitpid(r->child, status, WNOHANG);
            if (w == r->child)
                exited = true;
        } else if (sig == SIGUSR1) {
            write_snapshot(r);
        } else if (!exited) {
            kill(r->child, sig);
        }
    }
    return exited;
}

static void summary(const struct run *r)
{
    size_t n = proc_table_count(r->table);
    fprintf(stderr,
            "ppx: wrote heap.pb.gz, allocs.pb.gz, syscalls.pb.gz, cpu.pb.gz, "
            "threadcreate.pb.gz, block.pb.gz, mutex.pb.gz, peak.pb.gz in %s (%zu process%s)\n",
            r->dir, n, n == 1 ? "" : "es");
}

static char *default_output(const char *cmd, pid_t pid)
{
    char *copy = strdup(cmd);
    if (!copy)
        return NULL;
    const char *base = basename(copy);
    size_t len = strlen(base) + 32;
    char *dir = malloc(len);
    if (dir)
        snprintf(dir, len, "ppx-%s-%ld", base, (long)pid);
    free(copy);
    return dir;
}

/* Runs a program LD_PRELOAD cannot reach, as if ppx were not there. */
static void run_unprofiled(char **argv)
{
    execvp(argv[0], argv);
    fprintf(stderr, "ppx: cannot run %s: %s\n", argv[0], strerror(errno));
    exit(errno == ENOENT ? 127 : 126);
}

static void check_reachable(char **argv)
{
    int status;
    char err[512];
    char *path = target_resolve(argv[0], &status, err, sizeof err);
    if (!path) {
        fprintf(stderr, "%s\n", err);
        exit(status);
    }
    enum target_kind kind = target_inspect(path);
    free(path);
    if (kind == TARGET_STATIC) {
        fprintf(stderr,
                "ppx: %s is statically linked: LD_PRELOAD cannot interpose it; "
                "running it without profiling\n",
                argv[0]);
        run_unprofiled(argv);
    }
    if (kind == TARGET_FOREIGN) {
        fprintf(stderr,
                "ppx: %s is built for another architecture or word size than "
                "libppx.so; running it without profiling\n",
                argv[0]);
        run_unprofiled(argv);
    }
}

static bool preload_path_ok(const char *lib)
{
    /* LD_PRELOAD separates entries by spaces and colons. */
    if (strpbrk(lib, ": \t")) {
        fprintf(stderr,
                "ppx: the path of libppx.so (%s) contains a space or colon, "
                "which LD_PRELOAD cannot express; set PPX_LIB to another copy\n",
                lib);
        return false;
    }
    return true;
}

struct setup {
    char *lib, *sock_dir, *sock_path, *output;
    struct proc_table *table;
    struct ingest *streams;
    int sfd;
};

static void teardown(struct setup *s)
{
    ingest_close(s->streams);
    if (s->sock_dir)
        rmdir(s->sock_dir);
    if (s->sfd >= 0)
        close(s->sfd);
    proc_table_free(s->table);
    free(s->lib);
    free(s->sock_dir);
    free(s->sock_path);
    free(s->output);
}

static int fail_setup(struct setup *s, const char *msg)
{
    if (msg && *msg)
        fprintf(stderr, "%s\n", msg);
    teardown(s);
    return 1;
}

/* Everything the command needs before it starts: libppx.so, the output
 * directory (when given), the socket listening. 0, or ppx's exit status
 * after saying why and undoing s. */
static int prepare(struct setup *s, const struct options *opt)
{
    char err[1024] = "";
    s->lib = target_find_preload(err, sizeof err);
    if (!s->lib)
        return fail_setup(s, err);
    if (!preload_path_ok(s->lib))
        return fail_setup(s, NULL);
    if (opt->output && output_dir_prepare(opt->output, err, sizeof err) < 0)
        return fail_setup(s, err);
    s->sock_dir = make_socket_dir(err, sizeof err);
    if (!s->sock_dir)
        return fail_setup(s, err);
    s->sock_path = path_join(s->sock_dir, "ppx.sock");
    s->table = proc_table_new();
    if (!s->sock_path || !s->table)
        return fail_setup(s, "ppx: out of memory");
    s->streams = ingest_open(s->sock_path, s->table, err, sizeof err);
    if (!s->streams)
        return fail_setup(s, err);
    return 0;
}

/* Starts the command with the profiler's environment, held before exec
 * until the default output directory, named after its pid, exists. 0 with
 * *pid, or ppx's exit status after saying why; when exec fails, ppx exits
 * as a shell would. */
static int start_command(struct setup *s, const struct options *opt, pid_t *pid)
{
    char err[1024] = "";
    struct target_env env = {
        .preload = s->lib,
        .socket = s->sock_path,
        .sample_rate = opt->rate,
        .max_depth = opt->max_depth,
        .flush_ms = opt->flush_ms,
    };
    struct saved_state saved = {.env = &env};
    raise_nofile(&saved);
    s->sfd = setup_signals(&saved);
    if (s->sfd < 0) {
        snprintf(err, sizeof err, "ppx: cannot set up signal handling: %s", strerror(errno));
        return fail_setup(s, err);
    }
    struct target_child child;
    if (target_spawn(opt->argv, in_child, &saved, &child) < 0) {
        snprintf(err, sizeof err, "ppx: cannot fork: %s", strerror(errno));
        return fail_setup(s, err);
    }
    if (!opt->output) {
        s->output = default_output(opt->argv[0], child.pid);
        if (!s->output || output_dir_prepare(s->output, err, sizeof err) < 0) {
            target_release(&child, false);
            waitpid(child.pid, NULL, 0);
            return fail_setup(s, s->output ? err : "ppx: out of memory");
        }
    }
    if (target_release(&child, true) < 0) {
        /* The child exits 126 or 127, as a shell's would: pass that on. */
        fprintf(stderr, "ppx: cannot run %s: %s\n", opt->argv[0], strerror(errno));
        int status = 127 << 8;
        waitpid(child.pid, &status, 0);
        if (s->output)
            rmdir(s->output); /* made for this run, and still empty */
        teardown(s);
        die_like(status);
    }
    *pid = child.pid;
    return 0;
}

/* Reads the streams and handles signals until the command exits; returns
 * its wait status. */
static int wait_for_command(struct run *r, int sfd)
{
    int status = 0;
    for (;;) {
        int ready = ingest_poll(r->streams, -1, sfd);
        record_warm_scan(r->warm, r->table);
        if (ready < 0) {
            fprintf(stderr, "ppx: poll: %s\n", strerror(errno));
            waitpid(r->child, &status, 0);
            return status;
        }
        if (ready == 1 && handle_signals(r, sfd, &status))
            return status;
    }
}

/* After the command: what its processes still send, then the final
 * profiles, and what the user should know. */
static void write_final(struct run *r)
{
    const struct options *opt = r->opt;
    size_t running = ingest_drain(r->streams, DRAIN_MS);
    record_warm_finish(r->warm);
    if (running && !opt->quiet)
        fprintf(stderr,
                "ppx: %zu process%s still running after %s exited; the profiles hold "
                "what they sent until now\n",
                running, running == 1 ? " is" : "es are", opt->argv[0]);
    int written = output_write(r->dir, r->table, 0, true);
    if (written == 0 && !opt->quiet)
        summary(r);
    if (proc_table_count(r->table) == 0)
        fprintf(stderr,
                "ppx: %s never connected: nothing was profiled (was LD_PRELOAD "
                "removed from its environment, or is it setuid?)\n",
                opt->argv[0]);
}

int cmd_record(int argc, char **argv)
{
    struct options opt = {0};
    int rc = parse_options(argc, argv, &opt);
    if (rc)
        return rc;
    check_reachable(opt.argv);

    struct setup s = {.sfd = -1};
    pid_t pid = 0;
    rc = prepare(&s, &opt);
    if (rc == 0)
        rc = start_command(&s, &opt, &pid);
    if (rc)
        return rc;
    struct run r = {
        .opt = &opt,
        .dir = opt.output ? opt.output : s.output,
        .table = s.table,
        .streams = s.streams,
        .child = pid,
    };
    r.warm = record_warm_start();
    int status = wait_for_command(&r, s.sfd);
    write_final(&r);
    teardown(&s);
    die_like(status);
    return 0;
}
