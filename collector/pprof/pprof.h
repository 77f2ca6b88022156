/* pprof output: profile.proto messages built from the process model, one
 * writer per profile (heap/allocs, cpu, syscalls, threadcreate, block and
 * mutex, and Go's
 * legacy text heap profile), the sink a profile goes to (a file written
 * atomically, or memory), the directory of profile files of `ppx record`,
 * and reading a profile back for the report commands. */
#ifndef PPX_PPROF_H
#define PPX_PPROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "symbol/symbol.h" /* and model.h through it */
#include "profile.pb-c.h"

/* ---- sink ----
 * Where a writer puts its profile, gzipped as pprof expects it: a file
 * (path), written atomically (a temporary file in the same directory,
 * renamed into place) so that a reader never sees half a profile; or,
 * with path NULL, memory (a profile served over HTTP): data, malloc'ed,
 * of len bytes, which the caller frees. name names the profile in
 * messages; NULL: the path.
 *
 * default_type, when set, is the profile's default_sample_type instead of
 * the writer's own (`?sample_index=NAME` over HTTP): one of its sample
 * types, else the writer fails saying which there are. Every writer
 * states its sample types in sample_types (static strings), whatever
 * happens after it has started (pprof_describe()). */
struct pprof_sink {
    const char *path;
    const char *name;
    uint8_t *data;
    size_t len;
    const char *default_type;
    const char *const (*sample_types)[2]; /* (type, unit), in the order of the values */
    size_t n_sample_types;
    const char *writer_default_type; /* the writer's own default */
};
/* A sink to the file path, for a writer's argument. */
#define PPROF_TO_FILE(file) (&(struct pprof_sink){.path = (file)})

/* Gzips data[0..len) into out. Returns 0, or -1 with a message naming the
 * profile and the cause in err (no "ppx:" prefix); a file that could not
 * be written leaves no temporary file behind, and an existing file at its
 * path untouched. */
int pprof_sink_put(struct pprof_sink *out, const uint8_t *data, size_t len, char *err,
                   size_t errlen);
/* What messages call the profile out. */
const char *pprof_sink_name(const struct pprof_sink *out);

/* ---- builder ---- */
/* Builds a pprof Profile message (profile.proto) piece by piece: a string
 * table (index 0 = ""), mappings, functions deduplicated by name and file,
 * locations deduplicated by (mapping, address) and symbolized on creation,
 * and samples. Allocation failures are remembered and reported once, by
 * pprof_builder_encode(), so callers need not check every step. */
struct pprof_builder;

/* A sample label: a string one when str is not NULL, else a numeric one
 * (num_unit may be NULL: no unit). */
struct pprof_label {
    const char *key;
    int64_t num;
    const char *num_unit;
    const char *str;
};

struct pprof_builder *pprof_builder_new(void);
void pprof_builder_free(struct pprof_builder *b);

/* Index of s in the string table, added on first use. NULL is "". */
int64_t pprof_string(struct pprof_builder *b, const char *s);

void pprof_add_sample_type(struct pprof_builder *b, const char *type, const char *unit);
void pprof_set_period(struct pprof_builder *b, const char *type, const char *unit, int64_t period);
void pprof_set_default_sample_type(struct pprof_builder *b, const char *type);
void pprof_set_time(struct pprof_builder *b, int64_t time_nanos, int64_t duration_nanos);
/* time_nanos = now_ns, duration_nanos = since the earliest start of procs. */
void pprof_set_time_since_start(struct pprof_builder *b, struct proc *const *procs, size_t n,
                                uint64_t now_ns);

/* v as a pprof int64 value, saturating. */
static inline int64_t pprof_clamp_int64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* Id of the pprof Mapping for m; mappings with the same file, build id and
 * range (forked processes) share one. The first mapping added is
 * mapping[0], which pprof takes for the main executable. 0 on failure. */
uint64_t pprof_mapping(struct pprof_builder *b, const struct proc_mapping *m);

/* Id of the Location at address (a pc already inside the call instruction)
 * in the pprof mapping mapping_id (m its process mapping), or with
 * mapping_id 0 and m NULL an address outside every mapping (no lines).
 * A new location is symbolized, inlined functions included, and the
 * mapping's has_* flags updated. 0 on failure. */
