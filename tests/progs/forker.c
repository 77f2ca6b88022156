/* Known allocations across fork and exec, for the end-to-end tests.
 *
 * Usage: forker [-v] fork|exec|work-exec|system|exec-child
 *   fork        parent_work; fork: the child runs child_work and exits;
 *               the parent waits, then parent_after_fork
 *   exec        parent_work; fork + exec of this program as `exec-child`
 *   work-exec   as exec, but the child runs child_work before it execs
 *   system      parent_work; system("<this program> exec-child") via /bin/sh
 *   exec-child  exec_work
 *   -v          print "parent PID" and "child PID" lines on stdout
 * Exit status 0 when every child exited 0.
 *
 * Figures (all leaked), alloc_objects alloc_space:
 *   parent_work        100  30000  (100 x 300)
 *   parent_after_fork   50  35000  (50 x 700)
 *   child_work         200 100000  (200 x 500)
 *   exec_work          300  60000  (300 x 200)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "known_allocs.h"

/* Written, never read: without ESCAPE the compiler may drop the stores and
 * then the mallocs themselves. */
static void *leaked[300];

COUNTED static void parent_work(void)
{
    for (int i = 0; i < 100; i++) {
        leaked[i] = malloc(300);
        ESCAPE(leaked[i]);
    }
}

COUNTED static void parent_after_fork(void)
{
    for (int i = 0; i < 50; i++) {
        leaked[i] = malloc(700);
        ESCAPE(leaked[i]);
    }
}

COUNTED static void child_work(void)
{
    for (int i = 0; i < 200; i++) {
        leaked[i] = malloc(500);
        ESCAPE(leaked[i]);
    }
}

COUNTED static void exec_work(void)
{
    for (int i = 0; i < 300; i++) {
        leaked[i] = malloc(200);
        ESCAPE(leaked[i]);
    }
}

static int wait_child(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) != pid) {
        perror("forker: waitpid");
        return 1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

enum child_does { CHILD_WORKS, CHILD_EXECS, CHILD_WORKS_THEN_EXECS };

static int run_fork(int verbose, enum child_does what)
{
    parent_work();
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("forker: fork");
        return 1;
    }
    if (pid == 0) {
        if (what != CHILD_EXECS)
            child_work();
        if (what != CHILD_WORKS) {
            execl("/proc/self/exe", "forker", "exec-child", (char *)NULL);
            perror("forker: exec /proc/self/exe");
            _exit(127);
        }
        exit(0);
    }
    if (verbose)
        printf("parent %d\nchild %d\n", (int)getpid(), (int)pid);
    int status = wait_child(pid);
    parent_after_fork();
    return status;
}

static int run_system(int verbose)
{
    char self[4096], cmd[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0) {
        perror("forker: readlink /proc/self/exe");
        return 1;
    }
    self[n] = '\0';
    snprintf(cmd, sizeof(cmd), "'%s' exec-child", self);
    parent_work();
    if (verbose)
        printf("parent %d\n", (int)getpid());
    fflush(stdout);
    int status = system(cmd);
    parent_after_fork();
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    int verbose = 0, i = 1;
    if (i < argc && strcmp(argv[i], "-v") == 0) {
        verbose = 1;
        i++;
    }
    const char *mode = i < argc ? argv[i] : "";
    if (strcmp(mode, "fork") == 0)
        return run_fork(verbose, CHILD_WORKS);
    if (strcmp(mode, "exec") == 0)
        return run_fork(verbose, CHILD_EXECS);
    if (strcmp(mode, "work-exec") == 0)
        return run_fork(verbose, CHILD_WORKS_THEN_EXECS);
    if (strcmp(mode, "system") == 0)
        return run_system(verbose);
    if (strcmp(mode, "exec-child") == 0) {
        exec_work();
        return 0;
    }
    fprintf(stderr, "usage: forker [-v] fork|exec|work-exec|system|exec-child\n");
    return 2;
}
