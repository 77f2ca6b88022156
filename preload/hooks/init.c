/* Lifecycle of libppx.so: lazy initialisation (the hooks run long before
 * our constructor: libc and other libraries' constructors allocate first),
 * configuration from the environment, the constructor that connects (and
 * starts the flusher if a collector listens), the destructor that sends the last figures, and fork.
 *
 * Environment (an invalid value is reported once on stderr and the default
 * used):
 *   PPX_SAMPLE_RATE  mean bytes between samples, 1 = every allocation (524288)
 *   PPX_MAX_DEPTH    frames per stack, 1..256 (64)
 *   PPX_FLUSH_MS     milliseconds between sends, 1..3600000 (100)
 *   PPX_SOCKET       collector socket ($XDG_RUNTIME_DIR/ppx/ppx.sock, else
 *                    /tmp/ppx-<uid>/ppx.sock)
 *   PPX_SYSCALLS     0: the I/O hooks (read, write, send, recv, ...) only
 *                    pass through, nothing is counted; 1: counted (1)
 *   PPX_SYSCALL_SAMPLE  mean I/O calls between full stacks, per thread,
 *                    1..1000000000 (64); counts are exact regardless
 *   PPX_SYSCALL_STACKS  "all": a full stack for every I/O call (as
 *                    PPX_SYSCALL_SAMPLE=1); "sampled" (the default)
 *   PPX_CPU_HZ       CPU profile: SIGPROF ticks per second of each thread's
 *                    CPU time, 1..10000, 0 = off. Unset: off, and sampled
 *                    only while a collector asks (WIRE_CMD_CPU)
 *   PPX_SPOOL        1: a process that exits while no collector is reachable
 *                    leaves its final state in a spool file next to the socket
 *                    (spool.c); 0: it does not (1)
 *   PPX_SPOOL_MAX_MB all spool files together, 1..1048576 MiB (1024) */
#include "../ppx_preload.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLE_RATE (1ull << 40)
#define MAX_FLUSH_MS 3600000u
#define MAX_SYSCALL_SAMPLE 1000000000u
#define MAX_CPU_HZ WIRE_MAX_CPU_HZ
#define MAX_SPOOL_MB 1048576u
#define LOGGED_VALUE_MAX 200

struct ppx_config ppx_config = {
    .sample_rate = PPX_DEFAULT_SAMPLE_RATE,
    .max_depth = PPX_DEFAULT_MAX_DEPTH,
    .flush_ms = PPX_DEFAULT_FLUSH_MS,
    .syscalls = true,
    .syscall_sample = PPX_DEFAULT_SYSCALL_SAMPLE,
    .cpu_hz = PPX_DEFAULT_CPU_HZ,
    .spool = true,
    .spool_max_mb = PPX_DEFAULT_SPOOL_MB,
};
atomic_int ppx_state;
atomic_bool ppx_enabled;
uint64_t ppx_start_ns;
pid_t ppx_pid;

static bool fork_skipped; /* the forking thread was inside the profiler */

/* ---- messages ----
 *
 * Only to the stderr the process started with: a daemon that puts a data
 * file (or a socket) on fd 2 later must never find our text in it. The
 * file fd 2 was when the library started (device and inode) is kept, and
 * a message is written only while fd 2 is still that file; nothing is
 * written if fd 2 was closed then. */

enum { STDERR_UNKNOWN, STDERR_KNOWN, STDERR_NONE };
static _Atomic int stderr_state;
static dev_t stderr_dev;
static ino_t stderr_ino;

static bool stderr_identify(struct stat *st)
{
    return fstat(STDERR_FILENO, st) == 0;
}

/* Once, at the start (ppx_init), or at the first message if earlier. */
static void stderr_remember(void)
{
    if (atomic_load_explicit(&stderr_state, memory_order_acquire) != STDERR_UNKNOWN)
        return;
    int saved_errno = errno;
    struct stat st;
    if (stderr_identify(&st)) {
        stderr_dev = st.st_dev;
        stderr_ino = st.st_ino;
        atomic_store_explicit(&stderr_state, STDERR_KNOWN, memory_order_release);
    } else {
        atomic_store_explicit(&stderr_state, STDERR_NONE, memory_order_release);
    }
    errno = saved_errno;
}

static bool stderr_is_ours(void)
{
    stderr_remember();
    if (atomic_load_explicit(&stderr_state, memory_order_acquire) != STDERR_KNOWN)
        return false;
    struct stat st;
    return stderr_identify(&st) && st.st_dev == stderr_dev && st.st_ino == stderr_ino;
}

static void append(char *line, size_t cap, size_t *len, const char *part)
{
    size_t n = strlen(part);
    if (n > cap - *len)
        n = cap - *len;
    memcpy(line + *len, part, n);
    *len += n;
}

