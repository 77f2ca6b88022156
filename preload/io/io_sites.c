/* I/O call sites, their exact counters, and sampled stacks (wire.h IO_*).
 *
 * Every hooked call is counted exactly per *site*: the triple (return address
 * into the caller, call, descriptor class): calls, time, bytes, messages,
 * errors, EAGAINs and failures by errno, in the calling thread's own
 * counters (io_counters.c), which the flusher sums. Sites are found through
 * a per-thread cache, then a lock-free open-addressing table; a new site is
 * created with the recursion guard held.
 *
 * Stacks cost an unwind, so only a sample of calls gets one: each thread
 * counts calls down from a geometric variate with mean PPX_SYSCALL_SAMPLE
 * (1 = every call, PPX_SYSCALL_STACKS=all), and the first call of every
 * site is sampled too, so that every site has a stack. A sampled call's
 * stack is interned like an allocation's (stack/stack_table.c) and counted in a
 * (site, stack) pair table; the collector divides the site's exact figures
 * among its stacks in proportion to these counts.
 *
 * Reentrancy: these functions run from signal handlers. Counting takes no
 * lock, creating a site neither (its record comes from chunks mapped on
 * demand), and per-thread state changes only by single stores of whole
 * values (a torn countdown changes only when the next sample is taken).
 * The thread's own counters are updated without a locked instruction, so a
 * handler that interrupts that update counts in the site's shared atomic
 * counters instead (io_thread.busy).
 * So a call from a handler that interrupted the profiler on its thread
 * (recursion guard held) is still counted; it only gets no stack, since
 * unwinding and interning may take locks the interrupted code holds. The
 * profiler's own calls are told apart by their caller (hooks/io.c). */
#include "io.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define SITE_CHUNK_BITS 7
#define SITE_CHUNK (1u << SITE_CHUNK_BITS)
#define SITE_SLOTS (2 * PPX_IO_MAX_SITES) /* hash table of site pointers */
#define SITE_CACHE PPX_IO_SITE_CACHE
#define PAIR_CHUNK_BITS 12
#define PAIR_CHUNK (1u << PAIR_CHUNK_BITS)
#define PAIR_CHUNKS 64u
#define MAX_PAIRS (PAIR_CHUNKS * PAIR_CHUNK) /* (site, stack) pairs */
#define PAIR_SLOTS (2 * MAX_PAIRS)

/* The site cache is in the thread's buffers (ppx_tls.buffers). */
struct io_thread {
    uint64_t countdown; /* calls until the next sampled one; 0: not seeded */
    uint64_t rng;
    unsigned busy; /* updating its own counters: a nested call uses the shared ones */
};

atomic_bool ppx_io_active;

static PPX_TLS struct io_thread io_thread;

static _Atomic(struct ppx_io_site *) site_slots[SITE_SLOTS];
/* Sites by id, in chunks mapped on demand: creating a site takes no lock
 * (a signal handler may create one while its thread is in the profiler). */
static _Atomic(void *) site_chunks[PPX_IO_MAX_SITES / SITE_CHUNK]; /* of struct ppx_io_site */
static atomic_uint next_site_id;

static _Atomic(void *) pair_chunks[PAIR_CHUNKS]; /* of struct ppx_io_pair */
static _Atomic uint32_t pair_slots[PAIR_SLOTS];  /* index + 1 into the pairs; 0: empty */
static atomic_uint next_pair;

static atomic_bool any_counted; /* a site was counted since start (or fork) */
static double log_keep;         /* log(1 - 1/PPX_SYSCALL_SAMPLE) */

void ppx_io_init(void)
{
    uint32_t mean = ppx_config.syscall_sample;
    log_keep = mean > 1 ? log1p(-1.0 / (double)mean) : 0.0;
}

/* ---- sampling ---- */

static uint64_t next_random(struct io_thread *t)
{
    if (PPX_UNLIKELY(t->rng == 0))
        t->rng = ppx_random_seed(t);
    return ppx_random_next(&t->rng);
}

/* Calls until the next sample, the sampled one included: geometric with
 * mean PPX_SYSCALL_SAMPLE, so every call is sampled with the same
 * probability 1/mean, independently of the others. */
