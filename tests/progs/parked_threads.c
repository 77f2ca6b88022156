/* Threads parked in known places, for the thread dump (goroutine
 * profile): NREAD threads in read() on pipes of their own (each named
 * "reader"), NMUTEX threads in pthread_mutex_lock on a mutex main holds
 * ("locker"), one in nanosleep ("sleeper"), one spinning ("spinner"), and,
 * with -b, one that blocks every signal ("blocker", parked in
 * sigtimedwait-free pause: a pipe read with all signals blocked). Each
 * parks in a function of its own (park_in_read, park_in_mutex,
 * park_in_sleep, spin_forever, park_blocked), called from one start
 * routine per kind. Prints "reader FD" per reader (the pipe's read end),
 * "ready" once every thread is parked (as far as it can tell: the
 * mutex lockers announce themselves just before locking), then waits
 * for a line on stdin and exits 0. With -p instead of -b, the program
 * installs a SIGPROF handler of its own first (no blocker then). With -t
 * instead, one more thread ("timed") waits in recv() on a socket with a
 * receive timeout of an hour (SO_RCVTIMEO: a signal handler would cut it
 * short with EINTR).
 * Usage: parked_threads NREAD NMUTEX [-b | -p | -t]. */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long spins;
static int parked_fds[2]; /* each parked thread writes a byte here first */

static void announce(void)
{
    char c = 'p';
    if (write(parked_fds[1], &c, 1) != 1)
        abort();
}

NOINLINE void park_in_read(int fd)
{
    char c;
    announce();
    while (read(fd, &c, 1) < 0 && errno == EINTR)
        ;
}

NOINLINE void park_in_mutex(void)
{
    announce();
    pthread_mutex_lock(&held);
    pthread_mutex_unlock(&held);
}

/* Times the sleeper's nanosleep was cut short by a signal: a dump must
 * not (printed at the end). */
static atomic_int sleep_interrupted;

NOINLINE void park_in_sleep(void)
{
    announce();
    struct timespec ts = {3600, 0};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        atomic_fetch_add(&sleep_interrupted, 1);
}

/* Times the timed receiver's recv was cut short (printed at the end). */
static atomic_int recv_interrupted;

NOINLINE void park_in_timed_recv(int fd)
{
    struct timeval hour = {3600, 0};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &hour, sizeof hour) != 0)
        abort();
    announce();
    char c;
    while (recv(fd, &c, 1, 0) < 0 && errno == EINTR)
        atomic_fetch_add(&recv_interrupted, 1);
}

NOINLINE void spin_forever(void)
{
    announce();
    for (;;)
        spins++;
}

NOINLINE void park_blocked(int fd)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    announce();
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR)
        ;
}

static void own_sigprof(int sig)
{
    (void)sig;
}

static void *reader_main(void *arg)
{
    park_in_read((int)(long)arg);
    return NULL;
}

static void *locker_main(void *arg)
{
    (void)arg;
    park_in_mutex();
    return NULL;
}

static void *sleeper_main(void *arg)
{
    (void)arg;
    park_in_sleep();
    return NULL;
}

static void *spinner_main(void *arg)
{
    (void)arg;
    spin_forever();
    return NULL;
}

static void *timed_main(void *arg)
{
    park_in_timed_recv((int)(long)arg);
    return NULL;
}

static void *blocker_main(void *arg)
{
    park_blocked((int)(long)arg);
    return NULL;
}

static void start(void *(*fn)(void *), void *arg, const char *name)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0)
        abort();
    pthread_setname_np(t, name);
    pthread_detach(t);
}

static int new_pipe(void)
{
    int p[2];
    if (pipe(p) != 0)
        abort();
    return p[0]; /* the write end stays open: the read blocks for good */
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int nread = atoi(argv[1]), nmutex = atoi(argv[2]);
    int blocker = argc > 3 && strcmp(argv[3], "-b") == 0;
    int timed = argc > 3 && strcmp(argv[3], "-t") == 0;
    if (argc > 3 && strcmp(argv[3], "-p") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = own_sigprof;
        if (sigaction(SIGPROF, &sa, NULL) != 0)
            return 1;
    }
    if (pipe(parked_fds) != 0)
        return 1;
    pthread_mutex_lock(&held);
    for (int i = 0; i < nread; i++) {
        int fd = new_pipe();
        printf("reader %d\n", fd);
        start(reader_main, (void *)(long)fd, "reader");
    }
    for (int i = 0; i < nmutex; i++)
        start(locker_main, NULL, "locker");
    start(sleeper_main, NULL, "sleeper");
    start(spinner_main, NULL, "spinner");
    if (blocker)
        start(blocker_main, (void *)(long)new_pipe(), "blocker");
    int sv[2]; /* the other end stays open: the recv blocks for good */
    if (timed && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    if (timed)
        start(timed_main, (void *)(long)sv[0], "timed");
    int want = nread + nmutex + 2 + blocker + timed;
    for (int got = 0; got < want;) {
        char c;
        ssize_t n = read(parked_fds[0], &c, 1);
        if (n == 1)
            got++;
        else if (n < 0 && errno != EINTR)
            return 1;
    }
    /* the last announcements come just before the calls: give them time */
    struct timespec settle = {0, 200000000};
    nanosleep(&settle, NULL);
    printf("ready\n");
    fflush(stdout);
    char line[16];
    if (fgets(line, sizeof line, stdin) != NULL || feof(stdin))
        printf("sleep interrupted %d\nrecv interrupted %d\n", atomic_load(&sleep_interrupted),
               atomic_load(&recv_interrupted));
    return 0;
}
