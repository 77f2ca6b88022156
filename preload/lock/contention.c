/* The block and mutex figures per stack, and their records (wire.h
 * BLOCK_DELTA, MUTEX_DELTA).
 *
 * Few stacks ever wait for a lock, so each profile has a table of its
 * own, keyed by stack id (open addressing, an entry claimed with one
 * compare-and-swap, never removed), whose counters the recording threads
 * add to atomically: an event costs a stack walk already, and a
 * contended lock a system call. The flusher scans a table only when
 * something was added since its last look. */
#include "lock.h"

#define TABLE_SLOTS 16384u /* distinct stacks per profile */
#define SEND_ENTRIES 4096u /* entries of one record */

struct contention_entry {
    _Atomic uint32_t key; /* stack id + 1; 0: free */
    uint32_t reserved;
    _Atomic uint64_t contentions, delay_ns;
    /* flusher only: what connection sent_generation has */
    uint64_t sent_generation, sent_contentions, sent_delay_ns;
};

struct contention_table {
    _Atomic(void *) entries;  /* TABLE_SLOTS of struct contention_entry, mapped on first use */
    atomic_bool changed;      /* since the flusher's last scan */
    uint64_t sent_generation; /* flusher only */
};

static struct contention_table tables[2];
static atomic_bool any_recorded;
static struct wire_contention_entry *out; /* the flusher's */

void ppx_contention_add(enum ppx_contention_profile p, struct ppx_stack *s, uint64_t contentions,
                        uint64_t delay_ns)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    struct contention_table *t = &tables[p];
    struct contention_entry *e = atomic_load_explicit(&t->entries, memory_order_acquire);
    if (e == NULL && (e = ppx_pages_publish(
                          &t->entries, TABLE_SLOTS * sizeof(struct contention_entry))) == NULL) {
        ppx_note_lost("out of memory for the contention tables");
        return;
    }
    uint32_t key = s->id + 1;
    size_t i = ppx_mix64(key) & (TABLE_SLOTS - 1);
    for (unsigned probes = 0; probes < TABLE_SLOTS; probes++, i = (i + 1) & (TABLE_SLOTS - 1)) {
        uint32_t k = atomic_load_explicit(&e[i].key, memory_order_acquire);
        if (k == 0 && atomic_compare_exchange_strong_explicit(
                          &e[i].key, &k, key, memory_order_acq_rel, memory_order_acquire))
            k = key;
        if (k != key)
            continue;
        atomic_fetch_add_explicit(&e[i].contentions, contentions, memory_order_relaxed);
        atomic_fetch_add_explicit(&e[i].delay_ns, delay_ns, memory_order_relaxed);
        atomic_store_explicit(&t->changed, true, memory_order_release);
        if (!atomic_load_explicit(&any_recorded, memory_order_relaxed))
            atomic_store_explicit(&any_recorded, true, memory_order_relaxed);
        return;
    }
    ppx_log_once(&said, "more than 16384 stacks waited for locks", "; the later ones go unrecorded",
                 NULL, NULL);
}

bool ppx_contention_any(void)
{
    return atomic_load_explicit(&any_recorded, memory_order_relaxed);
}

static bool emit(struct ppx_encoder *enc, uint32_t type, size_t n)
{
    struct wire_contention_delta head = {(uint32_t)n, 0};
    return ppx_emit(enc, type, &head, sizeof head, out, n * sizeof *out, NULL, 0);
}

static bool send_table(struct ppx_encoder *enc, struct contention_table *t, uint32_t type,
                       uint64_t gen, uint32_t n_stacks)
{
    struct contention_entry *e = atomic_load_explicit(&t->entries, memory_order_acquire);
    bool fresh = t->sent_generation != gen;
    if (e == NULL ||
        (!fresh && !atomic_exchange_explicit(&t->changed, false, memory_order_acq_rel)))
        return true;
    if (fresh)
        atomic_store_explicit(&t->changed, false, memory_order_release);
    t->sent_generation = gen;
    bool later = false; /* a stack too new for this flush: look again next time */
    size_t n = 0;
    for (size_t i = 0; i < TABLE_SLOTS; i++) {
        uint32_t key = atomic_load_explicit(&e[i].key, memory_order_acquire);
        if (key == 0)
            continue;
        struct contention_entry *c = &e[i];
        if (c->sent_generation != gen) {
            c->sent_generation = gen;
            c->sent_contentions = c->sent_delay_ns = 0;
        }
        uint64_t contentions = atomic_load_explicit(&c->contentions, memory_order_relaxed);
        uint64_t delay = atomic_load_explicit(&c->delay_ns, memory_order_relaxed);
        if (contentions == c->sent_contentions && delay == c->sent_delay_ns)
            continue;
        struct ppx_stack *s = key - 1 < n_stacks ? ppx_stack_get(key - 1) : NULL;
        if (s == NULL) {
            later = true;
            continue;
        }
        if (!ppx_stream_send_stack(enc, s))
            return false;
        out[n++] = (struct wire_contention_entry){.stack_id = key - 1,
                                                  .contentions = contentions - c->sent_contentions,
                                                  .delay_ns = delay - c->sent_delay_ns};
        c->sent_contentions = contentions;
        c->sent_delay_ns = delay;
        if (n == SEND_ENTRIES) {
            if (!emit(enc, type, n))
                return false;
            n = 0;
        }
    }
    if (later)
        atomic_store_explicit(&t->changed, true, memory_order_release);
    return n == 0 || emit(enc, type, n);
}

bool ppx_contention_send(struct ppx_encoder *enc, uint64_t gen, uint32_t n_stacks)
{
    if (out == NULL && (out = ppx_pages_alloc(SEND_ENTRIES * sizeof *out)) == NULL)
        return true; /* nothing to send with; the figures wait */
    return send_table(enc, &tables[PPX_CONTENTION_BLOCK], WIRE_BLOCK_DELTA, gen, n_stacks) &&
           send_table(enc, &tables[PPX_CONTENTION_MUTEX], WIRE_MUTEX_DELTA, gen, n_stacks);
}

void ppx_contention_reset_child(void)
{
    for (unsigned p = 0; p < 2; p++) {
        /* Unmapped rather than cleared: mapped again, zeroed, on first use. */
        struct contention_entry *e = atomic_load_explicit(&tables[p].entries, memory_order_relaxed);
        atomic_store_explicit(&tables[p].entries, NULL, memory_order_relaxed);
        if (e != NULL)
            ppx_pages_free(e, TABLE_SLOTS * sizeof *e);
        atomic_store_explicit(&tables[p].changed, false, memory_order_relaxed);
        tables[p].sent_generation = 0;
    }
    atomic_store_explicit(&any_recorded, false, memory_order_relaxed);
}