uint64_t pprof_location(struct pprof_builder *b, const struct proc_mapping *m, uint64_t mapping_id,
                        uint64_t address);

/* A new Location without mapping at address whose one line names
 * function (no file): a synthetic frame, such as the I/O call at the leaf
 * of a syscalls sample. Not deduplicated: callers keep the id. 0 on
 * failure. */
uint64_t pprof_function_location(struct pprof_builder *b, const char *function, uint64_t address);

/* Adds a sample: locations leaf first, values in sample_type order. */
void pprof_add_sample(struct pprof_builder *b, const uint64_t *location_ids, size_t n_locations,
                      const int64_t *values, size_t n_values, const struct pprof_label *labels,
                      size_t n_labels);

/* Serializes the profile (not compressed). Returns 0 with *out malloc'ed,
 * or -1 when something failed to allocate along the way. */
int pprof_builder_encode(struct pprof_builder *b, uint8_t **out, size_t *len);

/* What a profile says of its samples: their types (type, unit), in the
 * order of their values, its period and default sample type. */
struct pprof_profile_type {
    const char *const (*sample_types)[2];
    size_t n_sample_types;
    const char *period_type, *period_unit;
    int64_t period;
    const char *default_type;
};
/* The start of every writer: a builder with type's figures (the default
 * type out->default_type when set), the time now_ns and the duration
 * since the earliest start of procs[0..n); type's sample types are noted
 * in out. NULL when out of memory or out->default_type is not one of
 * type's, said in err. */
struct pprof_builder *pprof_builder_start(const struct pprof_profile_type *type,
                                          struct proc *const *procs, size_t n, uint64_t now_ns,
                                          struct pprof_sink *out, char *err, size_t errlen);

/* Encodes b, frees it (whatever happens) and puts the gzipped profile
 * into out. Returns 0, or -1 with a message in err. */
int pprof_builder_write(struct pprof_builder *b, struct pprof_sink *out, char *err, size_t errlen);
/* The end of every writer: pprof_builder_write, unless building failed
 * (build_rc != 0: out of memory), in which case b is freed and the error
 * said in err. */
int pprof_builder_finish(struct pprof_builder *b, int build_rc, struct pprof_sink *out, char *err,
                         size_t errlen);

/* ---- stack_locations ---- */
/* A process's program counters as pprof locations: its mappings registered
 * in a builder and sorted by address, each return address looked up and
 * symbolized inside its call instruction (pc - 1). Shared by the heap and
 * the syscalls writers. */
/* One process mapping with its pprof mapping id. */
struct pprof_mapping_ref {
    const struct proc_mapping *m;
    uint64_t pprof_id;
};

struct pprof_proc_mappings {
    struct pprof_builder *b;
    struct pprof_mapping_ref *refs; /* sorted by start */
    size_t n_refs;
};

/* Registers p's mappings in b, its main executable first (so the first
 * process's becomes mapping[0], which pprof takes for the program).
 * Returns 0, or -1 when out of memory. */
int pprof_proc_mappings_init(struct pprof_proc_mappings *pm, struct pprof_builder *b,
                             const struct proc *p);
void pprof_proc_mappings_free(struct pprof_proc_mappings *pm);

/* The mapping holding the runtime address addr, or NULL. */
const struct pprof_mapping_ref *pprof_find_mapping(const struct pprof_proc_mappings *pm,
                                                   uint64_t addr);

/* Stores in out[0..n) the locations of the return addresses pcs[0..n),
 * leaf first: each at pc - 1, inside the call (0 stays 0); an address
 * outside every mapping gets a location without mapping. Returns 0, or -1
 * when out of memory. */
int pprof_stack_locations(const struct pprof_proc_mappings *pm, const uint64_t *pcs, size_t n,
                          uint64_t *out);

/* Room for one sample's location ids, grown as needed and kept for the
 * next sample; the writer frees ids. */
struct pprof_location_ids {
    uint64_t *ids;
    size_t cap;
};
/* Room for n ids: 0, or -1 when out of memory. */
int pprof_location_ids_reserve(struct pprof_location_ids *l, size_t n);