/* "ppx: " and the parts up to a NULL, as one write(2): no stdio, no malloc. */
static void log_list(const char *first, ...)
{
    char line[512];
    size_t len = 0;
    append(line, sizeof line - 1, &len, "ppx: ");
    va_list ap;
    va_start(ap, first);
    for (const char *part = first; part != NULL; part = va_arg(ap, const char *))
        append(line, sizeof line - 1, &len, part);
    va_end(ap);
    line[len++] = '\n';
    int saved_errno = errno;
    if (stderr_is_ours()) /* raw: not counted as the program's I/O */
        syscall(SYS_write, STDERR_FILENO, line, len);
    errno = saved_errno;
}

void ppx_log(const char *a, const char *b, const char *c, const char *d)
{
    log_list(a, b, c, d, (const char *)NULL);
}

void ppx_log_once(atomic_flag *once, const char *a, const char *b, const char *c, const char *d)
{
    if (!atomic_flag_test_and_set(once))
        ppx_log(a, b, c, d);
}

/* ---- configuration ---- */

void ppx_format_u64(uint64_t v, char *buf, size_t cap)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    size_t i = 0;
    while (n > 0 && i + 1 < cap)
        buf[i++] = tmp[--n];
    buf[i] = '\0';
}

static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

static void report_invalid(const char *name, const char *value, const char *fallback)
{
    char shown[LOGGED_VALUE_MAX + 4];
    size_t n = strlen(value);
    if (n > LOGGED_VALUE_MAX) {
        memcpy(shown, value, LOGGED_VALUE_MAX);
        memcpy(shown + LOGGED_VALUE_MAX, "...", 4);
    } else {
        memcpy(shown, value, n + 1);
    }
    log_list("invalid ", name, "=", shown, "; using default ", fallback, (const char *)NULL);
}

static uint64_t env_u64(const char *name, uint64_t min, uint64_t max, uint64_t fallback)
{
    const char *value = getenv(name);
    uint64_t v;
    if (value == NULL)
        return fallback;
    if (parse_u64(value, &v) && v >= min && v <= max)
        return v;
    char shown[24];
    ppx_format_u64(fallback, shown, sizeof shown);
    report_invalid(name, value, shown);
    return fallback;
}

static void default_socket(char *buf, size_t cap)
{
    static const char suffix[] = "/ppx/ppx.sock";
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    if (runtime != NULL && runtime[0] == '/' && strlen(runtime) + sizeof suffix <= cap) {
        strcpy(buf, runtime);
        strcat(buf, suffix);
        return;
    }
    char uid[24];
    ppx_format_u64((uint64_t)getuid(), uid, sizeof uid);
    strcpy(buf, "/tmp/ppx-");
    strcat(buf, uid);
    strcat(buf, "/ppx.sock");
}

