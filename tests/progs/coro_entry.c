/* Coroutines entered the way state-threads as SRS builds it enters them:
 * a context switch jumps into _st_thread_main (this program's own, found
 * by ppx in .symtab as in SRS) on a fresh stack, whose words above the
 * entry are whatever the stack held before: here a return address that is
 * real (one in main, already seen by the unwinder) and a frame pointer into
 * an unmapped page. A walk past the entry follows them and faults; a walk
 * that ends at the entry sees exactly the figures below.
 *
 * Per counted function (coro_X -> X_mid -> X_leaf), exact:
 *   one_leaf    malloc(40) x 200, kept          8000 bytes
 *   two_leaf    malloc(300) x 100, freed        30000 bytes
 *   three_leaf  write(pipe, 32 bytes) x 50      1600 bytes (read back by main)
 * The coroutines yield after every call, so they interleave. The stale
 * return address changes before every switch (the scheduler's own calls
 * rewrite that memory in SRS): a walk past the entry meets a new pc each
 * time. Usage: coro_entry [ROUNDS [SPIN]], every figure times ROUNDS
 * (default 1); SPIN: a fourth coroutine, coro_spin -> spin_mid ->
 * spin_leaf, spins SPIN million loops (for CPU profiles; default none).
 * stdout: "done <bytes read>". */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "known_allocs.h"

#define N_CORO 4
#define STACK_BYTES (64 * 1024)

/* coro_switch(save, load): pushes the callee-saved registers, stores the
 * stack pointer in *save, loads load, pops, returns into the other side. */
void coro_switch(void **save, void *load);
__asm__(".text\n"
        ".globl coro_switch\n"
        ".type coro_switch, @function\n"
        "coro_switch:\n"
        "  push %rbp\n  push %rbx\n  push %r12\n  push %r13\n  push %r14\n  push %r15\n"
        "  mov %rsp, (%rdi)\n"
        "  mov %rsi, %rsp\n"
        "  pop %r15\n  pop %r14\n  pop %r13\n  pop %r12\n  pop %rbx\n  pop %rbp\n"
        "  ret\n"
        ".size coro_switch, .-coro_switch\n");

static void *sched_sp;
static void *coro_sp[N_CORO];
static int current;
static bool finished[N_CORO];
static void (*coro_fn[N_CORO])(void);
static int pipe_fds[2];
static void *kept[200];
static int rounds = 1;
static long spin_millions;
static uintptr_t *stale_return[N_CORO]; /* the entry's [rsp] */

static void yield(void)
{
    coro_switch(&coro_sp[current], sched_sp);
}

COUNTED void *one_leaf(void)
{
    void *p = malloc(40);
    ESCAPE(p);
    return p;
}

COUNTED void one_mid(void)
{
    for (int i = 0; i < 200 * rounds; i++) {
        kept[i % 200] = one_leaf();
        yield();
    }
}

COUNTED void coro_one(void)
{
    one_mid();
}

COUNTED void two_leaf(void)
{
    void *p = malloc(300);
    ESCAPE(p);
    free(p);
}

COUNTED void two_mid(void)
{
    for (int i = 0; i < 100 * rounds; i++) {
        two_leaf();
        yield();
    }
}

COUNTED void coro_two(void)
{
    two_mid();
}

COUNTED void three_leaf(void)
{
    char buf[32];
    memset(buf, 'c', sizeof buf);
    if (write(pipe_fds[1], buf, sizeof buf) != (ssize_t)sizeof buf)
        exit(3);
}

COUNTED void three_mid(void)
{
    for (int i = 0; i < 50 * rounds; i++) {
        three_leaf();
        yield();
    }
}

COUNTED void coro_three(void)
{
    three_mid();
}

COUNTED unsigned long spin_leaf(void)
{
    volatile unsigned long x = 0;
    for (long i = 0; i < 1000000; i++)
        x = x * 31 + (unsigned long)i;
    return x;
}

COUNTED void spin_mid(void)
{
    for (long m = 0; m < spin_millions; m++) {
        spin_leaf();
        if (m % 16 == 0)
            yield();
    }
}

COUNTED void coro_spin(void)
{
    spin_mid();
}

/* The coroutine entry: never returns, its caller is no frame. */
COUNTED void _st_thread_main(void)
{
    coro_fn[current]();
    finished[current] = true;
    yield();
    abort(); /* never resumed */
}

/* A return address in main, where main's frame is well known to the
 * unwinder: this function allocates from there. */
static uintptr_t main_return;
COUNTED void warm_up(void)
{
    main_return = (uintptr_t)__builtin_return_address(0);
    void *p = malloc(1);
    ESCAPE(p);
    free(p);
}

/* The stack as a context switch leaves it for the first entry: six saved
 * registers (RBP last popped: the garbage frame pointer), the entry as
 * return address, then what the stack held above. */
static void *new_stack(uintptr_t stale_fp, uintptr_t **stale_ra)
{
    unsigned char *lo =
        mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (lo == MAP_FAILED)
        exit(2);
    uintptr_t *top = (uintptr_t *)(lo + STACK_BYTES);
    for (int i = 1; i <= 32; i++) /* stale words: frame pointer, return address */
        top[-i] = i % 2 ? main_return : stale_fp;
    uintptr_t *sp = top - 17; /* the entry's [rsp]: a stale return address */
    *stale_ra = sp;
    *--sp = (uintptr_t)_st_thread_main;
    *--sp = stale_fp; /* rbp */
    for (int i = 0; i < 5; i++)
        *--sp = 0; /* rbx r12 r13 r14 r15 */
    return sp;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        rounds = atoi(argv[1]);
    if (argc > 2)
        spin_millions = atol(argv[2]);
    warm_up();
    /* A page that is mapped no more: the stale frame pointer points there. */
    void *gone = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (gone == MAP_FAILED || munmap(gone, 4096) != 0 || pipe(pipe_fds) != 0)
        return 2;
    static void (*const fns[N_CORO])(void) = {coro_one, coro_two, coro_three, coro_spin};
    for (int i = 0; i < N_CORO; i++) {
        coro_fn[i] = fns[i];
        coro_sp[i] = new_stack((uintptr_t)gone + 256, &stale_return[i]);
    }
    unsigned switches = 0;
    for (bool any = true; any;) {
        any = false;
        for (current = 0; current < N_CORO; current++) {
            if (!finished[current]) {
                *stale_return[current] = main_return + (uintptr_t)(++switches % 64);
                coro_switch(&sched_sp, coro_sp[current]);
                any = true;
            }
        }
    }
    char buf[4096];
    ssize_t got = 0, n;
    while (got < 32 * 50 * rounds && (n = read(pipe_fds[0], buf, sizeof buf)) > 0)
        got += n;
    for (int i = 0; i < 200; i++)
        free(kept[i]);
    printf("done %zd\n", got);
    return 0;
}
