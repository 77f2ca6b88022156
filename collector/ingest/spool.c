#include "ingest/ingest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uthash.h>

#define CHUNK (64u * 1024u)

/* A file read in this run, by name. */
struct seen {
    UT_hash_handle hh;
    bool present; /* found by the current scan */
    char name[];
};

struct spool {
    char *dir;
    bool consume;
    struct proc_table *table;
    pthread_mutex_t *lock;
    spool_ended_fn ended;
    void *arg;
    struct seen *seen;
    bool said_owner;
    uint8_t chunk[CHUNK];
};

/* One file to read: spool.<pid>.<start_ns>.<ppx|part> */
struct entry {
    uint32_t pid;
    uint64_t start_ns;
    bool part;
    char *name;
};

struct spool *spool_new(const char *socket_path, bool consume, struct proc_table *t,
                        pthread_mutex_t *lock, spool_ended_fn ended, void *arg)
{
    struct spool *s = calloc(1, sizeof *s);
    const char *slash = strrchr(socket_path, '/');
    if (!s)
        return NULL;
    s->dir = slash ? strndup(socket_path, slash == socket_path ? 1 : (size_t)(slash - socket_path))
                   : strdup(".");
    if (!s->dir) {
        free(s);
        return NULL;
    }
    s->consume = consume;
    s->table = t;
    s->lock = lock;
    s->ended = ended;
    s->arg = arg;
    return s;
}

void spool_free(struct spool *s)
{
    if (!s)
        return;
    struct seen *e, *tmp;
    HASH_ITER(hh, s->seen, e, tmp)
    {
        HASH_DEL(s->seen, e);
        free(e);
    }
    free(s->dir);
    free(s);
}

static bool parse_name(const char *name, struct entry *e)
{
    char kind[8];
    int used = 0;
    if (sscanf(name, "spool.%" SCNu32 ".%" SCNu64 ".%5[a-z]%n", &e->pid, &e->start_ns, kind,
               &used) != 3 ||
        name[used] != '\0' || e->pid == 0 || strncmp(name, "spool.", 6) != 0)
        return false;
    if (strcmp(kind, "ppx") == 0)
        e->part = false;
    else if (strcmp(kind, "part") == 0)
        e->part = true;
    else
        return false;
    return true;
}

/* A .part is still being written while its process lives. */
static bool writer_alive(uint32_t pid)
{
    return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

static bool mark_seen(struct spool *s, const char *name)
{
    struct seen *e;
    HASH_FIND_STR(s->seen, name, e);
    if (e) {
        e->present = true;
        return true;
    }
    return false;
}

static void remember(struct spool *s, const char *name)
{
    size_t len = strlen(name) + 1;
    struct seen *e = malloc(sizeof *e + len);
    if (!e)
        return; /* read again next time: better than never */
    memcpy(e->name, name, len);
    e->present = true;
    HASH_ADD_STR(s->seen, name, e);
}

static int by_start(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->start_ns != y->start_ns)
        return x->start_ns < y->start_ns ? -1 : 1;
    return x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* The files to read now, oldest process first; *n of them. */
static struct entry *list_new(struct spool *s, size_t *n)
{
    *n = 0;
    DIR *d = opendir(s->dir);
    if (!d)
        return NULL;
    struct entry *list = NULL;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct entry e;
        if (!parse_name(de->d_name, &e) || mark_seen(s, de->d_name))
            continue;
        if (e.part && writer_alive(e.pid))
            continue;
        if (*n == cap) {
            size_t grown = cap ? 2 * cap : 16;
            struct entry *l = realloc(list, grown * sizeof *l);
            if (!l)
                break;
            list = l;
            cap = grown;
        }
        e.name = strdup(de->d_name);
        if (!e.name)
            break;
        list[(*n)++] = e;
    }
    closedir(d);
    if (*n > 1)
        qsort(list, *n, sizeof *list, by_start);
    return list;
}

/* Opens dir/name if it is a plain file of ours; -1 after a message. */
static int open_checked(struct spool *s, const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) /* gone meanwhile: another collector took it */
            fprintf(stderr, "ppx: cannot open spool file %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        if (!s->said_owner)
            fprintf(stderr, "ppx: ignoring %s: not a regular file of this user\n", path);
        s->said_owner = true;
        close(fd);
        return -1;
    }
    return fd;
}

/* Feeds the file to d, a chunk per lock hold; the decoder's error, "" if
 * none, or a read error in err. */
static void feed_file(struct spool *s, int fd, struct wire_decoder *d, bool *ok, char *err,
                      size_t errlen)
{
    *ok = true;
    for (;;) {
        ssize_t n = read(fd, s->chunk, sizeof s->chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "read error: %s", strerror(errno));
            *ok = false;
            return;
        }
        pthread_mutex_lock(s->lock);
        int rc = n == 0 ? wire_decoder_end(d) : wire_decoder_feed(d, s->chunk, (size_t)n);
        pthread_mutex_unlock(s->lock);
        if (rc < 0) {
            snprintf(err, errlen, "%s", wire_decoder_error(d));
            *ok = false;
            return;
        }
        if (n == 0)
            return;
    }
}

static void read_one(struct spool *s, const struct entry *e)
{
    char *path = path_join(s->dir, e->name);
    if (!path)
        return;
    int fd = open_checked(s, path);
    if (fd < 0) {
        remember(s, e->name); /* said once, or gone */
        free(path);
        return;
    }
    struct wire_decoder *d = wire_decoder_new(s->table, e->pid);
    if (!d) {
        fprintf(stderr, "ppx: out of memory reading spool file %s\n", path);
        close(fd);
        free(path);
        return;
    }
    char err[512] = "";
    bool ok;
    feed_file(s, fd, d, &ok, err, sizeof err);
    close(fd);
    bool whole = ok && !e->part && wire_decoder_said_goodbye(d);
    if (!whole) {
        size_t len = strlen(path) + sizeof ".bad";
        char *bad = malloc(len);
        bool kept = bad && snprintf(bad, len, "%s.bad", path) > 0 && rename(path, bad) == 0;
        /* the decoder's message names the process: drop its "ppx: " */
        const char *why = strncmp(err, "ppx: ", 5) == 0 ? err + 5 : err;
        fprintf(stderr, "ppx: spool file %s %s%s%s%s%s%s\n", path,
                e->part ? "is incomplete (its process died while writing it)"
                        : "is not a whole stream",
                *why ? ": " : "", why, strstr(why, "kept") ? "" : "; the data before that is kept",
                kept ? "; the file is now " : "", kept ? bad : "");
        free(bad);
    }
    remember(s, e->name);
    pthread_mutex_lock(s->lock);
    struct proc *p = wire_decoder_ended_proc(d);
    wire_decoder_free(d);
    if (p)
        s->ended(s->arg, p, whole && s->consume ? path : NULL);
    pthread_mutex_unlock(s->lock);
    free(path);
}

void spool_scan(struct spool *s)
{
    struct seen *e, *tmp;
    HASH_ITER(hh, s->seen, e, tmp)
    e->present = false;
    size_t n;
    struct entry *list = list_new(s, &n);
    for (size_t i = 0; i < n; i++) {
        read_one(s, &list[i]);
        free(list[i].name);
    }
    free(list);
    /* Forget the files gone since: a new one may reuse the name. */
    HASH_ITER(hh, s->seen, e, tmp)
    {
        if (!e->present) {
            HASH_DEL(s->seen, e);
            free(e);
        }
    }
}
