/* Frames by return address: a walk of the calling thread's stack that
 * reads each frame's return address with a rule learned once per return
 * address from libunwind, instead of libunwind's own per-call setup and
 * per-frame lookup (under exact mode, 45% of the instructions of
 * bench/window_bench went to unw_backtrace, most of it in init_local and
 * its trace cache).
 *
 * A frame of function F, entered through the return address ra, has its
 * canonical frame address (CFA: the caller's stack pointer) at a fixed
 * distance either from its own stack pointer (code without a frame
 * pointer: the rule at ra is "rsp + n" in F's call frame information) or
 * from its rbp (code with one: push rbp; mov rsp, rbp; then the CFA is
 * rbp + 16 and the caller's rbp is saved at CFA - 16). Either way the
 * return address into F's caller is at CFA - 8, and where F saved its
 * caller's rbp, if it did, is a fixed offset from the CFA. libunwind's
 * unw_step knows all of it; on a miss we walk with it (the learning walk:
 * its stack is the sample's), and keep for each frame its rule.
 *
 * Which of the two rules applies is not visible through libunwind's API:
 * a frame is taken for an rbp frame when its caller's rbp is saved at
 * CFA - 16 and its own rbp is CFA - 16, the signature of that prologue;
 * otherwise the distance from its stack pointer to its CFA is kept, which
 * is exact for "rsp + n" rules. A frame libunwind cannot describe that way
 * (a signal frame, a step error) is kept as "slow": walks through it use
 * unw_backtrace. Every walk is checked as it goes (each CFA above the last,
 * by less than WALK_MAX_FRAME), and a walk through any rule not yet
 * confirmed is compared with unw_backtrace (unwind.c): a match confirms
 * its rules, a disagreement turns the cache off for good, said once. So
 * every rule has been checked in a whole walk, and the comparisons (with
 * libunwind's own look-ups and system calls the first time it meets a pc)
 * grow with the program's code, not with its allocations.
 *
 * The table is global and lock-free: a slot is a key (the return address)
 * and a rule, written key-last and read key, rule, key again (a seqlock
 * whose sequence is the key itself; a rule for one key is always the same
 * value). It only grows until half full; then new return addresses are no
 * longer learned and their walks go to unw_backtrace. dlclose (hooked
 * here) empties it. */
#include "stack.h"

#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <libunwind.h>
#include <string.h>

#define FRAME_SLOT_BITS 15
#define FRAME_SLOTS (1u << FRAME_SLOT_BITS) /* 512 KiB, zero pages until touched */
#define FRAME_PROBES 8
#define WALK_MAX_FRAME (1u << 20)

enum rule_kind {
    RULE_SP = 1,   /* CFA = sp + cfa_off */
    RULE_FP = 2,   /* CFA = rbp + cfa_off */
    RULE_LAST = 3, /* the outermost frame: the walk ends with its address */
    RULE_SLOW = 4, /* not describable: unw_backtrace */
};

/* A rule in one word: kind (8 bits), whether the caller's rbp is saved
 * (bit 8), whether a walk through it matched unw_backtrace (bit 9,
 * RULE_CONFIRMED), the rbp's offset from the CFA (16 bits, signed), the
 * CFA's offset (32 bits, signed). */
#define RULE_CONFIRMED (UINT64_C(1) << 9)
static inline uint64_t rule_pack(unsigned kind, bool rbp_saved, int rbp_off, int32_t cfa_off)
{
    return (uint64_t)kind | (uint64_t)rbp_saved << 8 | (uint64_t)(uint16_t)(int16_t)rbp_off << 16 |
           (uint64_t)(uint32_t)cfa_off << 32;
}
static inline unsigned rule_kind(uint64_t r)
{
    return (unsigned)(r & 0xff);
}
static inline bool rule_rbp_saved(uint64_t r)
{
    return (r >> 8) & 1;
}
static inline int rule_rbp_off(uint64_t r)
{
    return (int16_t)(uint16_t)(r >> 16);
}
static inline int32_t rule_cfa_off(uint64_t r)
{
    return (int32_t)(uint32_t)(r >> 32);
}

