/* The flusher's side of the CPU profile: drains every thread's ring,
 * interns the stacks, counts them per (stack, thread) in a table of its
 * own, and sends the increments: STACK records, then CPU_SAMPLES. */
#include "cpu.h"

#include <errno.h>
#include <string.h>

#define ENTRY_CHUNK_BITS 12
#define ENTRY_CHUNK (1u << ENTRY_CHUNK_BITS)
#define ENTRY_CHUNKS 1024u
#define MAX_ENTRIES (ENTRY_CHUNKS * ENTRY_CHUNK) /* (stack, thread) pairs */
#define SEND_ENTRIES ((256u * 1024u) / sizeof(struct wire_cpu_entry))

/* One (stack, thread) pair's samples; flusher only. */
struct cpu_entry {
    uint32_t stack_id, thread_id;
    struct ppx_stack *stack;
    struct ppx_thread_record *rec;
    uint64_t samples, sent_samples;
    bool pending; /* on the pending list */
};

/* The flusher's table; the flusher's alone (and the child of fork's). */
static struct {
    struct cpu_entry *chunks[ENTRY_CHUNKS];
    uint32_t n;
    uint32_t *slots; /* entry index + 1; 0 empty */
    size_t slot_mask;
    uint32_t *pending;
    size_t n_pending, cap_pending;
    struct wire_cpu_entry *out;
    uintptr_t pcs[WIRE_MAX_DEPTH];
    uint64_t sent_generation;
    uint64_t lost;      /* ticks the flusher could not count (no memory) */
    uint64_t sent_lost; /* lost_ticks + lost already sent on sent_generation */
} table;

static inline struct cpu_entry *entry_at(uint32_t i)
{
    return &table.chunks[i >> ENTRY_CHUNK_BITS][i & (ENTRY_CHUNK - 1)];
}

static inline uint64_t entry_key(uint32_t stack_id, uint32_t thread_id)
{
    return (uint64_t)stack_id << 32 | thread_id;
}

static void slots_insert(uint32_t *slots, size_t mask, uint32_t index)
{
    const struct cpu_entry *e = entry_at(index);
    size_t i = ppx_mix64(entry_key(e->stack_id, e->thread_id)) & mask;
    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = index + 1;
}

static bool slots_grow(void)
{
    size_t cap = table.slots == NULL ? 4096 : 2 * (table.slot_mask + 1);
    uint32_t *slots = ppx_pages_alloc(cap * sizeof *slots);
    if (slots == NULL)
        return false;
    for (uint32_t i = 0; i < table.n; i++)
        slots_insert(slots, cap - 1, i);
    if (table.slots != NULL)
        ppx_pages_free(table.slots, (table.slot_mask + 1) * sizeof *table.slots);
    table.slots = slots;
    table.slot_mask = cap - 1;
    return true;
}

static bool pending_push(uint32_t index)
{
    if (table.n_pending == table.cap_pending) {
        size_t cap = table.cap_pending == 0 ? 4096 : 2 * table.cap_pending;
        uint32_t *grown = ppx_pages_alloc(cap * sizeof *grown);
        if (grown == NULL)
            return false;
        if (table.pending != NULL) {
            memcpy(grown, table.pending, table.n_pending * sizeof *grown);
            ppx_pages_free(table.pending, table.cap_pending * sizeof *grown);
        }
        table.pending = grown;
        table.cap_pending = cap;
    }
    table.pending[table.n_pending++] = index;
    entry_at(index)->pending = true;
    return true;
}

/* The index of (s, r)'s entry, created if new; UINT32_MAX when out of room. */
static uint32_t entry_find(struct ppx_stack *s, struct ppx_thread_record *r)
{
    if ((table.n + 1) * 2 > table.slot_mask + 1 && !slots_grow())
        return UINT32_MAX;
    uint64_t key = entry_key(s->id, r->id);
    size_t i = ppx_mix64(key) & table.slot_mask;
    for (; table.slots[i] != 0; i = (i + 1) & table.slot_mask) {
        const struct cpu_entry *e = entry_at(table.slots[i] - 1);
        if (entry_key(e->stack_id, e->thread_id) == key)
            return table.slots[i] - 1;
    }
    uint32_t index = table.n;
    if (index >= MAX_ENTRIES)
        return UINT32_MAX;
    struct cpu_entry **chunk = &table.chunks[index >> ENTRY_CHUNK_BITS];
    if (*chunk == NULL && (*chunk = ppx_pages_alloc(ENTRY_CHUNK * sizeof **chunk)) == NULL)
        return UINT32_MAX;
    *entry_at(index) =
        (struct cpu_entry){.stack_id = s->id, .thread_id = r->id, .stack = s, .rec = r};
    table.n++;
    table.slots[i] = index + 1;
    return index;
}

static void count_sample(struct ppx_thread_record *r, unsigned depth, uint64_t weight)
{
    struct ppx_stack *s = ppx_stack_intern(&ppx_tls, table.pcs, depth);
    uint32_t index = s != NULL ? entry_find(s, r) : UINT32_MAX;
    if (index == UINT32_MAX || (!entry_at(index)->pending && !pending_push(index))) {
        table.lost += weight;
        return;
    }
    entry_at(index)->samples += weight;
}

