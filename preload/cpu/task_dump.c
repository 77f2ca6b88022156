/* A thread dump (WIRE_CMD_TASKS): what every thread of the process is
 * doing now, for /debug/pprof/goroutine and `ppx stacks`.
 *
 * The flusher lists /proc/self/task, reads each thread's state letter and
 * blocked-signal mask from its stat file and what it is blocked in from
 * ppx's own hooks (core.h struct ppx_wait), then sends every thread that
 * does not block SIGPROF a SIGPROF of its own (rt_tgsigqueueinfo,
 * SI_QUEUE from this process, si_value the address of the thread's slot
 * here). The SIGPROF handler (sigprof_handler.c) hands such a signal to
 * ppx_task_dump_signal, which unwinds the interrupted context into the
 * slot with the CPU profile's async-signal-safe walk. The flusher waits
 * for the answers until DUMP_WAIT_MS has passed, no longer: a thread that
 * blocks SIGPROF is reported as such without being asked, one that did
 * not answer (stopped, or in an uninterruptible wait) as unanswered.
 *
 * Why SIGPROF and not a real-time signal of its own: ppx already owns
 * SIGPROF's handler and mediates the program's sigaction for it
 * (sigprof_action.c), so nothing new is taken from the program. A
 * real-time signal would be one more that the program (or a library it
 * loads later, or its own runtime) may use for itself, and taking it
 * under the program's feet changes what that program sees. The price:
 * a program that installs its own SIGPROF handler gets dumps without
 * stacks (states and blocked-in calls only). Our dump signals are told
 * from the program's and the CPU timer's by si_code SI_QUEUE, si_pid
 * this process, and an si_value inside the slot pool.
 *
 * Cost: nothing until a collector asks. A dump interrupts each thread
 * once, except a thread blocked in a call that the kernel ends with EINTR
 * after any signal handler, SA_RESTART or not (nanosleep, poll,
 * epoll_wait, select, a socket's read or send with SO_RCVTIMEO or
 * SO_SNDTIMEO set, ...: /proc/self/task/<tid>/syscall says which):
 * that one is reported without a stack rather than woken early. The
 * state-threads scheduler waiting for events is the exception: its loop
 * takes EINTR as "nothing happened", and its handler walks the
 * coroutines.
 *
 * Slots are mapped once (pages from mmap, touched as needed) and reused;
 * a slot still being written by a late handler is skipped, never reused
 * under it. */
#include "cpu.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <ucontext.h>

#define DUMP_MAX_THREADS 4096u
#define DUMP_WAIT_MS 500u /* for all the answers of one dump */
/* for a handler under way (walking many coroutines) */
#define DUMP_TAKING_WAIT_MS 5000u
#define RETAKE_WAIT_MS 50u /* for one thread asked again */

enum slot_status { SLOT_IDLE, SLOT_ASKED, SLOT_TAKING, SLOT_DONE };

struct dump_slot {
    atomic_int status; /* enum slot_status */
    pid_t tid;         /* the thread asked */
    uint32_t depth;
    uint8_t stack; /* enum wire_task_stack */
    uintptr_t pcs[];
};

/* The pool: DUMP_MAX_THREADS slots of slot_size bytes. Published once
 * (release) before any signal names a slot in it. */
static _Atomic(unsigned char *) pool;
static size_t slot_size;

/* The flusher's lists for one dump (too large for its stack). */
struct dump_thread {
    pid_t tid;
    char state;
    bool blocks_sigprof;
    long syscall;         /* the system call it is in (/proc), -1: none or unknown */
    long arg0;            /* its first argument (the descriptor of socket I/O) */
    bool not_interrupted; /* in a call the signal would cut short: not asked */
    bool asked;           /* its signal is queued */
    struct dump_slot *slot;
    uint32_t thread_id; /* its registry record's, WIRE_NO_ID none */
    uintptr_t handle;   /* its pthread_t (its thread pointer), 0 unknown */
    uint64_t since, what;
};
static struct dump_thread threads[DUMP_MAX_THREADS];
static pid_t sorted_tids[DUMP_MAX_THREADS];
static uint64_t wait_since[DUMP_MAX_THREADS], wait_what[DUMP_MAX_THREADS];
static uint32_t record_ids[DUMP_MAX_THREADS];
static uintptr_t record_handles[DUMP_MAX_THREADS];
static unsigned n_threads;
static unsigned n_coroutines; /* sent with the last dump */

