/* The goroutine profile of native programs: what every thread and
 * state-threads coroutine was doing at the latest dump (model.h
 * proc_dump), in Go's three forms (runtime/pprof writeGoroutine):
 *  - debug=0: a pprof profile, sample type goroutine/count, one sample
 *    per distinct (stack, kind, thread name, state) whose value counts
 *    them;
 *  - debug=1: the same groups as text, "COUNT @ pc pc ..." and "#" lines;
 *  - debug=2: one block per thread or coroutine with its state, what it
 *    is blocked in and for how long, and its symbolized stack.
 * Tasks without a stack (the thread blocks SIGPROF, did not answer in
 * time, or the program owns SIGPROF) stand on one synthetic frame saying
 * why, so that they are counted all the same. */
#include "pprof/pprof.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *pprof_task_state(const struct proc_task *t)
{
    if (t->kind == WIRE_TASK_COROUTINE) {
        switch (t->state) {
        case WIRE_CO_RUNNING:
            return "running";
        case WIRE_CO_RUNNABLE:
            return "runnable";
        case WIRE_CO_SLEEPING:
            return "sleeping";
        case WIRE_CO_IO_WAIT:
            return "io wait";
        case WIRE_CO_COND_WAIT:
            return "cond wait";
        case WIRE_CO_ZOMBIE:
            return "zombie";
        default:
            return "unknown";
        }
    }
    switch (t->state) {
    case 'R':
        return "running";
    case 'S':
        return "sleeping";
    case 'D':
        return "disk sleep";
    case 'T':
        return "stopped";
    case 't':
        return "tracing stop";
    case 'Z':
        return "zombie";
    case 'X':
        return "dead";
    case 'I':
        return "idle";
    case 'P':
        return "parked";
    default:
        return "unknown";
    }
}

/* The one frame of a task without stack, NULL for one with a stack. */
static const char *no_stack_frame(const struct proc_task *t)
{
    if (t->depth > 0)
        return NULL;
    switch (t->stack) {
    case WIRE_TASK_STACK_BLOCKED:
        return PPROF_TASK_BLOCKED_FRAME;
    case WIRE_TASK_STACK_NO_SIGNAL:
        return PPROF_TASK_NO_SIGNAL_FRAME;
    case WIRE_TASK_STACK_UNREACHABLE:
        return PPROF_TASK_UNREACHABLE_FRAME;
    case WIRE_TASK_STACK_NOT_INTERRUPTED:
        return PPROF_TASK_NOT_INTERRUPTED_FRAME;
    default:
        return PPROF_TASK_NO_ANSWER_FRAME;
    }
}

static const char *fd_kind(uint8_t fd_type)
{
    static const char *const names[] = {"", "file", "pipe", "socket", "chardev", "anon", "other"};
    return fd_type < sizeof names / sizeof names[0] ? names[fd_type] : "";
}

const char *pprof_task_wait_call(const struct proc_task *t)
{
    if (t->wait_call == WIRE_WAIT_MUTEX)
        return "pthread_mutex_lock";
    if (t->wait_call == WIRE_WAIT_NONE)
        return NULL;
    return pprof_io_call_name(t->wait_call);
}

static void print_seconds(FILE *f, uint64_t ns)
{
    if (ns >= 1000000000u)
        fprintf(f, "%.1f s", (double)ns / 1e9);
    else
        fprintf(f, "%" PRIu64 " ms", ns / 1000000u);
}