/* The middle of every writer: fn(writer, p, pm) for each process p of
 * procs[0..n) in turn, with its mappings registered in b (pm), until one
 * fails. Returns 0, or the failure (-1). */
typedef int (*pprof_proc_fn)(void *writer, const struct proc *p,
                             const struct pprof_proc_mappings *pm);
int pprof_each_proc(struct pprof_builder *b, struct proc *const *procs, size_t n, pprof_proc_fn fn,
                    void *writer);

/* ---- heap ---- */
/* Writes heap and allocs profiles in pprof format (profile.proto, gzipped),
 * as Go's runtime/pprof writes them. */
enum pprof_heap_kind {
    PPROF_HEAP,   /* default sample type inuse_space */
    PPROF_ALLOCS, /* default sample type alloc_space */
};

/* Writes the merged profile of procs[0..n) to out. With pid_labels, each sample carries
 * a numeric label "pid". now_ns is the profile's time. Returns 0, or -1
 * with a message in err. */
int pprof_heap_write(struct proc *const *procs, size_t n, enum pprof_heap_kind kind,
                     bool pid_labels, uint64_t now_ns, struct pprof_sink *out, char *err,
                     size_t errlen);

/* Whether name (a raw symbol name) is an allocator entry point: malloc and
 * its family, operator new/delete in every variant, glibc's __libc_*,
 * jemalloc's and tcmalloc's own names. Such frames are dropped from the
 * leaf end of heap stacks, as Go drops its runtime frames. */
bool pprof_is_allocator_entry(const char *name);

/* How many frames at the leaf end of s are allocator entry points (a stack
 * of nothing else keeps its last frame): where its shown stack starts. */
struct pprof_proc_mappings;
uint32_t pprof_heap_first_frame(const struct pprof_proc_mappings *pm, const struct proc_stack *s);

/* ---- cpu ---- */
/* Writes the CPU profile of processes (cpu.pb.gz) in pprof format, as Go's
 * runtime/pprof writes CPU profiles. */
/* The synthetic frames of the samples that have no stack. */
#define PPROF_CPU_LOST_FRAME "ppx: lost samples"
#define PPROF_CPU_DROPPED_FRAME "ppx: samples over the collector's limits"

/* The rate assumed for the period of a profile without any sample. */
#define PPROF_CPU_DEFAULT_HZ 100u

/* Writes the merged CPU profile of procs[0..n) to out, also when no process sent a sample
 * (a profile without samples).
 *
 * Sample types samples/count and cpu/nanoseconds (the default), period
 * type cpu/nanoseconds, period 1e9/hz of the first process that sent
 * samples (processes at other rates keep their own nanoseconds). One
 * sample per (stack, thread), leaf first (the interrupted instruction),
 * with a string label "thread" (the thread's latest name: a thread renamed
 * during the run has all its samples under its last name) and a numeric
 * label "tid"; with pid_labels a numeric label "pid" too. Ticks the target lost
 * are one sample per process on the single synthetic frame
 * PPROF_CPU_LOST_FRAME, without thread labels, so that the totals stay
 * true and the loss shows; samples the decoder kept without stack
 * (model.h limits) likewise on PPROF_CPU_DROPPED_FRAME. now_ns is
 * the profile's time, its duration runs from the earliest process start.
 * Returns 0, or -1 with a message in err. */
int pprof_cpu_write(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                    struct pprof_sink *out, char *err, size_t errlen);

/* ---- contention ---- */
/* Writes the block profile (mutex false: block.pb.gz) or the mutex
 * profile (mutex.pb.gz) of procs[0..n), merged, as Go's runtime/pprof
 * writes them: sample types contentions/count and delay/nanoseconds,
 * period type contentions/count, period 1, no default sample type. One
 * sample per stack with figures: block, the stack that waited; mutex,
 * the stack that released a lock others waited for. Figures as the
 * target scaled them; with pid_labels a numeric label "pid". Written also
 * without any sample. Returns 0, or -1 with a message in err. */
int pprof_contention_write(struct proc *const *procs, size_t n, bool mutex, bool pid_labels,
                           uint64_t now_ns, struct pprof_sink *out, char *err, size_t errlen);

