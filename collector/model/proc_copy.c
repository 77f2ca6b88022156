#include "model/model.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

static void *dup_bytes(const void *src, size_t len)
{
    if (!src)
        return NULL;
    void *dst = malloc(len ? len : 1);
    if (dst)
        memcpy(dst, src, len);
    return dst;
}

static bool copy_stacks(struct proc *c, const struct proc *p, bool frames)
{
    for (const struct proc_stack *s = p->stacks; s; s = s->hh.next) {
        struct proc_stack *n = malloc(sizeof *n);
        if (!n)
            return false;
        *n = *s;
        n->pcs = NULL;
        if (frames && s->depth) {
            n->pcs = dup_bytes(s->pcs, s->depth * sizeof *s->pcs);
            if (!n->pcs) {
                free(n);
                return false;
            }
        } else if (!frames) {
            n->depth = 0;
        }
        HASH_ADD(hh, c->stacks, id, sizeof n->id, n);
    }
    return true;
}

static bool copy_io_sites(struct proc *c, const struct proc *p)
{
    for (const struct proc_io_site *s = p->io_sites; s; s = s->hh.next) {
        struct proc_io_site *n = malloc(sizeof *n);
        if (!n)
            return false;
        *n = *s;
        n->errnos = s->n_errnos ? dup_bytes(s->errnos, s->n_errnos * sizeof *s->errnos) : NULL;
        n->stacks = s->n_stacks ? dup_bytes(s->stacks, s->n_stacks * sizeof *s->stacks) : NULL;
        if ((s->n_errnos && !n->errnos) || (s->n_stacks && !n->stacks)) {
            free(n->errnos);
            free(n->stacks);
            free(n);
            return false;
        }
        HASH_ADD(hh, c->io_sites, id, sizeof n->id, n);
    }
    return true;
}

static bool copy_threads(struct proc *c, const struct proc *p)
{
    for (const struct proc_thread *t = p->threads; t; t = t->hh.next) {
        struct proc_thread *n = dup_bytes(t, sizeof *t);
        if (!n)
            return false;
        HASH_ADD(hh, c->threads, id, sizeof n->id, n);
    }
    return true;
}

static bool copy_cpu(struct proc *c, const struct proc *p)
{
    for (const struct proc_cpu_sample *s = p->cpu_samples; s; s = s->hh.next) {
        struct proc_cpu_sample *n = dup_bytes(s, sizeof *s);
        if (!n)
            return false;
        HASH_ADD(hh, c->cpu_samples, key, sizeof n->key, n);
    }
    return true;
}

static bool copy_mappings(struct proc *c, const struct proc *p)
{
    if (p->n_mappings == 0)
        return true;
    c->mappings = calloc(p->n_mappings, sizeof *c->mappings);
    if (!c->mappings)
        return false;
    c->cap_mappings = p->n_mappings;
    for (size_t i = 0; i < p->n_mappings; i++) {
        c->mappings[i] = p->mappings[i];
        c->mappings[i].path = NULL;
        c->n_mappings = i + 1;
        if (p->mappings[i].path && !(c->mappings[i].path = strdup(p->mappings[i].path)))
            return false;
    }
    return true;
}

static bool copy_dump(struct proc *c, const struct proc *p)
{
    const struct proc_dump *d = &p->dump;
    c->dump = *d;
    c->dump.tasks = NULL;
    c->dump.n = c->dump.cap = 0;
    if (d->n == 0)
        return true;
    c->dump.tasks = calloc(d->n, sizeof *c->dump.tasks);
    if (!c->dump.tasks)
        return false;
    c->dump.cap = d->n;
    for (size_t i = 0; i < d->n; i++) {
        c->dump.tasks[i] = d->tasks[i];
        c->dump.tasks[i].pcs = NULL;
        c->dump.n = i + 1;
        if (d->tasks[i].depth && !(c->dump.tasks[i].pcs = dup_bytes(
                                       d->tasks[i].pcs, d->tasks[i].depth * sizeof(uint64_t))))
            return false;
    }
    return true;
}

struct proc *proc_copy(const struct proc *p, enum proc_copy_depth depth)
{
    struct proc *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    /* Every scalar as it is; every owned pointer replaced below, so that
     * proc_copy_free() (proc_clear()) frees only what the copy owns. */
    *c = *p;
    c->exe = NULL;
    c->cmdline = NULL;
    c->cmdline_len = 0;
    c->mappings = NULL;
    c->n_mappings = c->cap_mappings = 0;
    c->stacks = NULL;
    c->io_sites = NULL;
    c->threads = NULL;
    c->cpu_samples = NULL;
    c->peak = NULL;
    memset(&c->dump, 0, sizeof c->dump);
    memset(&c->dump_partial, 0, sizeof c->dump_partial);
    bool full = depth == PROC_COPY_FULL;
    bool ok = depth == PROC_COPY_MAPPINGS || (copy_stacks(c, p, full) && copy_io_sites(c, p) &&
                                              copy_threads(c, p) && copy_cpu(c, p));
    if (ok && full && p->peak)
        ok = (c->peak = proc_peak_copy(p->peak)) != NULL;
    if (ok && depth != PROC_COPY_COUNTERS) {
        ok = copy_mappings(c, p) && copy_dump(c, p);
        if (ok && p->exe)
            ok = (c->exe = strdup(p->exe)) != NULL;
        if (ok && p->cmdline) {
            ok = (c->cmdline = dup_bytes(p->cmdline, p->cmdline_len)) != NULL;
            c->cmdline_len = ok ? p->cmdline_len : 0;
        }
    }
    if (!ok) {
        proc_copy_free(c);
        return NULL;
    }
    return c;
}

