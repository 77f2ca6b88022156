/* Known lock contention, for the block and mutex profiles (tests/e2e/
 * contention.sh). Each case prints its figures as the program itself
 * measured them ("wait_mutex waits 20 wait_ns 1000123456": the waits that
 * did wait, more than 10 us, and the time of all; under load a round's
 * waiter may come only after the holder let go, and not wait):
 * - mutex: hold_mutex holds a mutex 50 ms while wait_mutex waits for it,
 *   20 times: wait_mutex blocks ~1 s, and hold_mutex made it wait ~1 s;
 * - cond: wait_cond waits 30 ms on a condition variable, 10 times;
 * - rwlock: hold_rwlock holds the write lock 40 ms while wait_rwlock waits
 *   for the read lock, 10 times;
 * - sem: wait_sem waits 20 ms for a semaphore, 10 times;
 * - semantics: trylock's EBUSY, an error-checking mutex's EDEADLK and EPERM,
 *   a robust mutex's EOWNERDEAD (its owner thread ended holding it), a
 *   timed lock's ETIMEDOUT, returned as glibc returns them;
 * - loader: a contended lock taken inside a dl_iterate_phdr callback (the
 *   loader's lock held) while stdio and malloc run on another thread;
 * - fork: fork while one thread holds a mutex and another waits for it;
 *   the child locks and unlocks another contended-in-the-parent mutex.
 * With no argument, all of them; "loop": the mutex case until killed, for
 * a live collector, after printing "ready"; "short": wait_short waits 2 ms
 * for a semaphore, 200 times (the block profile's sampling of short waits). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A wait the program measured: added to *total, and counted in *waits if
 * the thread did wait (more than 10 us: a lock taken at once, a semaphore
 * or condition already posted when the thread came, takes far less). */
static bool add_wait(uint64_t ns, uint64_t *total, unsigned *waits)
{
    *total += ns;
    if (ns <= 10000)
        return false;
    (*waits)++;
    return true;
}

/* What a holder made its waiter wait, as the mutex profile counts it: from
 * the waiter's start (t0) to the holder's release (just before its unlock,
 * released_ns), for a wait that did wait; the waiter's wake-up after the
 * release is nobody's doing. */
static void add_caused(bool waited, uint64_t t0, const uint64_t *released_ns, uint64_t *caused)
{
    uint64_t r = __atomic_load_n(released_ns, __ATOMIC_ACQUIRE);
    if (waited && r > t0)
        *caused += r - t0;
}

static void expect(int got, int want, const char *what)
{
    if (got != want) {
        fprintf(stderr, "contention: %s returned %d (%s), expected %d\n", what, got, strerror(got),
                want);
        exit(2);
    }
}

/* A handshake that does not go through the hooked waits: a spin on an atomic. */
static void await_flag(int *flag, int value)
{
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) != value)
        sched_yield();
}

/* ---- mutex ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int mutex_round; /* the holder has the lock for round N */
static int mutex_done;  /* the waiter finished round N */
static uint64_t mutex_wait_ns, mutex_released_ns, mutex_caused_ns;
static unsigned mutex_waits;

NOINLINE void hold_mutex(unsigned rounds, unsigned ms)
{
    for (unsigned i = 1; i <= rounds; i++) {
        await_flag(&mutex_done, (int)i - 1);
        expect(pthread_mutex_lock(&mu), 0, "pthread_mutex_lock");
        __atomic_store_n(&mutex_round, (int)i, __ATOMIC_RELEASE);
        sleep_ms(ms);
        __atomic_store_n(&mutex_released_ns, now_ns(), __ATOMIC_RELEASE);
        expect(pthread_mutex_unlock(&mu), 0, "pthread_mutex_unlock");
    }
}

NOINLINE void wait_mutex(unsigned rounds)
{
    for (unsigned i = 1; i <= rounds; i++) {
        await_flag(&mutex_round, (int)i);
        uint64_t t0 = now_ns();
        expect(pthread_mutex_lock(&mu), 0, "pthread_mutex_lock");
        bool waited = add_wait(now_ns() - t0, &mutex_wait_ns, &mutex_waits);
        add_caused(waited, t0, &mutex_released_ns, &mutex_caused_ns);
        expect(pthread_mutex_unlock(&mu), 0, "pthread_mutex_unlock");
        __atomic_store_n(&mutex_done, (int)i, __ATOMIC_RELEASE);
    }
}

