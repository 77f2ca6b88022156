/* The exec family. exec replaces the image without running destructors, so
 * what the old image recorded since its last flush would be lost (a forked
 * child that works, then execs, has usually never flushed at all). Each hook
 * first sends it, with GOODBYE, then calls the real function; if that
 * fails, the process goes on and reconnects later with its full state.
 *
 * CPU sampling stops first (cpu/): the timers go and pending SIGPROF
 * ticks are discarded, since the new image starts with SIGPROF's default
 * action, which terminates it.
 *
 * Every variant is hooked: glibc's execl, execvp and the rest call its
 * internal execve directly, not the exported one. */
#include "hooks.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>

extern char **environ;

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);

static void *next(const char *name)
{
    void *fn = dlsym(RTLD_NEXT, name);
    if (fn == NULL)
        errno = ENOSYS;
    return fn;
}

static void before_exec(void)
{
    ppx_cpu_before_exec();
    ppx_flush_before_exec(); /* drains the rings too: after the last tick */
}

/* errno is what the real exec said. */
static int after_exec(int rc)
{
    int saved_errno = errno;
    ppx_flush_after_exec_failed();
    ppx_cpu_after_exec_failed();
    errno = saved_errno;
    return rc;
}

static int exec_env(const char *path, char *const argv[], char *const envp[])
{
    static execve_fn real;
    if (real == NULL && (real = (execve_fn)next("execve")) == NULL)
        return -1;
    before_exec();
    return after_exec(real(path, argv, envp));
}

static int exec_path(const char *file, char *const argv[], char *const envp[])
{
    static execvpe_fn real;
    if (real == NULL && (real = (execvpe_fn)next("execvpe")) == NULL)
        return -1;
    before_exec();
    return after_exec(real(file, argv, envp));
}

PPX_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    return exec_env(path, argv, envp);
}

PPX_EXPORT int execv(const char *path, char *const argv[])
{
    return exec_env(path, argv, environ);
}

PPX_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    return exec_path(file, argv, envp);
}

PPX_EXPORT int execvp(const char *file, char *const argv[])
{
    return exec_path(file, argv, environ);
}

PPX_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    static fexecve_fn real;
    if (real == NULL && (real = (fexecve_fn)next("fexecve")) == NULL)
        return -1;
    before_exec();
    return after_exec(real(fd, argv, envp));
}

PPX_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
                        int flags)
{
    static execveat_fn real;
    if (real == NULL && (real = (execveat_fn)next("execveat")) == NULL)
        return -1;
    before_exec();
    return after_exec(real(dirfd, path, argv, envp, flags));
}

/* The list variants, as glibc builds them: the arguments into an array on
 * the stack (no malloc between fork and exec). */
static size_t count_args(const char *arg, va_list *ap)
{
    size_t n = 1;
    va_list aq;
    va_copy(aq, *ap);
    for (const char *a = arg; a != NULL; a = va_arg(aq, const char *))
        n++;
    va_end(aq);
    return n; /* including the terminating NULL */
}

static void collect_args(char **argv, size_t n, const char *arg, va_list *ap)
{
    argv[0] = (char *)arg;
    for (size_t i = 1; i < n; i++)
        argv[i] = va_arg(*ap, char *);
}

PPX_EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = count_args(arg, &ap);
    char *argv[n];
    collect_args(argv, n, arg, &ap);
    va_end(ap);
    return exec_env(path, argv, environ);
}

PPX_EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = count_args(arg, &ap);
    char *argv[n];
    collect_args(argv, n, arg, &ap);
    va_end(ap);
    return exec_path(file, argv, environ);
}

PPX_EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = count_args(arg, &ap);
    char *argv[n];
    collect_args(argv, n, arg, &ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return exec_env(path, argv, envp);
}
