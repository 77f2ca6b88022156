/* The registry of the process's threads, and their THREAD records (wire.h).
 *
 * A thread gets a record when it starts through the pthread_create hook
 * (hooks/thread.c), on its own thread, before its start routine runs. The
 * thread that initialises the library registers itself at init; threads
 * that existed before (or were created while the hooks only passed
 * through) are found by the flusher in /proc/self/task, or register
 * themselves when they next call a thread hook; these carry
 * WIRE_THREAD_PREEXISTING and no creation stack.
 *
 * Records come from the arena and are never freed: the list only grows at
 * its head, published with a release store under reg_mu, so the flusher
 * and the CPU profile walk it without a lock. Kernel tids are reused, record ids
 * are not. Memory grows by one record (128 bytes) per thread ever started,
 * and the flusher walks every record each flush.
 *
 * End: a pthread key destructor, set on every thread registered on itself,
 * records the end time and the thread's final CPU time. A thread that ends
 * without it (a raw clone, or one found by the scan that never called a
 * hook) is seen ended by the flusher when its CPU clock is gone (EINVAL).
 *
 * The program's threads still running are counted (running_threads), as glibc
 * counts all threads: the one whose end brings the count to 0 is the
 * program's last (if the main thread has ended, or is this one), and stops
 * the flusher before glibc's own count reaches 0, so that glibc's exit(0)
 * runs on it (main called pthread_exit), as without ppx. A thread is
 * counted from pthread_create (before it exists: its creator may end
 * first), from its registration if it was not created through the hook, or
 * when the scan finds it; and counted out once, by whoever records its end.
 * Threads made by a raw clone() after the scan are not counted: should the
 * count reach 0 while one runs, it goes on with no flusher, and the state
 * goes out at exit.
 *
 * CPU time of a running thread is read by the flusher from the thread's own
 * CPU clock: clockid ((~tid) << 3) | 6 (the kernel's MAKE_THREAD_CPUCLOCK,
 * CPUCLOCK_SCHED | CPUCLOCK_PERTHREAD_MASK), which any thread of the
 * process may read. A record is sent when it is new on the connection,
 * renamed, ended, or its CPU grew by >= 1 ms since it was last sent; at the
 * final flush every change goes out. */
#include "cpu.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SCAN_MAX_TIDS 4096u
#define SCAN_WAIT_TRIES 200 /* of 1 ms: threads being started through the hook */

struct thread_entry {
    struct ppx_thread_record rec; /* first: a record is handed out as &entry->rec */
    /* under reg_mu */
    struct thread_entry *found_next; /* records not created through the hook */
    bool has_handle;                 /* rec.handle is valid (registered on its own thread) */
    bool cpu_started;                /* ppx_cpu_thread_started was called for it */
};

PPX_TLS struct ppx_thread_record *ppx_self_record;

/* Taken to register a thread, to rename one, and by the scan; never in a
 * signal handler, never while unwinding or allocating from the target. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ppx_owner reg_mu_owner; /* check builds: who holds reg_mu */
static _Atomic(struct ppx_thread_record *) list_head;
static struct thread_entry *found_head;              /* under reg_mu */
static bool cpu_ready;                               /* ppx_cpu_init has run */
static _Atomic(struct ppx_thread_record *) main_rec; /* the record with WIRE_THREAD_MAIN */
static atomic_uint next_id;
/* Threads between pthread_create and their registration (see the scan). */
static atomic_uint starting;
static atomic_uint running_threads;
static pthread_key_t end_key;
static bool have_end_key;
/* Set once by ppx_threads_init: what runs when the program's last thread
 * ends, on that thread (the flusher stops first: flush/lifecycle.c). */
static void (*on_last_thread_end)(void);