void proc_copy_free(struct proc *copy)
{
    if (!copy)
        return;
    proc_clear(copy);
    proc_peak_free(copy->peak);
    free(copy);
}

static uint64_t minus(uint64_t now, uint64_t base)
{
    return now > base ? now - base : 0;
}

static void subtract_stacks(struct proc *now, const struct proc *base)
{
    for (struct proc_stack *s = now->stacks; s; s = s->hh.next) {
        const struct proc_stack *b;
        HASH_FIND(hh, base->stacks, &s->id, sizeof s->id, b);
        if (!b)
            continue;
        s->alloc_objects = minus(s->alloc_objects, b->alloc_objects);
        s->alloc_bytes = minus(s->alloc_bytes, b->alloc_bytes);
        s->free_objects = minus(s->free_objects, b->free_objects);
        s->free_bytes = minus(s->free_bytes, b->free_bytes);
        s->block.contentions = minus(s->block.contentions, b->block.contentions);
        s->block.delay_ns = minus(s->block.delay_ns, b->block.delay_ns);
        s->mutex.contentions = minus(s->mutex.contentions, b->mutex.contentions);
        s->mutex.delay_ns = minus(s->mutex.delay_ns, b->mutex.delay_ns);
    }
}

/* A site's errnos and stacks are appended in the order first seen, so the
 * base's usually sit at the same index: look there first (a window over a
 * site with thousands of stacks stays linear). */
static const struct proc_io_errno *find_errno(const struct proc_io_site *b, size_t hint,
                                              uint32_t err)
{
    if (hint < b->n_errnos && b->errnos[hint].err == err)
        return &b->errnos[hint];
    for (size_t j = 0; j < b->n_errnos; j++)
        if (b->errnos[j].err == err)
            return &b->errnos[j];
    return NULL;
}

static const struct proc_io_stack *find_io_stack(const struct proc_io_site *b, size_t hint,
                                                 uint32_t stack_id)
{
    if (hint < b->n_stacks && b->stacks[hint].stack_id == stack_id)
        return &b->stacks[hint];
    for (size_t j = 0; j < b->n_stacks; j++)
        if (b->stacks[j].stack_id == stack_id)
            return &b->stacks[j];
    return NULL;
}

static void subtract_site(struct proc_io_site *s, const struct proc_io_site *b)
{
    s->calls = minus(s->calls, b->calls);
    s->time_ns = minus(s->time_ns, b->time_ns);
    s->bytes = minus(s->bytes, b->bytes);
    s->messages = minus(s->messages, b->messages);
    s->errors = minus(s->errors, b->errors);
    s->eagain = minus(s->eagain, b->eagain);
    for (size_t i = 0; i < s->n_errnos; i++) {
        const struct proc_io_errno *e = find_errno(b, i, s->errnos[i].err);
        if (e)
            s->errnos[i].calls = minus(s->errnos[i].calls, e->calls);
    }
    for (size_t i = 0; i < s->n_stacks; i++) {
        const struct proc_io_stack *st = find_io_stack(b, i, s->stacks[i].stack_id);
        if (st)
            s->stacks[i].samples = minus(s->stacks[i].samples, st->samples);
    }
}

static void subtract_io(struct proc *now, const struct proc *base)
{
    for (struct proc_io_site *s = now->io_sites; s; s = s->hh.next) {
        const struct proc_io_site *b;
        HASH_FIND(hh, base->io_sites, &s->id, sizeof s->id, b);
        if (b)
            subtract_site(s, b);
    }
}

static void subtract_cpu(struct proc *now, const struct proc *base)
{
    for (struct proc_cpu_sample *s = now->cpu_samples; s; s = s->hh.next) {
        const struct proc_cpu_sample *b;
        HASH_FIND(hh, base->cpu_samples, &s->key, sizeof s->key, b);
        if (!b)
            continue;
        s->samples = minus(s->samples, b->samples);
        s->cpu_ns = minus(s->cpu_ns, b->cpu_ns);
    }
    now->cpu_lost = minus(now->cpu_lost, base->cpu_lost);
    now->cpu_lost_ns = minus(now->cpu_lost_ns, base->cpu_lost_ns);
    now->cpu_dropped = minus(now->cpu_dropped, base->cpu_dropped);
    now->cpu_dropped_ns = minus(now->cpu_dropped_ns, base->cpu_dropped_ns);
}

/* Go's threadcreate delta counts the threads created in the window. */
static void drop_old_threads(struct proc *now, const struct proc *base)
{
    struct proc_thread *t, *tmp;
    HASH_ITER(hh, now->threads, t, tmp)
    {
        const struct proc_thread *b;
        HASH_FIND(hh, base->threads, &t->id, sizeof t->id, b);
        if (b) {
            HASH_DEL(now->threads, t);
            free(t);
        }
    }
}

void proc_copy_subtract(struct proc *now, const struct proc *base, uint64_t since_ns)
{
    if (now->start_ns < since_ns)
        now->start_ns = since_ns;
    if (!base)
        return;
    subtract_stacks(now, base);
    subtract_io(now, base);
    subtract_cpu(now, base);
    drop_old_threads(now, base);
}
