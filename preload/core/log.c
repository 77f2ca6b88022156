/* Messages on stderr, "ppx: " first: one write(2) each, no stdio, no malloc.
 *
 * Only to the stderr the process started with: a daemon that puts a data
 * file (or a socket) on fd 2 later must never find our text in it. The
 * file fd 2 was when the library started (device and inode) is kept, and
 * a message is written only while fd 2 is still that file; nothing is
 * written if fd 2 was closed then. */
#include "core.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

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
void ppx_log_list(const char *first, ...)
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
    ppx_log_list(a, b, c, d, (const char *)NULL);
}

void ppx_log_once(atomic_flag *once, const char *a, const char *b, const char *c, const char *d)
{
    if (!atomic_flag_test_and_set(once))
        ppx_log(a, b, c, d);
}

void ppx_log_remember_stderr(void)
{
    stderr_remember();
}

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

/* Samples lost for want of memory: counted (a figure to look at in a
 * debugger or core file), and said once. */
static atomic_uint_fast64_t lost_samples;

void ppx_note_lost(const char *why)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    atomic_fetch_add_explicit(&lost_samples, 1, memory_order_relaxed);
    ppx_log_once(&said, why, "; some allocations go unrecorded", NULL, NULL);
}