/* Two readers (the flusher, the thread's own end) race: CPU never goes back. */
void ppx_thread_cpu_raise(struct ppx_thread_record *r, uint64_t ns)
{
    uint64_t old = atomic_load_explicit(&r->cpu_ns, memory_order_relaxed);
    while (ns > old && !atomic_compare_exchange_weak_explicit(
                           &r->cpu_ns, &old, ns, memory_order_relaxed, memory_order_relaxed)) {
    }
}

void ppx_thread_mark_changed(struct ppx_thread_record *r)
{
    atomic_store_explicit(&r->changed, 1, memory_order_release);
}

/* Records r's end, once: whoever does (the thread's own end, the flusher)
 * counts it out. Whether the program has no other thread left. */
bool ppx_thread_record_end(struct ppx_thread_record *r)
{
    uint64_t zero = 0;
    if (!atomic_compare_exchange_strong_explicit(&r->end_ns, &zero, ppx_realtime_ns(),
                                                 memory_order_release, memory_order_relaxed))
        return false;
    ppx_thread_mark_changed(r);
    return atomic_fetch_sub_explicit(&running_threads, 1, memory_order_acq_rel) == 1;
}

/* ---- registration ---- */

static struct thread_entry *entry_new(pid_t tid, uint32_t flags, uint32_t creator_id,
                                      uint32_t stack_id)
{
    uint32_t id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    struct thread_entry *e = id == WIRE_NO_ID ? NULL : ppx_arena_alloc(sizeof *e, 16);
    if (e == NULL) {
        static atomic_flag said = ATOMIC_FLAG_INIT;
        ppx_log_once(&said, "out of memory for the thread registry", "; some threads go unrecorded",
                     NULL, NULL);
        return NULL;
    }
    struct ppx_thread_record *r = &e->rec;
    r->id = id;
    r->tid = tid;
    r->creator_id = creator_id;
    r->stack_id = stack_id;
    r->flags = flags;
    r->start_ns = ppx_realtime_ns();
    atomic_store_explicit(&r->changed, 1, memory_order_relaxed);
    return e;
}

static void reg_lock(void)
{
    pthread_mutex_lock(&reg_mu);
    ppx_owner_take(&reg_mu_owner);
}

static void reg_unlock(void)
{
    ppx_owner_drop(&reg_mu_owner);
    pthread_mutex_unlock(&reg_mu);
}

static void publish(struct thread_entry *e, bool found)
{
    PPX_CHECK_OWNED(&reg_mu_owner);
    if (found) {
        e->found_next = found_head;
        found_head = e;
    }
    e->rec.next = atomic_load_explicit(&list_head, memory_order_relaxed);
    atomic_store_explicit(&list_head, &e->rec, memory_order_release);
    if (e->rec.flags & WIRE_THREAD_MAIN)
        atomic_store_explicit(&main_rec, &e->rec, memory_order_release);
}

static uint32_t preexisting_flags(pid_t tid)
{
    return WIRE_THREAD_PREEXISTING | (tid == ppx_pid ? WIRE_THREAD_MAIN : 0u);
}

static struct thread_entry *find_running_tid(const struct thread_entry *list_of_found, pid_t tid)
{
    PPX_CHECK_OWNED(&reg_mu_owner);
    for (const struct thread_entry *e = list_of_found; e != NULL; e = e->found_next)
        if (e->rec.tid == tid && atomic_load(&e->rec.end_ns) == 0)
            return (struct thread_entry *)e;
    return NULL;
}

/* Whether any record has tid, running or ended: a thread that has run its
 * end (thread_ended) stays in /proc/self/task a little longer, and must not
 * come back from the scan as an unknown thread. */
static bool known_tid(pid_t tid)
{
    PPX_CHECK_OWNED(&reg_mu_owner);
    for (struct ppx_thread_record *r = atomic_load(&list_head); r != NULL; r = r->next)
        if (r->tid == tid)
            return true;
    return false;
}

/* The calling thread's end is recorded by thread_ended. */
static void watch_end(struct ppx_thread_record *r)
{
    if (have_end_key && pthread_getspecific(end_key) != r && pthread_setspecific(end_key, r) == 0)
        ppx_thread_buffers_watched();
}

