/* state-threads (ST) linked into an executable, as its DWARF describes
 * it: the scheduler's variables and the record layouts a thread dump
 * needs to walk its coroutines (wire.h struct wire_st_layout).
 *
 * Why from DWARF: ST has no stable ABI. SRS's fork moves members around
 * (debug builds add list nodes, ASan builds a fake stack pointer) and
 * makes its scheduler's variables thread-local; a layout written into
 * ppx fits one build only. The executable's DWARF (SRS builds with -g)
 * says, for the build at hand, where each member is.
 *
 * Where: the C compile unit that defines _st_this_vp (ST's sched.c) has
 * the three variables and every struct they reach (_st_vp, _st_thread,
 * _st_stack) and _st_pollq, which st_poll uses. Only C units are looked
 * at (ST is C; a C++ program's own units are most of its DWARF). The
 * separate debug file (debuglink, build id) is found as libdwfl finds it
 * for symbols. */
#include "symbol/symbol.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DW_OP_GNU_push_tls_address_ 0xe0 /* GCC's, before DWARF 3's form_tls_address */
#define DW_LANG_C17_ 0x2c

static bool is_c_unit(Dwarf_Die *cu)
{
    int lang = dwarf_srclang(cu);
    return lang == DW_LANG_C89 || lang == DW_LANG_C || lang == DW_LANG_C99 || lang == DW_LANG_C11 ||
           lang == DW_LANG_C17_;
}

static const char *die_name(Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    return dwarf_attr_integrate(die, DW_AT_name, &attr) ? dwarf_formstring(&attr) : NULL;
}

/* The type of die, typedefs and qualifiers peeled off. */
static bool type_of(Dwarf_Die *die, Dwarf_Die *out)
{
    Dwarf_Attribute attr;
    Dwarf_Die t;
    return dwarf_attr_integrate(die, DW_AT_type, &attr) && dwarf_formref_die(&attr, &t) &&
           dwarf_peel_type(&t, out) == 0;
}

/* What the pointer type ptr points to, peeled. */
static bool pointee(Dwarf_Die *ptr, Dwarf_Die *out)
{
    return dwarf_tag(ptr) == DW_TAG_pointer_type && type_of(ptr, out);
}

struct member {
    Dwarf_Word offset, size;
};

/* Member name of struct st: its offset and size; false when it has none
 * (or one whose place is not a plain constant). */
static bool member_of(Dwarf_Die *st, const char *name, struct member *m)
{
    Dwarf_Die child;
    if (dwarf_child(st, &child) != 0)
        return false;
    do {
        const char *n = dwarf_diename(&child);
        if (dwarf_tag(&child) != DW_TAG_member || n == NULL || strcmp(n, name) != 0)
            continue;
        Dwarf_Attribute attr;
        Dwarf_Word off;
        Dwarf_Die type;
        Dwarf_Word size;
        if (!dwarf_attr(&child, DW_AT_data_member_location, &attr) ||
            dwarf_formudata(&attr, &off) != 0 || !type_of(&child, &type) ||
            dwarf_aggregate_size(&type, &size) != 0)
            return false;
        *m = (struct member){off, size};
        return true;
    } while (dwarf_siblingof(&child, &child) == 0);
    return false;
}

/* The struct a member's type points to (stack -> _st_stack). */
static bool member_pointee(Dwarf_Die *st, const char *name, Dwarf_Die *out)
{
    Dwarf_Die child;
    if (dwarf_child(st, &child) != 0)
        return false;
    do {
        const char *n = dwarf_diename(&child);
        Dwarf_Die t;
        if (dwarf_tag(&child) == DW_TAG_member && n != NULL && strcmp(n, name) == 0)
            return type_of(&child, &t) && pointee(&t, out) &&
                   dwarf_tag(out) == DW_TAG_structure_type;
    } while (dwarf_siblingof(&child, &child) == 0);
    return false;
}

/* One wanted member: its name, its size (0: any), the wire field. */
struct want {
    const char *name;
    Dwarf_Word size;
    uint16_t *field;
    bool optional;
};

