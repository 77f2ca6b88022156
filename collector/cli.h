/* What the option parsing of every ppx subcommand shares. */
#ifndef PPX_CLI_H
#define PPX_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* "ppx COMMAND: " + fmt (one %s: arg) + a pointer to --help, on stderr.
 * Returns 2, the exit status of a usage error. */
int cli_usage_error(const char *command, const char *fmt, const char *arg);

/* A decimal integer in [min, max] and nothing else: no sign, no space, no
 * suffix. Stores it in *out unless out is NULL. */
bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