struct ppx_thread_record *ppx_threads_register_self(void)
{
    struct ppx_thread_record *self = ppx_self_record;
    if (self != NULL)
        return self;
    pid_t tid = ppx_gettid();
    reg_lock();
    struct thread_entry *e = find_running_tid(found_head, tid);
    if (e == NULL) {
        e = entry_new(tid, preexisting_flags(tid), WIRE_NO_ID, WIRE_NO_ID);
        if (e != NULL) {
            ppx_thread_name_of_self(e->rec.name);
            publish(e, true);
            atomic_fetch_add_explicit(&running_threads, 1, memory_order_relaxed);
        }
    }
    bool start_cpu = false;
    if (e != NULL) {
        e->rec.handle = pthread_self();
        e->has_handle = true;
        start_cpu = cpu_ready && !e->cpu_started;
        e->cpu_started |= start_cpu;
    }
    reg_unlock();
    if (e == NULL)
        return NULL;
    ppx_self_record = &e->rec;
    watch_end(&e->rec);
    if (start_cpu)
        ppx_cpu_thread_started(&e->rec);
    return &e->rec;
}

void ppx_threads_creating(void)
{
    atomic_fetch_add_explicit(&running_threads, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&starting, 1, memory_order_seq_cst);
}

void ppx_threads_create_failed(void)
{
    atomic_fetch_sub_explicit(&starting, 1, memory_order_seq_cst);
    atomic_fetch_sub_explicit(&running_threads, 1, memory_order_relaxed);
}

void ppx_threads_started(uint32_t creator_id, uint32_t stack_id)
{
    struct thread_entry *e = entry_new(ppx_gettid(), 0, creator_id, stack_id);
    reg_lock();
    if (e != NULL) {
        /* The name is read under reg_mu: a pthread_setname_np from the
         * creator either finds this record, or renamed the thread before
         * this read (it renames, then looks up under reg_mu). */
        ppx_thread_name_of_self(e->rec.name);
        e->rec.handle = pthread_self();
        e->has_handle = true;
        e->cpu_started = true;
        publish(e, false);
    }
    atomic_fetch_sub_explicit(&starting, 1, memory_order_seq_cst);
    reg_unlock();
    if (e == NULL)
        return;
    ppx_self_record = &e->rec;
    watch_end(&e->rec);
    /* Buffers now, so that the thread's first slow path (in a signal
     * handler, maybe) finds them. */
    ppx_thread_buffers_ensure(&ppx_tls);
    ppx_cpu_thread_started(&e->rec);
}

/* r, ending, is the main thread, or the main thread has ended: a check on
 * the count, which a thread that went unrecorded (no memory) leaves low. */
static bool main_thread_gone(const struct ppx_thread_record *r)
{
    const struct ppx_thread_record *m = atomic_load_explicit(&main_rec, memory_order_acquire);
    return r->tid == ppx_pid ||
           (m != NULL && atomic_load_explicit(&m->end_ns, memory_order_acquire) != 0);
}

/* The pthread key's destructor: the thread returned from its start routine,
 * called pthread_exit, or was cancelled. Runs with the thread's other TSD
 * destructors, after its C++ thread_local destructors, and before glibc
 * counts the thread out (and exits if it was the last). */