/* "[sleeping, read fd 7 (pipe) for 12.3 s]" */
static void print_state(FILE *f, const struct proc_task *t)
{
    fprintf(f, "[%s", pprof_task_state(t));
    const char *call = pprof_task_wait_call(t);
    if (call) {
        fprintf(f, ", %s", call);
        if (t->fd >= 0)
            fprintf(f, " fd %d%s%s%s", t->fd, t->fd_type ? " (" : "", fd_kind(t->fd_type),
                    t->fd_type ? ")" : "");
        fputs(" for ", f);
        print_seconds(f, t->wait_ns);
    } else if (t->kind == WIRE_TASK_COROUTINE && t->state == WIRE_CO_IO_WAIT && t->fd >= 0) {
        fprintf(f, ", fd %d", t->fd);
    } else if (t->kind == WIRE_TASK_COROUTINE && t->state == WIRE_CO_SLEEPING && t->wait_ns) {
        fputs(", ", f);
        print_seconds(f, t->wait_ns);
        fputs(" left", f);
    }
    if (t->stack == WIRE_TASK_STACK_LEAF)
        fputs(", stack cut: interrupted inside the profiler", f);
    fputc(']', f);
}

static const char *task_thread_name(const struct proc_task *t)
{
    return t->name[0] ? t->name : "(unnamed)";
}

/* ---- groups: equal (kind, name, state, stack) ---- */

static int compare_tasks(const void *a, const void *b)
{
    const struct proc_task *x = *(const struct proc_task *const *)a;
    const struct proc_task *y = *(const struct proc_task *const *)b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    c = strcmp(pprof_task_state(x), pprof_task_state(y));
    if (c)
        return c;
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    if (x->depth == 0 && x->stack != y->stack)
        return x->stack < y->stack ? -1 : 1;
    for (uint32_t i = 0; i < x->depth; i++)
        if (x->pcs[i] != y->pcs[i])
            return x->pcs[i] < y->pcs[i] ? -1 : 1;
    return 0;
}

struct task_group {
    size_t proc;
    const struct proc_task *task; /* the first of the group */
    uint64_t count;
};

struct groups {
    struct task_group *g;
    size_t n;
};

/* The groups of procs[0..n)'s dumps, in process order. -1 when out of
 * memory. */
static int group_tasks(struct proc *const *procs, size_t n, struct groups *out)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += procs[i]->dump.n;
    out->g = calloc(total ? total : 1, sizeof *out->g);
    const struct proc_task **sorted = calloc(total ? total : 1, sizeof *sorted);
    if (!out->g || !sorted) {
        free(sorted);
        return -1;
    }
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        const struct proc_dump *d = &procs[i]->dump;
        for (size_t k = 0; k < d->n; k++)
            sorted[k] = &d->tasks[k];
        if (d->n)
            qsort(sorted, d->n, sizeof *sorted, compare_tasks);
        for (size_t k = 0; k < d->n; k++) {
            if (k > 0 && compare_tasks(&sorted[k - 1], &sorted[k]) == 0) {
                out->g[out->n - 1].count++;
                continue;
            }
            out->g[out->n++] = (struct task_group){i, sorted[k], 1};
        }
    }
    free(sorted);
    return 0;
}

/* ---- debug=0: the pprof profile ---- */

struct goroutine_writer {
    struct pprof_builder *b;
    bool pid_labels;
    struct groups groups;
    size_t next; /* the first group of the process being written */
    struct pprof_location_ids loc;
};

static int write_group(struct goroutine_writer *w, const struct proc *p,
                       const struct pprof_proc_mappings *pm, const struct task_group *g)
{
    const struct proc_task *t = g->task;
    size_t n = t->depth ? t->depth : 1;
    if (pprof_location_ids_reserve(&w->loc, n) < 0)
        return -1;
    if (t->depth) {
        if (pprof_stack_locations(pm, t->pcs, t->depth, w->loc.ids) < 0)
            return -1;
    } else {
        /* not deduplicated by the builder: few enough (one per group) */
        w->loc.ids[0] = pprof_function_location(w->b, no_stack_frame(t), 0);
        if (!w->loc.ids[0])
            return -1;
    }
    struct pprof_label labels[5];
    size_t n_labels = 0;
    labels[n_labels++] = (struct pprof_label){
        .key = "kind", .str = t->kind == WIRE_TASK_COROUTINE ? "coroutine" : "thread"};
    labels[n_labels++] = (struct pprof_label){.key = "thread", .str = task_thread_name(t)};
    labels[n_labels++] = (struct pprof_label){.key = "state", .str = pprof_task_state(t)};
    if (w->pid_labels)
        labels[n_labels++] = (struct pprof_label){.key = "pid", .num = (int64_t)p->pid};
    const int64_t count = pprof_clamp_int64(g->count);
    pprof_add_sample(w->b, w->loc.ids, n, &count, 1, labels, n_labels);
    return 0;
}

