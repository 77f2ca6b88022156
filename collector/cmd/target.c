#include "cmd/cmd.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PPX_LIBDIR
#define PPX_LIBDIR "/usr/local/lib"
#endif

static bool is_executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

char *target_resolve(const char *cmd, int *status, char *err, size_t errlen)
{
    if (*cmd == 0) {
        *status = 127;
        snprintf(err, errlen, "ppx: empty command name");
        return NULL;
    }
    if (strchr(cmd, '/')) {
        if (is_executable_file(cmd))
            return strdup(cmd);
        *status = access(cmd, F_OK) == 0 ? 126 : 127;
        snprintf(err, errlen, "ppx: cannot run %s: %s", cmd,
                 *status == 126 ? "Permission denied" : strerror(ENOENT));
        return NULL;
    }
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    bool exists_somewhere = false;
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t dirlen = end ? (size_t)(end - p) : strlen(p);
        char candidate[PATH_MAX];
        /* An empty PATH element means the current directory. */
        int n = dirlen ? snprintf(candidate, sizeof candidate, "%.*s/%s", (int)dirlen, p, cmd)
                       : snprintf(candidate, sizeof candidate, "%s", cmd);
        if (n > 0 && (size_t)n < sizeof candidate) {
            if (is_executable_file(candidate))
                return strdup(candidate);
            if (access(candidate, F_OK) == 0)
                exists_somewhere = true;
        }
        if (!end)
            break;
        p = end;
    }
    *status = exists_somewhere ? 126 : 127;
    snprintf(err, errlen,
             exists_somewhere ? "ppx: cannot run %s: Permission denied"
                              : "ppx: %s: command not found",
             cmd);
    return NULL;
}

/* The ELF identity of ppx itself: libppx.so was built alongside it. */
static bool read_ehdr(const char *path, Elf64_Ehdr *eh, int *fd_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = pread(fd, eh, sizeof *eh, 0);
    if (n < (ssize_t)EI_NIDENT || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0) {
        close(fd);
        return false;
    }
    if (eh->e_ident[EI_CLASS] == ELFCLASS64 && n < (ssize_t)sizeof *eh) {
        close(fd);
        return false;
    }
    *fd_out = fd;
    return true;
}

enum target_kind target_inspect(const char *path)
{
    Elf64_Ehdr self, eh;
    int self_fd, fd;
    if (!read_ehdr("/proc/self/exe", &self, &self_fd))
        return TARGET_OTHER;
    close(self_fd);
    if (!read_ehdr(path, &eh, &fd))
        return TARGET_OTHER; /* a script, or not readable: nothing to tell */
    if (eh.e_ident[EI_CLASS] != self.e_ident[EI_CLASS] ||
        eh.e_ident[EI_DATA] != self.e_ident[EI_DATA] || eh.e_machine != self.e_machine ||
        eh.e_ident[EI_CLASS] != ELFCLASS64) {
        close(fd);
        return TARGET_FOREIGN;
    }
    enum target_kind kind = TARGET_OTHER;
    if (eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum > 0 && eh.e_phnum != PN_XNUM) {
        kind = TARGET_STATIC;
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            off_t at = (off_t)eh.e_phoff + (off_t)i * (off_t)sizeof ph;
            if (pread(fd, &ph, sizeof ph, at) != (ssize_t)sizeof ph) {
                kind = TARGET_OTHER;
                break;
            }
            if (ph.p_type == PT_INTERP) {
                kind = TARGET_DYNAMIC;
                break;
            }
        }
    }
    close(fd);
    return kind;
}

static char *self_dir(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    return strdup(exe);
}

