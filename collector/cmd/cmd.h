/* The subcommands of ppx and what they share: option parsing, the target
 * program of `ppx record`, and where the live collector's socket lives. */
#ifndef PPX_CMD_H
#define PPX_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include "base/base.h"

/* ---- commands ---- */
/* The subcommands of ppx. Each takes the arguments after its name
 * (argv[0] is the subcommand's name) and returns ppx's exit status, or
 * does not return (record exits with its command's status). */
int cmd_record(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_collect(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_threads(int argc, char **argv);
int cmd_stacks(int argc, char **argv); /* snapshot.c */

/* ---- record_warm ---- */
/* ppx record's warm-up of the debug-file cache: a thread inflating the
 * separate debug files of what the command's processes map while it runs
 * (record_warm.c). start: NULL when no thread could be made (the
 * symbolization then makes the copies); scan: from the record loop after
 * records came, at most every 100 ms; finish: before symbolizing, waits
 * for the copy under way and drops the rest. Each takes NULL. */
struct record_warm;
struct proc_table;
struct record_warm *record_warm_start(void);
void record_warm_scan(struct record_warm *w, const struct proc_table *t);
void record_warm_finish(struct record_warm *w);

/* ---- cli ---- */
/* What the option parsing of every ppx subcommand shares. */
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

/* The end of a command's option switch: for 'h' (-h, --help) prints
 * help on stdout and exits 0; anything else is cli_bad_option(). */
int cli_other_option(const char *command, int c, char **argv, void (*help)(FILE *));

/* After the options of a command that takes no operands (getopt's optind
 * past them): 0, or the usage error naming the first operand. */
int cli_no_operands(const char *command, int argc, char **argv);

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

/* ---- audit, threads ---- */
/* What ppx audit and ppx threads print for the profile at path (a file),
 * written to out, for the top rows (audit: per call; threads: per process)
 * and, with want_pid, process pid alone. Errors are said on stderr as
 * the command says them. Returns the command's exit status: 0 printed, 1
 * the file cannot be read or is no profile of that kind. ppx report puts
 * the same text into its page. */
int audit_print(FILE *out, const char *path, size_t top, bool want_pid, int64_t pid);
int threads_print(FILE *out, const char *path, size_t top, bool want_pid, int64_t pid);

/* ---- target ---- */
/* The program `ppx record` runs: finding it, telling whether LD_PRELOAD can
 * reach it, finding libppx.so, and starting it with the profiler's
 * environment. */
/* Finds cmd the way execvp() does (PATH search unless it contains '/').
 * Returns the path (malloc'ed), or NULL with a message in err and the exit
 * status a shell would give: 127 not found, 126 not executable. */
char *target_resolve(const char *cmd, int *status, char *err, size_t errlen);

enum target_kind {
    TARGET_DYNAMIC, /* ELF with an interpreter: LD_PRELOAD works */
    TARGET_STATIC,  /* ELF without PT_INTERP: LD_PRELOAD has no effect */
    TARGET_FOREIGN, /* ELF of another class or machine than libppx.so */
    TARGET_OTHER,   /* a #! script, or unreadable: left to the kernel */
};
enum target_kind target_inspect(const char *path);

/* The absolute path of libppx.so: $PPX_LIB, else next to the running ppx
 * (build tree: .libs/ or preload/.libs/; installed: ../lib/), else the
 * configured libdir. NULL with a message in err when none exists. */
char *target_find_preload(char *err, size_t errlen);

/* What the target's environment gets; NULL members are left alone. */
struct target_env {
    const char *preload; /* prepended to LD_PRELOAD */
    const char *socket;  /* PPX_SOCKET */
    const char *sample_rate, *max_depth, *flush_ms;
};
/* Applies e to this process's environment (call it in the child). */
int target_setenv(const struct target_env *e);

/* A started child held before exec until target_release(), so that ppx
 * can still prepare (or give up) knowing the child's pid. */
struct target_child {
    pid_t pid;
    int go_fd;   /* parent -> child: one byte = exec, EOF = give up */
    int exec_fd; /* child -> parent: errno of a failed exec, EOF on success */
};

/* Forks; the child calls in_child(arg) (signal and environment setup), then
 * waits for the release and execvp()s argv. -1 on fork failure. */
int target_spawn(char *const argv[], void (*in_child)(void *), void *arg, struct target_child *c);

/* run: lets the child exec and returns 0, or -1 with errno set to why exec
 * failed (the child then exits 126 or 127). !run: the child exits
 * without running anything; returns 0. */
int target_release(struct target_child *c, bool run);

/* ---- socket_dir ---- */
/* Where the live collector listens: the path libppx.so connects to by
 * default, and the private directory that holds it. */
/* libppx.so's default (preload/init.c): $XDG_RUNTIME_DIR/ppx/ppx.sock when
 * XDG_RUNTIME_DIR is an absolute path short enough, else
 * /tmp/ppx-<uid>/ppx.sock. */
void socket_default_path(char *buf, size_t len);

/* The socket a command uses, as libppx.so chooses it: flag (--socket) if
 * given, else $PPX_SOCKET if set and usable, else socket_default_path().
 * An unusable PPX_SOCKET (empty, too long) is said on stderr, and the
 * default used, as libppx.so does. True when the path was chosen
 * explicitly (flag or PPX_SOCKET), false for the default. */
bool socket_path_choose(const char *flag, char *buf, size_t len);

/* Makes sure the directory of socket_path exists: created 0700 when
 * missing. With strict (the default path, in a shared place like /tmp),
 * an existing one must be a directory of ours (not a symlink) that
 * neither group nor others may access; anything else is refused, since
 * whoever controls it could stand in for the collector. Returns 0, or -1
 * with a message in err. */
int socket_dir_prepare(const char *socket_path, bool strict, char *err, size_t errlen);

/* Takes the collector's lock for socket_path: an exclusive flock on
 * socket_path + ".lock" (created 0600), held by the returned descriptor
 * for as long as the collector runs (the kernel drops it at exit, however
 * the process ends). Checking whether a collector answers, removing a
 * stale socket and binding a new one is not atomic: two collectors started
 * at once could both do it, the second unlinking the first's socket. Under
 * the lock only one gets that far. The lock file is never removed: a
 * collector that unlinked it could leave the next two locking different
 * files. Returns the descriptor, or -1 with a message in err (another
 * collector holds the lock, or the file cannot be opened). */
int socket_lock(const char *socket_path, char *err, size_t errlen);

#endif