static struct dump_slot *slot_at(unsigned char *base, unsigned i)
{
    return (struct dump_slot *)(void *)(base + (size_t)i * slot_size);
}

static unsigned char *pool_get(void)
{
    unsigned char *p = atomic_load_explicit(&pool, memory_order_acquire);
    if (p != NULL)
        return p;
    slot_size =
        (sizeof(struct dump_slot) + ppx_config.max_depth * sizeof(uintptr_t) + 63u) & ~(size_t)63u;
    p = ppx_pages_alloc(slot_size * DUMP_MAX_THREADS);
    if (p != NULL)
        atomic_store_explicit(&pool, p, memory_order_release);
    return p;
}

/* ---- in the thread asked: the SIGPROF handler ---- */

bool ppx_task_dump_signal(void *value, const void *ucontext)
{
    unsigned char *base = atomic_load_explicit(&pool, memory_order_acquire);
    uintptr_t off = (uintptr_t)value - (uintptr_t)base;
    if (base == NULL || off >= slot_size * DUMP_MAX_THREADS || off % slot_size != 0)
        return false;
    struct dump_slot *s = value;
    int saved_errno = errno;
    int asked = SLOT_ASKED;
    /* A late signal (its dump gave up on it), or one for another thread:
     * ours all the same, nothing to do. */
    if (s->tid != ppx_gettid() ||
        !atomic_compare_exchange_strong_explicit(&s->status, &asked, SLOT_TAKING,
                                                 memory_order_acquire, memory_order_relaxed)) {
        errno = saved_errno;
        return true;
    }
    const ucontext_t *uc = ucontext;
    uint32_t depth = 0;
    struct ppx_tls *t = &ppx_tls;
    /* Inside the profiler (a hook, libunwind), with the loader busy, or
     * short of stack: the interrupted pc alone, as a CPU tick would. */
    if (t->guard == 0 && !ppx_unwind_signal_unsafe(ucontext) && ppx_stack_room()) {
        t->guard++;
        ppx_in_signal_walk++;
        atomic_signal_fence(memory_order_seq_cst);
        depth = ppx_unwind_signal(s->pcs, ppx_config.max_depth, ucontext);
        atomic_signal_fence(memory_order_seq_cst);
        ppx_in_signal_walk--;
        t->guard--;
    }
    s->stack = depth != 0 ? WIRE_TASK_STACK_OK : WIRE_TASK_STACK_LEAF;
    if (depth != 0) {
        /* the coroutines parked on this thread, while none of them moves */
        t->guard++;
        ppx_in_signal_walk++;
        atomic_signal_fence(memory_order_seq_cst);
        ppx_coroutine_dump_walk(s->pcs, depth, (uintptr_t)uc->uc_mcontext.gregs[REG_RSP]);
        atomic_signal_fence(memory_order_seq_cst);
        ppx_in_signal_walk--;
        t->guard--;
    } else {
        s->pcs[0] = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP] + 1;
        depth = 1;
    }
    s->depth = depth;
    atomic_store_explicit(&s->status, SLOT_DONE, memory_order_release);
    errno = saved_errno;
    return true;
}

/* ---- in the flusher ---- */

static bool add_thread(int dirfd, const char *name, void *arg)
{
    (void)dirfd;
    pid_t self = *(const pid_t *)arg;
    unsigned long v = 0;
    if (name[0] == '\0')
        return true;
    for (const char *c = name; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return true;
        v = v * 10 + (unsigned long)(*c - '0');
        if (v > 0x7fffffff)
            return true;
    }
    if (v == 0 || (pid_t)v == self)
        return true;
    if (n_threads < DUMP_MAX_THREADS)
        threads[n_threads++] = (struct dump_thread){.tid = (pid_t)v, .state = '?'};
    return n_threads < DUMP_MAX_THREADS;
}

/* /proc/self/task/<tid>/stat: the state letter (field 3) and whether the
 * thread blocks SIGPROF (field 32, the blocked signals' mask in decimal:
 * only signals below 32 are there, SIGPROF among them). */
