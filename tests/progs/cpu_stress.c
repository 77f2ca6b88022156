/* A signal-heavy stress test for CPU sampling (run it at PPX_CPU_HZ=1000):
 * for a few seconds, threads allocate and free, move data through pipes
 * and a socketpair (with poll), create and join short-lived threads, burn
 * CPU, and the process forks once while all that runs. Every result is
 * checked by the program itself; the work is fixed, so stdout is the same
 * with and without ppx.
 *
 * Usage: cpu_stress [SCALE]   (default 3: about 2.5 s of work here without ppx)
 *        cpu_stress exec N     a chain of N execs of itself, each image
 *                              burning CPU in two threads and in main right
 *                              up to the exec (a tick queued then must not
 *                              reach the next image, where SIGPROF kills);
 *                              the last one prints "exec chain done"
 *
 * System calls interrupted by a signal (EINTR: poll always, read/write
 * when a handler lacks SA_RESTART) are retried and counted on stderr, which
 * also gets the process's CPU (getrusage) as "rusage_cpu_ns N" and its
 * pid as "pid N". */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid, pthread_setname_np (configure defines it too) */
#endif
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu_work.h"
#include "known_allocs.h"

static int scale = 3;
static atomic_long eintr_count;

static ssize_t write_full(int fd, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, (const char *)buf + done, n - done);
        if (w < 0 && errno == EINTR) {
            atomic_fetch_add(&eintr_count, 1);
            continue;
        }
        if (w <= 0)
            return -1;
        done += (size_t)w;
    }
    return (ssize_t)done;
}

static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);
        if (r < 0 && errno == EINTR) {
            atomic_fetch_add(&eintr_count, 1);
            continue;
        }
        if (r <= 0)
            return -1;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static int wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        int n = poll(&p, 1, -1);
        if (n < 0 && errno == EINTR) {
            atomic_fetch_add(&eintr_count, 1);
            continue;
        }
        return n == 1 && (p.revents & POLLIN);
    }
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* ---- allocation churn: a ring of live blocks, each checked before free --- */
struct heap_job {
    int seed;
    uint64_t checksum;
    int ok;
};