static bool struct_size(Dwarf_Die *st, uint16_t *out)
{
    Dwarf_Word size;
    if (dwarf_aggregate_size(st, &size) != 0 || size == 0 || size > WIRE_ST_MAX_RECORD)
        return false;
    *out = (uint16_t)size;
    return true;
}

static bool members(Dwarf_Die *st, const struct want *w, size_t n, const char **why)
{
    for (size_t i = 0; i < n; i++) {
        struct member m;
        if (!member_of(st, w[i].name, &m)) {
            if (w[i].optional) {
                *w[i].field = WIRE_ST_ABSENT;
                continue;
            }
            *why = "a member state-threads' records need is missing";
            return false;
        }
        if ((w[i].size != 0 && m.size != w[i].size) || m.offset >= WIRE_ST_MAX_RECORD) {
            *why = "a member of state-threads' records has an unexpected size";
            return false;
        }
        *w[i].field = (uint16_t)m.offset;
    }
    return true;
}

/* A variable's place: a plain address (DW_OP_addr), or a thread-local
 * offset (a constant, then DW_OP_form_tls_address or GCC's own op). */
static bool var_location(Dwarf_Die *var, uint64_t *out, bool *tls)
{
    Dwarf_Attribute attr;
    Dwarf_Op *ops;
    size_t n;
    if (!dwarf_attr(var, DW_AT_location, &attr) || dwarf_getlocation(&attr, &ops, &n) != 0)
        return false;
    if (n == 1 && ops[0].atom == DW_OP_addr) {
        *out = ops[0].number;
        *tls = false;
        return true;
    }
    if (n == 2 &&
        (ops[1].atom == DW_OP_form_tls_address || ops[1].atom == DW_OP_GNU_push_tls_address_) &&
        ((ops[0].atom >= DW_OP_const1u && ops[0].atom <= DW_OP_const8s) ||
         ops[0].atom == DW_OP_constu || ops[0].atom == DW_OP_addr)) {
        *out = ops[0].number;
        *tls = true;
        return true;
    }
    return false;
}

struct found {
    Dwarf_Die vp, this_thread, active, pollq;
    bool have_vp, have_this_thread, have_active, have_pollq;
};

/* The top-level DIEs of one C unit. */
static void scan_unit(Dwarf_Die *cu, struct found *f)
{
    Dwarf_Die child;
    if (dwarf_child(cu, &child) != 0)
        return;
    do {
        int tag = dwarf_tag(&child);
        if (tag == DW_TAG_structure_type && !f->have_pollq &&
            !dwarf_hasattr(&child, DW_AT_declaration)) {
            const char *n = dwarf_diename(&child);
            if (n != NULL && strcmp(n, "_st_pollq") == 0) {
                f->pollq = child;
                f->have_pollq = true;
            }
            continue;
        }
        if (tag != DW_TAG_variable || !dwarf_hasattr(&child, DW_AT_location))
            continue;
        const char *n = die_name(&child);
        if (n == NULL || strncmp(n, "_st_", 4) != 0)
            continue;
        if (strcmp(n, "_st_this_vp") == 0 && !f->have_vp) {
            f->vp = child;
            f->have_vp = true;
        } else if (strcmp(n, "_st_this_thread") == 0 && !f->have_this_thread) {
            f->this_thread = child;
            f->have_this_thread = true;
        } else if (strcmp(n, "_st_active_count") == 0 && !f->have_active) {
            f->active = child;
            f->have_active = true;
        }
    } while (dwarf_siblingof(&child, &child) == 0);
}

static bool find_in(Dwfl_Module *mod, struct found *f)
{
    Dwarf_Addr bias;
    for (Dwarf_Die *cu = NULL; (cu = dwfl_module_nextcu(mod, cu, &bias));) {
        if (!is_c_unit(cu))
            continue;
        scan_unit(cu, f);
        if (f->have_vp && f->have_this_thread && f->have_active && f->have_pollq)
            break;
    }
    return f->have_vp && f->have_this_thread && f->have_pollq;
}