static void read_stat(struct dump_thread *d)
{
    char buf[1024];
    if (ppx_read_task_file(d->tid, "stat", buf, sizeof buf) <= 0)
        return;
    char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    if (p == NULL || p[1] != ' ' || p[2] == '\0')
        return;
    d->state = p[2];
    /* fields 3.. follow, space-separated */
    unsigned field = 3;
    for (p += 2; *p != '\0' && field < 32; p++)
        if (*p == ' ')
            field++;
    uint64_t mask = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        mask = mask * 10 + (uint64_t)(*p - '0');
    d->blocks_sigprof = field == 32 && (mask & (1ull << (SIGPROF - 1))) != 0;
}

/* /proc/self/task/<tid>/syscall: the number of the system call the
 * thread is blocked in ("running", or -1 outside one: -1 here). */
static void read_syscall(struct dump_thread *d)
{
    d->syscall = -1;
    d->arg0 = -1;
    char buf[64]; /* "NR 0xARG0 ...": the rest is not needed */
    long n = ppx_read_task_file(d->tid, "syscall", buf, sizeof buf);
    if (n <= 0 || buf[0] < '0' || buf[0] > '9')
        return;
    long nr = 0, i = 0;
    for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        nr = nr * 10 + (buf[i] - '0');
    d->syscall = nr;
    if (i + 3 > n || buf[i] != ' ' || buf[i + 1] != '0' || buf[i + 2] != 'x')
        return;
    unsigned long arg = 0;
    for (i += 3; i < n && arg <= INT32_MAX; i++) {
        char c = buf[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            break;
        arg = arg * 16 + (unsigned long)v;
    }
    if (arg <= INT32_MAX)
        d->arg0 = (long)arg;
}

/* The socket calls that wait for a peer: with a timeout set on the socket
 * (SO_RCVTIMEO for those that receive, SO_SNDTIMEO for those that send)
 * a signal handler cuts them short with EINTR, SA_RESTART or not
 * (signal(7)); without, they are restarted. 1 receives, 2 sends, 0 neither. */
static int socket_wait(long nr)
{
    switch (nr) {
    case SYS_read:
    case SYS_readv:
    case SYS_recvfrom:
    case SYS_recvmsg:
    case SYS_recvmmsg:
    case SYS_accept:
    case SYS_accept4:
        return 1;
    case SYS_write:
    case SYS_writev:
    case SYS_sendto:
    case SYS_sendmsg:
    case SYS_sendmmsg:
    case SYS_connect:
        return 2;
    default:
        return 0;
    }
}

/* Whether fd is a socket with a timeout for that direction (getsockopt
 * only reads: any other descriptor says ENOTSOCK). */
static bool socket_has_timeout(long fd, int direction)
{
    struct timeval tv = {0, 0};
    socklen_t len = sizeof tv;
    if (fd < 0 ||
        getsockopt((int)fd, SOL_SOCKET, direction == 1 ? SO_RCVTIMEO : SO_SNDTIMEO, &tv, &len) != 0)
        return false;
    return tv.tv_sec != 0 || tv.tv_usec != 0;
}

/* Waits for events: the ones state-threads' scheduler makes. */
static bool event_wait_syscall(long nr)
{
    return nr == SYS_poll || nr == SYS_ppoll || nr == SYS_select || nr == SYS_pselect6 ||
           nr == SYS_epoll_wait || nr == SYS_epoll_pwait || nr == SYS_epoll_pwait2;
}

/* Calls the kernel ends with EINTR when a signal handler runs, whatever
 * SA_RESTART says (signal(7)): a dump's signal would cut them short, and
 * the program would see an early return (sleep() waking early). */
static bool cut_short_by_signal(long nr)
{
    switch (nr) {
    case SYS_nanosleep:
    case SYS_clock_nanosleep:
    case SYS_pause:
    case SYS_rt_sigsuspend:
    case SYS_rt_sigtimedwait:
    case SYS_io_getevents:
    case SYS_semop:
    case SYS_semtimedop:
    case SYS_msgrcv:
    case SYS_msgsnd:
    case SYS_mq_timedreceive:
    case SYS_mq_timedsend:
        return true;
    default:
        return event_wait_syscall(nr);
    }
}

/* Shell sort: no qsort, which may allocate. */
static void sort_tids(pid_t *a, unsigned n)
{
    for (unsigned gap = n / 2; gap > 0; gap /= 2)
        for (unsigned i = gap; i < n; i++) {
            pid_t v = a[i];
            unsigned j = i;
            for (; j >= gap && a[j - gap] > v; j -= gap)
                a[j] = a[j - gap];
            a[j] = v;
        }
}

/* What each thread is blocked in, from the hooks' slots, and its record
 * in the registry (one pass over each). */
static void read_waits(void)
{
    for (unsigned i = 0; i < n_threads; i++) {
        sorted_tids[i] = threads[i].tid;
        record_ids[i] = WIRE_NO_ID;
        record_handles[i] = 0;
    }
    sort_tids(sorted_tids, n_threads);
    ppx_thread_waits(sorted_tids, n_threads, wait_since, wait_what);
    /* newest first: the running thread with a reused tid wins */
    for (struct ppx_thread_record *r = ppx_threads_list(); r != NULL; r = r->next) {
        unsigned k = ppx_tid_index(sorted_tids, n_threads, r->tid);
        if (k < n_threads && record_ids[k] == WIRE_NO_ID &&
            atomic_load_explicit(&r->end_ns, memory_order_acquire) == 0) {
            record_ids[k] = r->id;
            record_handles[k] = (uintptr_t)r->handle;
        }
    }
    for (unsigned i = 0; i < n_threads; i++) {
        unsigned k = ppx_tid_index(sorted_tids, n_threads, threads[i].tid);
        threads[i].since = wait_since[k];
        threads[i].what = wait_what[k];
        threads[i].thread_id = record_ids[k];
        threads[i].handle = record_handles[k];
    }
}

/* A free slot at or after *next, NULL when none is left. */
static struct dump_slot *free_slot(unsigned char *base, unsigned *next)
{
    for (; *next < DUMP_MAX_THREADS; (*next)++) {
        struct dump_slot *s = slot_at(base, *next);
        int st = atomic_load_explicit(&s->status, memory_order_acquire);
        if (st == SLOT_TAKING || st == SLOT_ASKED)
            continue; /* a handler of an earlier dump may still write it */
        (*next)++;
        return s;
    }
    return NULL;
}

static bool ask(struct dump_thread *d)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGPROF;
    si.si_code = SI_QUEUE;
    si.si_pid = ppx_pid;
    si.si_uid = getuid();
    si.si_value.sival_ptr = d->slot;
    return syscall(SYS_rt_tgsigqueueinfo, (long)ppx_pid, (long)d->tid, (long)SIGPROF, &si) == 0;
}