/* ---- syscalls ---- */
/* Writes the I/O call audit of processes as a pprof profile (syscalls.pb.gz):
 * per call site and stack, how many calls, how long they took, what they
 * moved and how many failed. */
/* Sample types, in this order; the default is "calls". */
#define PPROF_SYSCALLS_TYPES                                                                       \
    {"calls", "count"}, {"time", "nanoseconds"}, {"bytes", "bytes"}, {"messages", "count"},        \
        {"errors", "count"},                                                                       \
    {                                                                                              \
        "eagain", "count"                                                                          \
    }
#define PPROF_SYSCALLS_N_TYPES 6

/* Writes the merged I/O profile of procs[0..n) to out, also when no process made an I/O
 * call (a profile without samples).
 *
 * Each sample's stack is a synthetic leaf naming the call ("recvmsg": a
 * location without mapping whose function has that name), then the real
 * frames. A site's exact figures are divided among its sampled stacks in
 * proportion to their samples, with largest-remainder rounding so that the
 * integers add up to the site's figures exactly; a site without a sampled
 * stack gets the one-frame stack of its caller. String labels "fd",
 * "family", "socktype" describe the descriptor; with pid_labels a numeric
 * label "pid" names the process. Failed calls by errno are separate
 * samples with a string label "errno" ("ECONNRESET") carrying only an
 * errors value (an eagain value for EAGAIN); the plain samples carry the
 * failures whose errno is unknown. now_ns is the profile's time, its
 * duration runs from the earliest process start. Returns 0, or -1 with a
 * message in err. */
int pprof_syscalls_write(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                         struct pprof_sink *out, char *err, size_t errlen);

/* The name of a wire.h enum wire_io_call value ("recvmsg"), or NULL. */
const char *pprof_io_call_name(unsigned call);

/* The name of errno value err ("ECONNRESET"), or "E<number>" for one the
 * C library cannot name, in buf. */
const char *pprof_errno_name(int err, char *buf, size_t buflen);

/* ---- threads ---- */
/* Writes where the threads of processes were created (threadcreate.pb.gz)
 * in pprof format, as Go writes its threadcreate profile, with each
 * thread's particulars in labels (read back by `ppx threads`). */
/* The one synthetic frame of a thread without creation stack. */
#define PPROF_THREADS_MAIN_FRAME "main thread"
#define PPROF_THREADS_PREEXISTING_FRAME "thread started before ppx"
#define PPROF_THREADS_UNKNOWN_FRAME "creation stack unknown"

/* Writes the merged threadcreate profile of procs[0..n) to out, also
 * when no process
 * described a thread (a profile without samples).
 *
 * Sample type threadcreate/count (the default), period type
 * threadcreate/count, period 1. One sample of value 1 per thread, whose
 * stack is its creation stack (leaf: the caller of pthread_create) or,
 * for a thread without one, a synthetic frame: PPROF_THREADS_MAIN_FRAME,
 * PPROF_THREADS_PREEXISTING_FRAME or PPROF_THREADS_UNKNOWN_FRAME. `pprof
 * -top` thus counts threads per creation site. Labels: string "thread"
 * (its name), numeric "tid", "creator_tid" (when the creator is known),
 * "start_ns" and "end_ns" (CLOCK_REALTIME; no end_ns while it runs), and
 * "cpu" (unit nanoseconds: CPU time used); with pid_labels "pid". now_ns is
 * the profile's time, its duration runs from the earliest process start.
 * Returns 0, or -1 with a message in err. */
int pprof_threads_write(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                        struct pprof_sink *out, char *err, size_t errlen);

/* ---- goroutine ---- */
/* What every thread and state-threads coroutine of processes was doing at
 * their latest dump (model.h proc_dump; live.h live_tasks() takes one), in
 * Go's goroutine profile forms. */
/* The one frame of a thread dumped without stack, saying why. */
#define PPROF_TASK_BLOCKED_FRAME "ppx: no stack (the thread blocks SIGPROF)"
#define PPROF_TASK_NO_ANSWER_FRAME "ppx: no stack (the thread did not answer in time)"
#define PPROF_TASK_UNREACHABLE_FRAME                                                               \
    "ppx: no stack (a coroutine waiting without timeout, on no scheduler queue)"
