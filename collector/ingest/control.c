#include "ingest/ingest.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Waits until fd is ready for events or the deadline passes. */
static bool wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - monotonic_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, (int)left);
        if (rc > 0)
            return true;
        if (rc < 0 && errno != EINTR)
            return false;
    }
}

/* Fills buf[*have..want) from fd (non-blocking) until the deadline. */
static int read_exact(int fd, uint8_t *buf, size_t *have, size_t want, long long deadline,
                      const char **why)
{
    while (*have < want) {
        ssize_t n = read(fd, buf + *have, want - *have);
        if (n > 0) {
            *have += (size_t)n;
            continue;
        }
        if (n == 0) {
            *why = "the request ended early";
            return -1;
        }
        if (errno == EINTR)
            continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLIN, deadline))
            continue;
        *why = errno == EAGAIN || errno == EWOULDBLOCK ? "the request did not arrive in time"
                                                       : strerror(errno);
        return -1;
    }
    return 0;
}

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

int control_read_request(int fd, const uint8_t *rest, size_t len, struct control_snapshot *req,
                         char *err, size_t errlen)
{
    long long deadline = monotonic_ms() + CONTROL_TIMEOUT_MS;
    uint8_t head[sizeof(struct control_request)];
    size_t have = len < sizeof head ? len : sizeof head;
    memcpy(head, rest, have);
    const char *why = NULL;
    if (read_exact(fd, head, &have, sizeof head, deadline, &why) < 0) {
        snprintf(err, errlen, "bad control request: %s", why);
        return -1;
    }
    uint32_t version = le32(head), command = le32(head + 4), pid = le32(head + 8),
             dir_len = le32(head + 12);
    if (version != CONTROL_VERSION) {
        snprintf(err, errlen, "control protocol version %u is not supported (this collector: %u)",
                 version, CONTROL_VERSION);
        return -1;
    }
    if (command != CONTROL_SNAPSHOT && command != CONTROL_STACKS) {
        snprintf(err, errlen, "bad control request: unknown command %u", command);
        return -1;
    }
    req->command = command;
    req->pid = pid;
    req->dir[0] = 0;
    if (command == CONTROL_STACKS) {
        if (dir_len != 0 || len > sizeof head) {
            snprintf(err, errlen, "bad control request: stacks takes no directory");
            return -1;
        }
        return 0;
    }
    if (dir_len == 0 || dir_len > CONTROL_MAX_DIR) {
        snprintf(err, errlen, "bad control request: directory of %u bytes (1..%u)", dir_len,
                 CONTROL_MAX_DIR);
        return -1;
    }
    size_t got = len - (len < sizeof head ? len : sizeof head);
    if (got > dir_len) {
        snprintf(err, errlen, "bad control request: %zu bytes after its end", got - dir_len);
        return -1;
    }
    memcpy(req->dir, rest + sizeof head, got);
    if (read_exact(fd, (uint8_t *)req->dir, &got, dir_len, deadline, &why) < 0) {
        snprintf(err, errlen, "bad control request: %s", why);
        return -1;
    }
    req->dir[dir_len] = 0;
    if (strlen(req->dir) != dir_len || req->dir[0] != '/') {
        snprintf(err, errlen, "bad control request: the directory is not an absolute path");
        return -1;
    }
    req->pid = pid;
    return 0;
}

static void write_all(int fd, const char *p, size_t len, long long deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLOUT, deadline))
            continue;
        return;
    }
}

void control_reply(int fd, const char *fmt, ...)
{
    char line[CONTROL_MAX_DIR + 512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    /* One line per message, whatever it quotes. */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    line[len++] = '\n';
    write_all(fd, line, len, monotonic_ms() + CONTROL_TIMEOUT_MS);
}

static void put32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

void control_reply_bytes(int fd, const char *bytes, size_t len)
{
    write_all(fd, bytes, len, monotonic_ms() + CONTROL_TIMEOUT_MS);
}

static int send_request(int fd, uint32_t command, uint32_t pid, const char *dir)
{
    size_t dir_len = strlen(dir);
    if (dir_len > CONTROL_MAX_DIR || (command == CONTROL_SNAPSHOT && dir_len == 0)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    uint8_t buf[4 + sizeof(struct control_request) + CONTROL_MAX_DIR];
    put32(buf, CONTROL_MAGIC);
    put32(buf + 4, CONTROL_VERSION);
    put32(buf + 8, command);
    put32(buf + 12, pid);
    put32(buf + 16, (uint32_t)dir_len);
    memcpy(buf + 20, dir, dir_len);
    size_t len = 20 + dir_len;
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int control_send_snapshot(int fd, uint32_t pid, const char *dir)
{
    return send_request(fd, CONTROL_SNAPSHOT, pid, dir);
}

int control_send_stacks(int fd, uint32_t pid)
{
    return send_request(fd, CONTROL_STACKS, pid, "");
}
