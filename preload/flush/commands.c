/* Commands from the collector (wire.h: flush now, start or stop CPU
 * sampling, a thread dump), read without blocking whenever the flusher wakes on the
 * socket. Each is checked (a bad one drops the connection) and run. */
#include "flush.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* Commands read so far: at most one partial one, plus a read. Under
 * stream_mu (the flusher, or the exit and exec flushes). */
#define CMD_BUF 256u
#define CMDS_PER_WAKE 64u
static unsigned char cmd_buf[CMD_BUF];
static size_t cmd_len;

void ppx_commands_reset(void)
{
    cmd_len = 0;
}

static void command_refused(const char *why)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    ppx_log_once(&said, "bad command from the collector (", why, "); reconnecting", NULL);
    ppx_flush_disconnect();
}

/* WIRE_CMD_CPU: sample at the rate asked (0: stop). */
static bool run_cpu_command(const unsigned char *payload)
{
    struct wire_cmd_cpu c;
    memcpy(&c, payload, sizeof c);
    if (c.hz > WIRE_MAX_CPU_HZ || c.reserved != 0) {
        command_refused("CPU rate out of range");
        return false;
    }
    /* The samples of one record share a rate: those at the old one go
     * out before sampling at a new one starts. */
    uint32_t old = ppx_cpu_sample_hz();
    if (c.hz != 0 && old != 0 && c.hz != old) {
        ppx_cpu_set_rate(0);
        ppx_flush_locked();
        if (!ppx_stream_connected())
            return false;
    }
    ppx_cpu_set_rate(c.hz);
    return true;
}

/* WIRE_CMD_FLUSH: flush now, then say FLUSHED with the command's number. */
static bool run_flush_command(const unsigned char *payload)
{
    struct wire_cmd_flush f;
    memcpy(&f, payload, sizeof f);
    uint64_t gen = ppx_stream_generation();
    ppx_flush_locked();
    if (!ppx_stream_connected() || ppx_stream_generation() != gen)
        return false;
    struct wire_flushed done = {f.seq};
    if (!ppx_emit(ppx_stream_encoder(), WIRE_FLUSHED, &done, sizeof done, NULL, 0, NULL, 0) ||
        !ppx_encoder_flush(ppx_stream_encoder())) {
        ppx_flush_disconnect();
        ppx_stream_encoder_reset();
        return false;
    }
    return true;
}

/* WIRE_CMD_TASKS: every thread's stack now (cpu/task_dump.c), then a
 * flush, so that the mappings the stacks need are there, then the dump.
 * A longer payload carries the state-threads layout (wire.h). */
static bool run_tasks_command(const unsigned char *payload, uint32_t length)
{
    struct wire_cmd_tasks c;
    memcpy(&c, payload, sizeof c);
    struct wire_st_layout layout;
    bool has_layout = length == sizeof c + sizeof layout;
    if (has_layout)
        memcpy(&layout, payload + sizeof c, sizeof layout);
    uint64_t started = ppx_monotonic_ns();
    uint64_t gen = ppx_stream_generation();
    ppx_task_dump_take(has_layout ? &layout : NULL);
    ppx_flush_locked();
    if (!ppx_stream_connected() || ppx_stream_generation() != gen)
        return false;
    if (!ppx_task_dump_send(ppx_stream_encoder(), c.seq, started) ||
        !ppx_encoder_flush(ppx_stream_encoder())) {
        ppx_flush_disconnect();
        ppx_stream_encoder_reset();
        return false;
    }
    return true;
}

/* Acts on one complete, checked command; false when the connection went. */
static bool run_command(uint32_t type, uint32_t length, const unsigned char *payload)
{
    switch (type) {
    case WIRE_CMD_CPU:
        return run_cpu_command(payload);
    case WIRE_CMD_TASKS:
        return run_tasks_command(payload, length);
    default:
        return run_flush_command(payload);
    }
}

/* Runs the complete commands in cmd_buf; false when the connection went. */
static bool run_buffered_commands(unsigned *budget)
{
    size_t at = 0;
    bool ok = true;
    while (ok && cmd_len - at >= sizeof(struct wire_header) && *budget > 0) {
        struct wire_header h;
        memcpy(&h, cmd_buf + at, sizeof h);
        size_t want = h.type == WIRE_CMD_FLUSH   ? sizeof(struct wire_cmd_flush)
                      : h.type == WIRE_CMD_CPU   ? sizeof(struct wire_cmd_cpu)
                      : h.type == WIRE_CMD_TASKS ? sizeof(struct wire_cmd_tasks)
                                                 : SIZE_MAX;
        /* a dump may carry a state-threads layout */
        if (h.type == WIRE_CMD_TASKS && h.length == want + sizeof(struct wire_st_layout))
            want = h.length;
        if (want == SIZE_MAX || h.length != want) {
            command_refused(want == SIZE_MAX ? "unknown type" : "wrong length");
            return false;
        }
        if (cmd_len - at < sizeof h + want)
            break;
        (*budget)--;
        ok = run_command(h.type, h.length, cmd_buf + at + sizeof h);
        at += sizeof h + want;
    }
    if (!ok || !ppx_stream_connected())
        return false;
    memmove(cmd_buf, cmd_buf + at, cmd_len - at);
    cmd_len -= at;
    return true;
}

/* Reads and runs what the collector sent, without waiting; with stream_mu
 * and state_mu held. A flood is cut at CMDS_PER_WAKE: the rest waits for
 * the next wake. */
void ppx_flush_read_commands(void)
{
    unsigned budget = CMDS_PER_WAKE;
    /* Those left by the last wake first: then cmd_buf holds less than one
     * command, and has room for the read. */
    if (!run_buffered_commands(&budget))
        return;
    while (ppx_stream_connected() && budget > 0) {
        if (!ppx_stream_still_ours()) {
            ppx_stream_forget();
            return;
        }
        ssize_t n =
            recv(ppx_stream_socket(), cmd_buf + cmd_len, sizeof cmd_buf - cmd_len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            ppx_flush_disconnect(); /* the collector went */
            return;
        }
        cmd_len += (size_t)n;
        if (!run_buffered_commands(&budget))
            return;
    }
}
