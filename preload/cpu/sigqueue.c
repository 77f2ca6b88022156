/* The per-user limit of queued signals, shared with the program.
 *
 * Each POSIX timer holds one queued-signal slot for its whole life, counted
 * against the user's RLIMIT_SIGPENDING (`ulimit -i`), which every process
 * of the user shares: the program's own timer_create, sigqueue and queued
 * real-time signals fail with EAGAIN once it is used up. ppx takes at most
 * half of what the user's other timers and signals leave: a thread that
 * would need more goes unsampled (said once). The count and limit
 * are read from /proc/self/status (SigQ: used/limit); a budget drawn from
 * the last reading spares most thread starts the read. All under cpu_mu. */
#include "cpu.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#define SIGQ_BUDGET_MAX 1024u

static uint64_t our_timers;   /* under cpu_mu: ours, in this process */
static uint64_t sigq_budget;  /* under cpu_mu: timers allowed before the next reading */
static char status_buf[8192]; /* under cpu_mu */

static bool parse_u64_at(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    if (s == end || *s < '0' || *s > '9')
        return false;
    for (; s < end && *s >= '0' && *s <= '9'; s++)
        x = x * 10 + (uint64_t)(*s - '0');
    *p = s;
    *v = x;
    return true;
}

/* Under cpu_mu: SigQ of /proc/self/status, without malloc or stdio. */
static bool read_sigq(uint64_t *used, uint64_t *limit)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t len = 0;
    ssize_t n;
    while (len < sizeof status_buf &&
           (n = (ssize_t)syscall(SYS_read, fd, status_buf + len, sizeof status_buf - len)) > 0)
        len += (size_t)n;
    syscall(SYS_close, fd);
    static const char key[] = "\nSigQ:";
    const char *at = memmem(status_buf, len, key, sizeof key - 1);
    if (at == NULL)
        return false;
    const char *p = at + sizeof key - 1, *end = status_buf + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (!parse_u64_at(&p, end, used) || p == end || *p++ != '/')
        return false;
    return parse_u64_at(&p, end, limit);
}

/* Under cpu_mu: whether one more timer keeps ours within half of what the
 * user's other queued signals leave. Unreadable: yes, as the kernel
 * decides then. */
bool ppx_sigqueue_room(void)
{
    ppx_cpu_check_locked();
    if (sigq_budget > 0) {
        sigq_budget--;
        return true;
    }
    uint64_t used, limit;
    int saved_errno = errno;
    bool known = read_sigq(&used, &limit);
    errno = saved_errno;
    if (!known)
        return true;
    uint64_t others = used > our_timers ? used - our_timers : 0;
    uint64_t share = limit > others ? (limit - others) / 2 : 0;
    if (our_timers + 1 > share)
        return false;
    /* the next quarter of what is left without reading again */
    sigq_budget = (share - our_timers - 1) / 4;
    if (sigq_budget > SIGQ_BUDGET_MAX)
        sigq_budget = SIGQ_BUDGET_MAX;
    return true;
}

void ppx_sigqueue_note_full(void)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    ppx_log_once(&said, "the user's queued-signal limit (ulimit -i) is half used up by CPU timers",
                 "; more threads are not in the CPU profile, and the program keeps the rest", NULL,
                 NULL);
}

void ppx_sigqueue_timer_started(void)
{
    our_timers++;
}

void ppx_sigqueue_timer_stopped(void)
{
    our_timers--;
}

void ppx_sigqueue_reread(void)
{
    sigq_budget = 0;
}

void ppx_sigqueue_recount(uint64_t timers)
{
    our_timers = timers;
    sigq_budget = 0;
}
