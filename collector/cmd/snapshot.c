/* ppx snapshot: asks the running collector (ppx collect) to write the
 * profiles it holds now, over its own socket (ingest.h), and prints the
 * files written. The collector writes them (it holds the data), so the
 * directory is sent as an absolute path.
 *
 * ppx stacks: asks it for a dump of every thread and coroutine of its
 * processes now and prints it (goroutine?debug=2): a pstack that needs
 * no ptrace. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "cmd/cmd.h"
#include "ingest/ingest.h"

/* How long the collector may take to write (symbolizing a large program
 * the first time takes seconds). */
#define REPLY_TIMEOUT_S 120

struct options {
    const char *socket;
    const char *output;
    uint32_t pid;
};

static void help(FILE *out)
{
    fputs("Usage: ppx snapshot [--socket PATH] [--pid N] [-o DIR]\n"
          "\n"
          "Asks the running collector (ppx collect) to write the profiles it holds now:\n"
          "heap.pb.gz, allocs.pb.gz, syscalls.pb.gz, cpu.pb.gz, threadcreate.pb.gz,\n"
          "block.pb.gz, mutex.pb.gz, peak.pb.gz (the heap at its peak) and goroutine.pb.gz\n"
          "(what every thread of the running processes is doing, asked of them now) in\n"
          "DIR, merged over its processes (each sample labelled with its pid), and with\n"
          "several processes each one's own in DIR/EXE.PID/. Prints the files written.\n"
          "\n"
          "Options:\n"
          "  -s, --socket PATH  the collector's socket (default: $PPX_SOCKET if set, else\n"
          "                     ppx collect's default, as libppx.so chooses)\n"
          "  -p, --pid N        only process N (its latest program, after an exec)\n"
          "  -o, --output DIR   write into DIR, created if missing (default\n"
          "                     ./ppx-snapshot-YYYYMMDD-HHMMSS/)\n"
          "  -h, --help         show this help\n",
          out);
}

/* The options of ppx snapshot and of ppx stacks (command, its help): the
 * same but -o/--output, which only snapshot takes. */
static int parse_options(int argc, char **argv, struct options *o, const char *command,
                         void (*help_fn)(FILE *), bool takes_output)
{
    struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"pid", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {"output", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    if (!takes_output)
        longopts[3] = (struct option){NULL, 0, NULL, 0};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, takes_output ? ":s:p:o:h" : ":s:p:h", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 's':
            o->socket = optarg;
            break;
        case 'p': {
            uint64_t v;
            if (!cli_parse_u64(optarg, 1, UINT32_MAX, &v))
                return cli_usage_error(command, "--pid takes a process id, not '%s'", optarg);
            o->pid = (uint32_t)v;
            break;
        }
        case 'o':
            if (*optarg == 0)
                return cli_usage_error(command, "-o/--output needs a directory name%s", "");
            o->output = optarg;
            break;
        default:
            return cli_other_option(command, c, argv, help_fn);
        }
    }
    return cli_no_operands(command, argc, argv);
}

/* The directory as an absolute path: the collector runs elsewhere. */
static int absolute_dir(const struct options *o, char *buf, size_t len)
{
    char name[64];
    const char *dir = o->output;
    if (!dir) {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(name, sizeof name, "ppx-snapshot-%Y%m%d-%H%M%S", &tm);
        /* Two snapshots in one second: the next free name. */
        struct stat st;
        size_t base = strlen(name);
        for (int i = 2; stat(name, &st) == 0 && i < 1000; i++)
            snprintf(name + base, sizeof name - base, "-%d", i);
        dir = name;
    }
    int n;
    if (dir[0] == '/') {
        n = snprintf(buf, len, "%s", dir);
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd))
            return -1;
        n = snprintf(buf, len, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, dir);
    }
    errno = ENAMETOOLONG;
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static int connect_collector(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "ppx: socket path %s is too long\n", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = errno;
        fprintf(stderr, "ppx: no collector answers on %s: %s (start one with ppx collect)\n", path,
                strerror(e));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct timeval timeout = {REPLY_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
}

/* Prints the reply's files; 0 when it ends with "ok". */
static int read_reply(int fd)
{
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return 1;
    }
    char line[CONTROL_MAX_DIR + 512];
    int rc = 1;
    bool ended = false;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "file ", 5) == 0) {
            printf("%s\n", line + 5);
        } else if (strncmp(line, "ok ", 3) == 0) {
            rc = 0;
            ended = true;
        } else if (strncmp(line, "error ", 6) == 0) {
            fprintf(stderr, "ppx: snapshot: %s\n", line + 6);
            ended = true;
        }
    }
    if (!ended)
        fprintf(stderr, "ppx: snapshot: the collector did not answer%s%s\n", ferror(f) ? ": " : "",
                ferror(f) ? strerror(errno) : "");
    fclose(f);
    return rc;
}

