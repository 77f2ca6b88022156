/* The connection to the collector and the background flusher (wire.h).
 *
 * Every PPX_FLUSH_MS the flusher thread connects if it is not connected (a
 * new connection starts with HELLO and the full state), then sends new
 * mappings, and for every stack whose counters moved: its STACK record the
 * first time on this connection, then its delta in a HEAP_DELTA record.
 * Stacks with nothing counted are never sent. Then the threads
 * (threads.c): THREAD records of new or changed threads. Then the I/O audit
 * (io_sites.c): new sites, their deltas, and the sampled stacks. Then the
 * CPU profile (cpu.c): the rings of SIGPROF samples drained, CPU_SAMPLES.
 * The destructor does a last, bounded flush and says GOODBYE.
 *
 * While connected, the flusher sleeps in poll() on the socket, so that a
 * command from the collector (wire.h: flush now, start or stop CPU
 * sampling) wakes it at once; it reads commands without blocking, checks
 * each (a bad one drops the connection) and acts. Unconnected, it sleeps
 * on stream_cv. The destructor wakes a poll()ing flusher by shutting the
 * socket's reading side.
 *
 * Before a byte goes out, the socket's directory and the listener's uid
 * are checked (socket_trust.c): a HELLO carries the command line.
 *
 * The socket must not disturb the program: close-on-exec, moved out of the
 * program's descriptor range (fd_place.c), MSG_NOSIGNAL, a send timeout,
 * and verified (device, inode) before each write, because daemons close or
 * dup2 over descriptors they do not know. A descriptor that is not ours
 * any more is forgotten, not closed; one the program read or wrote itself
 * (the I/O hooks tell) is dropped, and a new connection resends it all.
 * With no collector listening there is no socket at all: only a stat() per
 * interval, and no message.
 *
 * The flusher thread starts only once there is a collector: at start if one
 * took the connection (ppx_stream_begin), else when a sampled allocation
 * finds its socket, looking at most once a second (ppx_stream_start_if_due).
 * A process without one stays as single-threaded as the program made it;
 * the exit flush needs no thread. When the program's last thread ends, the
 * flusher ends first (ppx_stream_last_thread_ending), so that glibc's exit
 * runs on the program's thread.
 *
 * Two locks. stream_mu: one user of the connection at a time (the
 * flusher, the exit and exec flushes), held across sends. state_mu: the
 * stream's state (the encoder, what was sent on this connection), taken by
 * fork's prepare handler (ppx_stream_lock) so that the child copies it
 * whole; whoever holds stream_mu holds state_mu too, except while it waits
 * on the collector (a send, poll, the condition wait). A stopped or slow
 * collector therefore never stalls fork(): the child never uses the
 * parent's connection, and starts its stream afresh. Order: stream_mu,
 * then state_mu. */
#include "../ppx_preload.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define OUT_CAPACITY (1u << 20)
#define DELTA_CAPACITY 8192u /* entries per HEAP_DELTA record */
#define SEND_TIMEOUT_S 2
#define FINAL_FLUSH_BUDGET_NS (5ull * 1000000000ull)
#define JOIN_BUDGET_NS (2ull * 1000000000ull)
#define FLUSHER_STACK (512u * 1024u)
#define COLLECTOR_CHECK_NS 1000000000ull /* a process without a flusher looks at most once a second */

struct ppx_encoder {
    unsigned char *out;
    size_t out_len;
    struct wire_heap_entry *entries;
    size_t n_entries;
    uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0: none */
    bool failed;
};

static pthread_mutex_t stream_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stream_cv;
static pthread_t flusher;
static bool flusher_running; /* under stream_mu */
static bool stopping;        /* under stream_mu: set by the destructor */
static bool silenced;        /* this process sends nothing (ppx_stream_disable_child) */
static bool exec_pending;    /* under stream_mu: GOODBYE sent, exec under way */
static bool final_round;     /* under stream_mu: the exit or exec flush is under way */
atomic_bool ppx_stream_start_pending;
static _Atomic uint64_t start_check_ns; /* CLOCK_MONOTONIC: the next look for a collector */

static struct ppx_encoder encoder;
static int sock = -1;
static dev_t sock_dev;
static ino_t sock_ino;
static pid_t sock_pid; /* the process that connected */
static uint64_t generation; /* of the current connection; 0: none yet */
/* While the exit or exec flush writes a spool file (spool.c), instead of
 * the socket: its descriptor and the bytes it may still take. */
