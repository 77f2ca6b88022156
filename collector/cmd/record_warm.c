/* ppx record's warm-up of the debug-file cache (symbol/debug_cache.c).
 *
 * The first symbolization that needs a separate debug file with
 * compressed sections inflates it into the cache: ~50 ms for glibc's,
 * paid after the command exits by the first `ppx record` after a library
 * update. While the command runs, the build ids its processes map are
 * handed to a thread of its own that makes those copies, so that the
 * symbolization after the exit finds them made. Before it, the thread is
 * stopped (the copy under way finished, the others left to the
 * symbolization itself): libdw is then used by one thread only.
 *
 * The queue and the set of build ids seen belong to the record loop's
 * thread, except what mu guards. */
#include "cmd/cmd.h"
#include "model/model.h"
#include "symbol/symbol.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uthash.h>

#define WARM_NICE 10
#define QUEUE_MAX 256u    /* build ids waiting; more are left to the symbolization */
#define SCAN_EVERY_MS 100 /* the mappings looked at at most every 100 ms */

struct seen_id {
    uint8_t id[64];
    UT_hash_handle hh; /* keyed by id (zero-padded) */
};

struct queued_id {
    uint8_t id[64];
    size_t len;
};

struct record_warm {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct queued_id queue[QUEUE_MAX]; /* under mu */
    size_t head, n;                    /* under mu */
    bool stopping;                     /* under mu */
    struct seen_id *seen;              /* the record loop's */
    long long next_scan_ms;            /* the record loop's */
};

static void *warm_main(void *arg)
{
    struct record_warm *w = arg;
    /* below the command's own threads: it runs meanwhile */
    setpriority(PRIO_PROCESS, (id_t)gettid(), WARM_NICE);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->n == 0 && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stopping)
            break;
        struct queued_id q = w->queue[w->head];
        w->head = (w->head + 1) % QUEUE_MAX;
        w->n--;
        pthread_mutex_unlock(&w->mu);
        char *path = NULL;
        int fd = debug_cache_open(q.id, q.len, &path);
        if (fd >= 0)
            close(fd);
        free(path);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct record_warm *record_warm_start(void)
{
    struct record_warm *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, warm_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL; /* the symbolization makes the copies, as without */
    }
    return w;
}

/* Queues id unless seen before (or the queue is full: left for later). */
static void offer(struct record_warm *w, const uint8_t *id, size_t len)
{
    if (len < 2 || len > sizeof((struct seen_id *)0)->id)
        return;
    uint8_t key[64] = {0};
    memcpy(key, id, len);
    struct seen_id *s;
    HASH_FIND(hh, w->seen, key, sizeof key, s);
    if (s)
        return;
    pthread_mutex_lock(&w->mu);
    bool room = w->n < QUEUE_MAX;
    if (room) {
        struct queued_id *q = &w->queue[(w->head + w->n++) % QUEUE_MAX];
        memcpy(q->id, id, len);
        q->len = len;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    if (!room || !(s = calloc(1, sizeof *s)))
        return;
    memcpy(s->id, key, sizeof key);
    HASH_ADD(hh, w->seen, id, sizeof s->id, s);
}

void record_warm_scan(struct record_warm *w, const struct proc_table *t)
{
    if (!w)
        return;
    long long now = monotonic_ms();
    if (now < w->next_scan_ms)
        return;
    w->next_scan_ms = now + SCAN_EVERY_MS;
    size_t n = 0;
    struct proc **list = proc_table_list(t, &n);
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < list[i]->n_mappings; m++)
            offer(w, list[i]->mappings[m].build_id, list[i]->mappings[m].build_id_len);
    free(list);
}

void record_warm_finish(struct record_warm *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    struct seen_id *s, *tmp;
    HASH_ITER(hh, w->seen, s, tmp)
    {
        HASH_DEL(w->seen, s);
        free(s);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
