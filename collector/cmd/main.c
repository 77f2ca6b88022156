/* ppx: dispatches to the subcommand named by the first argument. */
#include <stdio.h>
#include <string.h>
#include "cmd/cmd.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"record", cmd_record,
     "run a command and write its heap, allocation, I/O, CPU and thread profiles"},
    {"audit", cmd_audit, "summarize the I/O calls of a recorded syscalls.pb.gz, with hints"},
    {"collect", cmd_collect,
     "live collector: profiles of running programs over HTTP (/debug/pprof/)"},
    {"snapshot", cmd_snapshot, "ask the running collector to write profile files now"},
    {"stacks", cmd_stacks,
     "print what every thread of the running processes is doing now (no ptrace)"},
    {"threads", cmd_threads, "list the threads of a recorded threadcreate.pb.gz, like top -H"},
    {"report", cmd_report,
     "write one HTML file of a profile directory: flame graphs, top tables, audit, threads"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "Usage: ppx COMMAND [options] [args...]\n"
                 "       ppx --help | --version\n"
                 "\n"
                 "ppx profiles the memory allocations, I/O calls, threads and CPU time of\n"
                 "native Linux programs and writes pprof files (read them with\n"
                 "`go tool pprof`).\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n"
                 "`ppx COMMAND --help` describes a command's options, for example:\n"
                 "  ppx record -o prof/ -- ./server --port 8080\n"
                 "  go tool pprof -top prof/heap.pb.gz\n"
                 "  ppx audit prof/\n"
                 "  ppx threads prof/\n"
                 "  ppx report prof/ -o report.html\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "-V") == 0 || strcmp(name, "--version") == 0) {
        printf("ppx %s\n", PACKAGE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ppx: unknown command '%s'\nTry 'ppx --help'.\n", name);
    return 2;
}