static int spool_fd = -1;
static uint64_t spool_room;

/* Commands read so far (wire.h): at most one partial one, plus a read. */
#define CMD_BUF 64u
#define CMDS_PER_WAKE 64u
static unsigned char cmd_buf[CMD_BUF];
static size_t cmd_len;

static char cmdline[WIRE_MAX_PATH];
static size_t cmdline_len;
static bool have_cmdline;

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void init_cond(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&stream_cv, &attr);
    pthread_condattr_destroy(&attr);
}

void ppx_stream_init(void)
{
    init_cond();
}

static void stream_enter(void)
{
    pthread_mutex_lock(&stream_mu);
    pthread_mutex_lock(&state_mu);
}

static void stream_leave(void)
{
    pthread_mutex_unlock(&state_mu);
    pthread_mutex_unlock(&stream_mu);
}

void ppx_stream_set_cmdline(int argc, char **argv)
{
    size_t len = 0;
    for (int i = 0; argv != NULL && i < argc && argv[i] != NULL && len < sizeof cmdline; i++) {
        size_t n = strlen(argv[i]) + 1;
        if (n > sizeof cmdline - len)
            n = sizeof cmdline - len; /* truncated, as WIRE_MAX_PATH demands */
        memcpy(cmdline + len, argv[i], n);
        len += n;
    }
    cmdline_len = len;
    have_cmdline = argv != NULL;
}

