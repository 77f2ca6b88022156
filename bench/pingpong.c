/* A syscall-heavy workload: pairs of threads bounce a small message back and
 * forth with sendmsg/recvmsg, as a request/response server does, so almost
 * all of the time is spent in (or waking from) I/O calls. Each round trip is
 * 2 sendmsg and 2 recvmsg.
 *
 * usage: pingpong [round trips per pair] [pairs] [unix|udp] [pin|nopin]
 *   unix   a Unix datagram socketpair (the default)
 *   udp    two UDP sockets connected to each other on 127.0.0.1
 *   pin    both threads of pair i run on the i-th allowed CPU (the default):
 *          unpinned, whether a wakeup crosses CPUs changes the rate of a run
 *          by up to 2x on a small machine, which would drown the profiler's cost
 * Prints "pingpong: N round trips in S s: R round trips/s". */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CPU_SET, pthread_setaffinity_np */
#endif
#include <arpa/inet.h>
#include <sched.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MESSAGE 64

struct pair {
    int fd[2];
    int cpu; /* -1: not pinned */
    long rounds;
    uint64_t checksum;
};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void pin(const struct pair *p)
{
    if (p->cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(p->cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        die("pthread_setaffinity_np");
}

/* The i-th CPU this process may run on, cycling. */
static int allowed_cpu(int i)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) == 0)
        die("sched_getaffinity");
    i %= CPU_COUNT(&set);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set) && i-- == 0)
            return cpu;
    return -1;
}

__attribute__((noinline)) static void send_message(int fd, char *buf, size_t len)
{
    struct iovec iov = {buf, len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (sendmsg(fd, &msg, 0) != (ssize_t)len)
        die("sendmsg");
}

__attribute__((noinline)) static void receive_message(int fd, char *buf, size_t len)
{
    struct iovec iov = {buf, len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (recvmsg(fd, &msg, 0) != (ssize_t)len)
        die("recvmsg");
}

/* The client side: sends a request, waits for the reply. */
static void *ping(void *arg)
{
    struct pair *p = arg;
    char buf[MESSAGE];
    pin(p);
    memset(buf, 0, sizeof buf);
    for (long i = 0; i < p->rounds; i++) {
        memcpy(buf, &i, sizeof i);
        send_message(p->fd[0], buf, sizeof buf);
        receive_message(p->fd[0], buf, sizeof buf);
        p->checksum += (uint8_t)buf[sizeof i];
    }
    return NULL;
}

/* The server side: answers each request. */
static void *pong(void *arg)
{
    struct pair *p = arg;
    char buf[MESSAGE];
    pin(p);
    for (long i = 0; i < p->rounds; i++) {
        receive_message(p->fd[1], buf, sizeof buf);
        buf[sizeof i] = (char)(buf[0] + 1);
        send_message(p->fd[1], buf, sizeof buf);
    }
    return NULL;
}

static void udp_pair(int fd[2])
{
    struct sockaddr_in addr[2];
    for (int i = 0; i < 2; i++) {
        fd[i] = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd[i] < 0)
            die("socket");
        addr[i] =
            (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof addr[i];
        if (bind(fd[i], (struct sockaddr *)&addr[i], len) < 0 ||
            getsockname(fd[i], (struct sockaddr *)&addr[i], &len) < 0)
            die("bind");
    }
    for (int i = 0; i < 2; i++)
        if (connect(fd[i], (struct sockaddr *)&addr[1 - i], sizeof addr[1 - i]) < 0)
            die("connect");
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 200000;
    int pairs = argc > 2 ? atoi(argv[2]) : 1;
    const char *kind = argc > 3 ? argv[3] : "unix";
    const char *pinning = argc > 4 ? argv[4] : "pin";
    if (rounds <= 0 || pairs <= 0 || pairs > 64 ||
        (strcmp(kind, "unix") != 0 && strcmp(kind, "udp") != 0) ||
        (strcmp(pinning, "pin") != 0 && strcmp(pinning, "nopin") != 0)) {
        fprintf(stderr, "usage: pingpong [round trips per pair] [pairs] [unix|udp] [pin|nopin]\n");
        return 2;
    }
    struct pair p[64];
    pthread_t threads[128];
    for (int i = 0; i < pairs; i++) {
        p[i] = (struct pair){.rounds = rounds,
                             .cpu = strcmp(pinning, "pin") == 0 ? allowed_cpu(i) : -1};
        if (strcmp(kind, "udp") == 0)
            udp_pair(p[i].fd);
        else if (socketpair(AF_UNIX, SOCK_DGRAM, 0, p[i].fd) < 0)
            die("socketpair");
    }
    double start = now();
    for (int i = 0; i < pairs; i++)
        if (pthread_create(&threads[2 * i], NULL, pong, &p[i]) != 0 ||
            pthread_create(&threads[2 * i + 1], NULL, ping, &p[i]) != 0)
            die("pthread_create");
    uint64_t checksum = 0;
    for (int i = 0; i < 2 * pairs; i++)
        pthread_join(threads[i], NULL);
    double seconds = now() - start;
    for (int i = 0; i < pairs; i++)
        checksum += p[i].checksum;
    long total = rounds * pairs;
    printf("pingpong: %ld round trips in %.3f s: %.0f round trips/s (checksum %llu)\n", total,
           seconds, (double)total / seconds, (unsigned long long)checksum);
    return 0;
}