COUNTED static void *heap_worker(void *arg)
{
    struct heap_job *j = arg;
    enum { SLOTS = 64 };
    unsigned char *slot[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    uint64_t sum = 0;
    j->ok = 1;
    for (int i = 0; i < 150000 * scale; i++) {
        int k = i % SLOTS;
        if (slot[k] != NULL) {
            for (size_t b = 0; b < len[k]; b += 61)
                if (slot[k][b] != (unsigned char)(len[k] & 0xff))
                    j->ok = 0;
            sum += len[k];
            free(slot[k]);
        }
        size_t n = (size_t)(mix((uint64_t)(i + j->seed)) % 4096) + 1;
        switch (i % 3) {
        case 0:
            slot[k] = malloc(n);
            break;
        case 1:
            slot[k] = calloc(1, n);
            break;
        default:
            slot[k] = malloc(n / 2 + 1);
            slot[k] = slot[k] ? realloc(slot[k], n) : NULL;
            break;
        }
        if (slot[k] == NULL) {
            j->ok = 0;
            break;
        }
        memset(slot[k], (int)(n & 0xff), n);
        len[k] = n;
    }
    for (int k = 0; k < SLOTS; k++)
        free(slot[k]);
    j->checksum = sum;
    return NULL;
}

/* ---- a pipe: numbered records from one thread to another ---------------- */
struct pipe_job {
    int fds[2];
    uint64_t received_sum;
    int ok;
};

COUNTED static void *pipe_writer(void *arg)
{
    struct pipe_job *j = arg;
    for (uint64_t i = 0; i < 40000u * (uint64_t)scale; i++) {
        uint64_t rec[2] = {i, mix(i)};
        if (write_full(j->fds[1], rec, sizeof rec) < 0)
            break;
    }
    close(j->fds[1]);
    return NULL;
}

COUNTED static void *pipe_reader(void *arg)
{
    struct pipe_job *j = arg;
    uint64_t expect = 0, rec[2];
    j->ok = 1;
    while (read_full(j->fds[0], rec, sizeof rec) == (ssize_t)sizeof rec) {
        if (rec[0] != expect || rec[1] != mix(expect))
            j->ok = 0;
        j->received_sum += rec[0];
        expect++;
    }
    if (expect != 40000u * (uint64_t)scale)
        j->ok = 0;
    close(j->fds[0]);
    return NULL;
}

/* ---- a socketpair: request/response with poll ---------------------------- */
struct sock_job {
    int sv[2];
    int ok;
    uint64_t bytes;
};

COUNTED static void *sock_echo(void *arg)
{
    struct sock_job *j = arg;
    unsigned char buf[64];
    for (;;) {
        if (!wait_readable(j->sv[1]) || read_full(j->sv[1], buf, sizeof buf) < 0)
            break;
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (unsigned char)(buf[i] + 1);
        if (write_full(j->sv[1], buf, sizeof buf) < 0)
            break;
    }
    close(j->sv[1]);
    return NULL;
}

COUNTED static void *sock_client(void *arg)
{
    struct sock_job *j = arg;
    unsigned char out[64], in[64];
    j->ok = 1;
    for (int r = 0; r < 10000 * scale && j->ok; r++) {
        for (size_t i = 0; i < sizeof out; i++)
            out[i] = (unsigned char)(r + (int)i);
        if (write_full(j->sv[0], out, sizeof out) < 0 || !wait_readable(j->sv[0]) ||
            read_full(j->sv[0], in, sizeof in) < 0) {
            j->ok = 0;
            break;
        }
        for (size_t i = 0; i < sizeof in; i++)
            if (in[i] != (unsigned char)(out[i] + 1))
                j->ok = 0;
        j->bytes += sizeof in;
    }
    shutdown(j->sv[0], SHUT_WR); /* the echo thread sees end of file */
    return NULL;
}

/* ---- CPU burners ----------------------------------------------------------- */
struct burn_job {
    uint64_t seed, result;
};

COUNTED static void *stress_burn(void *arg)
{
    struct burn_job *j = arg;
    j->result = BURN_CHUNKS(3000u * (uint64_t)scale, j->seed);
    return NULL;
}

/* ---- short-lived threads, created and joined in batches ------------------- */
COUNTED static void *short_thread(void *arg)
{
    uint64_t *v = arg;
    char *p = malloc(100 + (*v % 1000));
    if (p == NULL)
        return NULL;
    memset(p, 1, 100);
    ESCAPE(p);
    *v = BURN_CHUNKS(2, *v) | 1;
    free(p);
    return v;
}

COUNTED static int thread_churn(uint64_t *sum)
{
    enum { BATCH = 4 };
    int ok = 1;
    for (int b = 0; b < 25 * scale; b++) {
        pthread_t t[BATCH];
        uint64_t v[BATCH];
        int created = 0;
        for (int i = 0; i < BATCH; i++) {
            v[i] = (uint64_t)(b * BATCH + i + 1);
            if (pthread_create(&t[i], NULL, short_thread, &v[i]) != 0) {
                ok = 0;
                break;
            }
            created++;
        }
        for (int i = 0; i < created; i++) {
            void *ret = NULL;
            pthread_join(t[i], &ret);
            if (ret != &v[i])
                ok = 0;
            *sum += v[i];
        }
    }
    return ok;
}

/* ---- fork once, while every other thread runs ------------------------------ */
COUNTED static int child_work(void)
{
    uint64_t x = BURN_CHUNKS(200, 5);
    struct heap_job j = {.seed = 99};
    scale = 1;
    heap_worker(&j);
    return j.ok && x != 0 ? 0 : 3;
}

COUNTED static int fork_once(uint64_t *child_sum)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 0;
    fflush(NULL); /* the child's exit() must not print the parent's buffers */
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        close(fds[0]);
        int status = child_work();
        uint64_t v = 0x5eed;
        write_full(fds[1], &v, sizeof v);
        exit(status); /* exit, not _exit: ppx's exit path in a forked child */
    }
    close(fds[1]);
    int ok = read_full(fds[0], child_sum, sizeof *child_sum) == (ssize_t)sizeof *child_sum;
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 0;
    return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- exec while every thread burns CPU ------------------------------------ */