#define PPROF_TASK_NOT_INTERRUPTED_FRAME                                                           \
    "ppx: no stack (in a call a signal would cut short: not interrupted)"
#define PPROF_TASK_NO_SIGNAL_FRAME                                                                 \
    "ppx: no stack (SIGPROF is the program's, or CPU profiling is off)"

/* debug=0 (goroutine.pb.gz): sample and period type goroutine/count,
 * period 1; one sample per distinct (stack, kind, thread name, state) of
 * a process, valued how many threads and coroutines share it, with string
 * labels "kind" (thread, coroutine), "thread" (the name of the thread, or
 * of the one the coroutine runs on) and "state" (pprof_task_state()), and
 * with pid_labels a numeric "pid". Processes without a dump add nothing.
 * Returns 0, or -1 with a message in err. */
int pprof_goroutine_write(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                          struct pprof_sink *out, char *err, size_t errlen);
/* debug=1: the same groups as text (Go's "COUNT @ pc ..." with "# labels"
 * and "#" frame lines), most shared first; debug=2: per process a header
 * line, then one block per thread and coroutine, its state and what it
 * is blocked in ("thread 1234 \"name\" [sleeping, read fd 7 (pipe) for
 * 12.3 s]:") and its symbolized frames (function, then tab file:line).
 * Malloc'ed in *out (*len bytes). Symbolizes: under the build lock.
 * Returns 0, or -1 when out of memory. */
int goroutine_text_write(struct proc *const *procs, size_t n, int debug, char **out, size_t *len);
/* "running", "sleeping", "disk sleep", ... for a thread (its /proc
 * letter); "running", "runnable", "sleeping", "io wait", "cond wait",
 * "zombie" for a coroutine. */
const char *pprof_task_state(const struct proc_task *t);
/* The call the task is blocked in ("read", "pthread_mutex_lock"), NULL for none. */
const char *pprof_task_wait_call(const struct proc_task *t);

/* ---- heap_text ---- */
/* Go's legacy text heap profile (`/debug/pprof/heap?debug=1`), as
 * runtime/pprof's writeHeapInternal writes it for debug != 0:
 *
 *   heap profile: INUSE_OBJ: INUSE_BYTES [ALLOC_OBJ: ALLOC_BYTES] @ heap/2*RATE
 *   INUSE_OBJ: INUSE_BYTES [ALLOC_OBJ: ALLOC_BYTES] @ 0xPC 0xPC ...
 *   #	0xPC-1	function	file:line
 *   ...
 *
 * one record per stack, sorted by in-use bytes, with the raw sampled
 * figures (a reader scales them by the rate in the header, as pprof's
 * legacy parser does: "heap/N" means a sampling rate of N/2, a convention
 * of the C++ heap profiler that Go kept), program counters as return
 * addresses (the reader takes 1 off), and symbolized "#" lines (inlined
 * functions included, innermost first). Allocator frames at the leaf are
 * left out, as in the pprof profiles. After a "# ppx" comment section
 * naming the processes comes, for a single process, its memory map in the
 * brief format pprof's legacy parser knows (start-limit perms file
 * (@offset) build-id), so `go tool pprof` can symbolize the text too. */
/* The text of procs[0..n) merged, malloc'ed in *out (*len bytes, NUL
 * terminated). Symbolizes: call it under the build lock (live.h).
 * Returns 0, or -1 when out of memory. */
int heap_text_write(struct proc *const *procs, size_t n, char **out, size_t *len);
/* The "#" lines of one frame, as Go's printStackRecord: the address inside
 * the call, then function and file:line, each inlined function first, C++
 * names demangled (heap?debug=1, goroutine?debug=1). */
void pprof_print_frame_text(FILE *f, const struct pprof_proc_mappings *pm, uint64_t pc);

