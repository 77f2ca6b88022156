/* The program `ppx record` runs: finding it, telling whether LD_PRELOAD can
 * reach it, finding libppx.so, and starting it with the profiler's
 * environment. */
#ifndef PPX_TARGET_H
#define PPX_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Finds cmd the way execvp() does (PATH search unless it contains '/').
 * Returns the path (malloc'ed), or NULL with a message in err and the exit
 * status a shell would give: 127 not found, 126 not executable. */
char *target_resolve(const char *cmd, int *status, char *err, size_t errlen);

enum target_kind {
    TARGET_DYNAMIC, /* ELF with an interpreter: LD_PRELOAD works */
    TARGET_STATIC,  /* ELF without PT_INTERP: LD_PRELOAD has no effect */
    TARGET_FOREIGN, /* ELF of another class or machine than libppx.so */
    TARGET_OTHER,   /* a #! script, or unreadable: left to the kernel */
};
enum target_kind target_inspect(const char *path);

/* The absolute path of libppx.so: $PPX_LIB, else next to the running ppx
 * (build tree: .libs/ or preload/.libs/; installed: ../lib/), else the
 * configured libdir. NULL with a message in err when none exists. */
char *target_find_preload(char *err, size_t errlen);

/* What the target's environment gets; NULL members are left alone. */
struct target_env {
    const char *preload; /* prepended to LD_PRELOAD */
    const char *socket;  /* PPX_SOCKET */
    const char *sample_rate, *max_depth, *flush_ms;
};
/* Applies e to this process's environment (call it in the child). */
int target_setenv(const struct target_env *e);

/* A started child held before exec until target_release(), so that ppx
 * can still prepare (or give up) knowing the child's pid. */
struct target_child {
    pid_t pid;
    int go_fd;   /* parent -> child: one byte = exec, EOF = give up */
    int exec_fd; /* child -> parent: errno of a failed exec, EOF on success */
};

/* Forks; the child calls in_child(arg) (signal and environment setup), then
 * waits for the release and execvp()s argv. -1 on fork failure. */
int target_spawn(char *const argv[], void (*in_child)(void *), void *arg,
                 struct target_child *c);

/* run: lets the child exec and returns 0, or -1 with errno set to why exec
 * failed (the child then exits 126 or 127). !run: the child exits
 * without running anything; returns 0. */
int target_release(struct target_child *c, bool run);

#endif
