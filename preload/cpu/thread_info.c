/* What the kernel says about a thread: its name and its CPU time. Raw
 * system calls, so that nothing here goes through the hooks or takes a
 * descriptor at a low number for longer than a read. */
#include "cpu.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>

/* NUL-terminated within WIRE_THREAD_NAME, NUL-padded (the wire demands it). */
void ppx_thread_name_normalize(char name[WIRE_THREAD_NAME])
{
    name[WIRE_THREAD_NAME - 1] = '\0';
    size_t n = strlen(name);
    memset(name + n, 0, WIRE_THREAD_NAME - n);
}

void ppx_thread_name_of_self(char name[WIRE_THREAD_NAME])
{
    memset(name, 0, WIRE_THREAD_NAME);
    syscall(SYS_prctl, PR_GET_NAME, name, 0, 0, 0);
    ppx_thread_name_normalize(name);
}

long ppx_read_task_file(pid_t tid, const char *file, char *buf, size_t cap)
{
    char path[64] = "/proc/self/task/";
    size_t len = strlen(path);
    ppx_format_u64((uint64_t)tid, path + len, sizeof path - len);
    len += strlen(path + len);
    size_t flen = strlen(file);
    if (cap == 0 || len + 1 + flen + 1 > sizeof path)
        return -1;
    path[len] = '/';
    memcpy(path + len + 1, file, flen + 1);
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long n;
    do
        n = syscall(SYS_read, fd, buf, cap - 1);
    while (n < 0 && errno == EINTR);
    syscall(SYS_close, fd);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* /proc/self/task/<tid>/comm, without its newline; "" if unreadable. */
void ppx_thread_name_of_tid(pid_t tid, char name[WIRE_THREAD_NAME])
{
    memset(name, 0, WIRE_THREAD_NAME);
    char buf[WIRE_THREAD_NAME + 1];
    if (ppx_read_task_file(tid, "comm", buf, sizeof buf) <= 0)
        return;
    char *nl = strchr(buf, '\n');
    if (nl != NULL)
        *nl = '\0';
    /* up to the NUL only: the wire wants zeros after it */
    memcpy(name, buf, strnlen(buf, WIRE_THREAD_NAME - 1));
}

/* The CPU time of thread tid: 0 when read, else the errno (EINVAL: the
 * thread is gone). */
int ppx_thread_cpu_ns(pid_t tid, uint64_t *ns)
{
    struct timespec ts;
    if (clock_gettime(ppx_thread_cpu_clock(tid), &ts) != 0)
        return errno;
    *ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    return 0;
}