static int write_proc(void *writer, const struct proc *p, const struct pprof_proc_mappings *pm)
{
    struct goroutine_writer *w = writer;
    int rc = 0;
    size_t first = w->next;
    if (first >= w->groups.n)
        return 0;
    for (; rc == 0 && w->next < w->groups.n && w->groups.g[w->next].proc == w->groups.g[first].proc;
         w->next++)
        rc = write_group(w, p, pm, &w->groups.g[w->next]);
    return rc;
}

int pprof_goroutine_write(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                          struct pprof_sink *out, char *err, size_t errlen)
{
    static const char *const types[][2] = {{"goroutine", "count"}};
    const struct pprof_profile_type type = {
        .sample_types = types,
        .n_sample_types = 1,
        .period_type = "goroutine",
        .period_unit = "count",
        .period = 1,
        .default_type = "goroutine",
    };
    /* only the processes that have a dump: the groups follow their order */
    struct proc **with = calloc(n ? n : 1, sizeof *with);
    if (!with) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t n_with = 0;
    for (size_t i = 0; i < n; i++)
        if (procs[i]->dump.n)
            with[n_with++] = procs[i];
    struct goroutine_writer w = {.pid_labels = pid_labels};
    w.b = pprof_builder_start(&type, procs, n, now_ns, out, err, errlen);
    if (!w.b) {
        free(with);
        return -1;
    }
    int rc = group_tasks(with, n_with, &w.groups);
    if (rc == 0)
        rc = pprof_each_proc(w.b, with, n_with, write_proc, &w);
    free(w.loc.ids);
    free(w.groups.g);
    free(with);
    return pprof_builder_finish(w.b, rc, out, err, errlen);
}

/* ---- debug=1 and debug=2: text ---- */

/* "fn\n\tfile:line\n" per frame, inlined functions first (debug=2). */
static void print_frame_lines(FILE *f, const struct pprof_proc_mappings *pm, uint64_t pc)
{
    uint64_t addr = pc - 1;
    const struct pprof_mapping_ref *r = pprof_find_mapping(pm, addr);
    struct sym_frame frames[SYM_MAX_INLINE];
    int n = r ? sym_lookup_inline(r->m, addr, frames, SYM_MAX_INLINE) : 0;
    if (n <= 0) {
        fprintf(f, "%#" PRIx64 "\n\t%s +%#" PRIx64 "\n", addr, r && r->m->path ? r->m->path : "?",
                r ? addr - r->m->start + r->m->offset : addr);
        return;
    }
    for (int i = 0; i < n; i++) {
        char *demangled = demangle_name(frames[i].function);
        fprintf(f, "%s\n\t%s:%d\n", demangled ? demangled : frames[i].function,
                frames[i].file ? frames[i].file : "?", frames[i].line);
        free(demangled);
    }
}

static void print_task(FILE *f, const struct proc_task *t, const struct pprof_proc_mappings *pm)
{
    if (t->kind == WIRE_TASK_COROUTINE && t->id == 0)
        fprintf(f, "coroutine ? on thread %u \"%s\" ", t->tid, task_thread_name(t));
    else if (t->kind == WIRE_TASK_COROUTINE)
        fprintf(f, "coroutine %#" PRIx64 " on thread %u \"%s\" ", t->id, t->tid,
                task_thread_name(t));
    else
        fprintf(f, "thread %u \"%s\" ", t->tid, task_thread_name(t));
    print_state(f, t);
    fputs(":\n", f);
    if (t->depth == 0)
        fprintf(f, "%s\n", no_stack_frame(t));
    for (uint32_t i = 0; i < t->depth; i++)
        print_frame_lines(f, pm, t->pcs[i]);
    fputc('\n', f);
}

