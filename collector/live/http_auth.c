#include "live/live.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

static int draw_token(char *out, char *err, size_t errlen)
{
    uint8_t bytes[HTTP_TOKEN_BYTES];
    size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "ppx: cannot draw the HTTP access token: getrandom: %s",
                     strerror(errno));
            return -1;
        }
        got += (size_t)n;
    }
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof bytes; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * sizeof bytes] = 0;
    return 0;
}

/* Written under a temporary name created exclusively (O_EXCL, no
 * symlink followed) with mode 0600, then renamed: a reader sees no file or
 * the whole token, and the file is never readable by others, whatever the
 * umask. */
static int write_token_file(const struct http_auth *a, char *err, size_t errlen)
{
    char tmp[sizeof a->path + 32];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", a->path, (long)getpid());
    unlink(tmp); /* left by a collector of the same pid that died writing it */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "ppx: cannot write the HTTP access token to %s: %s", tmp,
                 strerror(errno));
        return -1;
    }
    char line[sizeof a->token + 1];
    int len = snprintf(line, sizeof line, "%s\n", a->token);
    bool ok = write(fd, line, (size_t)len) == len;
    int saved = errno;
    if (close(fd) < 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (ok && rename(tmp, a->path) < 0) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        unlink(tmp);
        snprintf(err, errlen, "ppx: cannot write the HTTP access token to %s: %s", a->path,
                 strerror(saved));
        return -1;
    }
    return 0;
}

int http_auth_init(struct http_auth *a, const char *socket_path, bool allow_any_user, char *err,
                   size_t errlen)
{
    memset(a, 0, sizeof *a);
    if (allow_any_user)
        return 0;
    a->required = true;
    if (draw_token(a->token, err, errlen) < 0)
        return -1;
    if ((size_t)snprintf(a->path, sizeof a->path, "%s" HTTP_TOKEN_SUFFIX, socket_path) >=
        sizeof a->path) {
        snprintf(err, errlen, "ppx: the socket path is too long for its token file");
        a->path[0] = 0;
        return -1;
    }
    if (write_token_file(a, err, errlen) < 0) {
        a->path[0] = 0;
        return -1;
    }
    return 0;
}

void http_auth_cleanup(struct http_auth *a)
{
    if (a->path[0])
        unlink(a->path);
    a->path[0] = 0;
}

/* The same time whatever the first difference: a local process timing
 * the answers learns nothing of the token. */
static bool token_equal(const struct http_auth *a, const char *given)
{
    size_t len = strlen(a->token);
    if (strlen(given) != len)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(a->token[i] ^ given[i]);
    return diff == 0;
}

static const char *bearer_token(struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return h;
}

enum http_auth_result http_auth_check(const struct http_auth *a, struct MHD_Connection *c,
                                      bool *in_query)
{
    *in_query = false;
    if (!a->required)
        return HTTP_AUTH_OK;
    bool given = false;
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    if (q) {
        if (token_equal(a, q)) {
            *in_query = true;
            return HTTP_AUTH_OK;
        }
        given = true;
    }
    const char *bearer = bearer_token(c);
    if (bearer) {
        if (token_equal(a, bearer))
            return HTTP_AUTH_OK;
        given = true;
    }
    char *password = NULL;
    char *user = MHD_basic_auth_get_username_password(c, &password);
    bool ok = false;
    if (user) {
        given = true;
        ok = password && token_equal(a, password);
        MHD_free(password);
        MHD_free(user);
    }
    if (ok)
        return HTTP_AUTH_OK;
    return given ? HTTP_AUTH_WRONG : HTTP_AUTH_MISSING;
}
