/* Option parsing helpers shared by the subcommands (cli.h). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int cli_usage_error(const char *command, const char *fmt, const char *arg)
{
    fprintf(stderr, "ppx %s: ", command);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'ppx %s --help'.\n", command);
    return 2;
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