static void print_proc_header(FILE *f, const struct proc *p)
{
    const struct proc_dump *d = &p->dump;
    size_t threads = 0, coroutines = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->tasks[i].kind == WIRE_TASK_COROUTINE)
            coroutines++;
        else
            threads++;
    }
    fprintf(f, "process %u (%s): %zu thread%s, %zu coroutine%s", p->pid, p->exe ? p->exe : "?",
            threads, threads == 1 ? "" : "s", coroutines, coroutines == 1 ? "" : "s");
    if (d->dropped)
        fprintf(f, ", %" PRIu64 " more over the collector's limits", d->dropped);
    fprintf(f, "; dump took %.1f ms", (double)d->took_ns / 1e6);
    /* a process that did not answer the latest request keeps its last dump */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    if (now_ns > d->taken_ns + 2000000000u)
        fprintf(f, ", taken %.1f s ago (no answer since)", (double)(now_ns - d->taken_ns) / 1e9);
    fputs("\n\n", f);
}

static int compare_groups(const void *a, const void *b)
{
    const struct task_group *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    if (x->proc != y->proc)
        return x->proc < y->proc ? -1 : 1;
    return x->task < y->task ? -1 : x->task > y->task;
}

static void print_groups(FILE *f, struct proc *const *procs, size_t n, struct groups *gs,
                         const struct pprof_proc_mappings *pms)
{
    uint64_t total = 0;
    for (size_t i = 0; i < gs->n; i++)
        total += gs->g[i].count;
    fprintf(f, "goroutine profile: total %" PRIu64 "\n", total);
    if (gs->n)
        qsort(gs->g, gs->n, sizeof *gs->g, compare_groups);
    for (size_t i = 0; i < gs->n; i++) {
        const struct task_group *g = &gs->g[i];
        const struct proc_task *t = g->task;
        fprintf(f, "%" PRIu64 " @", g->count);
        for (uint32_t k = 0; k < t->depth; k++)
            fprintf(f, " %#" PRIx64, t->pcs[k]);
        fprintf(f, "\n# labels: {\"kind\":\"%s\", \"state\":\"%s\", \"thread\":\"%s\"",
                t->kind == WIRE_TASK_COROUTINE ? "coroutine" : "thread", pprof_task_state(t),
                task_thread_name(t));
        if (n > 1)
            fprintf(f, ", \"pid\":\"%u\"", procs[g->proc]->pid);
        fputs("}\n", f);
        if (t->depth == 0)
            fprintf(f, "#\t%s\n", no_stack_frame(t));
        for (uint32_t k = 0; k < t->depth; k++)
            pprof_print_frame_text(f, &pms[g->proc], t->pcs[k]);
        fputc('\n', f);
    }
}

int goroutine_text_write(struct proc *const *procs, size_t n, int debug, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    FILE *f = open_memstream(out, len);
    struct pprof_builder *b = pprof_builder_new();
    struct pprof_proc_mappings *pms = calloc(n ? n : 1, sizeof *pms);
    struct groups gs = {0};
    size_t n_pms = 0;
    int rc = f && b && pms ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = pprof_proc_mappings_init(&pms[i], b, procs[i]);
        n_pms += rc == 0;
    }
    if (rc == 0 && debug == 1)
        rc = group_tasks(procs, n, &gs);
    if (rc == 0 && debug == 1)
        print_groups(f, procs, n, &gs, pms);
    for (size_t i = 0; rc == 0 && debug != 1 && i < n; i++) {
        if (procs[i]->dump.seq == 0)
            continue;
        print_proc_header(f, procs[i]);
        for (size_t k = 0; k < procs[i]->dump.n; k++)
            print_task(f, &procs[i]->dump.tasks[k], &pms[i]);
    }
    for (size_t i = 0; i < n_pms; i++)
        pprof_proc_mappings_free(&pms[i]);
    free(pms);
    free(gs.g);
    pprof_builder_free(b);
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc < 0) {
        free(*out);
        *out = NULL;
        *len = 0;
    }
    return rc;
}