static void thread_ended(void *arg)
{
    struct ppx_thread_record *r = arg;
    struct ppx_tls *t = &ppx_tls;
    int saved_errno = errno;
    /* pthread_exit from a handler that interrupted the profiler */
    bool inside = t->guard != 0;
    t->guard++;
    /* timer first: no tick lands while the rest of the thread's state goes */
    ppx_cpu_thread_ended(r);
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        ppx_thread_cpu_raise(r, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
    /* A name written to /proc/.../comm went past the hooks: take the
     * kernel's. trylock: pthread_exit from a handler that interrupted a
     * rename on this very thread must not deadlock. */
    if (pthread_mutex_trylock(&reg_mu) == 0) {
        ppx_owner_take(&reg_mu_owner);
        ppx_thread_name_of_self(r->name);
        reg_unlock();
    }
    bool last = ppx_thread_record_end(r) && main_thread_gone(r);
    ppx_io_thread_exit();
    ppx_thread_buffers_end();
    if (last && !inside)
        on_last_thread_end();
    t->guard--;
    errno = saved_errno;
}

void ppx_threads_init(void (*last_thread_ending)(void))
{
    on_last_thread_end = last_thread_ending;
    static atomic_flag said = ATOMIC_FLAG_INIT;
    ppx_cpu_init();
    cpu_ready = true;
    int rc = pthread_key_create(&end_key, thread_ended);
    have_end_key = rc == 0;
    if (!have_end_key)
        ppx_log_once(&said, "cannot create a thread-specific key: ", strerror(rc),
                     "; thread ends are seen late", NULL);
    /* The initialising thread: the main thread, nearly always. */
    ppx_threads_register_self();
}

/* ---- the scan: threads not created through the hook ---- */

struct task_list {
    pid_t *tids;
    unsigned n, max;
};

static bool add_task(int dirfd, const char *name, void *arg)
{
    (void)dirfd;
    struct task_list *l = arg;
    unsigned long v = 0;
    bool digits = name[0] != '\0';
    for (const char *c = name; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') {
            digits = false;
            break;
        }
        v = v * 10 + (unsigned long)(*c - '0');
    }
    if (digits && l->n < l->max && v > 0 && v <= 0x7fffffff)
        l->tids[l->n++] = (pid_t)v;
    return true;
}

/* Up to max tids of /proc/self/task; how many. */
static unsigned list_tasks(pid_t *tids, unsigned max)
{
    struct task_list l = {tids, 0, max};
    ppx_task_dir_walk(add_task, &l);
    return l.n;
}