/* Everything the ring holds now. */
static void drain(struct ppx_cpu_sampler *c)
{
    uint64_t head = atomic_load_explicit(&c->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
    const uint64_t *ring = c->ring;
    while (tail != head) {
        uint64_t word = ring[tail & c->mask];
        unsigned depth = (unsigned)(word & 0xffffffffu);
        uint64_t weight = word >> 32;
        if (depth == 0 || depth > WIRE_MAX_DEPTH || weight == 0 || depth + 1 > head - tail) {
            tail = head; /* cannot happen; never read past what was written */
            break;
        }
        for (unsigned i = 0; i < depth; i++)
            table.pcs[i] = (uintptr_t)ring[(tail + 1 + i) & c->mask];
        tail += 1 + depth;
        count_sample(c->rec, depth, weight);
    }
    atomic_store_explicit(&c->tail, tail, memory_order_release);
}

static void drain_all(void)
{
    for (struct ppx_cpu_sampler *c = ppx_cpu_samplers(); c != NULL; c = c->all_next) {
        int status = atomic_load_explicit(&c->status, memory_order_acquire);
        if (status == CPU_FREE || c->rec == NULL)
            continue;
        if (status == CPU_ACTIVE && c->remote)
            status = ppx_cpu_sampler_check_gone(c);
        drain(c);
        if (status == CPU_ENDED) {
            ppx_cpu_sampler_recycle(c);
        }
    }
}

static bool tables_ready(void)
{
    if (table.out == NULL)
        table.out = ppx_pages_alloc(SEND_ENTRIES * sizeof *table.out);
    return table.out != NULL;
}

/* A fresh connection: every pair again, from zero. */
static void resend_all(uint64_t gen)
{
    table.n_pending = 0;
    for (uint32_t i = 0; i < table.n; i++) {
        struct cpu_entry *e = entry_at(i);
        e->sent_samples = 0;
        e->pending = false;
        if (e->samples != 0 && !pending_push(i))
            break; /* no memory: the rest waits for the next connection */
    }
    table.sent_lost = 0;
    table.sent_generation = gen;
}

static bool emit_batch(struct ppx_encoder *enc, size_t n, uint64_t lost)
{
    uint32_t hz = ppx_cpu_sample_hz();
    struct wire_cpu_samples h = {(uint32_t)n, hz != 0 ? hz : PPX_DEFAULT_CPU_HZ, lost};
    return ppx_emit(enc, WIRE_CPU_SAMPLES, &h, sizeof h, table.out, n * sizeof *table.out, NULL, 0);
}

bool ppx_cpu_send(struct ppx_encoder *enc, uint64_t gen)
{
    if (!ppx_cpu_configured() || !tables_ready())
        return true;
    drain_all();
    if (table.sent_generation != gen)
        resend_all(gen);
    uint64_t lost_now =
        atomic_load_explicit(&ppx_cpu_lost_ticks, memory_order_relaxed) + table.lost;
    uint64_t lost = lost_now - table.sent_lost;
    size_t n = 0, kept = 0;
    for (size_t i = 0; i < table.n_pending; i++) {
        uint32_t index = table.pending[i];
        struct cpu_entry *e = entry_at(index);
        /* The thread's THREAD record is not out on this connection yet
         * (registered after thread_registry.c's part of this flush): next time. */
        if (e->rec->sent_generation != gen) {
            table.pending[kept++] = index;
            continue;
        }
        e->pending = false;
        if (e->samples == e->sent_samples)
            continue;
        if (!ppx_stream_send_stack(enc, e->stack))
            return false;
        table.out[n++] = (struct wire_cpu_entry){.stack_id = e->stack_id,
                                                 .thread_id = e->thread_id,
                                                 .samples = e->samples - e->sent_samples};
        e->sent_samples = e->samples;
        if (n == SEND_ENTRIES) {
            if (!emit_batch(enc, n, lost))
                return false;
            n = 0;
            lost = 0;
        }
    }
    table.n_pending = kept;
    if (n != 0 || lost != 0) {
        if (!emit_batch(enc, n, lost))
            return false;
    }
    table.sent_lost = lost_now;
    return true;
}

/* The child of fork: the parent's figures and thread ids mean nothing here. */
void ppx_cpu_table_reset_child(void)
{
    for (uint32_t i = 0; i < table.n; i++) {
        struct cpu_entry *e = &table.chunks[i >> ENTRY_CHUNK_BITS][i & (ENTRY_CHUNK - 1)];
        memset(e, 0, sizeof *e);
    }
    table.n = 0;
    if (table.slots != NULL)
        memset(table.slots, 0, (table.slot_mask + 1) * sizeof *table.slots);
    table.n_pending = 0;
    table.sent_generation = 0;
    table.lost = 0;
    table.sent_lost = 0;
}