int cmd_snapshot(int argc, char **argv)
{
    struct options opt = {0};
    int rc = parse_options(argc, argv, &opt, "snapshot", help, true);
    if (rc)
        return rc;
    char socket_path[4096], dir[CONTROL_MAX_DIR + 1];
    socket_path_choose(opt.socket, socket_path, sizeof socket_path);
    if (absolute_dir(&opt, dir, sizeof dir) < 0) {
        fprintf(stderr, "ppx: snapshot: cannot make the output directory an absolute path: %s\n",
                strerror(errno ? errno : ENAMETOOLONG));
        return 1;
    }
    int fd = connect_collector(socket_path);
    if (fd < 0)
        return 1;
    if (control_send_snapshot(fd, opt.pid, dir) < 0) {
        fprintf(stderr, "ppx: snapshot: cannot send the request to %s: %s\n", socket_path,
                strerror(errno));
        close(fd);
        return 1;
    }
    shutdown(fd, SHUT_WR);
    return read_reply(fd);
}

/* ---- ppx stacks ---- */

static void stacks_help(FILE *out)
{
    fputs("Usage: ppx stacks [--socket PATH] [--pid N]\n"
          "\n"
          "Asks the running collector (ppx collect) for what every thread and state-threads\n"
          "coroutine of its running processes is doing now, and prints it: per thread its\n"
          "tid, name, state, what it is blocked in and for how long, and its stack\n"
          "(/debug/pprof/goroutine?debug=2). The stacks are taken inside the processes by\n"
          "libppx.so (a signal to each thread): no ptrace, no stop.\n"
          "\n"
          "Options:\n"
          "  -s, --socket PATH  the collector's socket (default: $PPX_SOCKET if set, else\n"
          "                     ppx collect's default, as libppx.so chooses)\n"
          "  -p, --pid N        only process N\n"
          "  -h, --help         show this help\n",
          out);
}

/* "ok" then the text, copied to stdout; or "error MESSAGE". */
static int read_stacks_reply(int fd)
{
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return 1;
    }
    char line[CONTROL_MAX_DIR + 512];
    int rc = 1;
    if (!fgets(line, sizeof line, f)) {
        fprintf(stderr, "ppx: stacks: the collector did not answer%s%s\n", ferror(f) ? ": " : "",
                ferror(f) ? strerror(errno) : "");
    } else if (strcmp(line, "ok\n") == 0) {
        char buf[65536];
        size_t n;
        rc = 0;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            if (fwrite(buf, 1, n, stdout) != n)
                rc = 1;
        if (ferror(f)) {
            fprintf(stderr, "ppx: stacks: the answer was cut short: %s\n", strerror(errno));
            rc = 1;
        }
    } else {
        line[strcspn(line, "\n")] = 0;
        fprintf(stderr, "ppx: stacks: %s\n",
                strncmp(line, "error ", 6) == 0 ? line + 6
                                                : "unexpected answer from the collector");
    }
    fclose(f);
    return rc;
}

int cmd_stacks(int argc, char **argv)
{
    struct options opt = {0};
    int rc = parse_options(argc, argv, &opt, "stacks", stacks_help, false);
    if (rc)
        return rc;
    char socket_path[4096];
    socket_path_choose(opt.socket, socket_path, sizeof socket_path);
    int fd = connect_collector(socket_path);
    if (fd < 0)
        return 1;
    if (control_send_stacks(fd, opt.pid) < 0) {
        fprintf(stderr, "ppx: stacks: cannot send the request to %s: %s\n", socket_path,
                strerror(errno));
        close(fd);
        return 1;
    }
    shutdown(fd, SHUT_WR);
    return read_stacks_reply(fd) || fflush(stdout) != 0;
}