static void pause_us(long us)
{
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
}

/* The thread that runs coroutines, for this dump (0: none). */
static pid_t co_tid;

/* Whether a handler is writing its slot now. */
static bool any_taking(void)
{
    for (unsigned i = 0; i < n_threads; i++)
        if (threads[i].slot != NULL &&
            atomic_load_explicit(&threads[i].slot->status, memory_order_acquire) == SLOT_TAKING)
            return true;
    return false;
}

/* Whether d may be sent the dump's signal: not in a call the signal
 * would cut short, except state-threads' scheduler waiting for events
 * (its loop takes EINTR as "no event": the thread that runs the
 * coroutines, or for a libst linked into the program, the main thread,
 * where it runs, or with thread-local scheduler variables any thread
 * whose own say a coroutine runs there). */
static bool may_ask(const struct dump_thread *d)
{
    int direction = socket_wait(d->syscall);
    if (direction != 0)
        return !socket_has_timeout(d->arg0, direction);
    if (!cut_short_by_signal(d->syscall))
        return true;
    bool scheduler = co_tid != 0 ? d->tid == co_tid
                                 : ppx_coroutine_static() &&
                                       (d->tid == ppx_pid || ppx_coroutine_runs_on(d->handle));
    return scheduler && event_wait_syscall(d->syscall);
}

/* Threads that may run a state-threads scheduler of their own (with
 * thread-local variables): those whose _st_this_thread is set, and those
 * whose pthread_t is not known. */
static unsigned count_schedulers(void)
{
    unsigned n = 0;
    for (unsigned i = 0; i < n_threads; i++)
        n += threads[i].handle == 0 || ppx_coroutine_runs_on(threads[i].handle);
    return n;
}

