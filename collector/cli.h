/* What the option parsing of every ppx subcommand shares. */
#ifndef PPX_CLI_H
#define PPX_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* "ppx COMMAND: " + fmt (one %s: arg) + a pointer to --help, on stderr.
 * Returns 2, the exit status of a usage error. */
int cli_usage_error(const char *command, const char *fmt, const char *arg);

/* "ppx COMMAND: " + the message, on stderr, for a failure that is not a
 * usage error (an unreadable profile, say). Returns 1, its exit status. */
int cli_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For getopt's ':' (an option without its value) and anything else it
 * returns that the caller's switch does not know (an unknown option): the
 * usage error, as cli_usage_error(). */
int cli_bad_option(const char *command, int c, char **argv);

/* A decimal integer in [min, max] and nothing else: no sign, no space, no
 * suffix. Stores it in *out unless out is NULL. */
bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* The arguments of a report command (ppx audit, ppx threads):
 * [--top N] [--pid N] PROFILE, where PROFILE is a file or a directory
 * holding `file_name`. */
struct cli_report_args {
    uint64_t top;
    bool want_pid;
    uint64_t pid;
    char *path; /* malloc'ed */
};

/* Parses argv into *a (a->top holds the default on entry); top_what names
 * what --top counts ("rows", "threads"). Returns -1 when the command should
 * go on, else its exit status: 0 after printing help, 2 for a usage error,
 * 1 when out of memory. */
int cli_report_args(const char *command, int argc, char **argv, uint64_t max_top,
                    const char *top_what, const char *file_name, void (*help)(FILE *),
                    struct cli_report_args *a);

#endif