static void *mutex_waiter(void *arg)
{
    wait_mutex((unsigned)(uintptr_t)arg);
    return NULL;
}

static void mutex_rounds(unsigned rounds, unsigned ms)
{
    pthread_t t;
    expect(pthread_create(&t, NULL, mutex_waiter, (void *)(uintptr_t)rounds), 0, "pthread_create");
    hold_mutex(rounds, ms);
    pthread_join(t, NULL);
}

static void case_mutex(void)
{
    mutex_rounds(20, 50);
    printf("wait_mutex waits %u wait_ns %llu\n", mutex_waits, (unsigned long long)mutex_wait_ns);
    printf("hold_mutex caused_ns %llu\n", (unsigned long long)mutex_caused_ns);
}

/* For a live collector: "ready", then the mutex case until killed. */
static void case_loop(void)
{
    printf("ready\n");
    mutex_rounds(1000000, 50);
}

/* ---- condition variable ---- */

static pthread_mutex_t cond_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned cond_posted;
static int cond_waiting;
static uint64_t cond_wait_ns;
static unsigned cond_waits;

NOINLINE void wait_cond(unsigned rounds)
{
    for (unsigned i = 1; i <= rounds; i++) {
        expect(pthread_mutex_lock(&cond_mu), 0, "pthread_mutex_lock");
        __atomic_store_n(&cond_waiting, (int)i, __ATOMIC_RELEASE);
        uint64_t t0 = now_ns();
        while (cond_posted < i)
            expect(pthread_cond_wait(&cond, &cond_mu), 0, "pthread_cond_wait");
        add_wait(now_ns() - t0, &cond_wait_ns, &cond_waits);
        expect(pthread_mutex_unlock(&cond_mu), 0, "pthread_mutex_unlock");
    }
}

static void *cond_waiter(void *arg)
{
    wait_cond((unsigned)(uintptr_t)arg);
    return NULL;
}

NOINLINE void signal_cond(unsigned rounds, unsigned ms)
{
    for (unsigned i = 1; i <= rounds; i++) {
        await_flag(&cond_waiting, (int)i);
        sleep_ms(ms);
        expect(pthread_mutex_lock(&cond_mu), 0, "pthread_mutex_lock");
        cond_posted = i;
        expect(pthread_cond_signal(&cond), 0, "pthread_cond_signal");
        expect(pthread_mutex_unlock(&cond_mu), 0, "pthread_mutex_unlock");
    }
}

static void case_cond(void)
{
    const unsigned rounds = 10, ms = 30;
    pthread_t t;
    expect(pthread_create(&t, NULL, cond_waiter, (void *)(uintptr_t)rounds), 0, "pthread_create");
    signal_cond(rounds, ms);
    pthread_join(t, NULL);
    printf("wait_cond waits %u wait_ns %llu\n", cond_waits, (unsigned long long)cond_wait_ns);
}

/* ---- rwlock ---- */

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static int rw_round, rw_done;
static uint64_t rw_wait_ns, rw_released_ns, rw_caused_ns;
static unsigned rw_waits;

NOINLINE void hold_rwlock(unsigned rounds, unsigned ms)
{
    for (unsigned i = 1; i <= rounds; i++) {
        await_flag(&rw_done, (int)i - 1);
        expect(pthread_rwlock_wrlock(&rw), 0, "pthread_rwlock_wrlock");
        __atomic_store_n(&rw_round, (int)i, __ATOMIC_RELEASE);
        sleep_ms(ms);
        __atomic_store_n(&rw_released_ns, now_ns(), __ATOMIC_RELEASE);
        expect(pthread_rwlock_unlock(&rw), 0, "pthread_rwlock_unlock");
    }
}

NOINLINE void wait_rwlock(unsigned rounds)
{
    for (unsigned i = 1; i <= rounds; i++) {
        await_flag(&rw_round, (int)i);
        uint64_t t0 = now_ns();
        expect(pthread_rwlock_rdlock(&rw), 0, "pthread_rwlock_rdlock");
        bool waited = add_wait(now_ns() - t0, &rw_wait_ns, &rw_waits);
        add_caused(waited, t0, &rw_released_ns, &rw_caused_ns);
        expect(pthread_rwlock_unlock(&rw), 0, "pthread_rwlock_unlock");
        __atomic_store_n(&rw_done, (int)i, __ATOMIC_RELEASE);
    }
}

static void *rw_waiter(void *arg)
{
    wait_rwlock((unsigned)(uintptr_t)arg);
    return NULL;
}