/* ---- output ---- */
/* Every profile, by what it is. */
enum pprof_profile {
    PPROF_PROFILE_HEAP,
    PPROF_PROFILE_ALLOCS,
    PPROF_PROFILE_SYSCALLS,
    PPROF_PROFILE_CPU,
    PPROF_PROFILE_THREADCREATE,
    PPROF_PROFILE_BLOCK,
    PPROF_PROFILE_MUTEX,
    PPROF_PROFILE_PEAK,      /* the heap profile at each process's peak (model.h) */
    PPROF_PROFILE_GOROUTINE, /* the latest dumps; not among the files of a run */
};
/* Writes profile which of procs[0..n) to out with its writer (above). */
int pprof_write(enum pprof_profile which, struct proc *const *procs, size_t n, bool pid_labels,
                uint64_t now_ns, struct pprof_sink *out, char *err, size_t errlen);
/* The sample types of profile which and its default type, as its writer
 * states them (an empty profile is written to learn them, so no second
 * list is kept beside the writers; no symbol is looked up, so no build
 * lock is needed): *types (static, n_types of them, (type, unit) each)
 * and *default_type. -1 when out of memory. */
int pprof_describe(enum pprof_profile which, const char *const (**types)[2], size_t *n_types,
                   const char **default_type);

/* The output directory of `ppx record` and the profile files in it:
 * heap.pb.gz, allocs.pb.gz, syscalls.pb.gz, cpu.pb.gz, threadcreate.pb.gz,
 * block.pb.gz and mutex.pb.gz (merged over all processes), numbered
 * snapshots heap.N.pb.gz ... mutex.N.pb.gz, and with several processes
 * per-process files in DIR/PID/ (DIR/PID.I/ for later incarnations). */
/* mkdir -p dir, then proves it writable by creating and removing a file
 * (access() would lie for root and on read-only file systems). */
int output_dir_prepare(const char *dir, char *err, size_t errlen);

/* Writes snapshot number n (0: the final files) of every process, merged.
 * With final and several processes, also the per-process files of each
 * process that has samples, I/O calls, CPU samples or threads; with final,
 * says what I/O and CPU detail the decoder's limits dropped. Returns 0, or -1 after printing what
 * failed. */
int output_write(const char *dir, struct proc_table *t, unsigned snapshot, bool final);

/* Writes the profiles of procs[0..n) (copies, model.h, for the live
 * collector), merged, into dir: the same files as output_write(), with
 * pid labels when n > 1. Returns 0, or -1 after printing what failed. */
int output_write_procs(const char *dir, struct proc *const *procs, size_t n);

/* ---- read ---- */
/* Reading a pprof profile back, for ppx's report commands (audit, threads):
 * a gzipped profile.proto file decoded with protobuf-c, bounded in size,
 * and an index to look its locations, functions and mappings up by id. */
/* The profile in path, to free with perftools__profiles__profile__free_unpacked;
 * NULL with a message in err (no "ppx ...:" prefix) when the file cannot be
 * read, is not gzip-compressed, is corrupt, too large, or no profile. */
Perftools__Profiles__Profile *pprof_read_file(const char *path, char *err, size_t errlen);
/* pprof_read_file() in two steps: the file's bytes as they are
 * (malloc'ed), then the profile they hold (path names it in messages). */
uint8_t *pprof_read_raw(const char *path, size_t *len, char *err, size_t errlen);
Perftools__Profiles__Profile *pprof_parse(const char *path, const uint8_t *gz, size_t len,
                                          char *err, size_t errlen);

/* Sorted copies of a profile's location, function and mapping arrays. */
struct pprof_index {
    const Perftools__Profiles__Profile *prof;
    const Perftools__Profiles__Location **locations;
    const Perftools__Profiles__Function **functions;
    const Perftools__Profiles__Mapping **mappings;
};

/* 0, or -1 when out of memory (then ix holds nothing to free). */
int pprof_index_init(struct pprof_index *ix, const Perftools__Profiles__Profile *p);
void pprof_index_free(struct pprof_index *ix);

/* The string at index i of the string table; "" for one out of range. */
const char *pprof_index_string(const struct pprof_index *ix, int64_t i);

/* By id; NULL when the profile has none with that id. */
const Perftools__Profiles__Location *pprof_index_location(const struct pprof_index *ix,
                                                          uint64_t id);