static void load_config(void)
{
    ppx_config.sample_rate =
        env_u64("PPX_SAMPLE_RATE", 1, MAX_SAMPLE_RATE, PPX_DEFAULT_SAMPLE_RATE);
    ppx_config.max_depth =
        (uint32_t)env_u64("PPX_MAX_DEPTH", 1, WIRE_MAX_DEPTH, PPX_DEFAULT_MAX_DEPTH);
    ppx_config.flush_ms = (uint32_t)env_u64("PPX_FLUSH_MS", 1, MAX_FLUSH_MS, PPX_DEFAULT_FLUSH_MS);
    ppx_config.syscalls = env_u64("PPX_SYSCALLS", 0, 1, 1) != 0;
    ppx_config.syscall_sample = (uint32_t)env_u64("PPX_SYSCALL_SAMPLE", 1, MAX_SYSCALL_SAMPLE,
                                                  PPX_DEFAULT_SYSCALL_SAMPLE);
    const char *stacks = getenv("PPX_SYSCALL_STACKS");
    if (stacks != NULL && strcmp(stacks, "all") == 0)
        ppx_config.syscall_sample = 1;
    else if (stacks != NULL && strcmp(stacks, "sampled") != 0)
        report_invalid("PPX_SYSCALL_STACKS", stacks, "sampled");
    ppx_config.cpu_hz_fixed = getenv("PPX_CPU_HZ") != NULL;
    ppx_config.cpu_hz = ppx_config.cpu_hz_fixed ? (uint32_t)env_u64("PPX_CPU_HZ", 0, MAX_CPU_HZ,
                                                                    PPX_DEFAULT_CPU_HZ)
                                                : 0;

    ppx_config.spool = env_u64("PPX_SPOOL", 0, 1, 1) != 0;
    ppx_config.spool_max_mb =
        (uint32_t)env_u64("PPX_SPOOL_MAX_MB", 1, MAX_SPOOL_MB, PPX_DEFAULT_SPOOL_MB);

    char fallback[PPX_SOCKET_PATH_MAX];
    default_socket(fallback, sizeof fallback);
    const char *path = getenv("PPX_SOCKET");
    if (path != NULL && path[0] != '\0' && strlen(path) < sizeof ppx_config.socket_path) {
        strcpy(ppx_config.socket_path, path);
        return;
    }
    if (path != NULL)
        report_invalid("PPX_SOCKET", path, fallback);
    strcpy(ppx_config.socket_path, fallback);
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- initialisation ---- */

void ppx_init(void)
{
    int expected = PPX_UNINIT;
    if (!atomic_compare_exchange_strong(&ppx_state, &expected, PPX_INITIALIZING))
        return;
    struct ppx_thread *t = &ppx_thread;
    int saved_errno = errno;
    t->guard++;
    stderr_remember();
    /* Allocations from here until READY (dlsym's among them) are served by
     * the bootstrap arena. */
    ppx_hooks_resolve();
    ppx_io_hooks_resolve();
    ppx_fd_hooks_resolve();
    load_config();
    ppx_start_ns = realtime_ns();
    ppx_pid = getpid();
    ppx_stacks_init();
    bool tables = ppx_live_init();
    ppx_stream_init();
    ppx_unwind_init();
    ppx_io_init();
    if (tables)
        ppx_threads_init(); /* and the CPU profile (cpu.c) */
    atomic_store(&ppx_enabled, tables);
    atomic_store(&ppx_io_active, tables && ppx_config.syscalls);
    t->guard--;
    errno = saved_errno;
    atomic_store_explicit(&ppx_state, PPX_READY, memory_order_release);
}

/* ---- fork ---- */

static void atfork_prepare(void)
{
    struct ppx_thread *t = &ppx_thread;
    if (t->guard != 0 || t->holds_lock != 0) {
        /* fork() from a signal handler that interrupted the profiler: our
         * locks may be held by this very thread. */
        fork_skipped = true;
        return;
    }
    t->guard++;
    t->holds_lock++; /* a free() in fork's own code must not take a table lock */
    /* Order: the flusher's locks, then the hooks' (each hook holds one at a
     * time, arena last). */
    ppx_stream_lock();
    ppx_unwind_lock();
    ppx_stacks_lock_all();
    ppx_live_lock_all();
    ppx_arena_lock();
}

static void atfork_parent(void)
{
    struct ppx_thread *t = &ppx_thread;
    if (fork_skipped) {
        fork_skipped = false;
        return;
    }
    ppx_arena_unlock();
    ppx_live_unlock_all();
    ppx_stacks_unlock_all();
    ppx_unwind_unlock();
    ppx_stream_unlock();
    t->holds_lock--;
    t->guard--;
}

static void atfork_child(void)
{
    struct ppx_thread *t = &ppx_thread;
    int saved_errno = errno;
    if (fork_skipped) {
        /* This thread is in the middle of updating a table (the handler
         * that forked will return into it): leave the tables alone, record
         * nothing more, and never talk to the collector. */
        fork_skipped = false;
        atomic_store(&ppx_enabled, false);
        atomic_store(&ppx_io_active, false);
        ppx_stream_disable_child();
        errno = saved_errno;
        return;
    }
    t->holds_lock--;
    t->guard--;
    ppx_start_ns = realtime_ns();
    ppx_pid = getpid();
    ppx_arena_reset_child();
    ppx_live_reset_child();
    ppx_stacks_reset_child();
    ppx_io_reset_child();
    ppx_thread_mem_reset_child();
    ppx_cpu_reset_child(); /* before the thread registry restarts this thread */
    ppx_threads_reset_child();
    ppx_unwind_reset_child();
    ppx_stream_reset_child();
    ppx_sampler_reset_thread();
    errno = saved_errno;
}

/* ---- constructor and destructor ---- */

/* glibc calls ELF constructors with (argc, argv, envp). */
__attribute__((constructor)) static void ppx_constructor(int argc, char **argv, char **envp)
{
    (void)envp;
    ppx_init();
    /* Another thread may still be initialising (a library constructor
     * started it); give it a moment, never wait forever. */
    for (int i = 0; i < 2000 && atomic_load(&ppx_state) != PPX_READY; i++) {
        struct timespec pause = {0, 500000};
        nanosleep(&pause, NULL);
    }
    if (atomic_load(&ppx_state) != PPX_READY) {
        ppx_stream_start_later(0); /* the first sample looks for a collector */
        return;
    }
    struct ppx_thread *t = &ppx_thread;
    t->guard++;
    ppx_stream_set_cmdline(argc, argv);
    /* Let the next allocator set itself up (jemalloc registers its own fork
     * handlers then) before we register ours: ours then run first in the
     * parent and last in the child, after the allocator is usable again. */
    ppx_real.free(ppx_real.malloc(1));
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    t->guard--;
    ppx_stream_begin();
}

__attribute__((destructor)) static void ppx_destructor(void)
{
    ppx_stream_shutdown();
}