static void case_rwlock(void)
{
    const unsigned rounds = 10, ms = 40;
    pthread_t t;
    expect(pthread_create(&t, NULL, rw_waiter, (void *)(uintptr_t)rounds), 0, "pthread_create");
    hold_rwlock(rounds, ms);
    pthread_join(t, NULL);
    printf("wait_rwlock waits %u wait_ns %llu\n", rw_waits, (unsigned long long)rw_wait_ns);
    printf("hold_rwlock caused_ns %llu\n", (unsigned long long)rw_caused_ns);
}

/* ---- semaphore ---- */

static sem_t sem;
static int sem_waiting;
static uint64_t sem_wait_ns;
static unsigned sem_waits;

NOINLINE void wait_sem(unsigned rounds)
{
    for (unsigned i = 1; i <= rounds; i++) {
        __atomic_store_n(&sem_waiting, (int)i, __ATOMIC_RELEASE);
        uint64_t t0 = now_ns();
        while (sem_wait(&sem) != 0)
            if (errno != EINTR)
                expect(errno, 0, "sem_wait");
        add_wait(now_ns() - t0, &sem_wait_ns, &sem_waits);
    }
}

static void *sem_waiter(void *arg)
{
    wait_sem((unsigned)(uintptr_t)arg);
    return NULL;
}

static void case_sem(void)
{
    const unsigned rounds = 10, ms = 20;
    sem_init(&sem, 0, 0);
    pthread_t t;
    expect(pthread_create(&t, NULL, sem_waiter, (void *)(uintptr_t)rounds), 0, "pthread_create");
    for (unsigned i = 1; i <= rounds; i++) {
        await_flag(&sem_waiting, (int)i);
        sleep_ms(ms);
        sem_post(&sem);
    }
    pthread_join(t, NULL);
    /* an uncontended wait: errno as it was */
    sem_post(&sem);
    errno = 1234;
    expect(sem_wait(&sem), 0, "sem_wait");
    expect(errno, 1234, "errno after an uncontended sem_wait");
    printf("wait_sem waits %u wait_ns %llu\n", sem_waits, (unsigned long long)sem_wait_ns);
}

/* ---- short waits, for the block profile's sampling ---- */

static sem_t short_sem;
static int short_waiting;
static uint64_t short_wait_ns;
static unsigned short_waits;

NOINLINE void wait_short(unsigned rounds)
{
    for (unsigned i = 1; i <= rounds; i++) {
        __atomic_store_n(&short_waiting, (int)i, __ATOMIC_RELEASE);
        uint64_t t0 = now_ns();
        while (sem_wait(&short_sem) != 0)
            ;
        add_wait(now_ns() - t0, &short_wait_ns, &short_waits);
    }
}

static void *short_waiter(void *arg)
{
    wait_short((unsigned)(uintptr_t)arg);
    return NULL;
}

/* 200 waits of 2 ms: below a block rate of 10 ms, each is recorded with
 * probability wait/rate, standing for rate/wait contentions. */
static void case_short(void)
{
    const unsigned rounds = 200, ms = 2;
    sem_init(&short_sem, 0, 0);
    pthread_t t;
    expect(pthread_create(&t, NULL, short_waiter, (void *)(uintptr_t)rounds), 0, "pthread_create");
    for (unsigned i = 1; i <= rounds; i++) {
        await_flag(&short_waiting, (int)i);
        sleep_ms(ms);
        sem_post(&short_sem);
    }
    pthread_join(t, NULL);
    printf("wait_short waits %u wait_ns %llu\n", short_waits, (unsigned long long)short_wait_ns);
}

/* ---- return values ---- */

static pthread_mutex_t robust;

static void *die_holding(void *arg)
{
    (void)arg;
    expect(pthread_mutex_lock(&robust), 0, "pthread_mutex_lock (robust)");
    return NULL; /* ends holding it */
}

static void *try_other(void *arg)
{
    return (void *)(intptr_t)pthread_mutex_trylock(arg);
}

static struct timespec in_20ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

static void *timed_other(void *arg)
{
    struct timespec soon = in_20ms();
    return (void *)(intptr_t)pthread_mutex_timedlock(arg, &soon);
}