static struct {
    _Atomic uintptr_t key;
    _Atomic uint64_t rule;
} slots[FRAME_SLOTS];
static atomic_uint slots_used;
static atomic_bool cache_off;
/* Bumped when the table is emptied (dlclose). */
static atomic_uint generation;

/* Each thread's own copies of the rules it used last (its buffers'
 * frame_rules), packed in a few lines: a walk reads a dozen rules, which
 * in the big table lie on a dozen lines that the program's own memory
 * traffic keeps evicting. Emptied when the table's generation moves. */
#define LOCAL_BITS 5
_Static_assert(PPX_FRAME_RULE_COPIES == 1u << LOCAL_BITS, "copies indexed by LOCAL_BITS");

static inline size_t slot_home(uintptr_t ra)
{
    return (size_t)(((uint64_t)ra * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - FRAME_SLOT_BITS));
}

/* ra's rule, 0 if not known. */
static inline uint64_t lookup(uintptr_t ra)
{
    size_t i = slot_home(ra);
    for (unsigned p = 0; p < FRAME_PROBES; p++, i = (i + 1) & (FRAME_SLOTS - 1)) {
        uintptr_t k = atomic_load_explicit(&slots[i].key, memory_order_acquire);
        if (k == 0)
            return 0;
        if (k != ra)
            continue;
        uint64_t r = atomic_load_explicit(&slots[i].rule, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        return atomic_load_explicit(&slots[i].key, memory_order_relaxed) == ra ? r : 0;
    }
    return 0;
}

static inline size_t local_index(uintptr_t ra)
{
    return (size_t)(((uint64_t)ra * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - LOCAL_BITS));
}

static inline uint64_t lookup_local(struct ppx_frame_rule_copy *local, uintptr_t ra)
{
    if (local == NULL)
        return lookup(ra);
    size_t i = local_index(ra);
    if (local[i].key == ra)
        return local[i].rule;
    uint64_t r = lookup(ra);
    if (r != 0) {
        local[i].key = ra;
        local[i].rule = r;
    }
    return r;
}

/* Slots are claimed by CAS on an empty key, then the rule is written and
 * the key published; a claimed slot holds its key for good. */
#define KEY_CLAIMED ((uintptr_t)1)
static void learn(uintptr_t ra, uint64_t rule)
{
    if (atomic_load_explicit(&slots_used, memory_order_relaxed) >= FRAME_SLOTS / 2)
        return; /* full enough: probes stay short, the rest goes slow */
    size_t i = slot_home(ra);
    for (unsigned p = 0; p < FRAME_PROBES; p++, i = (i + 1) & (FRAME_SLOTS - 1)) {
        uintptr_t k = atomic_load_explicit(&slots[i].key, memory_order_acquire);
        if (k == ra)
            return;
        if (k != 0)
            continue;
        if (!atomic_compare_exchange_strong_explicit(&slots[i].key, &k, KEY_CLAIMED,
                                                     memory_order_relaxed, memory_order_relaxed)) {
            if (k == ra)
                return;
            continue;
        }
        atomic_store_explicit(&slots[i].rule, rule, memory_order_relaxed);
        atomic_store_explicit(&slots[i].key, ra, memory_order_release);
        atomic_fetch_add_explicit(&slots_used, 1, memory_order_relaxed);
        return;
    }
}

/* After a dlclose another object may be mapped where the closed one was:
 * its return addresses learn their rules anew. */
static void forget_all(void)
{
    if (atomic_load_explicit(&slots_used, memory_order_relaxed) == 0)
        return;
    for (size_t i = 0; i < FRAME_SLOTS; i++) {
        if (atomic_load_explicit(&slots[i].key, memory_order_relaxed) != 0)
            atomic_store_explicit(&slots[i].key, 0, memory_order_release);
    }
    atomic_store_explicit(&slots_used, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
}

PPX_EXPORT int dlclose(void *handle)
{
    static void *next_dlclose;
    int (*real)(void *) = (int (*)(void *))ppx_next_symbol(&next_dlclose, "dlclose");
    int rc = real(handle);
    if (rc == 0)
        forget_all();
    return rc;
}

bool ppx_frames_usable(void)
{
    return !atomic_load_explicit(&cache_off, memory_order_relaxed);
}

void ppx_frames_disable(const char *why)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    atomic_store_explicit(&cache_off, true, memory_order_relaxed);
    ppx_log_once(&said, why, "; walking every stack with unw_backtrace from now on", NULL, NULL);
}

static inline void note_read(struct ppx_walk_reads *reads, uintptr_t addr, uintptr_t v)
{
    if (reads->n < reads->cap) {
        reads->addr[reads->n] = addr;
        reads->val[reads->n] = v;
    }
    if (reads->n <= reads->cap)
        reads->n++;
}

unsigned ppx_frames_epoch(void)
{
    if (atomic_load_explicit(&cache_off, memory_order_relaxed))
        return 0;
    return 1 + atomic_load_explicit(&generation, memory_order_acquire);
}

void ppx_frames_confirm(struct ppx_tls *t, const uintptr_t *pcs, unsigned n)
{
    struct ppx_frame_rule_copy *local = t->buffers != NULL ? t->buffers->frame_rules : NULL;
    for (unsigned k = 0; k < n; k++) {
        uintptr_t ra = pcs[k];
        size_t i = slot_home(ra);
        for (unsigned p = 0; p < FRAME_PROBES; p++, i = (i + 1) & (FRAME_SLOTS - 1)) {
            if (atomic_load_explicit(&slots[i].key, memory_order_acquire) == ra) {
                atomic_fetch_or_explicit(&slots[i].rule, RULE_CONFIRMED, memory_order_relaxed);
                break;
            }
        }
        if (local != NULL) {
            struct ppx_frame_rule_copy *c = &local[local_index(ra)];
            if (c->key == ra)
                c->rule |= RULE_CONFIRMED;
        }
    }
}

unsigned ppx_frames_walk(struct ppx_tls *t, uintptr_t *pcs, unsigned max, uintptr_t sp,
                         uintptr_t rbp, uintptr_t ra, bool *learnable, bool *unconfirmed,
                         struct ppx_walk_reads *reads)
{
    unsigned n = 0;
    *unconfirmed = false;
    /* Where rbp was last read from (0: it is the one the walk started
     * with); a saved rbp counts as read for a memo only once a frame's CFA
     * comes from it (elsewhere it is the program's data, changing). */
    uintptr_t rbp_from = 0;
    *learnable = false;
    unsigned g = atomic_load_explicit(&generation, memory_order_acquire);
    struct ppx_frame_rule_copy *local = NULL;
    if (PPX_LIKELY(t->buffers != NULL)) {
        local = t->buffers->frame_rules;
        if (PPX_UNLIKELY(g != t->buffers->frame_rules_generation)) {
            memset(local, 0, sizeof t->buffers->frame_rules);
            t->buffers->frame_rules_generation = g;
        }
    }
    while (n < max) {
        if (ra == 0)
            return n;
        pcs[n++] = ra;
        uint64_t r = lookup_local(local, ra);
        unsigned kind = rule_kind(r);
        if (!(r & RULE_CONFIRMED))
            *unconfirmed = true;
        if (kind == RULE_LAST)
            return n;
        if (kind != RULE_SP && kind != RULE_FP) {
            /* unknown (learnable while there is room) or slow */
            *learnable = kind == 0 &&
                         atomic_load_explicit(&slots_used, memory_order_relaxed) < FRAME_SLOTS / 2;
            return 0;
        }
        if (kind == RULE_FP && reads != NULL) {
            if (rbp_from == 0)
                reads->rbp_used = true;
            else
                note_read(reads, rbp_from, rbp);
        }
        uintptr_t cfa = (kind == RULE_SP ? sp : rbp) + (intptr_t)rule_cfa_off(r);
        if (cfa <= sp || cfa - sp > WALK_MAX_FRAME)
            return 0;
        if (rule_rbp_saved(r)) {
            rbp_from = cfa + (intptr_t)rule_rbp_off(r);
            rbp = *(const uintptr_t *)rbp_from;
        }
        ra = *(const uintptr_t *)(cfa - sizeof(uintptr_t));
        if (reads != NULL)
            note_read(reads, cfa - sizeof(uintptr_t), ra);
        sp = cfa;
    }
    return n;
}

/* The rule of the frame at cursor c (already read: ip, sp, rbp), whose
 * caller's frame is at next (stepped from c; CFA = next's sp). */
static uint64_t rule_of(uintptr_t sp, uintptr_t rbp, unw_cursor_t *next)
{
    unw_word_t cfa;
    if (unw_get_reg(next, UNW_REG_SP, &cfa) != 0 || cfa <= sp || cfa - sp > WALK_MAX_FRAME)
        return rule_pack(RULE_SLOW, false, 0, 0);
    unw_save_loc_t loc;
    bool saved = false;
    intptr_t rbp_off = 0;
    if (unw_get_save_loc(next, UNW_X86_64_RBP, &loc) == 0 && loc.type == UNW_SLT_MEMORY &&
        loc.u.addr >= sp && loc.u.addr < cfa) {
        saved = true;
        rbp_off = (intptr_t)loc.u.addr - (intptr_t)cfa;
    }
    if (saved && rbp_off == -16 && rbp == cfa - 16)
        return rule_pack(RULE_FP, true, -16, 16);
    if (rbp_off < INT16_MIN)
        return rule_pack(RULE_SLOW, false, 0, 0);
    return rule_pack(RULE_SP, saved, (int)rbp_off, (int32_t)(cfa - sp));
}

/* The learning walk: libunwind's unw_step from here, its frames up to and
 * including the one whose stack pointer is start_sp skipped (the caller's
 * own frames), each frame after that recorded in pcs and its rule learned.
 * 0 when the walk failed before start_sp or a frame is not describable
 * (the caller then uses unw_backtrace). */
unsigned ppx_frames_learn(uintptr_t *pcs, unsigned max, uintptr_t start_sp)
{
    unw_context_t uc;
    unw_cursor_t c, next;
    if (unw_getcontext(&uc) != 0 || unw_init_local(&c, &uc) != 0)
        return 0;
    unw_word_t ip, sp, rbp;
    for (unsigned skipped = 0;; skipped++) {
        if (skipped > 16 || unw_get_reg(&c, UNW_REG_SP, &sp) != 0)
            return 0;
        if (sp == start_sp)
            break;
        if (sp > start_sp || unw_step(&c) <= 0)
            return 0;
    }
    unsigned n = 0;
    while (n < max) {
        if (unw_get_reg(&c, UNW_REG_IP, &ip) != 0 || unw_get_reg(&c, UNW_REG_SP, &sp) != 0 ||
            unw_get_reg(&c, UNW_X86_64_RBP, &rbp) != 0 || ip == 0)
            return n;
        pcs[n++] = ip;
        if (unw_is_signal_frame(&c) > 0) {
            learn(ip, rule_pack(RULE_SLOW, false, 0, 0));
            return 0;
        }
        next = c;
        int rc = unw_step(&next);
        if (rc == 0) {
            learn(ip, rule_pack(RULE_LAST, false, 0, 0));
            return n;
        }
        if (rc < 0) {
            learn(ip, rule_pack(RULE_SLOW, false, 0, 0));
            return n;
        }
        uint64_t r = rule_of(sp, rbp, &next);
        learn(ip, r);
        if (rule_kind(r) == RULE_SLOW)
            return 0;
        c = next;
    }
    return n;
}