const Perftools__Profiles__Function *pprof_index_function(const struct pprof_index *ix,
                                                          uint64_t id);
const Perftools__Profiles__Mapping *pprof_index_mapping(const struct pprof_index *ix, uint64_t id);

/* The first string (str) or numeric (num) label of s named key: NULL or
 * false when s has none. */
const char *pprof_index_label_str(const struct pprof_index *ix,
                                  const Perftools__Profiles__Sample *s, const char *key);
bool pprof_index_label_num(const struct pprof_index *ix, const Perftools__Profiles__Sample *s,
                           const char *key, int64_t *out);

/* ---- report_viewer ---- */
/* The flame graph viewer's release files (npm's speedscope, its
 * dist/release folder: index.html, the scripts and stylesheets it names),
 * read where they are installed to be inlined into a report page: never
 * copied into ppx's tree. */
struct report_viewer {
    char *dir;
    char *js, *css; /* index.html's scripts, then its stylesheets, in order; every
                       url(...) of a stylesheet naming a file of dir a data: URL */
    size_t js_len, css_len;
    size_t n_scripts;
    char *notices; /* the licences of what is inlined; NULL: none found */
    size_t notices_len;
};
/* 0, or -1 with a message in err (a file missing or unreadable, an
 * index.html naming no script). */
int report_viewer_load(const char *dir, struct report_viewer *v, char *err, size_t errlen);
void report_viewer_free(struct report_viewer *v);

/* ---- report_html ---- */
/* The page of `ppx report`: one HTML file that needs nothing else (no
 * network, no other file), with each profile's top table, the texts of
 * ppx audit and ppx threads, the profiles themselves (to download), and,
 * when the viewer was found, their flame graphs in it. Every string from
 * a profile or a file is HTML-escaped. */
struct report_profile {
    const char *stem; /* "heap": the profile (ids, buttons) */
    const char *file; /* as found in the directory: "heap.pb.gz", "heap.3.pb.gz" */
    const char *what; /* what it shows, for its heading */
    const uint8_t *data;
    size_t len;                  /* the file as it is; NULL: unreadable */
    const struct pprof_top *top; /* NULL: unreadable, error says why */
    const char *error;
    int64_t duration_nanos;
    /* Its sample types, for the flame graph's choice: "NAME:INDEX ..." with
     * INDEX the name's place in the profile's string table (what the page
     * sets its default_sample_type to); NULL: no choice. */
    const char *sample_types;
};
/* A command's text (ppx audit, ppx threads), shown as it prints it. */
struct report_text {
    const char *id, *title;
    const char *text; /* NULL: error says why there is none */
    size_t len;
    const char *error;
};
struct report_page {
    const char *dir, *version;
    const struct report_profile *profiles;
    size_t n_profiles;
    const struct report_text *texts;
    size_t n_texts;
    const struct report_viewer *viewer; /* NULL: not installed */
    const char *viewer_looked;          /* where it was looked for */
    const char *viewer_error;           /* found, but unusable: why */
    size_t top_rows;                    /* rows of each top table */
};
/* Writes the page to f. */
void report_html_write(FILE *f, const struct report_page *p);

/* ---- top ---- */
/* A profile's functions with their figures, as `go tool pprof -top`
 * shows them: for the sample type pprof shows by default (the profile's
 * default_sample_type, else its last), each function's flat value (the
 * samples it is the leaf of; an inlined function's own, not its
 * caller's) and cum value (the samples it is anywhere in, once each). A
 * function is its name as pprof shows it (C++ demangled without
 * parameters), or for a location without lines its address (0x...). */
struct pprof_top_row {
    char *name;
    int64_t flat, cum;
};
struct pprof_top {
    char *type, *unit; /* NULL: the profile has no sample type */
    int64_t total;     /* over all samples */
    size_t n_samples;  /* with a value other than 0 */
    struct pprof_top_row *rows;
    size_t n_rows; /* most flat first, then most cum, then by name */
};
/* 0, or -1 when out of memory (then t holds nothing). */
int pprof_top_make(const Perftools__Profiles__Profile *p, struct pprof_top *t);
void pprof_top_free(struct pprof_top *t);

#endif
