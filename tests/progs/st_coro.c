/* State-threads coroutines with exactly known allocations and I/O, for
 * tests/e2e/coroutines.sh. Built twice: against Debian's libst.so
 * (st_coro) and with /usr/lib/libst.a linked in (st_coro_static). Each
 * coroutine's stack starts at state-threads' coroutine entry, on a stack
 * of its own; a profiler's walk must end there.
 *
 * Per counted function (each called from its coroutine through a _mid
 * function, e.g. coro_alpha -> alpha_mid -> alpha_leaf):
 *   alpha_leaf   malloc(48)  x 100, kept          4800 bytes
 *   beta_leaf    calloc(1, 200) x 50, freed       10000 bytes
 *   gamma_leaf   malloc(1000) x 30 (gamma_mid -> gamma_deep -> gamma_leaf), freed
 *   writer_leaf  st_write 64 bytes x 40 on a pipe   2560 bytes
 *   reader_leaf  st_read until 2560 bytes came
 * The coroutines yield (st_usleep(0)) between calls, so their stacks
 * interleave on the one thread. stdout: "done <bytes read>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <st.h>

#include "known_allocs.h"

#define ALPHA_N 100
#define BETA_N 50
#define GAMMA_N 30
#define IO_N 40
#define IO_BYTES 64

static void *kept[ALPHA_N];
static st_netfd_t pipe_r, pipe_w;
static size_t bytes_read;

COUNTED static void *alpha_leaf(size_t n)
{
    void *p = malloc(n);
    ESCAPE(p);
    return p;
}

COUNTED static void alpha_mid(void)
{
    for (int i = 0; i < ALPHA_N; i++) {
        kept[i] = alpha_leaf(48);
        st_usleep(0);
    }
}

COUNTED static void *coro_alpha(void *arg)
{
    alpha_mid();
    return arg;
}

COUNTED static void *beta_leaf(void)
{
    void *p = calloc(1, 200);
    ESCAPE(p);
    return p;
}

COUNTED static void beta_mid(void)
{
    for (int i = 0; i < BETA_N; i++) {
        void *p = beta_leaf();
        st_usleep(0);
        free(p);
    }
}

COUNTED static void *coro_beta(void *arg)
{
    beta_mid();
    return arg;
}

/* 30 blocks of 1000 bytes, freed: a third coroutine function that
 * allocates from deeper down (gamma_mid -> gamma_deep -> gamma_leaf). */
COUNTED static void *gamma_leaf(void)
{
    void *p = malloc(1000);
    ESCAPE(p);
    return p;
}

COUNTED static void gamma_deep(void)
{
    void *p = gamma_leaf();
    st_usleep(0);
    free(p);
}

COUNTED static void gamma_mid(void)
{
    for (int i = 0; i < GAMMA_N; i++)
        gamma_deep();
}

COUNTED static void *coro_gamma(void *arg)
{
    gamma_mid();
    return arg;
}

COUNTED static ssize_t writer_leaf(const char *buf)
{
    return st_write(pipe_w, buf, IO_BYTES, ST_UTIME_NO_TIMEOUT);
}

COUNTED static void writer_mid(void)
{
    char buf[IO_BYTES];
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < IO_N; i++) {
        if (writer_leaf(buf) != IO_BYTES)
            exit(3);
        st_usleep(0);
    }
}

COUNTED static void *coro_writer(void *arg)
{
    writer_mid();
    return arg;
}

COUNTED static ssize_t reader_leaf(char *buf, size_t cap)
{
    return st_read(pipe_r, buf, cap, ST_UTIME_NO_TIMEOUT);
}

COUNTED static void reader_mid(void)
{
    char buf[IO_BYTES];
    while (bytes_read < IO_N * IO_BYTES) {
        ssize_t n = reader_leaf(buf, sizeof buf);
        if (n <= 0)
            exit(4);
        bytes_read += (size_t)n;
    }
}

COUNTED static void *coro_reader(void *arg)
{
    reader_mid();
    return arg;
}

int main(void)
{
    int fds[2];
    if (st_init() != 0 || pipe(fds) != 0)
        return 2;
    pipe_r = st_netfd_open(fds[0]);
    pipe_w = st_netfd_open(fds[1]);
    if (pipe_r == NULL || pipe_w == NULL)
        return 2;
    void *(*const fns[])(void *) = {coro_alpha, coro_beta, coro_gamma, coro_writer, coro_reader};
    st_thread_t t[5];
    for (int i = 0; i < 5; i++)
        if ((t[i] = st_thread_create(fns[i], NULL, 1, 0)) == NULL)
            return 2;
    for (int i = 0; i < 5; i++)
        st_thread_join(t[i], NULL);
    for (int i = 0; i < ALPHA_N; i++)
        free(kept[i]);
    printf("done %zu\n", bytes_read);
    return 0;
}
