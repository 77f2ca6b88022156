/* cpu: threads and CPU. The registry of the process's threads (created
 * through the pthread_create hook, or found at start in /proc/self/task)
 * and their THREAD records; a CPU-time timer per registered thread whose
 * SIGPROF ticks become CPU_SAMPLES; SIGPROF's real action, between the
 * program and the profile. The thread and signal hooks call in here. */
#ifndef PPX_CPU_H
#define PPX_CPU_H

#include "../io/io.h"

#include <signal.h>
#include <sys/types.h>

#pragma GCC visibility push(hidden)

/* ---- thread_registry.c ---- */

struct ppx_cpu_sampler;

/* A thread of the process, as the registry knows it (a THREAD record). */
struct ppx_thread_record {
    uint32_t id; /* wire id, never reused within an incarnation */
    pid_t tid;
    pthread_t handle;    /* valid only for threads created through the hook */
    uint32_t creator_id; /* WIRE_NO_ID if unknown */
    uint32_t stack_id;   /* creation stack, WIRE_NO_ID if none */
    uint32_t flags;      /* WIRE_THREAD_* */
    uint64_t start_ns;
    _Atomic uint64_t end_ns; /* 0 while it runs */
    _Atomic uint64_t cpu_ns; /* last read */
    char name[WIRE_THREAD_NAME];
    atomic_uint changed;                   /* something to send */
    _Atomic(struct ppx_cpu_sampler *) cpu; /* owned by cpu.c; NULL: not sampled */
    struct ppx_thread_record *next;        /* registry list, newest first */
    /* flusher only */
    uint64_t sent_generation;
    uint64_t sent_cpu_ns;
};

/* The calling thread's record, NULL if it is not registered (yet): a
 * thread-local cache that ppx_threads_register_self fills. */
extern PPX_TLS struct ppx_thread_record *ppx_self_record;

/* At init: sets up the CPU profile (ppx_cpu_init) and registers the
 * calling thread (the main thread, nearly always). last_thread_ending runs
 * on the program's last thread as it ends (the flusher must stop first). */
void ppx_threads_init(void (*last_thread_ending)(void));
/* Flusher, first run: registers the threads found in /proc/self/task that
 * are not registered yet (threads started before us, or while the hooks
 * only passed through) and starts their CPU timers from there. Their
 * ppx_self_record stays NULL until they call a thread hook. */
void ppx_threads_scan(void);
/* Every record ever registered, newest first (records are never freed;
 * the list only grows at its head, so a reader needs no lock). */
struct ppx_thread_record *ppx_threads_list(void);
/* Flusher: sends THREAD records for new or changed threads (creation
 * stacks first). false when the connection failed. */
bool ppx_threads_send(struct ppx_encoder *enc, uint64_t gen, uint32_t n_stacks);
void ppx_threads_reset_child(void);
/* task_dir.c: /proc/self/task kept open for the flusher's listings, away
 * from the program's descriptors. ppx_task_dir_open: by whoever starts the
 * flusher; the walk: the flusher (reopened as a passing descriptor if the
 * program closed it). */
void ppx_task_dir_open(void);
bool ppx_task_dir_walk(bool (*each)(int dirfd, const char *name, void *arg), void *arg);
void ppx_task_dir_reset_child(void);
/* Flusher: the main thread called pthread_exit and every other thread but
 * the caller has ended. glibc exits the process (status 0) when its last
 * thread ends; the flusher, a thread too, must then do it. */
bool ppx_threads_none_left(void);

/* From the thread hooks (hooks/thread.c), with the calling thread's
 * recursion guard held, and only when the library is READY and enabled: */

/* The calling thread's record; a thread not created through the hook (the
 * main thread, one found at start, one created while the hooks only passed
 * through) is looked up, or registered now as preexisting. NULL when out of
 * memory. */
struct ppx_thread_record *ppx_threads_register_self(void);
/* pthread_create is about to start a thread whose start routine registers
 * it (ppx_threads_started), or failed to (ppx_threads_create_failed). Lets
 * the flusher's scan tell such a thread from one nobody will register. */
void ppx_threads_creating(void);
void ppx_threads_create_failed(void);
/* First thing on a thread created through the hook: registers it, starts
 * its CPU timer, and arranges for its end to be recorded. */
void ppx_threads_started(uint32_t creator_id, uint32_t stack_id);
/* The calling thread was renamed (the kernel has its new name). */
void ppx_threads_renamed_self(void);
/* Another thread, by its handle, was renamed to name (at most 15 bytes). */
void ppx_threads_renamed(pthread_t handle, const char *name);

/* ---- cpu.c: the timers ---- */

