/* libFuzzer target for the control connection of `ppx collect`: the
 * request parser (collector/control.c) and the streams's dispatch on a new
 * connection's first bytes between a target's stream and a control
 * request (collector/ingest/streams.c).
 *
 * The first input byte splits the rest: that many bytes are handed to
 * control_read_request() as already read, the remainder arrives on a
 * socket whose other end is then shut. A request it accepts must be what
 * ingest.h promises. Then the whole rest goes to a real streams on a
 * private socket, as one connection (its first split % 4 bytes read
 * apart from the others): it either reaches the control hook
 * (which parses and answers it as the collector does) or is decoded as a
 * target's stream. ASan/UBSan/LSan catch the rest.
 *
 * With PPX_FUZZ_SEEDS=DIR in the environment, LLVMFuzzerInitialize writes
 * a few requests into DIR as a seed corpus (tests/fuzz/control.sh). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "ingest/ingest.h"
#include "model/model.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct proc_table *table;
static struct ingest *streams;
static char socket_path[108];

static void check_request(const struct control_snapshot *req)
{
    size_t n = strnlen(req->dir, sizeof req->dir);
    if (req->command == CONTROL_STACKS) {
        if (n != 0)
            abort();
        return;
    }
    if (req->command != CONTROL_SNAPSHOT || n == 0 || n > CONTROL_MAX_DIR || req->dir[0] != '/')
        abort();
}

/* What the collector's worker does with a control connection. */
static char socket_dir[64];

static void remove_socket(void)
{
    ingest_close(streams);
    rmdir(socket_dir);
}

static void on_control(void *arg, int fd, const uint8_t *rest, size_t len)
{
    (void)arg;
    static struct control_snapshot req;
    char err[512];
    if (control_read_request(fd, rest, len, &req, err, sizeof err) < 0) {
        control_reply(fd, "error %s", err);
    } else {
        check_request(&req);
        control_reply(fd, "ok 0");
    }
    close(fd);
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            abort(); /* the socket buffer holds -max_len bytes */
        p += n;
        len -= (size_t)n;
    }
}

static void parse_direct(const uint8_t *data, size_t size, size_t split)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    write_all(sv[1], data + split, size - split);
    shutdown(sv[1], SHUT_WR);
    static struct control_snapshot req;
    char err[512];
    if (control_read_request(sv[0], data, split, &req, err, sizeof err) == 0)
        check_request(&req);
    else if (!memchr(err, 0, sizeof err) || err[0] == 0)
        abort(); /* a refusal always says why */
    close(sv[0]);
    close(sv[1]);
}

static void through_streams(const uint8_t *data, size_t size, size_t head_split)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, socket_path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        abort();
    /* The first bytes may arrive in two reads: a few, then the rest. */
    size_t first = head_split < size ? head_split : size;
    write_all(fd, data, first);
    ingest_read_available(streams);
    write_all(fd, data + first, size - first);
    shutdown(fd, SHUT_WR);
    /* The connection ends at once: its bytes are all there, then EOF. */
    ingest_read_available(streams);
    if (ingest_connections(streams) != 0)
        abort();
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0];
    data++;
    size--;
    if (split > size)
        split = size;
    parse_direct(data, size, split);
    through_streams(data, size, split % 4);
    proc_table_free(table);
    table = proc_table_new();
    /* The streams keeps its table: a fresh one per input needs a fresh
     * streams too. */
    ingest_close(streams);
    char err[256];
    streams = ingest_open(socket_path, table, err, sizeof err);
    if (!streams)
        abort();
    struct ingest_hooks hooks = {.control_magic = CONTROL_MAGIC, .control = on_control};
    ingest_set_hooks(streams, &hooks);
    return 0;
}

static void write_seed(const char *dir, const char *name, uint8_t split, uint32_t version,
                       uint32_t command, uint32_t pid, uint32_t dir_len, const char *path)
{
    char file[4096];
    snprintf(file, sizeof file, "%s/%s", dir, name);
    FILE *f = fopen(file, "wb");
    if (!f)
        return;
    uint32_t words[5] = {CONTROL_MAGIC, version, command, pid, dir_len};
    fwrite(&split, 1, 1, f);
    fwrite(words, sizeof words, 1, f); /* little-endian machines only, as the protocol */
    fwrite(path, 1, strlen(path), f);
    fclose(f);
}

static void write_seeds(const char *dir)
{
    write_seed(dir, "snapshot", 20, 1, CONTROL_SNAPSHOT, 0, 8, "/tmp/out");
    write_seed(dir, "snapshot-split", 3, 1, CONTROL_SNAPSHOT, 1234, 8, "/tmp/out");
    write_seed(dir, "snapshot-long", 255, 1, CONTROL_SNAPSHOT, 7, 12, "/var/tmp/ppx");
    write_seed(dir, "relative", 9, 1, CONTROL_SNAPSHOT, 0, 3, "out");
    write_seed(dir, "version", 0, 2, CONTROL_SNAPSHOT, 0, 1, "/");
    write_seed(dir, "trailing", 40, 1, CONTROL_SNAPSHOT, 0, 2, "/a/b/c");
    char file[4096];
    snprintf(file, sizeof file, "%s/hello", dir);
    FILE *f = fopen(file, "wb");
    if (f) {
        const uint8_t hello[] = {4, 1, 0, 0, 0, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
        fwrite(hello, sizeof hello, 1, f);
        fclose(f);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("PPX_FUZZ_SEEDS");
    if (dir && *dir)
        write_seeds(dir);
    snprintf(socket_dir, sizeof socket_dir, "/tmp/ppx-fuzz-control.XXXXXX");
    if (!mkdtemp(socket_dir))
        abort();
    snprintf(socket_path, sizeof socket_path, "%s/s", socket_dir);
    atexit(remove_socket);
    table = proc_table_new();
    char err[256];
    streams = ingest_open(socket_path, table, err, sizeof err);
    if (!streams) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    struct ingest_hooks hooks = {.control_magic = CONTROL_MAGIC, .control = on_control};
    ingest_set_hooks(streams, &hooks);
    return 0;
}
