/* Who may read the live collector's profiles over HTTP.
 *
 * Loopback is shared by every user of the machine, and the profiles hold
 * what the socket's 0700 directory keeps from them (command lines,
 * mappings, stacks, and CPU sampling started on demand). So by default
 * every request must carry a token the collector draws at start
 * (getrandom) and writes, mode 0600, next to its socket
 * (SOCKET.token, README "Access"): only the collector's own user can read
 * it. A request gives it in one of three ways:
 *   - URL credentials, http://ppx:TOKEN@HOST:PORT/... (HTTP Basic, any
 *     user name): what the collector prints, and the only form that
 *     `go tool pprof` also sends with its /debug/pprof/symbol POSTs (it
 *     builds their URL from the profile's with the query dropped);
 *   - ?token=TOKEN in the query;
 *   - the header `Authorization: Bearer TOKEN`.
 * --http-allow-any-user turns the check off (no token, no file). */
#ifndef PPX_HTTP_AUTH_H
#define PPX_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <microhttpd.h>

#define HTTP_TOKEN_BYTES 16 /* drawn; written as twice as many hex digits */
#define HTTP_TOKEN_SUFFIX ".token"

struct http_auth {
    bool required;
    char token[2 * HTTP_TOKEN_BYTES + 1];
    char path[4096]; /* the token file; "" when none was written */
};

/* Draws the token and writes it atomically to SOCKET_PATH.token (0600),
 * unless allow_any_user. 0, or -1 with a message in err. */
int http_auth_init(struct http_auth *a, const char *socket_path, bool allow_any_user, char *err,
                   size_t errlen);

/* Removes the token file (the collector is stopping). */
void http_auth_cleanup(struct http_auth *a);

enum http_auth_result {
    HTTP_AUTH_OK,
    HTTP_AUTH_MISSING, /* no token given: 401 */
    HTTP_AUTH_WRONG,   /* a token, not ours: 403 */
};
/* The request's verdict; *in_query tells whether the token came as
 * ?token= (the index page's links then carry it on). */
enum http_auth_result http_auth_check(const struct http_auth *a, struct MHD_Connection *c,
                                      bool *in_query);

#endif
