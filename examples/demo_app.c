/* A toy request handler for scripts/demo: it parses requests, builds
 * responses (written to /dev/null), and keeps a session cache that is
 * never evicted (a leak). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct session {
    char *user;
    char *token;
    struct session *next;
};

static struct session *sessions; /* the leak: grows for the whole run */

__attribute__((noinline)) static char *parse_request(int i)
{
    char *line = malloc(256);
    snprintf(line, 256, "GET /item/%d HTTP/1.1", i);
    return line;
}

__attribute__((noinline)) static char *build_response(const char *request)
{
    size_t n = 4096 + strlen(request);
    char *body = malloc(n);
    snprintf(body, n, "200 OK for %s", request);
    return body;
}

__attribute__((noinline)) static void remember_session(int i)
{
    struct session *s = malloc(sizeof *s);
    s->user = malloc(64);
    snprintf(s->user, 64, "user-%d", i % 1000);
    s->token = calloc(1, 512);
    s->next = sessions;
    sessions = s;
}

int main(int argc, char **argv)
{
    int requests = argc > 1 ? atoi(argv[1]) : 200000;
    size_t bytes = 0;
    int sink = open("/dev/null", O_WRONLY | O_CLOEXEC); /* where responses go */
    for (int i = 0; i < requests; i++) {
        char *req = parse_request(i);
        char *resp = build_response(req);
        bytes += strlen(resp);
        if (sink >= 0 && write(sink, resp, strlen(resp)) < 0)
            perror("write");
        if (i % 10 == 0)
            remember_session(i);
        free(resp);
        free(req);
    }
    if (sink >= 0)
        close(sink);
    printf("served %d requests, %zu bytes\n", requests, bytes);
    return 0;
}