static void case_semantics(void)
{
    pthread_mutexattr_t a;
    pthread_mutex_t ec;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&ec, &a);
    expect(pthread_mutex_unlock(&ec), EPERM, "unlock of an unlocked error-checking mutex");
    expect(pthread_mutex_lock(&ec), 0, "pthread_mutex_lock (error-checking)");
    expect(pthread_mutex_lock(&ec), EDEADLK, "relock of an error-checking mutex");
    expect(pthread_mutex_trylock(&ec), EBUSY, "trylock of a held mutex");
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, try_other, &ec);
    pthread_join(t, &r);
    expect((int)(intptr_t)r, EBUSY, "trylock of a mutex another thread holds");
    pthread_create(&t, NULL, timed_other, &ec);
    pthread_join(t, &r);
    expect((int)(intptr_t)r, ETIMEDOUT, "timedlock of a mutex another thread holds");
    expect(pthread_mutex_unlock(&ec), 0, "pthread_mutex_unlock (error-checking)");

    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_NORMAL);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &a);
    pthread_create(&t, NULL, die_holding, NULL);
    pthread_join(t, NULL);
    expect(pthread_mutex_lock(&robust), EOWNERDEAD, "lock of a robust mutex whose owner died");
    expect(pthread_mutex_consistent(&robust), 0, "pthread_mutex_consistent");
    expect(pthread_mutex_unlock(&robust), 0, "pthread_mutex_unlock (robust)");
    pthread_create(&t, NULL, die_holding, NULL);
    pthread_join(t, NULL);
    struct timespec soon = in_20ms();
    expect(pthread_mutex_timedlock(&robust, &soon), EOWNERDEAD, "timedlock of an orphaned mutex");
    pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);
    printf("semantics ok\n");
}

/* ---- inside the loader's lock, with stdio and malloc elsewhere ---- */

static pthread_mutex_t loader_mu = PTHREAD_MUTEX_INITIALIZER;
static int loader_stop, loader_holding;

static void *churn(void *arg)
{
    (void)arg;
    FILE *f = fopen("/dev/null", "w");
    while (!__atomic_load_n(&loader_stop, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&loader_mu);
        __atomic_store_n(&loader_holding, 1, __ATOMIC_RELEASE);
        free(malloc(100));
        fprintf(f, "%d\n", 42);
        usleep(100);
        pthread_mutex_unlock(&loader_mu);
        __atomic_store_n(&loader_holding, 0, __ATOMIC_RELEASE);
        free(malloc(1000));
    }
    fclose(f);
    return NULL;
}

static int in_callback(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)info;
    (void)size;
    unsigned *n = arg;
    pthread_mutex_lock(&loader_mu); /* contended now and then: unwinds here */
    free(malloc(64));
    pthread_mutex_unlock(&loader_mu);
    (*n)++;
    return 0;
}

static void case_loader(void)
{
    pthread_t t;
    pthread_create(&t, NULL, churn, NULL);
    unsigned n = 0;
    for (int i = 0; i < 200; i++)
        dl_iterate_phdr(in_callback, &n);
    __atomic_store_n(&loader_stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    printf("loader callbacks %u\n", n);
}

/* ---- fork with locks held ---- */

static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER;
static int fork_waiting;

static void *fork_waiter(void *arg)
{
    (void)arg;
    __atomic_store_n(&fork_waiting, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&fork_mu);
    pthread_mutex_unlock(&fork_mu);
    return NULL;
}

static void case_fork(void)
{
    pthread_mutex_lock(&fork_mu);
    pthread_t t;
    pthread_create(&t, NULL, fork_waiter, NULL);
    await_flag(&fork_waiting, 1);
    sleep_ms(20); /* the waiter is in the lock now */
    pid_t pid = fork();
    if (pid == 0) {
        /* The child holds fork_mu (the forking thread did) and has no waiter. */
        expect(pthread_mutex_unlock(&fork_mu), 0, "pthread_mutex_unlock in the child");
        expect(pthread_mutex_lock(&fork_mu), 0, "pthread_mutex_lock in the child");
        expect(pthread_mutex_unlock(&fork_mu), 0, "pthread_mutex_unlock in the child");
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    pthread_mutex_unlock(&fork_mu);
    pthread_join(t, NULL);
    printf("fork child_status %d\n",
           WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {{"mutex", case_mutex}, {"cond", case_cond},           {"rwlock", case_rwlock},
                 {"sem", case_sem},     {"semantics", case_semantics}, {"loader", case_loader},
                 {"fork", case_fork}};
    if (argc > 1 && strcmp(argv[1], "short") == 0) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        case_short();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "loop") == 0) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        case_loop();
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (argc < 2 || strcmp(argv[1], cases[i].name) == 0)
            cases[i].run();
    return 0;
}
