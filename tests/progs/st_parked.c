/* State-threads coroutines parked in known places, for the thread dump
 * (goroutine profile), built against libst.so (st_parked) and libst.a
 * (st_parked_static): NSLEEP coroutines in st_sleep (park_in_sleep),
 * NREAD in st_read on pipes nobody writes (park_in_st_read), NCOND in
 * st_cond_wait on a condition nobody signals (park_in_cond_wait), each
 * entered from a start function of its own kind (sleeper_main, ...).
 * The first cond waiter has a stack of 256 KiB, the others libst's
 * default. NLOCK more in st_mutex_lock on a mutex main holds
 * (park_in_mutex_lock, from locker_main), NSUSPEND in st_usleep without
 * timeout (park_in_suspend, from suspended_main). Then NEXIT coroutines start and return at once,
 * every other one joinable and joined: their stacks go to libst's free list, each still holding its
 * ended coroutine's record (created last, no later coroutine takes them). The primordial coroutine
 * (main) then waits in st_read on stdin through wait_for_quit: prints "ready" and exits 0 at a line
 * or the end of stdin. Usage: st_parked NSLEEP NREAD NCOND [NEXIT [NLOCK NSUSPEND]]. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <st.h>

#define NOINLINE __attribute__((noinline, noclone))

static st_cond_t never;
static st_mutex_t held;
static volatile int resumed; /* stores after the parks: no tail calls */

NOINLINE void park_in_sleep(void)
{
    st_sleep(3600);
    resumed++;
}

NOINLINE void park_in_st_read(st_netfd_t fd)
{
    char c;
    st_read(fd, &c, 1, ST_UTIME_NO_TIMEOUT);
    resumed++;
}

NOINLINE void park_in_cond_wait(void)
{
    st_cond_wait(never);
    resumed++;
}

static void *sleeper_main(void *arg)
{
    park_in_sleep();
    return arg;
}

static void *reader_main(void *arg)
{
    park_in_st_read(arg);
    return NULL;
}

static void *waiter_main(void *arg)
{
    park_in_cond_wait();
    return arg;
}

NOINLINE void park_in_mutex_lock(void)
{
    st_mutex_lock(held);
    resumed++;
}

NOINLINE void park_in_suspend(void)
{
    st_usleep(ST_UTIME_NO_TIMEOUT);
    resumed++;
}

static void *locker_main(void *arg)
{
    park_in_mutex_lock();
    return arg;
}

static void *suspended_main(void *arg)
{
    park_in_suspend();
    return arg;
}

static void *exit_main(void *arg)
{
    return arg;
}

NOINLINE void wait_for_quit(st_netfd_t in)
{
    char c;
    st_read(in, &c, 1, ST_UTIME_NO_TIMEOUT);
    resumed++;
}

static st_thread_t start(void *(*fn)(void *), void *arg, int joinable, int stack_size)
{
    st_thread_t t = st_thread_create(fn, arg, joinable, stack_size);
    if (t == NULL)
        exit(1);
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 4 || st_init() < 0)
        return 2;
    int nsleep = atoi(argv[1]), nread = atoi(argv[2]), ncond = atoi(argv[3]);
    int nexit = argc > 4 ? atoi(argv[4]) : 0;
    int nlock = argc > 6 ? atoi(argv[5]) : 0, nsuspend = argc > 6 ? atoi(argv[6]) : 0;
    never = st_cond_new();
    held = st_mutex_new();
    if (never == NULL || held == NULL || st_mutex_lock(held) != 0)
        return 1;
    for (int i = 0; i < nsleep; i++)
        start(sleeper_main, NULL, 0, 0);
    for (int i = 0; i < nread; i++) {
        int p[2];
        if (pipe(p) != 0)
            return 1;
        start(reader_main, st_netfd_open(p[0]), 0, 0);
    }
    for (int i = 0; i < ncond; i++)
        start(waiter_main, NULL, 0, i == 0 ? 256 * 1024 : 0);
    for (int i = 0; i < nlock; i++)
        start(locker_main, NULL, 0, 0);
    for (int i = 0; i < nsuspend; i++)
        start(suspended_main, NULL, 0, 0);
    st_thread_t joined[16];
    int njoined = 0;
    for (int i = 0; i < nexit; i++) {
        st_thread_t t = start(exit_main, NULL, i % 2 == 0 && njoined < 16, 0);
        if (i % 2 == 0 && njoined < 16)
            joined[njoined++] = t;
    }
    for (int i = 0; i < njoined; i++)
        if (st_thread_join(joined[i], NULL) != 0)
            return 1;
    st_usleep(100000); /* every coroutine has run to its park or its end */
    printf("ready\n");
    fflush(stdout);
    wait_for_quit(st_netfd_open(0));
    return 0;
}
