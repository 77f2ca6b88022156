#include "model/model.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct proc_key {
    uint32_t pid;
    uint32_t zero; /* padding made explicit: the key is hashed as bytes */
    uint64_t start_ns;
};

struct proc_entry {
    struct proc proc; /* first: a struct proc * is a struct proc_entry * */
    struct proc_key key;
    void *owner;
    unsigned hellos;      /* HELLOs taken for it so far */
    uint64_t hello_order; /* of the connection that said the last one */
    bool corruption_reported;
    uint64_t io_stack_samples_dropped, io_errno_calls_dropped;
    struct proc_timeline *timeline;
    UT_hash_handle hh;
};

/* The next incarnation number for each pid seen. */
struct pid_entry {
    uint32_t pid;
    unsigned next_incarnation;
    UT_hash_handle hh;
};

struct proc_table {
    struct proc_entry *procs; /* uthash keeps insertion order for HASH_ITER */
    struct pid_entry *pids;
};

static struct proc_entry *entry_of(const struct proc *p)
{
    return (struct proc_entry *)((char *)p - offsetof(struct proc_entry, proc));
}

struct proc_table *proc_table_new(void)
{
    return calloc(1, sizeof(struct proc_table));
}

void proc_dump_clear(struct proc_dump *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->tasks[i].pcs);
    free(d->tasks);
    memset(d, 0, sizeof *d);
}

void proc_clear(struct proc *p)
{
    proc_dump_clear(&p->dump);
    proc_dump_clear(&p->dump_partial);
    struct proc_cpu_sample *cs, *cs_tmp;
    HASH_ITER(hh, p->cpu_samples, cs, cs_tmp)
    {
        HASH_DEL(p->cpu_samples, cs);
        free(cs);
    }
    struct proc_thread *th, *th_tmp;
    HASH_ITER(hh, p->threads, th, th_tmp)
    {
        HASH_DEL(p->threads, th);
        free(th);
    }
    p->cpu_hz = 0;
    p->cpu_lost = p->cpu_lost_ns = 0;
    p->cpu_dropped = p->cpu_dropped_ns = 0;
    p->threads_full = false;
    struct proc_io_site *site, *site_tmp;
    HASH_ITER(hh, p->io_sites, site, site_tmp)
    {
        HASH_DEL(p->io_sites, site);
        free(site->errnos);
        free(site->stacks);
        free(site);
    }
    struct proc_stack *s, *tmp;
    HASH_ITER(hh, p->stacks, s, tmp)
    {
        HASH_DEL(p->stacks, s);
        free(s->pcs);
        free(s);
    }
    for (size_t i = 0; i < p->n_mappings; i++)
        free(p->mappings[i].path);
    free(p->mappings);
    p->mappings = NULL;
    p->n_mappings = p->cap_mappings = 0;
    free(p->exe);
    p->exe = NULL;
    free(p->cmdline);
    p->cmdline = NULL;
    p->cmdline_len = 0;
    memset(&p->totals, 0, sizeof p->totals);
}

void proc_table_free(struct proc_table *t)
{
    if (!t)
        return;
    struct proc_entry *e, *etmp;
    HASH_ITER(hh, t->procs, e, etmp)
    {
        HASH_DEL(t->procs, e);
        proc_clear(&e->proc);
        proc_peak_free(e->proc.peak);
        proc_timeline_free(e->timeline);
        free(e);
    }
    struct pid_entry *pe, *ptmp;
    HASH_ITER(hh, t->pids, pe, ptmp)
    {
        HASH_DEL(t->pids, pe);
        free(pe);
    }
    free(t);
}

static struct proc_key make_key(uint32_t pid, uint64_t start_ns)
{
    struct proc_key k;
    memset(&k, 0, sizeof k);
    k.pid = pid;
    k.start_ns = start_ns;
    return k;
}

struct proc *proc_table_find(const struct proc_table *t, uint32_t pid, uint64_t start_ns)
{
    struct proc_key k = make_key(pid, start_ns);
    struct proc_entry *e;
    HASH_FIND(hh, t->procs, &k, sizeof k, e);
    return e ? &e->proc : NULL;
}

static int next_incarnation(struct proc_table *t, uint32_t pid, unsigned *out)
{
    struct pid_entry *pe;
    HASH_FIND(hh, t->pids, &pid, sizeof pid, pe);
    if (!pe) {
        pe = calloc(1, sizeof *pe);
        if (!pe)
            return -1;
        pe->pid = pid;
        HASH_ADD(hh, t->pids, pid, sizeof pe->pid, pe);
    }
    *out = pe->next_incarnation++;
    return 0;
}