void ppx_cpu_init(void);
/* From the flusher, for WIRE_CMD_CPU: samples every thread at hz from now
 * on, 0 stops. Nothing when PPX_CPU_HZ was set or sampling stopped for
 * good. ppx_cpu_sample_hz: the rate of the samples not yet sent. */
void ppx_cpu_set_rate(uint32_t hz);
uint32_t ppx_cpu_sample_hz(void);
/* Whether the threads' CPU timers tick now (the flusher keeps its fast
 * pace then: the rings are sized for it). */
bool ppx_cpu_sampling(void);
/* The pipe the handlers write a byte into when a thread's ring is half
 * full (flush/wake.c), id its file; fd -1: none. */
void ppx_cpu_set_waker(int fd, const struct ppx_fd_identity *id);
/* r is registered; start its timer (on the thread itself, or from the
 * flusher for threads found at start). */
void ppx_cpu_thread_started(struct ppx_thread_record *r);
/* r is ending, on its own thread: stop its timer; its ring is drained and
 * freed by the flusher later. */
void ppx_cpu_thread_ended(struct ppx_thread_record *r);
/* exec: stop every timer and discard pending ticks; after a failed exec,
 * start them again. */
void ppx_cpu_before_exec(void);
void ppx_cpu_after_exec_failed(void);
void ppx_cpu_reset_child(void);
/* The program installed a SIGPROF handler of its own (hooks/signal.c):
 * delete every timer, sampling stops for good, say so once. */
void ppx_cpu_sigprof_taken(void);
/* The program's timer_create failed with EAGAIN (no queued-signal slot
 * left for the user): delete one of ppx's timers, its thread goes
 * unsampled. false when ppx has none. */
bool ppx_cpu_give_back_timer(void);

/* ---- cpu_table.c ---- */

/* Flusher: drains every thread's ring and sends CPU_SAMPLES deltas. */
bool ppx_cpu_send(struct ppx_encoder *enc, uint64_t gen);

/* ---- task_dump.c: a thread dump (WIRE_CMD_TASKS) ---- */

/* Flusher: takes every thread's state, blocked-in call and stack now
 * (bounded wait); how many threads. layout: the state-threads layout the
 * collector sent with the command, NULL none. */
unsigned ppx_task_dump_take(const struct wire_st_layout *layout);
/* Flusher: sends the dump just taken as TASK records, then TASKS_END for
 * seq (started_ns: ppx_monotonic_ns() when the command was read). false
 * when the connection failed. */
bool ppx_task_dump_send(struct ppx_encoder *enc, uint64_t seq, uint64_t started_ns);
/* From the SIGPROF handler: a signal whose si_value is value, SI_QUEUE from
 * this process. true when it is a dump's (then handled). */
bool ppx_task_dump_signal(void *value, const void *ucontext);

/* ---- coroutine_scan.c: state-threads stacks found in the anonymous mappings ---- */

/* Flusher, before a dump's signals: lists the anonymous read-write
 * mappings and the executable ones (/proc/self/maps). false when it could
 * not (unreadable, out of memory, none). */
bool ppx_stack_scan_prepare(void);
/* The rest in the dump handler, after ppx_stack_scan_prepare(). */
/* Reads len bytes at src of this process (process_vm_readv: an unmapped
 * address fails, never faults). */
bool ppx_read_self(void *dst, uintptr_t src, size_t len);
/* Whether pc lies in an executable mapping listed. */
bool ppx_stack_scan_code(uintptr_t pc);
/* A stack known (its stk_top): its mapping is scanned first. */
void ppx_stack_scan_known(uintptr_t top);
/* What a scan looks for: records below_top bytes below the stk_top of
 * their stack, whose stack member (at th_stack in the record) names a
 * stack record with stk_bottom and stk_top at those offsets. take gets
 * each record found, top-down; false stops the scan. */
struct ppx_stack_scan {
    size_t below_top, th_stack, stk_bottom, stk_top;
    bool (*take)(uintptr_t t, void *arg);
    void *arg;
};
void ppx_stack_scan(const struct ppx_stack_scan *s);

/* ---- coroutine_dump.c: state-threads coroutines in a dump ---- */

/* From the st_thread_create and st_thread_exit hooks, on the thread that
 * runs the coroutines: the registry of coroutine records. */
void ppx_coroutine_created(void *t, void *(*start)(void *), void *arg);
void ppx_coroutine_exiting(void *t);
/* Flusher, before a dump's signals: the thread that runs coroutines (0:
 * none known, or coroutine dumps are off); its pool is ready. layout: the
 * collector's for a state-threads in the executable (NULL: none, the
 * symbols and state-threads 1.9's layout), checked here. */