/* The layout from the DIEs found. */
static int layout_from(struct found *f, struct wire_st_layout *out, const char **why)
{
    memset(out, 0, sizeof *out);
    Dwarf_Die vp, thread_ptr, thread, stack, pollq = f->pollq;
    bool tls, tls2, tls3 = false;
    *why = "state-threads' variables have types or places not understood";
    if (!type_of(&f->vp, &vp) || dwarf_tag(&vp) != DW_TAG_structure_type ||
        !type_of(&f->this_thread, &thread_ptr) || !pointee(&thread_ptr, &thread) ||
        dwarf_tag(&thread) != DW_TAG_structure_type || !var_location(&f->vp, &out->this_vp, &tls) ||
        !var_location(&f->this_thread, &out->this_thread, &tls2) || tls != tls2)
        return -1;
    out->active_count = WIRE_ST_NO_VAR;
    if (f->have_active && !(var_location(&f->active, &out->active_count, &tls3) && tls3 == tls))
        out->active_count = WIRE_ST_NO_VAR;
    out->flags = tls ? WIRE_ST_TLS : 0;
    if (!member_pointee(&thread, "stack", &stack)) {
        *why = "state-threads' _st_thread has no stack pointer";
        return -1;
    }
    *why = "a state-threads record is empty or larger than 4096 bytes";
    if (!struct_size(&thread, &out->thread_size) || !struct_size(&stack, &out->stack_size) ||
        !struct_size(&vp, &out->vp_size) || !struct_size(&pollq, &out->pollq_size))
        return -1;
    const struct want th[] = {
        {"state", sizeof(int), &out->th_state, false},
        {"start", 8, &out->th_start, false},
        {"arg", 8, &out->th_arg, false},
        {"stack", 8, &out->th_stack, false},
        {"links", 16, &out->th_links, false},
        {"tlink", 16, &out->th_tlink, true},
        {"due", 8, &out->th_due, false},
        {"left", 8, &out->th_left, false},
        {"right", 8, &out->th_right, false},
        {"context", 0, &out->th_context, false},
    };
    const struct want stk[] = {
        {"stk_bottom", 8, &out->stk_bottom, false},
        {"stk_top", 8, &out->stk_top, false},
    };
    const struct want v[] = {
        {"idle_thread", 8, &out->vp_idle, false},  {"run_q", 16, &out->vp_run_q, false},
        {"io_q", 16, &out->vp_io_q, false},        {"zombie_q", 16, &out->vp_zombie_q, false},
        {"thread_q", 16, &out->vp_thread_q, true}, {"sleep_q", 8, &out->vp_sleep_q, false},
    };
    const struct want pq[] = {
        {"links", 16, &out->pq_links, false},
        {"thread", 8, &out->pq_thread, false},
        {"pds", 8, &out->pq_pds, false},
    };
    if (!members(&thread, th, sizeof th / sizeof th[0], why) ||
        !members(&stack, stk, sizeof stk / sizeof stk[0], why) ||
        !members(&vp, v, sizeof v / sizeof v[0], why) ||
        !members(&pollq, pq, sizeof pq / sizeof pq[0], why))
        return -1;
    if ((out->th_tlink == WIRE_ST_ABSENT) != (out->vp_thread_q == WIRE_ST_ABSENT))
        out->th_tlink = out->vp_thread_q = WIRE_ST_ABSENT; /* one without the other: neither */
    struct member ctx;
    if (!member_of(&thread, "context", &ctx) || ctx.size < 8 * 8 ||
        ctx.offset + ctx.size > out->thread_size) {
        *why = "state-threads' saved context is smaller than 8 registers";
        return -1;
    }
    out->ctx_words = (uint16_t)(ctx.size / 8 < 0xffff ? ctx.size / 8 : 0xffff);
    /* ST's md.S on x86-64 (Debian's and SRS's alike): rbx, rbp, r12-r15,
     * the stack pointer, the pc, unmangled: DWARF says nothing of it (the
     * context is an array of longs) */
    for (uint8_t i = 0; i < 8; i++)
        out->ctx_slot[i] = i;
    return 0;
}