struct proc *proc_table_hello(struct proc_table *t, uint32_t pid, uint64_t start_ns, bool *existed)
{
    struct proc *p = proc_table_find(t, pid, start_ns);
    if (p) {
        *existed = true;
        entry_of(p)->hellos++;
        proc_peak_settle(p); /* the counters a pending peak stands on go now */
        proc_clear(p);
        entry_of(p)->io_stack_samples_dropped = 0;
        entry_of(p)->io_errno_calls_dropped = 0;
        p->ppid = 0;
        p->sample_rate = 0;
        p->max_depth = 0;
        p->said_goodbye = false;
        return p;
    }
    *existed = false;
    struct proc_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    if (next_incarnation(t, pid, &e->proc.incarnation) < 0) {
        free(e);
        return NULL;
    }
    e->hellos = 1;
    e->key = make_key(pid, start_ns);
    e->proc.pid = pid;
    e->proc.start_ns = start_ns;
    HASH_ADD(hh, t->procs, key, sizeof e->key, e);
    return &e->proc;
}

unsigned proc_table_hellos(const struct proc *p)
{
    return entry_of(p)->hellos;
}

uint64_t proc_table_hello_order(const struct proc *p)
{
    return entry_of(p)->hello_order;
}

void proc_table_set_hello_order(struct proc *p, uint64_t order)
{
    entry_of(p)->hello_order = order;
}

void *proc_table_owner(const struct proc *p)
{
    return entry_of(p)->owner;
}

void proc_table_set_owner(struct proc *p, void *owner)
{
    entry_of(p)->owner = owner;
}

bool proc_table_first_corruption(struct proc *p)
{
    struct proc_entry *e = entry_of(p);
    bool first = !e->corruption_reported;
    e->corruption_reported = true;
    return first;
}

void proc_table_remove(struct proc_table *t, struct proc *p)
{
    PPX_CHECK(proc_table_owner(p) == NULL, "a process removed has no connection");
    struct proc_entry *e = entry_of(p);
    HASH_DEL(t->procs, e);
    proc_clear(&e->proc);
    proc_peak_free(e->proc.peak);
    proc_timeline_free(e->timeline);
    free(e);
}

struct proc_timeline **proc_table_timeline(struct proc *p)
{
    return &entry_of(p)->timeline;
}

size_t proc_table_count(const struct proc_table *t)
{
    return HASH_COUNT(t->procs);
}

struct proc **proc_table_list(const struct proc_table *t, size_t *n)
{
    *n = 0;
    size_t count = HASH_COUNT(t->procs);
    if (count == 0)
        return NULL;
    struct proc **list = malloc(count * sizeof *list);
    if (!list)
        return NULL;
    const struct proc_entry *e;
    for (e = t->procs; e; e = e->hh.next)
        list[(*n)++] = (struct proc *)&e->proc;
    return list;
}

bool proc_has_samples(const struct proc *p)
{
    const struct proc_stack *s;
    for (s = p->stacks; s; s = s->hh.next)
        if (s->alloc_objects || s->alloc_bytes)
            return true;
    return false;
}

bool proc_has_io(const struct proc *p)
{
    const struct proc_io_site *s;
    for (s = p->io_sites; s; s = s->hh.next)
        if (s->calls || s->errors || s->eagain)
            return true;
    return false;
}

bool proc_has_cpu(const struct proc *p)
{
    if (p->cpu_lost || p->cpu_dropped)
        return true;
    const struct proc_cpu_sample *s;
    for (s = p->cpu_samples; s; s = s->hh.next)
        if (s->samples)
            return true;
    return false;
}

bool proc_has_contention(const struct proc *p, bool mutex)
{
    for (const struct proc_stack *s = p->stacks; s; s = s->hh.next) {
        const struct proc_contention *c = mutex ? &s->mutex : &s->block;
        if (c->contentions || c->delay_ns)
            return true;
    }
    return false;
}

bool proc_has_threads(const struct proc *p)
{
    return p->threads != NULL;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

void proc_table_count_io_drops(struct proc *p, uint64_t stack_samples, uint64_t errno_calls)
{
    struct proc_entry *e = entry_of(p);
    e->io_stack_samples_dropped = add_sat(e->io_stack_samples_dropped, stack_samples);
    e->io_errno_calls_dropped = add_sat(e->io_errno_calls_dropped, errno_calls);
}

void proc_table_io_drops(const struct proc *p, uint64_t *stack_samples, uint64_t *errno_calls)
{
    const struct proc_entry *e = entry_of(p);
    *stack_samples = e->io_stack_samples_dropped;
    *errno_calls = e->io_errno_calls_dropped;
}