pid_t ppx_coroutine_dump_prepare(const struct wire_st_layout *layout);
/* In the dump handler, after the thread's own walk (thread_pcs; sp: its
 * interrupted stack pointer): on the thread that runs the coroutines,
 * every coroutine's state and stack. */
void ppx_coroutine_dump_walk(const uintptr_t *thread_pcs, uint32_t thread_depth, uintptr_t sp);
/* Flusher, after the answers: the thread whose handler walked them (0: none). */
/* After ppx_coroutine_dump_prepare(): the coroutines are those of a libst
 * linked into the executable (their scheduler's thread found by its walk). */
bool ppx_coroutine_static(void);
/* Flusher, after ppx_coroutine_dump_prepare(): whether the thread whose
 * pthread_t is handle runs a scheduler, by its thread-local
 * _st_this_thread (false when the variables are not thread-local, or
 * handle is 0). */
bool ppx_coroutine_runs_on(uintptr_t handle);
pid_t ppx_coroutine_dump_owner(void);
/* Flusher, after ppx_coroutine_dump_prepare() (a libst linked in): how
 * many threads may run a scheduler of their own (thread-local variables;
 * see ppx_coroutine_runs_on), for the search of coroutines on no queue. */
void ppx_coroutine_schedulers(unsigned n);
/* fork: the child's one thread runs the coroutines it knows, if any. */
void ppx_coroutine_reset_child(void);
/* Flusher: the TASK records of the coroutines walked, on thread tid
 * (thread_id, name); how many in *sent. false when the connection failed. */
bool ppx_coroutine_dump_send(struct ppx_encoder *enc, uint64_t seq, pid_t tid, uint32_t thread_id,
                             const char name[WIRE_THREAD_NAME], unsigned *sent);

/* ---- sigprof_action.c: SIGPROF's real action ---- */

/* The next sigaction (no initialisation: the hook's caller does that). */
int ppx_real_sigaction(int sig, const struct sigaction *act, struct sigaction *oact);
/* Installs the CPU profile's handler unless the program has a handler of
 * its own (false then); from now on the program sees only its own view. */
bool ppx_sigprof_install(const struct sigaction *handler);
/* Whether our handler is installed (the hooks then keep the program's view). */
bool ppx_sigprof_ours(void);
/* sigaction(SIGPROF) by the program while ours is installed: its view
 * changes, or, for a handler of its own, it takes SIGPROF for good. */
int ppx_sigprof_program_sigaction(const struct sigaction *act, struct sigaction *oact);
/* The handler the program believes SIGPROF has. */
sighandler_t ppx_sigprof_program_handler(void);
/* exec: SIG_IGN (discards pending ticks), then the program's own action,
 * which the new image inherits. */
void ppx_sigprof_hand_back(void);
/* exec failed: our handler again (unless the program took SIGPROF). */
void ppx_sigprof_take_back(const struct sigaction *handler);
/* From the handler: a SIGPROF that no timer of ours sent (kill -PROF,
 * the program's own ITIMER_PROF) gets the program's action: ignored under
 * SIG_IGN; under SIG_DFL the process ends by SIGPROF, as it would without
 * ppx (re-raised with the default action, delivered when the handler
 * returns). Async-signal-safe. */
void ppx_sigprof_foreign(void);

/* ---- inside this stage only ---- */

#define MAX_REMOTE 256u /* threads started from the flusher, sampled at once */

/* A thread's CPU sampling: its timer and its ring of ticks, recycled
 * (never freed) once the thread has ended and the flusher drained it. */
enum cpu_status { CPU_FREE, CPU_ACTIVE, CPU_ENDED };

struct ppx_cpu_sampler {
    /* the producer: the handler on the owning thread */
    _Alignas(PPX_CACHELINE) _Atomic uint64_t head; /* words written */
    /* the consumer: the flusher */
    _Alignas(PPX_CACHELINE) _Atomic uint64_t tail; /* words consumed */
    /* set while the state is not in use (under cpu_mu), then read-only */
    _Alignas(PPX_CACHELINE) uint64_t *ring;
    uint64_t mask;     /* ring words - 1 */
    atomic_uint seq;   /* bumped on every reuse */
    atomic_int status; /* enum cpu_status */
    pid_t tid;
    bool remote; /* started from another thread: the handler finds it by tid */
    struct ppx_thread_record *rec;
    uintptr_t pcs[WIRE_MAX_DEPTH]; /* the handler's walk */
    /* under cpu_mu */
    bool has_timer;
    timer_t timer;
    uint64_t rng;
    struct ppx_cpu_sampler *free_next;
    /* immutable once published */
    struct ppx_cpu_sampler *all_next;
};