char *target_find_preload(char *err, size_t errlen)
{
    const char *override = getenv("PPX_LIB");
    if (override && *override) {
        char *real = realpath(override, NULL);
        if (!real || access(real, R_OK) != 0) {
            snprintf(err, errlen, "ppx: PPX_LIB=%s: %s", override, strerror(errno));
            free(real);
            return NULL;
        }
        return real;
    }
    char *dir = self_dir();
    const char *rel[] = {"/.libs/libppx.so", "/preload/.libs/libppx.so", "/../lib/libppx.so"};
    char tried[4][PATH_MAX];
    size_t n_tried = 0;
    for (size_t i = 0; dir && i < sizeof rel / sizeof rel[0]; i++)
        snprintf(tried[n_tried++], PATH_MAX, "%s%s", dir, rel[i]);
    snprintf(tried[n_tried++], PATH_MAX, "%s/libppx.so", PPX_LIBDIR);
    free(dir);
    for (size_t i = 0; i < n_tried; i++) {
        if (access(tried[i], R_OK) != 0)
            continue;
        char *real = realpath(tried[i], NULL);
        if (real)
            return real;
    }
    int at = snprintf(err, errlen, "ppx: cannot find libppx.so; looked for");
    for (size_t i = 0; i < n_tried && at > 0 && (size_t)at < errlen; i++)
        at += snprintf(err + at, errlen - (size_t)at, "%s %s", i ? "," : "", tried[i]);
    if (at > 0 && (size_t)at < errlen)
        snprintf(err + at, errlen - (size_t)at, "; set PPX_LIB to its path");
    return NULL;
}

#define PPX_RECORD_CPU_HZ "100"

int target_setenv(const struct target_env *e)
{
    if (e->preload) {
        const char *old = getenv("LD_PRELOAD");
        size_t len = strlen(e->preload) + (old ? strlen(old) : 0) + 2;
        char *value = malloc(len);
        if (!value)
            return -1;
        if (old && *old)
            snprintf(value, len, "%s:%s", e->preload, old);
        else
            snprintf(value, len, "%s", e->preload);
        int rc = setenv("LD_PRELOAD", value, 1);
        free(value);
        if (rc < 0)
            return -1;
    }
    if (e->socket && setenv("PPX_SOCKET", e->socket, 1) < 0)
        return -1;
    if (e->sample_rate && setenv("PPX_SAMPLE_RATE", e->sample_rate, 1) < 0)
        return -1;
    if (e->max_depth && setenv("PPX_MAX_DEPTH", e->max_depth, 1) < 0)
        return -1;
    if (e->flush_ms && setenv("PPX_FLUSH_MS", e->flush_ms, 1) < 0)
        return -1;
    /* Under ppx record, CPU is sampled from the start (a bare LD_PRELOAD
     * samples only while a collector asks); the user's own rate stays. */
    if (setenv("PPX_CPU_HZ", PPX_RECORD_CPU_HZ, 0) < 0)
        return -1;
    /* The run's socket directory is private and goes with the run: a
     * spool file there (a target outliving ppx record) would never be read. */
    if (setenv("PPX_SPOOL", "0", 1) < 0)
        return -1;
    return 0;
}

int target_spawn(char *const argv[], void (*in_child)(void *), void *arg, struct target_child *c)
{
    int go[2], ex[2];
    if (pipe2(go, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(ex, O_CLOEXEC) < 0) {
        close(go[0]);
        close(go[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(go[0]);
        close(go[1]);
        close(ex[0]);
        close(ex[1]);
        errno = saved;
        return -1;
    }
    if (pid == 0) {
        close(go[1]);
        close(ex[0]);
        if (in_child)
            in_child(arg);
        char byte;
        ssize_t n;
        while ((n = read(go[0], &byte, 1)) < 0 && errno == EINTR)
            ;
        if (n != 1)
            _exit(125);
        execvp(argv[0], argv);
        int e = errno;
        ssize_t w = write(ex[1], &e, sizeof e);
        (void)w;
        _exit(e == ENOENT ? 127 : 126);
    }
    close(go[0]);
    close(ex[1]);
    c->pid = pid;
    c->go_fd = go[1];
    c->exec_fd = ex[0];
    return 0;
}

int target_release(struct target_child *c, bool run)
{
    if (!run) {
        close(c->go_fd);
        close(c->exec_fd);
        return 0;
    }
    ssize_t n;
    while ((n = write(c->go_fd, "g", 1)) < 0 && errno == EINTR)
        ;
    close(c->go_fd);
    int e = 0;
    while ((n = read(c->exec_fd, &e, sizeof e)) < 0 && errno == EINTR)
        ;
    close(c->exec_fd);
    if (n == (ssize_t)sizeof e) {
        errno = e;
        return -1;
    }
    return 0;
}