static size_t read_proc_cmdline(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t len = 0;
    while (len < sizeof cmdline) {
        ssize_t n = read(fd, cmdline + len, sizeof cmdline - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    return len;
}

/* ---- the socket ---- */

/* The descriptor still is the socket we connected (the program may have
 * closed it, or dup2'ed something over it). */
static bool socket_fd_is_ours(void)
{
    struct stat st;
    return sock >= 0 && fstat(sock, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == sock_dev &&
           st.st_ino == sock_ino;
}

/* ...and this is the process that connected it: one made by a raw clone()
 * (no fork handlers) shares the connection with its parent, and must not
 * write there, nor close it (with CLONE_FILES that would close the
 * parent's). */
static bool socket_still_ours(void)
{
    return getpid() == sock_pid && socket_fd_is_ours();
}

static void disconnect(void)
{
    if (socket_still_ours())
        close(sock);
    sock = -1;
    cmd_len = 0;
    ppx_cpu_set_rate(0); /* whoever asked for CPU samples is gone */
}

/* Whether the collector closed its end. The target only writes, so a
 * collector that died unnoticed would otherwise be found out only by the
 * next send, and an idle target would never reach a restarted one. */
static bool peer_closed(void)
{
    char c;
    ssize_t n = recv(sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* To the spool file instead of a socket, within its room. */
static bool spool_all(const unsigned char *p, size_t len)
{
    if (len > spool_room)
        return false;
    spool_room -= len;
    while (len > 0) {
        ssize_t n = write(spool_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool send_all(const void *data, size_t len)
{
    const unsigned char *p = data;
    if (spool_fd >= 0)
        return spool_all(p, len);
    if (!socket_still_ours()) {
        sock = -1; /* closed or replaced by the program: not ours to close */
        return false;
    }
    while (len > 0) {
        if (encoder.deadline_ns != 0 && monotonic_ns() > encoder.deadline_ns)
            return false;
        /* a fork may go on meanwhile: what is being sent is the parent's */
        pthread_mutex_unlock(&state_mu);
        ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
        int err = errno;
        pthread_mutex_lock(&state_mu);
        errno = err;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false; /* EPIPE, timeout (EAGAIN), anything: give up this connection */
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool out_flush(struct ppx_encoder *enc)
{
    if (enc->failed)
        return false;
    if (enc->out_len > 0 && !send_all(enc->out, enc->out_len))
        enc->failed = true;
    enc->out_len = 0;
    return !enc->failed;
}

bool ppx_emit(struct ppx_encoder *enc, uint32_t type, const void *a, size_t alen, const void *b,
              size_t blen, const void *c, size_t clen)
{
    size_t payload = alen + blen + clen;
    size_t total = sizeof(struct wire_header) + payload;
    if (enc->failed || payload > WIRE_MAX_RECORD || total > OUT_CAPACITY)
        return false;
    if (enc->out_len + total > OUT_CAPACITY && !out_flush(enc))
        return false;
    struct wire_header h = {type, (uint32_t)payload};
    unsigned char *dst = enc->out + enc->out_len;
    memcpy(dst, &h, sizeof h);
    dst += sizeof h;
    if (alen > 0)
        memcpy(dst, a, alen);
    if (blen > 0)
        memcpy(dst + alen, b, blen);
    if (clen > 0)
        memcpy(dst + alen + blen, c, clen);
    enc->out_len += total;
    return true;
}

/* Nothing pending, nothing failed: for a new stream, or after a failed one. */
static void encoder_reset(void)
{
    encoder.out_len = 0;
    encoder.n_entries = 0;
    encoder.failed = false;
}

static bool buffers_ready(void)
{
    if (encoder.out == NULL)
        encoder.out = ppx_pages_alloc(OUT_CAPACITY);
    if (encoder.entries == NULL)
        encoder.entries = ppx_pages_alloc(DELTA_CAPACITY * sizeof *encoder.entries);
    return encoder.out != NULL && encoder.entries != NULL;
}

static bool send_hello(void)
{
    static char exe[WIRE_MAX_PATH + 1];
    size_t exe_len = ppx_exe_path(exe, sizeof exe);
    if (!have_cmdline) {
        cmdline_len = read_proc_cmdline();
        have_cmdline = true;
    }
    struct wire_hello h = {
        .magic = WIRE_MAGIC,
        .version = WIRE_VERSION,
        .pid = (uint32_t)getpid(),
        .ppid = (uint32_t)getppid(),
        .start_ns = ppx_start_ns,
        .sample_rate = ppx_config.sample_rate,
        .max_depth = ppx_config.max_depth,
        .exe_len = (uint32_t)exe_len,
        .cmdline_len = (uint32_t)cmdline_len,
        .flags = ppx_config.cpu_hz_fixed ? WIRE_HELLO_CPU_FIXED : 0,
    };
    return ppx_emit(&encoder, WIRE_HELLO, &h, sizeof h, exe, exe_len, cmdline, cmdline_len);
}

atomic_int ppx_stream_fd = -1;
static atomic_bool program_touched_stream;

void ppx_stream_program_touched(void)
{
    atomic_store_explicit(&program_touched_stream, true, memory_order_relaxed);
}

/* The program read or wrote our connection's descriptor since it was
 * made: its bytes may sit in the middle of the stream (the collector then
 * closes it as corrupt), or it took the collector's commands. Closed, so
 * that the next connection starts clean with a HELLO and the whole state,
 * and its figures are right again, rather than trusting what the
 * collector may or may not have decoded. Nothing said here: the collector
 * says what it saw, and a program that writes into every descriptor is
 * one whose stderr may not be a terminal either. */
static void drop_if_program_touched(void)
{
    if (sock >= 0 && atomic_load_explicit(&program_touched_stream, memory_order_relaxed))
        disconnect();
}

/* The socket file whose listener was refused (socket_trust.c): not
 * connected to again, so that a planted socket costs one connection, not
 * one per interval; a collector started afresh binds a new one. */
static bool refused_socket;
static dev_t refused_dev;
static ino_t refused_ino;

static bool socket_was_refused(const struct stat *st)
{
    return refused_socket && st->st_dev == refused_dev && st->st_ino == refused_ino;
}

static void remember_refused(const struct stat *st)
{
    refused_socket = true;
    refused_dev = st->st_dev;
    refused_ino = st->st_ino;
}

/* Connects if a collector we may trust is listening; quietly false if
 * none is, false with a message (once) if the socket is not to be
 * trusted. Not a byte is sent before both checks passed. */
static bool try_connect(void)
{
    const char *path = ppx_config.socket_path;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return false; /* nobody listening: do not even take a descriptor */
    if (socket_was_refused(&st) || !ppx_socket_dir_trusted(path))
        return false;
    if (!buffers_ready())
        return false;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, strlen(path)); /* checked shorter than sun_path */
    /* non-blocking: a collector with a full backlog means "later", not a hang */
    if (connect(fd, (const struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return false;
    }
    if (!ppx_socket_peer_trusted(fd, path)) {
        remember_refused(&st);
        close(fd);
        return false;
    }
    fd = ppx_fd_above_limit(fd);
    int flags = fcntl(fd, F_GETFL);
    struct timeval timeout = {SEND_TIMEOUT_S, 0};
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) != 0 ||
        fstat(fd, &st) != 0) {
        close(fd);
        return false;
    }
    sock = fd;
    sock_pid = getpid();
    sock_dev = st.st_dev;
    sock_ino = st.st_ino;
    atomic_store_explicit(&program_touched_stream, false, memory_order_relaxed);
    atomic_store_explicit(&ppx_stream_fd, fd, memory_order_relaxed);
    generation++;
    encoder_reset();
    cmd_len = 0;
    /* a new collector has asked for no CPU samples (yet) */
    ppx_cpu_set_rate(0);
    return send_hello();
}

/* ---- one flush ---- */

static bool flush_entries(struct ppx_encoder *enc)
{
    if (enc->n_entries == 0)
        return !enc->failed;
    struct wire_heap_delta d = {(uint32_t)enc->n_entries, 0};
    bool ok = ppx_emit(enc, WIRE_HEAP_DELTA, &d, sizeof d, enc->entries,
                       enc->n_entries * sizeof *enc->entries, NULL, 0);
    enc->n_entries = 0;
    return ok;
}

/* Sets s's figures already sent on this connection to zero. */
static bool emit_stack(struct ppx_encoder *enc, struct ppx_stack *s)
{
    struct wire_stack ws = {s->id, s->depth};
    if (!ppx_emit(enc, WIRE_STACK, &ws, sizeof ws, s->pcs, s->depth * sizeof s->pcs[0], NULL, 0))
        return false;
    s->sent_generation = generation;
    s->sent_alloc_objects = s->sent_alloc_bytes = 0;
    s->sent_free_objects = s->sent_free_bytes = 0;
    return true;
}

/* For IO_STACKS: a stack sampled only by I/O calls has no heap figures,
 * and goes out when an I/O record names it. */
bool ppx_stream_send_stack(struct ppx_encoder *enc, struct ppx_stack *s)
{
    return s->sent_generation == generation || emit_stack(enc, s);
}

/* Appends s's change since the last delta on this connection; its STACK
 * record first if this connection has not seen it (the HEAP_DELTA carrying
 * the entry is emitted after it). */
static bool encode_stack(struct ppx_encoder *enc, struct ppx_stack *s)
{
    /* frees before allocations: a free is never counted before its alloc */
    uint64_t fo = atomic_load_explicit(&s->free_objects, memory_order_seq_cst);
    uint64_t fb = atomic_load_explicit(&s->free_bytes, memory_order_seq_cst);
    uint64_t ao = atomic_load_explicit(&s->alloc_objects, memory_order_seq_cst);
    uint64_t ab = atomic_load_explicit(&s->alloc_bytes, memory_order_seq_cst);
    if (s->sent_generation != generation) {
        if (ao == 0 && ab == 0 && fo == 0 && fb == 0)
            return true;
        if (!emit_stack(enc, s))
            return false;
    }
    if (ao == s->sent_alloc_objects && ab == s->sent_alloc_bytes && fo == s->sent_free_objects &&
        fb == s->sent_free_bytes)
        return true;
    enc->entries[enc->n_entries++] = (struct wire_heap_entry){
        .stack_id = s->id,
        .reserved = 0,
        .alloc_objects = ao - s->sent_alloc_objects,
        .alloc_bytes = ab - s->sent_alloc_bytes,
        .free_objects = fo - s->sent_free_objects,
        .free_bytes = fb - s->sent_free_bytes,
    };
    s->sent_alloc_objects = ao;
    s->sent_alloc_bytes = ab;
    s->sent_free_objects = fo;
    s->sent_free_bytes = fb;
    if (enc->n_entries == DELTA_CAPACITY)
        return flush_entries(enc);
    return true;
}

static bool send_dirty(struct ppx_encoder *enc, uint32_t n_stacks)
{
    struct ppx_stack *list = ppx_stacks_take_dirty();
    while (list != NULL) {
        struct ppx_stack *s = list;
        list = s->dirty_next;
        if (s->id >= n_stacks || enc->failed) {
            ppx_stacks_requeue(s); /* still flagged dirty: next time */
            continue;
        }
        /* clear, then read (pairs with mark_dirty's add-then-check) */
        atomic_store_explicit(&s->dirty, 0, memory_order_seq_cst);
        if (!encode_stack(enc, s))
            enc->failed = true;
    }
    return !enc->failed;
}

static bool send_state(struct ppx_encoder *enc, bool fresh);

static void flush_locked(void)
{
    if (silenced || exec_pending)
        return;
    ppx_unwind_check_fds();
    bool fresh = false;
    if (sock >= 0 && !socket_still_ours())
        sock = -1;
    drop_if_program_touched();
    /* (not once stopping: the destructor shut the reading side itself) */
    if (sock >= 0 && !stopping && peer_closed())
        disconnect();
    if (sock < 0) {
        if (!try_connect()) {
            disconnect();
            return;
        }
        fresh = true;
    }
    if (!send_state(&encoder, fresh)) {
        disconnect();
        encoder_reset();
    }
}

/* Everything that changed since the last flush on this connection (all
 * of it on a fresh one), written out. */
static bool send_state(struct ppx_encoder *enc, bool fresh)
{
    /* Stacks interned after this point may use code loaded after the scan
     * below; they wait for the next flush, so a MAPPING always precedes the
     * STACKs that need it. */
    uint32_t n_stacks = ppx_stacks_count();
    struct ppx_io_snapshot io;
    ppx_io_snapshot(&io); /* sites likewise: their caller may be new code */
    bool ok = ppx_mappings_send(enc, generation, fresh);
    if (ok && fresh) {
        for (uint32_t id = 0; id < n_stacks && ok; id++) {
            struct ppx_stack *s = ppx_stack_get(id);
            if (s != NULL)
                ok = encode_stack(enc, s);
        }
    }
    if (ok)
        ok = send_dirty(enc, n_stacks); /* on failure the rest of the list is requeued */
    if (ok)
        ok = ppx_threads_send(enc, generation, n_stacks); /* before the CPU samples naming them */
    if (ok)
        ok = ppx_io_send(enc, generation, n_stacks, &io);
    if (ok)
        ok = ppx_cpu_send(enc, generation); /* after the THREAD records its samples name */
    return ok && flush_entries(enc) && out_flush(enc);
}

/* ---- commands from the collector ---- */

static void command_refused(const char *why)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    ppx_log_once(&said, "bad command from the collector (", why, "); reconnecting", NULL);
    disconnect();
}

/* Acts on one complete, checked command; false when the connection went. */
static bool run_command(uint32_t type, const unsigned char *payload)
{
    if (type == WIRE_CMD_CPU) {
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
            flush_locked();
            if (sock < 0)
                return false;
        }
        ppx_cpu_set_rate(c.hz);
        return true;
    }
    struct wire_cmd_flush f;
    memcpy(&f, payload, sizeof f);
    uint64_t gen = generation;
    flush_locked();
    if (sock < 0 || generation != gen)
        return false;
    struct wire_flushed done = {f.seq};
    if (!ppx_emit(&encoder, WIRE_FLUSHED, &done, sizeof done, NULL, 0, NULL, 0) ||
        !out_flush(&encoder)) {
        disconnect();
        encoder_reset();
        return false;
    }
    return true;
}

/* Runs the complete commands in cmd_buf; false when the connection went. */
static bool run_buffered_commands(unsigned *budget)
{
    size_t at = 0;
    bool ok = true;
    while (ok && cmd_len - at >= sizeof(struct wire_header) && *budget > 0) {
        struct wire_header h;
        memcpy(&h, cmd_buf + at, sizeof h);
        size_t want = h.type == WIRE_CMD_FLUSH ? sizeof(struct wire_cmd_flush)
                      : h.type == WIRE_CMD_CPU ? sizeof(struct wire_cmd_cpu)
                                               : SIZE_MAX;
        if (want == SIZE_MAX || h.length != want) {
            command_refused(want == SIZE_MAX ? "unknown type" : "wrong length");
            return false;
        }
        if (cmd_len - at < sizeof h + want)
            break;
        (*budget)--;
        ok = run_command(h.type, cmd_buf + at + sizeof h);
        at += sizeof h + want;
    }
    if (!ok || sock < 0)
        return false;
    memmove(cmd_buf, cmd_buf + at, cmd_len - at);
    cmd_len -= at;
    return true;
}

/* Reads and runs what the collector sent, without waiting; with stream_mu
 * and state_mu held. A flood is cut at CMDS_PER_WAKE: the rest waits for
 * the next wake. */
static void read_commands(void)
{
    unsigned budget = CMDS_PER_WAKE;
    /* Those left by the last wake first: then cmd_buf holds less than one
     * command, and has room for the read. */
    if (!run_buffered_commands(&budget))
        return;
    while (sock >= 0 && budget > 0) {
        if (!socket_still_ours()) {
            sock = -1;
            return;
        }
        ssize_t n = recv(sock, cmd_buf + cmd_len, sizeof cmd_buf - cmd_len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            disconnect(); /* the collector went */
            return;
        }
        cmd_len += (size_t)n;
        if (!run_buffered_commands(&budget))
            return;
    }
}

/* Sleeps until wake (CLOCK_MONOTONIC ns), running the collector's commands
 * as they come; with stream_mu and state_mu held, released while asleep. */
static void flusher_sleep(uint64_t wake)
{
    while (!stopping) {
        uint64_t now = monotonic_ns();
        if (now >= wake)
            return;
        if (sock >= 0 && socket_still_ours() && !exec_pending) {
            struct pollfd pfd = {.fd = sock, .events = POLLIN};
            uint64_t left_ms = (wake - now + 999999u) / 1000000u;
            stream_leave();
            int rc = poll(&pfd, 1, left_ms > INT32_MAX ? INT32_MAX : (int)left_ms);
            stream_enter();
            if (rc > 0 && !stopping && !exec_pending && sock >= 0)
                read_commands();
            continue;
        }
        struct timespec deadline = {(time_t)(wake / 1000000000ull), (long)(wake % 1000000000ull)};
        pthread_mutex_unlock(&state_mu);
        int rc = pthread_cond_timedwait(&stream_cv, &stream_mu, &deadline);
        pthread_mutex_lock(&state_mu);
        if (rc == ETIMEDOUT)
            return;
    }
}

/* ---- the flusher thread ---- */

static void flush_and_say_goodbye(void);

static void *flusher_main(void *arg)
{
    (void)arg;
    ppx_thread.guard++; /* for good: nothing this thread does is profiled */
    prctl(PR_SET_NAME, "ppx-flusher", 0, 0, 0);
    /* Threads that existed before us get their records and CPU timers now
     * (not under stream_mu: it may wait for threads being started). */
    ppx_threads_scan();
    stream_enter();
    while (!stopping) {
        flusher_sleep(monotonic_ns() + (uint64_t)ppx_config.flush_ms * 1000000ull);
        if (stopping)
            break;
        flush_locked();
        if (ppx_threads_none_left()) {
            /* main called pthread_exit and the program's last thread has
             * gone: glibc would exit now, were this thread not one too.
             * Our destructor does nothing on this thread: flush here. */
            stopping = true;
            flush_and_say_goodbye();
            flusher_running = false;
            stream_leave();
            exit(0);
        }
    }
    stream_leave();
    return NULL;
}

/* Say HELLO (and the mappings) before main() runs, so the collector knows
 * this process even if it dies at once. Without a collector this is one
 * stat(). Whether a collector took it. */
static bool connect_now(void)
{
    stream_enter();
    flush_locked();
    bool connected = sock >= 0;
    stream_leave();
    return connected;
}

static void start_flusher(void)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    stream_enter();
    if (!flusher_running && !stopping) {
        /* Every signal blocked: the program's signals never land on our thread. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, FLUSHER_STACK);
        int rc = pthread_create(&flusher, &attr, flusher_main, NULL);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == 0)
            flusher_running = true;
        else
            ppx_log_once(&said, "cannot start the flusher thread: ", strerror(rc),
                         "; data is sent at exit only", NULL);
    }
    stream_leave();
}

/* The flusher starts from the allocation slow path once a collector's
 * socket is there, looked for from after_ns on (ppx_stream_start_if_due). */
void ppx_stream_start_later(uint64_t after_ns)
{
    atomic_store_explicit(&start_check_ns, after_ns, memory_order_relaxed);
    atomic_store_explicit(&ppx_stream_start_pending, true, memory_order_release);
}

/* Whether a collector's socket is there. A stale one (a collector killed)
 * starts a flusher that finds nobody: it then looks every interval, as it
 * does after a collector went away. */
static bool collector_socket_exists(void)
{
    struct stat st;
    return stat(ppx_config.socket_path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* From the constructor. No thread without a collector to talk to: a
 * process with one thread stays single-threaded (unshare(CLONE_NEWUSER)
 * and the like need it), and its state goes out at exit (or to a spool
 * file); the flusher starts when a collector shows up. */
void ppx_stream_begin(void)
{
    struct ppx_thread *t = &ppx_thread;
    int saved_errno = errno;
    t->guard++;
    if (connect_now())
        start_flusher();
    else
        ppx_stream_start_later(monotonic_ns() + COLLECTOR_CHECK_NS);
    t->guard--;
    errno = saved_errno;
}

/* From the allocation slow path, on the program's threads (never in a
 * signal handler: malloc is not async-signal-safe). A forked child looks
 * one interval after the fork: one that execs (or exits) at once never pays
 * for a thread, and one that lives on is flushed like its parent. */
void ppx_stream_start_if_due(void)
{
    if (PPX_LIKELY(!atomic_load_explicit(&ppx_stream_start_pending, memory_order_relaxed)))
        return;
    uint64_t now = monotonic_ns();
    if (now < atomic_load_explicit(&start_check_ns, memory_order_relaxed) ||
        !atomic_exchange_explicit(&ppx_stream_start_pending, false, memory_order_acq_rel))
        return;
    struct ppx_thread *t = &ppx_thread;
    int saved_errno = errno;
    t->guard++;
    if (collector_socket_exists())
        start_flusher();
    else
        ppx_stream_start_later(now + COLLECTOR_CHECK_NS);
    t->guard--;
    errno = saved_errno;
}

/* Waits for the flusher to end (stopping set, and woken), within a budget:
 * one stuck in a send gives up at its timeout. */
static void join_flusher(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t until = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec + JOIN_BUDGET_NS;
    struct timespec deadline = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
    pthread_timedjoin_np(flusher, NULL, &deadline);
}

/* Stops the flusher for good (stream_mu and state_mu held); whether there
 * is one to join. */
static bool stop_flusher_locked(void)
{
    stopping = true;
    atomic_store_explicit(&ppx_stream_start_pending, false, memory_order_relaxed);
    pthread_cond_broadcast(&stream_cv);
    /* a flusher in poll() on the socket: readable (end of stream) now */
    if (sock >= 0 && socket_still_ours())
        shutdown(sock, SHUT_RD);
    bool join = flusher_running;
    flusher_running = false;
    return join;
}

/* The program's last thread is ending, on that thread (threads.c). glibc
 * ends the process when its last thread ends: that must be this one, as
 * without ppx (its atexit handlers run here, at once), so the flusher ends
 * first. The exit that follows sends the final state from this thread
 * (ppx_stream_shutdown). */
void ppx_stream_last_thread_ending(void)
{
    if (atomic_load_explicit(&ppx_state, memory_order_acquire) != PPX_READY ||
        getpid() != ppx_pid)
        return;
    int saved_errno = errno;
    ppx_thread.guard++;
    stream_enter();
    bool join = stop_flusher_locked();
    stream_leave();
    if (join)
        join_flusher();
    ppx_thread.guard--;
    errno = saved_errno;
}

/* No collector took the final state: it goes to a spool file, as a whole
 * stream of its own (HELLO, everything, GOODBYE); with stream_mu held. */
static void spool_final_state(void)
{
    if (!buffers_ready())
        return;
    int fd = ppx_spool_open(&spool_room);
    if (fd < 0)
        return;
    spool_fd = fd;
    generation++; /* a stream of its own: every stack and site from zero */
    encoder_reset();
    /* Twice, as for a connection (flush_and_say_goodbye). */
    bool ok = send_hello() && send_state(&encoder, true) && send_state(&encoder, false) &&
              ppx_emit(&encoder, WIRE_GOODBYE, NULL, 0, NULL, 0, NULL, 0) && out_flush(&encoder);
    spool_fd = -1;
    encoder_reset();
    ppx_spool_close(fd, ok);
}

/* Sends everything, then GOODBYE, and closes the connection; with
 * stream_mu held. When no collector is reachable, spools it instead. */
static void flush_and_say_goodbye(void)
{
    encoder.deadline_ns = monotonic_ns() + FINAL_FLUSH_BUDGET_NS;
    final_round = true;
    /* Twice: stacks interned during the first round (other threads run on)
     * wait for a round whose mapping scan follows them. */
    flush_locked();
    if (sock >= 0)
        flush_locked();
    if (sock >= 0) {
        if (ppx_emit(&encoder, WIRE_GOODBYE, NULL, 0, NULL, 0, NULL, 0))
            out_flush(&encoder);
        disconnect();
    } else if (!silenced && (ppx_stacks_any_counted() || ppx_io_any_counted())) {
        spool_final_state();
    }
    final_round = false;
    encoder.deadline_ns = 0;
}

bool ppx_stream_final_flush(void)
{
    return final_round;
}

/* Whether this thread of this process may run the exit or exec flush: not
 * from inside the profiler (a signal handler), not before initialisation,
 * not in a vfork child (it shares the parent's memory and connection). */
static bool may_flush_here(void)
{
    return atomic_load_explicit(&ppx_state, memory_order_acquire) == PPX_READY &&
           ppx_thread.guard == 0 && getpid() == ppx_pid;
}

void ppx_stream_before_exec(void)
{
    if (!may_flush_here())
        return;
    int saved_errno = errno;
    ppx_thread.guard++;
    stream_enter();
    /* Not connected and nothing counted (a child about to exec, typically):
     * no connection just to say nothing. */
    if (sock >= 0 || ppx_stacks_any_counted() || ppx_io_any_counted())
        flush_and_say_goodbye();
    exec_pending = true; /* the flusher must not reconnect before exec */
    stream_leave();
    ppx_thread.guard--;
    errno = saved_errno;
}

void ppx_stream_after_exec_failed(void)
{
    if (!may_flush_here())
        return;
    ppx_thread.guard++;
    stream_enter();
    exec_pending = false; /* the next flush reconnects and sends it all */
    stream_leave();
    ppx_thread.guard--;
}

void ppx_stream_shutdown(void)
{
    struct ppx_thread *t = &ppx_thread;
    if (!may_flush_here())
        return; /* exit() from inside the profiler, or from a vfork child */
    int saved_errno = errno;
    t->guard++;
    stream_enter();
    bool join = stop_flusher_locked();
    exec_pending = false; /* a failed exec that went unnoticed */
    flush_and_say_goodbye();
    stream_leave();
    if (join)
        join_flusher();
    t->guard--;
    errno = saved_errno;
}

/* fork's prepare and parent handlers: the state, not the connection. */
void ppx_stream_lock(void)
{
    pthread_mutex_lock(&state_mu);
}

void ppx_stream_unlock(void)
{
    pthread_mutex_unlock(&state_mu);
}

/* The child of fork: its own process, its own connection (the inherited one
 * is the parent's; our copy is closed, the parent's stays open), no
 * flusher yet (see ppx_stream_start_if_due). */
void ppx_stream_reset_child(void)
{
    pthread_mutex_init(&stream_mu, NULL); /* the parent's flusher may be sending */
    pthread_mutex_init(&state_mu, NULL);
    init_cond();
    /* fork copied the descriptor: closing the copy leaves the parent's
     * connection alone, and lets the collector see the parent's end when
     * the parent exits before us (daemons). */
    if (socket_fd_is_ours())
        close(sock);
    sock = -1;
    cmd_len = 0;
    encoder_reset();
    encoder.deadline_ns = 0;
    flusher_running = false;
    exec_pending = false;
    final_round = false; /* the parent's exit flush may have been sending */
    if (!stopping)
        ppx_stream_start_later(monotonic_ns() + (uint64_t)ppx_config.flush_ms * 1000000ull);
}

/* A child forked from inside the profiler (a signal handler): our copy of
 * the parent's connection goes, and this process sends nothing. */
void ppx_stream_disable_child(void)
{
    if (socket_fd_is_ours())
        close(sock);
    sock = -1;
    silenced = true;
    stopping = true;
    flusher_running = false;
    atomic_store_explicit(&ppx_stream_start_pending, false, memory_order_relaxed);
}