/* The module's build id is the one the target's mapping had (none known:
 * any): a file replaced since the target started is not the program's. */
static bool same_build(Dwfl_Module *mod, const uint8_t *build_id, size_t len)
{
    const unsigned char *bits;
    GElf_Addr vaddr;
    int n = len == 0 ? 0 : dwfl_module_build_id(mod, &bits, &vaddr);
    return len == 0 || (n > 0 && (size_t)n == len && memcmp(bits, build_id, len) == 0);
}

static int read_layout(const char *path, const uint8_t *build_id, size_t build_id_len,
                       struct wire_st_layout *out, const char **why)
{
    static const Dwfl_Callbacks callbacks = {
        .find_debuginfo = dwfl_standard_find_debuginfo,
        .section_address = dwfl_offline_section_address,
    };
    *why = "no DWARF or no state-threads in it";
    Dwfl *dwfl = dwfl_begin(&callbacks);
    if (dwfl == NULL)
        return -1;
    dwfl_report_begin(dwfl);
    Dwfl_Module *mod = dwfl_report_offline(dwfl, path, path, -1);
    dwfl_report_end(dwfl, NULL, NULL);
    struct found f;
    memset(&f, 0, sizeof f);
    int rc = -1;
    if (mod != NULL && same_build(mod, build_id, build_id_len) && find_in(mod, &f))
        rc = layout_from(&f, out, why) == 0 ? 0 : -2;
    dwfl_end(dwfl);
    return rc;
}

int st_layout_read(const char *path, struct wire_st_layout *out, const char **why)
{
    return read_layout(path, NULL, 0, out, why);
}

/* ---- one reading per executable ---- */

struct cached {
    char *path;
    uint8_t build_id[64];
    size_t build_id_len;
    int rc;
    struct wire_st_layout layout;
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cached *cache;
static size_t n_cache, cap_cache;

static struct cached *cache_find(const char *path, const uint8_t *build_id, size_t len)
{
    for (size_t i = 0; i < n_cache; i++)
        if (strcmp(cache[i].path, path) == 0 && cache[i].build_id_len == len &&
            memcmp(cache[i].build_id, build_id, len) == 0)
            return &cache[i];
    return NULL;
}

int st_layout_of(const char *path, const uint8_t *build_id, size_t build_id_len,
                 struct wire_st_layout *out)
{
    if (build_id_len > sizeof cache[0].build_id)
        return -1;
    pthread_mutex_lock(&cache_mu);
    struct cached *c = cache_find(path, build_id, build_id_len);
    if (c == NULL && n_cache == cap_cache) {
        size_t cap = cap_cache ? 2 * cap_cache : 8;
        struct cached *grown = realloc(cache, cap * sizeof *grown);
        if (grown != NULL) {
            cache = grown;
            cap_cache = cap;
        }
    }
    if (c == NULL && n_cache < cap_cache && (cache[n_cache].path = strdup(path)) != NULL) {
        c = &cache[n_cache++];
        memcpy(c->build_id, build_id, build_id_len);
        c->build_id_len = build_id_len;
        const char *why;
        c->rc = read_layout(path, build_id, build_id_len, &c->layout, &why);
        if (c->rc == -2)
            fprintf(stderr,
                    "ppx: state-threads in %s: %s; its coroutines are dumped only if "
                    "laid out as state-threads 1.9's\n",
                    path, why);
    }
    int rc = c != NULL ? c->rc : -1;
    if (rc == 0)
        *out = c->layout;
    pthread_mutex_unlock(&cache_mu);
    return rc;
}

void st_layout_cache_free(void)
{
    pthread_mutex_lock(&cache_mu);
    for (size_t i = 0; i < n_cache; i++)
        free(cache[i].path);
    free(cache);
    cache = NULL;
    n_cache = cap_cache = 0;
    pthread_mutex_unlock(&cache_mu);
}
