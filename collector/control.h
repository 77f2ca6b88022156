/* The control protocol of `ppx snapshot` (the client) and `ppx collect`
 * (the collector), over the collector's own Unix socket.
 *
 * A target's stream starts with a record header whose first four bytes
 * are its type (WIRE_HELLO = 1); a control connection starts with
 * CONTROL_MAGIC instead, and the collector tells the two apart by those
 * four bytes (server.h hooks). Everything else a target gets applies too:
 * the peer's uid is checked first (SO_PEERCRED), and every byte is
 * validated.
 *
 * Request, little-endian: CONTROL_MAGIC, a struct control_request, then
 * dir_len bytes of an absolute directory path (no NUL). It must arrive
 * within CONTROL_TIMEOUT_MS.
 * Reply, text lines: "file PATH" per file written, then "ok N" (N files)
 * or "error MESSAGE"; then the collector closes the connection. */
#ifndef PPX_CONTROL_H
#define PPX_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#define CONTROL_MAGIC 0x43585050u /* "PPXC" little-endian */
#define CONTROL_VERSION 1u
#define CONTROL_MAX_DIR 4096u
#define CONTROL_TIMEOUT_MS 5000

enum control_command {
    CONTROL_SNAPSHOT = 1, /* write the profiles of pid (0: every process) into dir */
};

struct control_request {
    uint32_t version; /* CONTROL_VERSION */
    uint32_t command; /* enum control_command */
    uint32_t pid;     /* 0: every process */
    uint32_t dir_len; /* 1..CONTROL_MAX_DIR */
};

struct control_snapshot {
    uint32_t pid;
    char dir[CONTROL_MAX_DIR + 1];
};

/* Collector side: reads the rest of a request from fd (rest[0..len): the
 * bytes already read after the magic) and validates it. Returns 0, or -1
 * with a one-line message in err. */
int control_read_request(int fd, const uint8_t *rest, size_t len, struct control_snapshot *req,
                         char *err, size_t errlen);

/* Collector side: one reply line (a newline is added); best effort, bounded
 * by CONTROL_TIMEOUT_MS. */
void control_reply(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Client side: sends a snapshot request. Returns 0, or -1 with errno. */
int control_send_snapshot(int fd, uint32_t pid, const char *dir);

#endif
