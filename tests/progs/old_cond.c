/* A program as linked against glibc before 2.3.2 (x86_64): its condition
 * variables are the old ones, pthread_cond_*@GLIBC_2.2.5, which keep a
 * pointer to a new one inside. libppx.so hooks only the default versions
 * (@@GLIBC_2.3.2): these must reach glibc's compatibility functions
 * untouched (tests/e2e/contention.sh). Prints "old_cond ok" when five
 * signalled waits and a timed wait that times out behaved; elsewhere than
 * on x86_64, "old_cond skipped". */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#if defined(__x86_64__)
int old_init(pthread_cond_t *, const pthread_condattr_t *);
int old_wait(pthread_cond_t *, pthread_mutex_t *);
int old_timedwait(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
int old_signal(pthread_cond_t *);
int old_destroy(pthread_cond_t *);
__asm__(".symver old_init, pthread_cond_init@GLIBC_2.2.5");
__asm__(".symver old_wait, pthread_cond_wait@GLIBC_2.2.5");
__asm__(".symver old_timedwait, pthread_cond_timedwait@GLIBC_2.2.5");
__asm__(".symver old_signal, pthread_cond_signal@GLIBC_2.2.5");
__asm__(".symver old_destroy, pthread_cond_destroy@GLIBC_2.2.5");

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static int posted;

static void *poster(void *arg)
{
    (void)arg;
    struct timespec pause = {0, 20000000};
    for (int i = 1; i <= 5; i++) {
        nanosleep(&pause, NULL);
        pthread_mutex_lock(&mu);
        posted = i;
        old_signal(&cv);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

int main(void)
{
    old_init(&cv, NULL);
    pthread_t t;
    pthread_create(&t, NULL, poster, NULL);
    pthread_mutex_lock(&mu);
    for (int i = 1; i <= 5; i++)
        while (posted < i)
            old_wait(&cv, &mu);
    struct timespec soon;
    clock_gettime(CLOCK_REALTIME, &soon);
    soon.tv_nsec += 10000000;
    if (soon.tv_nsec >= 1000000000) {
        soon.tv_sec++;
        soon.tv_nsec -= 1000000000;
    }
    int r = old_timedwait(&cv, &mu, &soon);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL);
    old_destroy(&cv);
    if (r != ETIMEDOUT) {
        printf("old_cond: timed wait returned %d, expected ETIMEDOUT\n", r);
        return 1;
    }
    printf("old_cond ok\n");
    return 0;
}
#else
int main(void)
{
    printf("old_cond skipped\n");
    return 0;
}
#endif
