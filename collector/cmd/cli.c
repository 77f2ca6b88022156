/* Option parsing helpers shared by the subcommands (cmd.h). */
#include "cmd/cmd.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_usage_error(const char *command, const char *fmt, const char *arg)
{
    fprintf(stderr, "ppx %s: ", command);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'ppx %s --help'.\n", command);
    return 2;
}

int cli_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ppx %s: ", command);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return false; /* strtoull would take a sign or spaces */
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != 0 || v < min || v > max)
        return false;
    if (out != NULL)
        *out = v;
    return true;
}

/* DIR means DIR/name. A malloc'ed path or NULL. */
static char *profile_path(const char *arg, const char *name)
{
    struct stat st;
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t len = strlen(arg) + 1 + strlen(name) + 1;
        char *path = malloc(len);
        if (path)
            snprintf(path, len, "%s%s%s", arg, arg[strlen(arg) - 1] == '/' ? "" : "/", name);
        return path;
    }
    return strdup(arg);
}

int cli_bad_option(const char *command, int c, char **argv)
{
    if (c == ':')
        return cli_usage_error(command, "option '%s' needs a value", argv[optind - 1]);
    return cli_usage_error(command, "unknown option '%s'", argv[optind - 1]);
}

int cli_report_args(const char *command, int argc, char **argv, uint64_t max_top,
                    const char *top_what, const char *file_name, void (*help)(FILE *),
                    struct cli_report_args *a)
{
    static const struct option long_options[] = {
        {"top", required_argument, NULL, 't'},
        {"pid", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char msg[200];
    a->want_pid = false;
    a->pid = 0;
    a->path = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:h", long_options, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!cli_parse_u64(optarg, 1, max_top, &a->top)) {
                snprintf(msg, sizeof msg,
                         "--top takes a number of %s from 1 to %" PRIu64 ", not '%s'", top_what,
                         max_top, optarg);
                return cli_usage_error(command, "%s", msg);
            }
            break;
        case 'p':
            if (!cli_parse_u64(optarg, 1, UINT32_MAX, &a->pid))
                return cli_usage_error(command, "--pid takes a process id, not '%s'", optarg);
            a->want_pid = true;
            break;
        case 'h':
            help(stdout);
            return 0;
        default:
            return cli_bad_option(command, c, argv);
        }
    }
    if (optind >= argc)
        return cli_usage_error(command, "no profile given%s", "");
    if (optind + 1 < argc)
        return cli_usage_error(command, "one profile at a time, not also '%s'", argv[optind + 1]);
    a->path = profile_path(argv[optind], file_name);
    if (a->path == NULL) {
        fprintf(stderr, "ppx %s: out of memory\n", command);
        return 1;
    }
    return -1;
}

int cli_other_option(const char *command, int c, char **argv, void (*help)(FILE *))
{
    if (c == 'h') {
        help(stdout);
        exit(0);
    }
    return cli_bad_option(command, c, argv);
}

int cli_no_operands(const char *command, int argc, char **argv)
{
    if (optind < argc)
        return cli_usage_error(command, "unexpected argument '%s'", argv[optind]);
    return 0;
}