static uint64_t draw_countdown(struct io_thread *t)
{
    if (ppx_config.syscall_sample <= 1)
        return 1;
    double u = ((double)(next_random(t) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double n = floor(log(u) / log_keep) + 1.0;
    if (!(n < 1.0e18))
        return UINT64_C(1000000000000000000);
    return (uint64_t)n;
}

/* ---- the (site, stack) pairs ---- */

static struct ppx_io_pair *pair_at(uint32_t index, bool create)
{
    unsigned c = index >> PAIR_CHUNK_BITS;
    struct ppx_io_pair *chunk = atomic_load_explicit(&pair_chunks[c], memory_order_acquire);
    if (chunk == NULL && create)
        chunk = ppx_pages_publish(&pair_chunks[c], PAIR_CHUNK * sizeof *chunk);
    return chunk != NULL ? &chunk[index & (PAIR_CHUNK - 1)] : NULL;
}

/* The pair's record, created if new; NULL when the table is full. A
 * racing creator's spare record stays unused (its samples stay 0). */
static struct ppx_io_pair *pair_find(uint32_t site_id, uint32_t stack_id)
{
    uint64_t key = ((uint64_t)site_id << 32 | stack_id) + 1;
    size_t i = ppx_mix64(key) & (PAIR_SLOTS - 1);
    for (size_t probes = 0; probes < PAIR_SLOTS; probes++, i = (i + 1) & (PAIR_SLOTS - 1)) {
        uint32_t slot = atomic_load_explicit(&pair_slots[i], memory_order_acquire);
        if (slot == 0) {
            uint32_t index = atomic_fetch_add_explicit(&next_pair, 1, memory_order_relaxed);
            struct ppx_io_pair *p = index < MAX_PAIRS ? pair_at(index, true) : NULL;
            if (p == NULL)
                return NULL;
            atomic_store_explicit(&p->key, key, memory_order_release);
            if (atomic_compare_exchange_strong_explicit(&pair_slots[i], &slot, index + 1,
                                                        memory_order_acq_rel, memory_order_acquire))
                return p;
        }
        struct ppx_io_pair *p = pair_at(slot - 1, false);
        if (p != NULL && atomic_load_explicit(&p->key, memory_order_acquire) == key)
            return p;
    }
    return NULL;
}

/* ---- sites ---- */

static inline uint64_t site_hash(uintptr_t pc, uint32_t key)
{
    return ppx_mix64((uint64_t)pc ^ ((uint64_t)key << 40) ^ key);
}

static struct ppx_io_site *site_at(uint32_t id, bool create)
{
    unsigned c = id >> SITE_CHUNK_BITS;
    struct ppx_io_site *chunk = atomic_load_explicit(&site_chunks[c], memory_order_acquire);
    if (chunk == NULL && create)
        chunk = ppx_pages_publish(&site_chunks[c], SITE_CHUNK * sizeof *chunk);
    return chunk != NULL ? &chunk[id & (SITE_CHUNK - 1)] : NULL;
}

/* The flusher's view: the site of id if it has been filled in. */
struct ppx_io_site *ppx_io_site_get(uint32_t id)
{
    struct ppx_io_site *s = site_at(id, false);
    return s != NULL && atomic_load_explicit(&s->published, memory_order_acquire) ? s : NULL;
}

static struct ppx_io_site *site_create(uintptr_t pc, uint32_t key)
{
    uint32_t id = atomic_fetch_add_explicit(&next_site_id, 1, memory_order_relaxed);
    struct ppx_io_site *s = id < PPX_IO_MAX_SITES ? site_at(id, true) : NULL;
    if (s == NULL)
        return NULL;
    s->pc = pc;
    s->key = key;
    s->id = id;
    atomic_store_explicit(&s->published, 1, memory_order_release);
    return s;
}

/* Slow path: the global table; a new site if none. Lock-free. */
static struct ppx_io_site *site_find(uintptr_t pc, uint32_t key, uint64_t h)
{
    struct ppx_io_site *mine = NULL;
    size_t i = h & (SITE_SLOTS - 1);
    for (size_t probes = 0; probes < SITE_SLOTS; probes++, i = (i + 1) & (SITE_SLOTS - 1)) {
        struct ppx_io_site *s = atomic_load_explicit(&site_slots[i], memory_order_acquire);
        if (s == NULL) {
            if (mine == NULL && (mine = site_create(pc, key)) == NULL)
                return NULL;
            /* A site that loses this race is published with an id but never
             * counted; the flusher skips sites without calls. */
            if (atomic_compare_exchange_strong_explicit(&site_slots[i], &s, mine,
                                                        memory_order_acq_rel, memory_order_acquire))
                return mine;
        }
        if (s->pc == pc && s->key == key)
            return s;
    }
    return NULL;
}

/* Fills the thread's cache slot for the site; false when the site table
 * is full. A slot without local counters (no memory) is still usable. */
static __attribute__((noinline)) bool site_lookup_slow(struct ppx_io_cache_slot *slot, uintptr_t pc,
                                                       uint32_t key, uint64_t h,
                                                       struct ppx_io_site **site,
                                                       struct ppx_io_local **counters)
{
    struct ppx_tls *pt = &ppx_tls;
    pt->guard++;
    struct ppx_io_site *s = site_find(pc, key, h);
    struct ppx_io_local *local = NULL;
    if (s == NULL)
        ppx_note_lost("the I/O site table is full");
    else if ((local = ppx_io_local_get(s->id)) == NULL)
        ppx_note_lost("out of memory for per-thread I/O counters");
    pt->guard--;
    if (s == NULL)
        return false;
    /* site last: a handler reading the slot in between sees no site and
     * takes this path itself */
    slot->site = NULL;
    atomic_signal_fence(memory_order_seq_cst);
    slot->local = local;
    atomic_signal_fence(memory_order_seq_cst);
    slot->site = s;
    *site = s; /* not read back: a handler may have taken the slot since */
    *counters = local;
    return true;
}

/* ---- stacks of sampled calls ---- */

static __attribute__((noinline)) void sample_stack(struct ppx_io_site *site, const void *ret)
{
    struct ppx_tls *t = &ppx_tls;
    /* No ppx_flusher_start_if_due() here, unlike the allocation path:
     * this may run in a signal handler (write() is async-signal-safe,
     * malloc is not), and starting a thread there could deadlock. A process
     * without a flusher gets it from an allocation, or sends at exit. */
    t->guard++;
    if (!ppx_thread_buffers_ensure(t)) {
        ppx_note_lost("out of memory for per-thread buffers");
        t->guard--;
        return;
    }
    unsigned max = ppx_config.max_depth;
    unsigned depth = ppx_unwind(t->pcs, max, ret);
    /* The contract: a site's stacks start at its caller. If the unwinder
     * lost that frame (a tail call, say), it goes in front. */
    if (t->pcs[0] != (uintptr_t)ret) {
        if (depth == max)
            depth--;
        memmove(t->pcs + 1, t->pcs, depth * sizeof t->pcs[0]);
        t->pcs[0] = (uintptr_t)ret;
        depth++;
    }
    struct ppx_stack *s = ppx_stack_intern(t, t->pcs, depth);
    struct ppx_io_pair *p = s != NULL ? pair_find(site->id, s->id) : NULL;
    if (p != NULL)
        atomic_fetch_add_explicit(&p->samples, 1, memory_order_relaxed);
    else
        ppx_note_lost(s == NULL ? "out of memory for the stack table"
                                : "the I/O stack table is full");
    t->guard--;
}

/* ---- counting ---- */

/* The site's slot for errno err, claimed if new; PPX_IO_ERRNO_SLOTS when every
 * slot holds another errno (or err is out of range). */
static unsigned errno_slot(struct ppx_io_site *s, int err)
{
    if (err < 1 || err > 4095)
        return PPX_IO_ERRNO_SLOTS;
    for (unsigned i = 0; i < PPX_IO_ERRNO_SLOTS; i++) {
        uint32_t v = atomic_load_explicit(&s->err[i], memory_order_acquire);
        if (v == 0 &&
            atomic_compare_exchange_strong_explicit(&s->err[i], &v, (uint32_t)err,
                                                    memory_order_acq_rel, memory_order_acquire))
            v = (uint32_t)err; /* claimed; on failure v is the winner's errno */
        if (v == (uint32_t)err)
            return i;
    }
    return PPX_IO_ERRNO_SLOTS;
}

/* Counting in the site's shared counters: atomic adds. */
static __attribute__((noinline)) void count_shared(struct ppx_io_site *s, uint64_t ticks, int err,
                                                   uint64_t bytes, uint64_t messages)
{
    atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->time_ns, ticks, memory_order_relaxed);
    if (err == 0) {
        atomic_fetch_add_explicit(&s->bytes, bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->messages, messages, memory_order_relaxed);
        return;
    }
    if (err == EAGAIN || err == EWOULDBLOCK)
        atomic_fetch_add_explicit(&s->eagain, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
    unsigned i = errno_slot(s, err);
    atomic_fetch_add_explicit(i < PPX_IO_ERRNO_SLOTS ? &s->err_calls[i] : &s->err_unnamed, 1,
                              memory_order_relaxed);
}

static __attribute__((noinline)) void count_local_error(struct ppx_io_site *s,
                                                        struct ppx_io_local *l, int err)
{
    ppx_io_local_add(err == EAGAIN || err == EWOULDBLOCK ? &l->eagain : &l->errors, 1);
    unsigned i = errno_slot(s, err);
    if (i < PPX_IO_ERRNO_SLOTS) /* beyond the slots: counted in errors only */
        ppx_io_local_add(&l->err_calls[i], 1);
}

/* The thread's countdown reached its last call (or was never seeded):
 * whether this call is sampled. */
static __attribute__((noinline)) bool countdown_expired(struct io_thread *t)
{
    if (t->countdown == 0) {
        t->countdown = draw_countdown(t);
        if (t->countdown > 1) {
            t->countdown--;
            return false;
        }
    }
    t->countdown = draw_countdown(t);
    return true;
}

/* The first call of a site since start (or fork): it is sampled. */
static __attribute__((noinline)) bool first_call(struct ppx_io_site *s)
{
    if (atomic_exchange_explicit(&s->has_stack, 1, memory_order_relaxed) != 0)
        return false;
    if (!atomic_load_explicit(&any_counted, memory_order_relaxed))
        atomic_store_explicit(&any_counted, true, memory_order_relaxed);
    return true;
}

/* The thread's buffers, taken now if it has none and may take them (not
 * from inside the profiler: a signal handler that interrupted it). */
static __attribute__((noinline)) struct ppx_thread_buffers *take_mem(void)
{
    struct ppx_tls *pt = &ppx_tls;
    if (pt->guard != 0)
        return NULL;
    pt->guard++;
    int saved_errno = errno;
    ppx_thread_buffers_ensure(pt);
    errno = saved_errno;
    pt->guard--;
    return pt->buffers;
}

/* The site's slot in the thread's cache; spare (no cache: a lookup every
 * call) when the thread has no buffers. */
static inline struct ppx_io_cache_slot *cache_slot(uint64_t h, struct ppx_io_cache_slot *spare)
{
    struct ppx_thread_buffers *m = ppx_tls.buffers;
    if (PPX_UNLIKELY(m == NULL) && (m = take_mem()) == NULL)
        return spare;
    return &m->io_cache[(h >> 20) & (SITE_CACHE - 1)];
}

void ppx_io_count(unsigned call, int fd, const void *ret, uint64_t t0, int err, uint64_t bytes,
                  uint64_t messages)
{
    uint64_t t1 = ppx_ticks_now();
    uint32_t key = call | (fd >= 0 ? ppx_fd_class(fd) : 0) << 8;
    uintptr_t pc = (uintptr_t)ret;
    uint64_t h = site_hash(pc, key);
    struct io_thread *t = &io_thread;
    struct ppx_io_cache_slot spare = {NULL, NULL};
    struct ppx_io_cache_slot *slot = cache_slot(h, &spare);
    struct ppx_io_site *s = slot->site;
    struct ppx_io_local *l;
    if (PPX_UNLIKELY(s == NULL || s->pc != pc || s->key != key)) {
        if (!site_lookup_slow(slot, pc, key, h, &s, &l))
            return;
    } else {
        l = slot->local;
        /* A signal handler that ran between the two reads may have filled
         * the slot with its own site: then l is that site's, not s's. */
        atomic_signal_fence(memory_order_seq_cst);
        if (PPX_UNLIKELY(slot->site != s))
            l = NULL; /* counted in s's shared counters */
    }
    if (PPX_LIKELY(l != NULL && t->busy == 0)) {
        t->busy = 1;
        atomic_signal_fence(memory_order_seq_cst);
        ppx_io_local_add(&l->calls, 1);
        ppx_io_local_add(&l->time, t1 - t0);
        if (PPX_LIKELY(err == 0)) {
            if (messages != 0) {
                ppx_io_local_add(&l->bytes, bytes);
                ppx_io_local_add(&l->messages, messages);
            }
        } else {
            count_local_error(s, l, err);
        }
        atomic_signal_fence(memory_order_seq_cst);
        t->busy = 0;
    } else {
        count_shared(s, t1 - t0, err, bytes, messages);
    }
    if (PPX_UNLIKELY(ppx_tls.guard != 0))
        return; /* a signal handler interrupted the profiler: no stack */
    bool sample;
    if (PPX_LIKELY(t->countdown > 1)) {
        t->countdown--;
        sample = false;
    } else {
        sample = countdown_expired(t);
    }
    if (PPX_UNLIKELY(!atomic_load_explicit(&s->has_stack, memory_order_relaxed)) && first_call(s))
        sample = true;
    if (PPX_UNLIKELY(sample))
        sample_stack(s, ret);
}

bool ppx_io_any_counted(void)
{
    return atomic_load_explicit(&any_counted, memory_order_relaxed);
}

/* ---- the flusher (io_send.c encodes) ---- */

void ppx_io_snapshot(struct ppx_io_snapshot *snap)
{
    uint32_t sites = atomic_load_explicit(&next_site_id, memory_order_acquire);
    uint32_t pairs = atomic_load_explicit(&next_pair, memory_order_acquire);
    snap->sites = sites < PPX_IO_MAX_SITES ? sites : PPX_IO_MAX_SITES;
    snap->pairs = pairs < MAX_PAIRS ? pairs : MAX_PAIRS;
}

struct ppx_io_pair *ppx_io_pair_get(uint32_t index)
{
    return pair_at(index, false);
}

/* ---- fork ---- */

/* The child keeps the sites (same code) with none of the parent's figures;
 * each site's next call is sampled again, so the child has its stacks. */
void ppx_io_reset_child(void)
{
    atomic_store_explicit(&any_counted, false, memory_order_relaxed);
    ppx_io_local_reset_child();
    struct ppx_io_snapshot snap;
    ppx_io_snapshot(&snap);
    for (uint32_t id = 0; id < snap.sites; id++) {
        struct ppx_io_site *s = ppx_io_site_get(id);
        if (s == NULL)
            continue;
        atomic_store_explicit(&s->calls, 0, memory_order_relaxed);
        atomic_store_explicit(&s->time_ns, 0, memory_order_relaxed);
        atomic_store_explicit(&s->bytes, 0, memory_order_relaxed);
        atomic_store_explicit(&s->messages, 0, memory_order_relaxed);
        atomic_store_explicit(&s->errors, 0, memory_order_relaxed);
        atomic_store_explicit(&s->eagain, 0, memory_order_relaxed);
        atomic_store_explicit(&s->has_stack, 0, memory_order_relaxed);
        for (unsigned i = 0; i < PPX_IO_ERRNO_SLOTS; i++)
            atomic_store_explicit(&s->err_calls[i], 0, memory_order_relaxed);
        atomic_store_explicit(&s->err_unnamed, 0, memory_order_relaxed);
        s->sent_generation = 0;
    }
    for (uint32_t i = 0; i < snap.pairs; i++) {
        struct ppx_io_pair *p = pair_at(i, false);
        if (p == NULL)
            continue;
        atomic_store_explicit(&p->samples, 0, memory_order_relaxed);
        p->sent_generation = 0;
        p->sent_samples = 0;
    }
}

void ppx_io_thread_exit(void)
{
    struct io_thread *t = &io_thread;
    t->busy = 1; /* a late call of this thread counts in the shared counters */
    struct ppx_thread_buffers *m = ppx_tls.buffers;
    if (m != NULL)
        memset(m->io_cache, 0, sizeof m->io_cache);
    ppx_io_local_release();
}
