/* Known output, input and ending, for the pass-through tests.
 *
 * Usage: outputs [--stdin] [--exit N | --signal N | --segv]
 * Writes two lines to stdout and two to stderr; with --stdin copies its
 * input to stdout between them. Then exits with status N (default 0),
 * kills itself with signal N, or dies of a real invalid memory access.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile int *volatile nowhere;

int main(int argc, char **argv)
{
    int copy_stdin = 0, status = 0, sig = 0, segv = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stdin") == 0)
            copy_stdin = 1;
        else if (strcmp(argv[i], "--exit") == 0 && i + 1 < argc)
            status = atoi(argv[++i]);
        else if (strcmp(argv[i], "--signal") == 0 && i + 1 < argc)
            sig = atoi(argv[++i]);
        else if (strcmp(argv[i], "--segv") == 0)
            segv = 1;
        else {
            fprintf(stderr, "usage: outputs [--stdin] [--exit N | --signal N | --segv]\n");
            return 2;
        }
    }
    /* Some heap use, so a profiled run has something to record. */
    char *line = malloc(64);
    if (line == NULL)
        return 10;
    snprintf(line, 64, "stdout: first line, argc %d", argc);
    puts(line);
    fputs("stderr: first line\n", stderr);
    fflush(stdout);
    if (copy_stdin) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
            fwrite(buf, 1, n, stdout);
    }
    puts("stdout: last line");
    fputs("stderr: last line\n", stderr);
    fflush(stdout);
    free(line);
    if (segv) {
        signal(SIGSEGV, SIG_DFL);
        *nowhere = 1;
    }
    if (sig) {
        signal(sig, SIG_DFL);
        raise(sig);
        return 11; /* the signal did not end us */
    }
    return status;
}