/* Threads whose stack was cut to its leaf are asked again, one at a time:
 * asked all at once, one handler's walk may hold the loader's lock (a pc
 * new to libunwind) when another's needs it, and that one gives up rather
 * than wait in a signal handler. Alone, only a thread that really was
 * inside the profiler is cut again. Not the coroutines' thread: its
 * coroutines were walked. */
static void retake_cut_stacks(uint64_t deadline)
{
    for (unsigned i = 0; i < n_threads; i++) {
        struct dump_thread *d = &threads[i];
        if (d->slot == NULL || d->tid == co_tid ||
            atomic_load_explicit(&d->slot->status, memory_order_acquire) != SLOT_DONE ||
            d->slot->stack != WIRE_TASK_STACK_LEAF)
            continue;
        d->slot->depth = 0;
        atomic_store_explicit(&d->slot->status, SLOT_ASKED, memory_order_release);
        if (!ask(d)) {
            atomic_store_explicit(&d->slot->status, SLOT_DONE, memory_order_release);
            continue;
        }
        uint64_t until = ppx_monotonic_ns() + RETAKE_WAIT_MS * 1000000ull;
        if (until > deadline)
            until = deadline;
        while (atomic_load_explicit(&d->slot->status, memory_order_acquire) != SLOT_DONE &&
               ppx_monotonic_ns() < until)
            pause_us(100);
        if (ppx_monotonic_ns() >= deadline)
            break;
    }
}

/* Signals every thread that can take it and waits for the answers until
 * the deadline. A thread whose signal could not be queued (the user's
 * queued-signal limit) is asked again as answers come in. */
static void take_stacks(const struct wire_st_layout *layout)
{
    unsigned char *base = pool_get();
    if (base == NULL || !ppx_sigprof_ours())
        return;
    unsigned next = 0;
    co_tid = ppx_coroutine_dump_prepare(layout);
    if (ppx_coroutine_static())
        ppx_coroutine_schedulers(count_schedulers());
    for (unsigned i = 0; i < n_threads; i++) {
        struct dump_thread *d = &threads[i];
        d->not_interrupted = !d->blocks_sigprof && !may_ask(d);
        if (d->blocks_sigprof || d->state == 'Z' || d->state == 'X' || d->not_interrupted)
            continue;
        d->slot = free_slot(base, &next);
        if (d->slot == NULL)
            break;
        d->slot->tid = d->tid;
        d->slot->depth = 0;
        atomic_store_explicit(&d->slot->status, SLOT_ASKED, memory_order_release);
    }
    uint64_t deadline = ppx_monotonic_ns() + DUMP_WAIT_MS * 1000000ull;
    uint64_t hard_deadline = deadline + (DUMP_TAKING_WAIT_MS - DUMP_WAIT_MS) * 1000000ull;
    for (;;) {
        unsigned waiting = 0;
        bool queue_full = false;
        for (unsigned i = 0; i < n_threads; i++) {
            struct dump_thread *d = &threads[i];
            if (d->slot == NULL)
                continue;
            if (!d->asked && !queue_full) {
                if (ask(d)) {
                    d->asked = true;
                } else if (errno == EAGAIN) {
                    queue_full = true; /* again once some have answered */
                } else {               /* gone (ESRCH): nothing to wait for */
                    atomic_store_explicit(&d->slot->status, SLOT_IDLE, memory_order_relaxed);
                    d->slot = NULL;
                    continue;
                }
            }
            if (!d->asked ||
                atomic_load_explicit(&d->slot->status, memory_order_acquire) != SLOT_DONE)
                waiting++;
        }
        uint64_t now = ppx_monotonic_ns();
        if (waiting == 0 || now >= hard_deadline || (now >= deadline && !any_taking()))
            break;
        pause_us(waiting > 64 ? 1000 : 200);
    }
    co_tid = ppx_coroutine_dump_owner();
    retake_cut_stacks(hard_deadline);
    /* Those that did not answer: their slot is withdrawn (a late handler
     * finds it so and does nothing), unless the handler is writing it. */
    for (unsigned i = 0; i < n_threads; i++) {
        struct dump_thread *d = &threads[i];
        if (d->slot == NULL)
            continue;
        int asked = SLOT_ASKED;
        atomic_compare_exchange_strong_explicit(&d->slot->status, &asked, SLOT_IDLE,
                                                memory_order_acq_rel, memory_order_acquire);
    }
}

