/* The I/O call audit as a pprof profile. The target counts every call
 * exactly per site (caller pc, call, descriptor class) and unwinds full
 * stacks only for a sample of them (wire.h); here each site's exact figures
 * are spread over its sampled stacks, so per-site totals stay exact while
 * the stacks show where the calls come from. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strerrorname_np */
#endif
#include "pprof/pprof.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <ppx/wire.h>

typedef unsigned __int128 u128;

const char *pprof_io_call_name(unsigned call)
{
    static const char *const names[WIRE_IO_CALL_MAX] = {
        [WIRE_IO_READ] = "read",
        [WIRE_IO_WRITE] = "write",
        [WIRE_IO_READV] = "readv",
        [WIRE_IO_WRITEV] = "writev",
        [WIRE_IO_PREAD] = "pread",
        [WIRE_IO_PWRITE] = "pwrite",
        [WIRE_IO_PREADV] = "preadv",
        [WIRE_IO_PWRITEV] = "pwritev",
        [WIRE_IO_RECV] = "recv",
        [WIRE_IO_SEND] = "send",
        [WIRE_IO_RECVFROM] = "recvfrom",
        [WIRE_IO_SENDTO] = "sendto",
        [WIRE_IO_RECVMSG] = "recvmsg",
        [WIRE_IO_SENDMSG] = "sendmsg",
        [WIRE_IO_RECVMMSG] = "recvmmsg",
        [WIRE_IO_SENDMMSG] = "sendmmsg",
        [WIRE_IO_ACCEPT] = "accept",
        [WIRE_IO_ACCEPT4] = "accept4",
        [WIRE_IO_CONNECT] = "connect",
        [WIRE_IO_EPOLL_WAIT] = "epoll_wait",
        [WIRE_IO_EPOLL_PWAIT] = "epoll_pwait",
        [WIRE_IO_POLL] = "poll",
        [WIRE_IO_PPOLL] = "ppoll",
        [WIRE_IO_SELECT] = "select",
        [WIRE_IO_PSELECT] = "pselect",
        [WIRE_IO_SENDFILE] = "sendfile",
        [WIRE_IO_SPLICE] = "splice",
        [WIRE_IO_EPOLL_CTL] = "epoll_ctl",
        [WIRE_IO_EPOLL_CREATE] = "epoll_create",
        [WIRE_IO_EPOLL_CREATE1] = "epoll_create1",
    };
    return call < WIRE_IO_CALL_MAX ? names[call] : NULL;
}

const char *pprof_errno_name(int err, char *buf, size_t buflen)
{
    const char *name = NULL;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    name = strerrorname_np(err);
#endif
    if (name)
        snprintf(buf, buflen, "%s", name);
    else
        snprintf(buf, buflen, "E%d", err);
    return buf;
}

static const char *fd_label(uint8_t fd_type)
{
    switch (fd_type) {
    case WIRE_FD_FILE:
        return "file";
    case WIRE_FD_PIPE:
        return "pipe";
    case WIRE_FD_SOCKET:
        return "socket";
    case WIRE_FD_CHAR:
        return "chardev";
    case WIRE_FD_ANON:
        return "anon";
    case WIRE_FD_OTHER:
        return "other";
    default:
        return NULL;
    }
}

static const char *family_label(uint8_t family)
{
    switch (family) {
    case WIRE_FAMILY_UNIX:
        return "unix";
    case WIRE_FAMILY_INET:
        return "inet";
    case WIRE_FAMILY_INET6:
        return "inet6";
    case WIRE_FAMILY_OTHER:
        return "other";
    default:
        return NULL;
    }
}

static const char *socktype_label(uint8_t socktype)
{
    switch (socktype) {
    case WIRE_SOCK_STREAM:
        return "stream";
    case WIRE_SOCK_DGRAM:
        return "dgram";
    case WIRE_SOCK_SEQPACKET:
        return "seqpacket";
    case WIRE_SOCK_RAW:
        return "raw";
    case WIRE_SOCK_OTHER:
        return "other";
    default:
        return NULL;
    }
}

/* One stack of a site and its part of the site's figures. */
struct share {
    const uint64_t *pcs;
    uint32_t depth;
    uint64_t weight;    /* sampled calls with this stack */
    uint64_t remainder; /* of the current division, for the rounding */
    uint64_t part;      /* the current division's result */
    size_t index;
};

struct sys_writer {
    struct pprof_builder *b;
    bool pid_labels;
    uint64_t leaf[WIRE_IO_CALL_MAX]; /* synthetic location per call, 0 until used */
    struct pprof_location_ids loc;   /* one sample's location ids */
    struct share *shares;
    struct share **order; /* shares sorted for the rounding */
    size_t cap_shares;
};