/* cpu.c: every sampler ever made (a list that only grows); the flusher's
 * ways to end and recycle them. */
struct ppx_cpu_sampler *ppx_cpu_samplers(void);
bool ppx_cpu_configured(void);
/* A sampler of a thread started from elsewhere whose CPU clock is gone:
 * ended now. Its status. */
int ppx_cpu_sampler_check_gone(struct ppx_cpu_sampler *c);
void ppx_cpu_sampler_recycle(struct ppx_cpu_sampler *c);
void ppx_cpu_table_reset_child(void);

/* sigprof_handler.c */
void ppx_cpu_on_sigprof(int sig, siginfo_t *si, void *ucontext);
/* Its address marks our ticks (si_value). */
extern char ppx_cpu_timer_cookie;
extern _Atomic uint64_t ppx_cpu_lost_ticks;
void ppx_cpu_handler_init(void);
void ppx_cpu_handler_set_rate(uint32_t hz);
/* A sampler started from another thread is found by tid (under cpu_mu). */
bool ppx_cpu_publish_remote(struct ppx_cpu_sampler *c);
void ppx_cpu_unpublish_remote(struct ppx_cpu_sampler *c);
/* The calling thread's own sampler, cached for its handler. */
void ppx_cpu_handler_adopt(struct ppx_cpu_sampler *c, unsigned seq);
void ppx_cpu_handler_forget(struct ppx_cpu_sampler *c);
void ppx_cpu_handler_reset_child(pid_t self);

/* thread_registry.c, for thread_records.c */
/* CPU time only grows (the flusher and the thread's own end race). */
void ppx_thread_cpu_raise(struct ppx_thread_record *r, uint64_t ns);
/* Something of r's to send. */
void ppx_thread_mark_changed(struct ppx_thread_record *r);
/* Records r's end, once: whoever does counts it out. Whether the program
 * has no other thread left. */
bool ppx_thread_record_end(struct ppx_thread_record *r);

/* thread_info.c: what the kernel says about a thread */
/* NUL-terminated within WIRE_THREAD_NAME, NUL-padded (the wire demands it). */
void ppx_thread_name_normalize(char name[WIRE_THREAD_NAME]);
void ppx_thread_name_of_self(char name[WIRE_THREAD_NAME]);
/* /proc/self/task/<tid>/comm, without its newline; "" if unreadable. */
void ppx_thread_name_of_tid(pid_t tid, char name[WIRE_THREAD_NAME]);
/* Reads /proc/self/task/<tid>/<file> into buf (at most cap - 1 bytes,
 * NUL-terminated), without malloc or stdio; the bytes read, or -1. */
long ppx_read_task_file(pid_t tid, const char *file, char *buf, size_t cap);
/* The CPU time of thread tid: 0 when read, else the errno (EINVAL: the
 * thread is gone). */
int ppx_thread_cpu_ns(pid_t tid, uint64_t *ns);
/* The CPU-time clock of thread tid, as the kernel's MAKE_THREAD_CPUCLOCK
 * (CPUCLOCK_SCHED | CPUCLOCK_PERTHREAD): what CLOCK_THREAD_CPUTIME_ID is
 * for the calling thread, usable from another thread of the process. */
static inline clockid_t ppx_thread_cpu_clock(pid_t tid)
{
    return (clockid_t)((~(unsigned)tid << 3) | 6u);
}

/* cpu_mu: timers and samplers change under it (never in the handler). */
void ppx_cpu_lock(void);
void ppx_cpu_unlock(void);
/* PPX_CHECK that the caller holds cpu_mu. */
void ppx_cpu_check_locked(void);

/* cpu_timers.c (cpu_mu held) */
void ppx_cpu_timers_set_period(uint64_t ns);
/* false with errno 0: refused by the queued-signal budget (sigqueue.c). */
bool ppx_cpu_timer_start(struct ppx_cpu_sampler *c);
void ppx_cpu_timer_stop(struct ppx_cpu_sampler *c);
void ppx_cpu_timers_stop_all(void);
/* Every active sampler's timer (a rate was set). */
void ppx_cpu_timers_start_active(void);
/* Said once. */
void ppx_cpu_note_timer_failure(int err);

/* sigqueue.c: our timers within the user's queued-signal limit (cpu_mu). */
bool ppx_sigqueue_room(void);
void ppx_sigqueue_note_full(void);
void ppx_sigqueue_timer_started(void);
void ppx_sigqueue_timer_stopped(void);
/* Read the count again at the next timer start. */
void ppx_sigqueue_reread(void);
void ppx_sigqueue_recount(uint64_t timers);

#pragma GCC visibility pop

#endif