void ppx_threads_scan(void)
{
    static pid_t tids[SCAN_MAX_TIDS]; /* the flusher only */
    if (atomic_load_explicit(&ppx_state, memory_order_acquire) != PPX_READY)
        return;
    int saved_errno = errno;
    pid_t self = ppx_gettid(); /* the flusher: never registered */
    unsigned n;
    bool settled;
    for (int tries = 0;; tries++) {
        n = list_tasks(tids, SCAN_MAX_TIDS);
        reg_lock();
        /* A thread listed above and started through the hook incremented
         * `starting` before it existed, and decrements it under reg_mu
         * once registered: at 0, every such thread is in the list. */
        settled = atomic_load_explicit(&starting, memory_order_seq_cst) == 0;
        if (settled || tries >= SCAN_WAIT_TRIES)
            break;
        reg_unlock();
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    /* Not settled (threads started without end): better miss the unknown
     * ones than describe a thread twice. */
    for (unsigned i = 0; settled && i < n; i++) {
        if (tids[i] == self || known_tid(tids[i]))
            continue;
        struct thread_entry *e =
            entry_new(tids[i], preexisting_flags(tids[i]), WIRE_NO_ID, WIRE_NO_ID);
        if (e == NULL)
            break;
        ppx_thread_name_of_tid(tids[i], e->rec.name);
        publish(e, true);
        atomic_fetch_add_explicit(&running_threads, 1, memory_order_relaxed);
    }
    for (struct thread_entry *e = found_head; e != NULL; e = e->found_next) {
        if (e->cpu_started || atomic_load(&e->rec.end_ns) != 0)
            continue;
        e->cpu_started = true;
        ppx_cpu_thread_started(&e->rec);
    }
    reg_unlock();
    errno = saved_errno;
}

bool ppx_threads_none_left(void)
{
    struct ppx_thread_record *m = atomic_load_explicit(&main_rec, memory_order_acquire);
    if (m == NULL || atomic_load_explicit(&m->end_ns, memory_order_relaxed) == 0)
        return false;
    /* The ended main thread stays listed (a zombie) until the process goes. */
    pid_t tids[3];
    int saved_errno = errno;
    unsigned n = list_tasks(tids, 3);
    errno = saved_errno;
    pid_t self = ppx_gettid();
    return n == 2 && (tids[0] == self || tids[1] == self) &&
           (tids[0] == ppx_pid || tids[1] == ppx_pid);
}

struct ppx_thread_record *ppx_threads_list(void)
{
    return atomic_load_explicit(&list_head, memory_order_acquire);
}

/* ---- fork ---- */

/* The child of fork: one thread, the one that forked, now the main thread
 * of a new incarnation; ids start again from 0. The parent's records are
 * left behind in the arena. Timers are not inherited: this thread gets a
 * new one (after ppx_cpu_reset_child has forgotten the parent's). */
void ppx_threads_reset_child(void)
{
    ppx_task_dir_reset_child();
    pthread_mutex_init(&reg_mu, NULL);
    ppx_owner_reset(&reg_mu_owner);
    atomic_store_explicit(&list_head, NULL, memory_order_relaxed);
    found_head = NULL;
    atomic_store_explicit(&main_rec, NULL, memory_order_relaxed);
    atomic_store_explicit(&next_id, 0, memory_order_relaxed);
    atomic_store_explicit(&starting, 0, memory_order_relaxed);
    atomic_store_explicit(&running_threads, 0, memory_order_relaxed);
    ppx_self_record = NULL;
    struct ppx_tls *t = &ppx_tls;
    t->guard++;
    pid_t tid = ppx_gettid();
    struct thread_entry *e = entry_new(tid, preexisting_flags(tid), WIRE_NO_ID, WIRE_NO_ID);
    if (e != NULL) {
        ppx_thread_name_of_self(e->rec.name);
        e->rec.handle = pthread_self();
        e->has_handle = true;
        e->cpu_started = true;
        ppx_owner_take(&reg_mu_owner); /* for the check: only this thread exists */
        publish(e, true);
        ppx_owner_drop(&reg_mu_owner);
        atomic_store_explicit(&running_threads, 1, memory_order_relaxed);
        ppx_self_record = &e->rec;
    }
    /* The key still names the parent's record: the end goes to the new one
     * (never set anew here: that could allocate). */
    if (have_end_key && pthread_getspecific(end_key) != NULL)
        pthread_setspecific(end_key, ppx_self_record);
    if (e != NULL)
        ppx_cpu_thread_started(&e->rec);
    t->guard--;
}

/* ---- renames ---- */

void ppx_threads_renamed_self(void)
{
    struct ppx_thread_record *r = ppx_threads_register_self();
    if (r == NULL)
        return;
    reg_lock();
    ppx_thread_name_of_self(r->name);
    reg_unlock();
    ppx_thread_mark_changed(r);
}

void ppx_threads_renamed(pthread_t handle, const char *name)
{
    reg_lock();
    /* newest first: a handle reused after a join names the running thread */
    for (struct ppx_thread_record *r = atomic_load(&list_head); r != NULL; r = r->next) {
        struct thread_entry *e = (struct thread_entry *)r;
        if (!e->has_handle || atomic_load(&r->end_ns) != 0 || !pthread_equal(r->handle, handle))
            continue;
        char fresh[WIRE_THREAD_NAME] = {0};
        memcpy(fresh, name, strnlen(name, WIRE_THREAD_NAME - 1));
        memcpy(r->name, fresh, sizeof fresh);
        ppx_thread_mark_changed(r);
        break;
    }
    /* Not found: the thread has not registered yet, and reads the new name
     * from the kernel when it does; or it was never seen on its own thread
     * (found by the scan), and keeps its old name here. */
    reg_unlock();
}
