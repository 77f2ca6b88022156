/* A state-threads-like scheduler's records, laid out unlike state-threads
 * 1.9 (Debian) and unlike SRS's fork, with members named as state-threads
 * names them: what ppx's collector reads from DWARF (symbol/st_layout.c)
 * and the target walks (preload/cpu/coroutine_dump.c). Shared by the
 * program (tests/progs/st_own_layout.c) and the unit test of the DWARF
 * reader (tests/unit/st_layout.c), which checks the offsets it reads
 * against offsetof here. ST_GLOBAL_VARS or ST_NO_LIST: the build without
 * the debug list of every record (tlink, thread_q: last in their records,
 * so that the other offsets are the same in both builds). */
#ifndef PPX_TESTS_ST_OWN_LAYOUT_H
#define PPX_TESTS_ST_OWN_LAYOUT_H

#if !defined(ST_GLOBAL_VARS) && !defined(ST_NO_LIST)
#define ST_THREAD_LIST 1
#endif

#include <poll.h>
#include <stddef.h>

struct _st_clist {
    struct _st_clist *next, *prev;
};

struct _st_stack {
    char *stk_top;
    size_t spare;
    struct _st_clist links;
    char *stk_bottom;
};

/* The saved context: state-threads' md.S order (rbx, rbp, r12-r15, the
 * stack pointer after the switch, the pc), then spare words. */
struct _st_jmp_buf {
    long __jmpbuf[10];
};

struct _st_thread {
    struct _st_jmp_buf context;
    void *arg;
    struct _st_clist links;
    unsigned long long due;
    int flags;
    int state;
    struct _st_thread *right, *left;
    struct _st_stack *stack;
    void *(*start)(void *);
#ifdef ST_THREAD_LIST
    struct _st_clist tlink;
#endif
};

struct _st_pollq {
    struct pollfd *pds;
    int npds;
    struct _st_thread *thread;
    struct _st_clist links;
};

struct _st_vp {
    int pagesize;
    struct _st_thread *sleep_q;
    struct _st_clist io_q, zombie_q, run_q;
    struct _st_thread *idle_thread;
    unsigned long long last_clock;
#ifdef ST_THREAD_LIST
    struct _st_clist thread_q;
#endif
};

/* state-threads' states */
enum { ST_RUNNING, ST_RUNNABLE, ST_IO_WAIT, ST_LOCK_WAIT, ST_COND_WAIT, ST_SLEEPING };

#endif