static bool send_thread(struct ppx_encoder *enc, uint64_t seq, const struct dump_thread *d,
                        uint64_t now_ticks, double ns_per_tick)
{
    struct wire_task w;
    memset(&w, 0, sizeof w);
    w.seq = seq;
    w.id = (uint64_t)d->tid;
    w.tid = (uint32_t)d->tid;
    w.kind = WIRE_TASK_THREAD;
    w.state = (uint8_t)d->state;
    w.fd = -1;
    w.thread_id = d->thread_id;
    ppx_thread_name_of_tid(d->tid, w.name); /* the kernel's: renames past the hooks too */
    if (d->since != 0) {
        unsigned call = (unsigned)(d->what & 0xffu);
        int fd = (int)(uint32_t)(d->what >> 32);
        w.wait_call = (uint8_t)call;
        w.fd = fd;
        if (fd >= 0)
            w.fd_type = (uint8_t)(ppx_fd_class(fd) & 0xfu);
        w.wait_ns =
            now_ticks > d->since ? (uint64_t)((double)(now_ticks - d->since) * ns_per_tick) : 0;
    }
    const uintptr_t *pcs = NULL;
    if (!ppx_sigprof_ours())
        w.stack = WIRE_TASK_STACK_NO_SIGNAL;
    else if (d->blocks_sigprof)
        w.stack = WIRE_TASK_STACK_BLOCKED;
    else if (d->not_interrupted)
        w.stack = WIRE_TASK_STACK_NOT_INTERRUPTED;
    else if (d->slot == NULL ||
             atomic_load_explicit(&d->slot->status, memory_order_acquire) != SLOT_DONE)
        w.stack = WIRE_TASK_STACK_NO_ANSWER;
    else {
        w.stack = d->slot->stack;
        w.depth = d->slot->depth;
        pcs = d->slot->pcs;
    }
    PPX_CHECK(w.depth <= WIRE_MAX_DEPTH);
    if (!ppx_emit(enc, WIRE_TASK, &w, sizeof w, pcs, (size_t)w.depth * sizeof(uint64_t), NULL, 0))
        return false;
    if (d->tid != co_tid || w.stack != WIRE_TASK_STACK_OK)
        return true;
    unsigned sent = 0;
    bool ok = ppx_coroutine_dump_send(enc, seq, d->tid, w.thread_id, w.name, &sent);
    n_coroutines += sent;
    return ok;
}

unsigned ppx_task_dump_take(const struct wire_st_layout *layout)
{
    n_threads = 0;
    pid_t self = ppx_gettid();
    int saved_errno = errno;
    ppx_task_dir_walk(add_thread, &self);
    for (unsigned i = 0; i < n_threads; i++) {
        read_stat(&threads[i]);
        read_syscall(&threads[i]);
    }
    read_waits();
    take_stacks(layout);
    errno = saved_errno;
    return n_threads;
}

bool ppx_task_dump_send(struct ppx_encoder *enc, uint64_t seq, uint64_t started_ns)
{
    _Static_assert(sizeof(uintptr_t) == sizeof(uint64_t), "program counters go out as they are");
    uint64_t now_ticks = ppx_ticks_now();
    double ns_per_tick = ppx_ns_per_tick();
    n_coroutines = 0;
    for (unsigned i = 0; i < n_threads; i++)
        if (!send_thread(enc, seq, &threads[i], now_ticks, ns_per_tick))
            return false;
    /* The slots may go to the next dump now. */
    for (unsigned i = 0; i < n_threads; i++) {
        struct dump_slot *s = threads[i].slot;
        int done = SLOT_DONE;
        if (s != NULL)
            atomic_compare_exchange_strong_explicit(&s->status, &done, SLOT_IDLE,
                                                    memory_order_relaxed, memory_order_relaxed);
        threads[i].slot = NULL;
    }
    struct wire_tasks_end end = {seq, n_threads + n_coroutines, 0, ppx_monotonic_ns() - started_ns};
    return ppx_emit(enc, WIRE_TASKS_END, &end, sizeof end, NULL, 0, NULL, 0);
}