static int by_remainder(const void *a, const void *b)
{
    const struct share *x = *(const struct share *const *)a, *y = *(const struct share *const *)b;
    if (x->remainder != y->remainder)
        return x->remainder > y->remainder ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Divides value among shares[0..k) in proportion to their weights (total
 * of them: total > 0) into each share's part: the floors of the exact
 * quotas, then one more to each of the shares with the largest remainders
 * until the parts add up to value (Hamilton's method). */
static void divide(struct sys_writer *w, size_t k, u128 total, uint64_t value)
{
    struct share *s = w->shares;
    uint64_t given = 0;
    for (size_t i = 0; i < k; i++) {
        u128 product = (u128)value * s[i].weight;
        s[i].part = (uint64_t)(product / total);
        s[i].remainder = (uint64_t)(product % total); /* < total; fits when total does */
        given += s[i].part;
    }
    uint64_t left = value - given; /* < k */
    if (left == 0)
        return;
    for (size_t i = 0; i < k; i++)
        w->order[i] = &s[i];
    qsort(w->order, k, sizeof *w->order, by_remainder);
    for (uint64_t i = 0; i < left; i++)
        w->order[i]->part++;
}

static int reserve_shares(struct sys_writer *w, size_t k)
{
    if (k <= w->cap_shares)
        return 0;
    struct share *shares = realloc(w->shares, k * sizeof *shares);
    if (!shares)
        return -1;
    w->shares = shares;
    struct share **order = realloc(w->order, k * sizeof *order);
    if (!order)
        return -1;
    w->order = order;
    w->cap_shares = k;
    return 0;
}

/* The site's sampled stacks as shares, or its caller alone when it has
 * none. Returns the count, or 0 when out of memory. *total gets the sum of
 * the weights. */
static size_t site_shares(struct sys_writer *w, const struct proc *p,
                          const struct proc_io_site *site, u128 *total)
{
    if (reserve_shares(w, site->n_stacks ? site->n_stacks : 1) < 0)
        return 0;
    size_t k = 0;
    *total = 0;
    for (size_t i = 0; i < site->n_stacks; i++) {
        const struct proc_io_stack *ios = &site->stacks[i];
        const struct proc_stack *st;
        HASH_FIND(hh, p->stacks, &ios->stack_id, sizeof ios->stack_id, st);
        if (!st || st->depth == 0 || ios->samples == 0)
            continue;
        w->shares[k] =
            (struct share){.pcs = st->pcs, .depth = st->depth, .weight = ios->samples, .index = k};
        *total += ios->samples;
        k++;
    }
    /* Weights must fit the remainders' 64 bits: scale them down if not
     * (only conceivable after saturated counters). */
    while (*total > UINT64_MAX) {
        *total = 0;
        for (size_t i = 0; i < k; i++) {
            w->shares[i].weight = w->shares[i].weight / 2 + 1;
            *total += w->shares[i].weight;
        }
    }
    if (k == 0) {
        w->shares[0] = (struct share){.pcs = &site->caller_pc, .depth = 1, .weight = 1, .index = 0};
        *total = 1;
        k = 1;
    }
    return k;
}

static uint64_t leaf_location(struct sys_writer *w, uint8_t call)
{
    if (!w->leaf[call])
        w->leaf[call] = pprof_function_location(w->b, pprof_io_call_name(call), 0);
    return w->leaf[call];
}

/* The locations of a share: the call's synthetic frame, then its stack.
 * Returns their count, 0 when out of memory. */
static size_t share_locations(struct sys_writer *w, const struct pprof_proc_mappings *pm,
                              uint8_t call, const struct share *s)
{
    size_t n = (size_t)s->depth + 1;
    if (pprof_location_ids_reserve(&w->loc, n) < 0)
        return 0;
    w->loc.ids[0] = leaf_location(w, call);
    if (w->loc.ids[0] == 0 || pprof_stack_locations(pm, s->pcs, s->depth, w->loc.ids + 1) < 0)
        return 0;
    return n;
}

/* The labels every sample of site carries; returns their count. */
static size_t site_labels(const struct sys_writer *w, const struct proc *p,
                          const struct proc_io_site *site, struct pprof_label *labels)
{
    size_t n = 0;
    const char *fd = fd_label(site->fd_type);
    if (fd)
        labels[n++] = (struct pprof_label){.key = "fd", .str = fd};
    if (site->fd_type == WIRE_FD_SOCKET) {
        const char *family = family_label(site->family);
        const char *socktype = socktype_label(site->socktype);
        if (family)
            labels[n++] = (struct pprof_label){.key = "family", .str = family};
        if (socktype)
            labels[n++] = (struct pprof_label){.key = "socktype", .str = socktype};
    }
    if (w->pid_labels)
        labels[n++] = (struct pprof_label){.key = "pid", .num = (int64_t)p->pid};
    return n;
}

enum { V_CALLS, V_TIME, V_BYTES, V_MESSAGES, V_ERRORS, V_EAGAIN };

/* Failures whose errno was named (IO_ERRNO), EAGAIN apart. */
static void named_failures(const struct proc_io_site *site, uint64_t *errors, uint64_t *eagain)
{
    *errors = *eagain = 0;
    for (size_t i = 0; i < site->n_errnos; i++) {
        uint64_t *sum = site->errnos[i].err == EAGAIN ? eagain : errors;
        *sum = *sum + site->errnos[i].calls < *sum ? UINT64_MAX : *sum + site->errnos[i].calls;
    }
}

/* Adds each share's part (in shares[].part) as a sample with one value,
 * at column, and an "errno" label. */
static int add_errno_samples(struct sys_writer *w, const struct pprof_proc_mappings *pm,
                             const struct proc_io_site *site, size_t k, int column,
                             struct pprof_label *labels, size_t n_labels)
{
    for (size_t i = 0; i < k; i++) {
        if (w->shares[i].part == 0)
            continue;
        size_t n = share_locations(w, pm, site->call, &w->shares[i]);
        if (n == 0)
            return -1;
        int64_t values[PPROF_SYSCALLS_N_TYPES] = {0};
        values[column] = pprof_clamp_int64(w->shares[i].part);
        pprof_add_sample(w->b, w->loc.ids, n, values, PPROF_SYSCALLS_N_TYPES, labels, n_labels);
    }
    return 0;
}

static int write_site(struct sys_writer *w, const struct proc *p,
                      const struct pprof_proc_mappings *pm, const struct proc_io_site *site)
{
    if (!pprof_io_call_name(site->call))
        return 0; /* the decoder lets none through; a hand-made proc might */
    uint64_t named_errors, named_eagain;
    named_failures(site, &named_errors, &named_eagain);
    /* The plain samples carry the failures no IO_ERRNO entry named; when
     * the named ones are more (counters read at different moments), those
     * stand. */
    const uint64_t totals[PPROF_SYSCALLS_N_TYPES] = {
        site->calls,
        site->time_ns,
        site->bytes,
        site->messages,
        site->errors > named_errors ? site->errors - named_errors : 0,
        site->eagain > named_eagain ? site->eagain - named_eagain : 0,
    };
    u128 total;
    size_t k = site_shares(w, p, site, &total);
    if (k == 0)
        return -1;
    int64_t(*values)[PPROF_SYSCALLS_N_TYPES] = calloc(k, sizeof *values);
    if (!values)
        return -1;
    for (int c = 0; c < PPROF_SYSCALLS_N_TYPES; c++) {
        divide(w, k, total, totals[c]);
        for (size_t i = 0; i < k; i++)
            values[i][c] = pprof_clamp_int64(w->shares[i].part);
    }
    struct pprof_label labels[5];
    size_t n_labels = site_labels(w, p, site, labels);
    int rc = 0;
    for (size_t i = 0; i < k && rc == 0; i++) {
        bool any = false;
        for (int c = 0; c < PPROF_SYSCALLS_N_TYPES; c++)
            any |= values[i][c] != 0;
        if (!any)
            continue;
        size_t n = share_locations(w, pm, site->call, &w->shares[i]);
        if (n == 0)
            rc = -1;
        else
            pprof_add_sample(w->b, w->loc.ids, n, values[i], PPROF_SYSCALLS_N_TYPES, labels,
                             n_labels);
    }
    free(values);

    for (size_t e = 0; e < site->n_errnos && rc == 0; e++) {
        char name[32];
        int err = (int)site->errnos[e].err;
        labels[n_labels] =
            (struct pprof_label){.key = "errno", .str = pprof_errno_name(err, name, sizeof name)};
        divide(w, k, total, site->errnos[e].calls);
        rc = add_errno_samples(w, pm, site, k, err == EAGAIN ? V_EAGAIN : V_ERRORS, labels,
                               n_labels + 1);
    }
    return rc;
}

static int write_proc(void *writer, const struct proc *p, const struct pprof_proc_mappings *pm)
{
    struct sys_writer *w = writer;
    int rc = 0;
    for (const struct proc_io_site *s = p->io_sites; s && rc == 0; s = s->hh.next)
        rc = write_site(w, p, pm, s);
    return rc;
}

int pprof_syscalls_write(struct proc *const *procs, size_t n, bool pid_labels, uint64_t now_ns,
                         struct pprof_sink *out, char *err, size_t errlen)
{
    static const char *const types[][2] = {PPROF_SYSCALLS_TYPES};
    const struct pprof_profile_type type = {
        .sample_types = types,
        .n_sample_types = PPROF_SYSCALLS_N_TYPES,
        .period_type = "calls",
        .period_unit = "count",
        .period = 1, /* every call is counted */
        .default_type = "calls",
    };
    struct sys_writer w = {.pid_labels = pid_labels};
    w.b = pprof_builder_start(&type, procs, n, now_ns, out, err, errlen);
    if (!w.b)
        return -1;
    int rc = pprof_each_proc(w.b, procs, n, write_proc, &w);
    free(w.loc.ids);
    free(w.shares);
    free(w.order);
    return pprof_builder_finish(w.b, rc, out, err, errlen);
}
