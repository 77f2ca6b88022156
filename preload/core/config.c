/* Configuration, from the environment, read once at initialisation.
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
 *   PPX_BLOCK_RATE   block profile: every wait for a lock, condition
 *                    variable or semaphore of this many ns or more is
 *                    recorded, a shorter one with probability wait/rate
 *                    (Go's runtime.SetBlockProfileRate); 0 = off (100000)
 *   PPX_MUTEX_FRACTION  mutex profile: 1 in this many contention events
 *                    is recorded (Go's runtime.SetMutexProfileFraction);
 *                    0 = off (10)
 *   PPX_SPOOL        1: a process that exits while no collector is reachable
 *                    leaves its final state in a spool file next to the socket
 *                    (stream/spool.c); 0: it does not (1)
 *   PPX_SPOOL_MAX_MB all spool files together, 1..1048576 MiB (1024) */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SAMPLE_RATE (1ull << 40)
#define MAX_FLUSH_MS 3600000u
#define MAX_SYSCALL_SAMPLE 1000000000u
#define MAX_CPU_HZ WIRE_MAX_CPU_HZ
#define MAX_SPOOL_MB 1048576u
#define MAX_BLOCK_RATE 1000000000000ull /* 1000 s */
#define MAX_MUTEX_FRACTION 1000000000u
#define LOGGED_VALUE_MAX 200

struct ppx_config ppx_config = {
    .sample_rate = PPX_DEFAULT_SAMPLE_RATE,
    .max_depth = PPX_DEFAULT_MAX_DEPTH,
    .flush_ms = PPX_DEFAULT_FLUSH_MS,
    .flush_idle_ms = PPX_DEFAULT_FLUSH_IDLE_MS,
    .syscalls = true,
    .syscall_sample = PPX_DEFAULT_SYSCALL_SAMPLE,
    .cpu_hz = PPX_DEFAULT_CPU_HZ,
    .block_rate = PPX_DEFAULT_BLOCK_RATE,
    .mutex_fraction = PPX_DEFAULT_MUTEX_FRACTION,
    .spool = true,
    .spool_max_mb = PPX_DEFAULT_SPOOL_MB,
};

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
    ppx_log_list("invalid ", name, "=", shown, "; using default ", fallback, (const char *)NULL);
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

void ppx_config_load(void)
{
    ppx_config.sample_rate =
        env_u64("PPX_SAMPLE_RATE", 1, MAX_SAMPLE_RATE, PPX_DEFAULT_SAMPLE_RATE);
    ppx_config.max_depth =
        (uint32_t)env_u64("PPX_MAX_DEPTH", 1, WIRE_MAX_DEPTH, PPX_DEFAULT_MAX_DEPTH);
    ppx_config.flush_ms = (uint32_t)env_u64("PPX_FLUSH_MS", 1, MAX_FLUSH_MS, PPX_DEFAULT_FLUSH_MS);
    ppx_config.flush_idle_ms =
        (uint32_t)env_u64("PPX_FLUSH_IDLE_MS", 1, MAX_FLUSH_MS, PPX_DEFAULT_FLUSH_IDLE_MS);
    if (ppx_config.flush_idle_ms < ppx_config.flush_ms)
        ppx_config.flush_idle_ms = ppx_config.flush_ms; /* a long PPX_FLUSH_MS is kept as asked */
    ppx_config.syscalls = env_u64("PPX_SYSCALLS", 0, 1, 1) != 0;
    ppx_config.syscall_sample =
        (uint32_t)env_u64("PPX_SYSCALL_SAMPLE", 1, MAX_SYSCALL_SAMPLE, PPX_DEFAULT_SYSCALL_SAMPLE);
    const char *stacks = getenv("PPX_SYSCALL_STACKS");
    if (stacks != NULL && strcmp(stacks, "all") == 0)
        ppx_config.syscall_sample = 1;
    else if (stacks != NULL && strcmp(stacks, "sampled") != 0)
        report_invalid("PPX_SYSCALL_STACKS", stacks, "sampled");
    ppx_config.cpu_hz_fixed = getenv("PPX_CPU_HZ") != NULL;
    ppx_config.cpu_hz = ppx_config.cpu_hz_fixed
                            ? (uint32_t)env_u64("PPX_CPU_HZ", 0, MAX_CPU_HZ, PPX_DEFAULT_CPU_HZ)
                            : 0;
    ppx_config.block_rate = env_u64("PPX_BLOCK_RATE", 0, MAX_BLOCK_RATE, PPX_DEFAULT_BLOCK_RATE);
    ppx_config.mutex_fraction =
        (uint32_t)env_u64("PPX_MUTEX_FRACTION", 0, MAX_MUTEX_FRACTION, PPX_DEFAULT_MUTEX_FRACTION);

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