static void *exec_burner(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg;
    for (;;)
        x = BURN_CHUNK(x);
    return NULL;
}

COUNTED static int exec_chain(int n)
{
    if (n <= 0) {
        printf("exec chain done\n");
        return 0;
    }
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, exec_burner, (void *)(uintptr_t)(i + 1)) != 0)
            return 10;
    uint64_t x = BURN_CHUNKS(100, (uint64_t)n); /* ~8 ms */
    char next[16];
    snprintf(next, sizeof next, "%d", n - 1);
    char *const args[] = {"cpu_stress", "exec", next, NULL};
    execv("/proc/self/exe", args);
    perror("cpu_stress: execv /proc/self/exe");
    return x != 0 ? 11 : 12;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "exec") == 0)
        return exec_chain(atoi(argv[2]));
    if (argc > 1)
        scale = atoi(argv[1]) > 0 ? atoi(argv[1]) : 1;

    struct heap_job heap[2] = {{.seed = 1}, {.seed = 2}};
    struct pipe_job pj = {0};
    struct sock_job sj = {0};
    struct burn_job burn[2] = {{.seed = 21}, {.seed = 22}};
    pthread_t t[8];
    int n = 0;

    if (pipe(pj.fds) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sj.sv) != 0) {
        perror("cpu_stress: pipe/socketpair");
        return 10;
    }
    void *(*const entry[8])(void *) = {heap_worker, heap_worker, pipe_writer, pipe_reader,
                                       sock_echo,   sock_client, stress_burn, stress_burn};
    void *const args[8] = {&heap[0], &heap[1], &pj, &pj, &sj, &sj, &burn[0], &burn[1]};
    for (; n < 8; n++)
        if (pthread_create(&t[n], NULL, entry[n], args[n]) != 0) {
            fprintf(stderr, "cpu_stress: pthread_create failed\n");
            return 10;
        }

    uint64_t churn_sum = 0, child_sum = 0;
    int churn_ok = thread_churn(&churn_sum);
    int fork_ok = fork_once(&child_sum);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);

    int ok = heap[0].ok && heap[1].ok && pj.ok && sj.ok && churn_ok && fork_ok &&
             child_sum == 0x5eed && burn[0].result != 0 && burn[1].result != 0;
    printf("heap %llu %llu %s\n", (unsigned long long)heap[0].checksum,
           (unsigned long long)heap[1].checksum, heap[0].ok && heap[1].ok ? "ok" : "WRONG");
    printf("pipe %llu %s\n", (unsigned long long)pj.received_sum, pj.ok ? "ok" : "WRONG");
    printf("socket %llu %s\n", (unsigned long long)sj.bytes, sj.ok ? "ok" : "WRONG");
    printf("threads %llu %s\n", (unsigned long long)churn_sum, churn_ok ? "ok" : "WRONG");
    printf("fork %s\n", fork_ok && child_sum == 0x5eed ? "ok" : "WRONG");
    printf("burn %016llx %016llx\n", (unsigned long long)burn[0].result,
           (unsigned long long)burn[1].result);
    printf("%s\n", ok ? "all checks passed" : "some checks failed");
    fprintf(stderr, "cpu_stress: %ld system calls interrupted (EINTR) and retried\n",
            atomic_load(&eintr_count));
    /* the process's own CPU (not the forked child's): what its profile's total
     * is checked against (on stderr: stdout is the same with and without ppx) */
    fprintf(stderr, "rusage_cpu_ns %llu\npid %d\n", (unsigned long long)process_rusage_ns(),
            (int)getpid());
    return ok ? 0 : 1;
}
