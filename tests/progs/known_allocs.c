/* Exactly known allocations for the end-to-end tests.
 *
 * Usage: known_allocs [small] [big] [pause] [exit N]
 *   small  the exact-mode set below (the default when no word is given)
 *   big    large totals for sampling mode (about 3.7 GB allocated in all,
 *          at most about 100 MB live, 32 MB of it touched)
 *   pause  print "ready PID" on stdout, then wait for end of input on stdin;
 *          each input line "alloc" runs between_snapshots and prints "done";
 *          each line "poke" allocates and frees 1 byte in poke (not counted:
 *          a process without a collector looks for one at an allocation);
 *          "mixed N" runs mixed_sizes(N) (100 blocks of N bytes, kept, all
 *          from one call stack) and prints "done"
 *   exit N exit with status N
 *
 * Each counted function is the direct caller of the allocator, so in a heap
 * profile it is the leaf. Figures as alloc_objects alloc_space inuse_objects
 * inuse_space (inuse = still allocated at exit):
 *   leak_64x1000            1000   64000 1000  64000
 *   alloc_free_1000x500      500  500000    0      0
 *   calloc_10x100_x200       200  200000  200 200000
 *   realloc_chain             90   81760    0      0  (10 x 16->32->...->4096, freed)
 *   posix_memalign_10x256     10    2560   10   2560
 *   aligned_alloc_5x4096       5   20480    5  20480
 *   memalign_3x512             3    1536    3   1536
 *   valloc_2x1000              2    2000    2   2000
 *   pvalloc_4x100              4       -    4      -  (size: requested or page)
 *   reallocarray_grow         10   15000    5  10000  (5 x 10*100 -> 20*100)
 *   failed_allocs              1     100    1    100  (failures record nothing)
 *   thread_worker           1000  128000 1000 128000  (4 threads x 250 x 128)
 *   strdup_20x32 (cum)        20     640   20    640  (the leaf is strdup)
 * Sampling mode (big), expected before sampling:
 *   big_alloc_free_1024  2000000 2048000000 0 0
 *   big_alloc_free_4096   400000 1638400000 0 0
 *   big_keep_4m_x16           16   67108864 16 67108864
 *   big_keep_2048_x16384   16384   33554432 16384 33554432
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "known_allocs.h"

#define THREADS 4

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "known_allocs: %s\n", what);
        exit(10);
    }
}

/* A call that must fail: it returned NULL, and allocated nothing to free. */
static void expect_null(const void *p, const char *what)
{
    check(p == NULL, what);
}

/* Written, never read: each kept pointer also goes through ESCAPE, or the
 * compiler could drop the stores and then the allocations. */
static void *leaked[16384];

COUNTED static void leak_64x1000(void)
{
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(64);
        check(p != NULL, "malloc(64) failed");
        check(malloc_usable_size(p) >= 64, "malloc_usable_size < 64");
        p[0] = 1;
        leaked[i] = p;
        ESCAPE(p);
    }
}

COUNTED static void alloc_free_1000x500(void)
{
    for (int i = 0; i < 500; i++) {
        char *p = malloc(1000);
        check(p != NULL, "malloc(1000) failed");
        ESCAPE(p);
        free(p);
    }
}

COUNTED static void calloc_10x100_x200(void)
{
    for (int i = 0; i < 200; i++) {
        char *p = calloc(10, 100);
        check(p != NULL && p[999] == 0, "calloc(10, 100) failed");
        leaked[i] = p;
        ESCAPE(p);
    }
}

COUNTED static void realloc_chain(void)
{
    for (int chain = 0; chain < 10; chain++) {
        char *p = malloc(16);
        check(p != NULL, "malloc(16) failed");
        memcpy(p, "realloc chain 1", 16);
        for (size_t size = 32; size <= 4096; size *= 2) {
            char *grown = realloc(p, size);
            check(grown != NULL, "realloc failed");
            p = grown;
            check(strcmp(p, "realloc chain 1") == 0, "realloc lost the contents");
        }
        free(p);
    }
}

COUNTED static void posix_memalign_10x256(void)
{
    for (int i = 0; i < 10; i++) {
        void *p = NULL;
        check(posix_memalign(&p, 64, 256) == 0, "posix_memalign failed");
        check(((uintptr_t)p & 63) == 0, "posix_memalign: not 64-aligned");
        leaked[i] = p;
        ESCAPE(p);
    }
}

COUNTED static void aligned_alloc_5x4096(void)
{
    for (int i = 0; i < 5; i++) {
        void *p = aligned_alloc(4096, 4096);
        check(p != NULL && ((uintptr_t)p & 4095) == 0, "aligned_alloc(4096, 4096) failed");
        leaked[i] = p;
        ESCAPE(p);
    }
}

COUNTED static void memalign_3x512(void)
{
    for (int i = 0; i < 3; i++) {
        void *p = memalign(128, 512);
        check(p != NULL && ((uintptr_t)p & 127) == 0, "memalign(128, 512) failed");
        leaked[i] = p;
        ESCAPE(p);
    }
}

COUNTED static void valloc_2x1000(void)
{
    for (int i = 0; i < 2; i++) {
        void *p = valloc(1000);
        check(p != NULL && ((uintptr_t)p & 4095) == 0, "valloc(1000) failed");
        leaked[i] = p;
        ESCAPE(p);
    }
}

COUNTED static void pvalloc_4x100(void)
{
    for (int i = 0; i < 4; i++) {
        void *p = pvalloc(100);
        check(p != NULL && ((uintptr_t)p & 4095) == 0, "pvalloc(100) failed");
        leaked[i] = p;
        ESCAPE(p);
    }
}

COUNTED static void reallocarray_grow(void)
{
    for (int i = 0; i < 5; i++) {
        char *p = reallocarray(NULL, 10, 100);
        check(p != NULL, "reallocarray(NULL, 10, 100) failed");
        char *grown = reallocarray(p, 20, 100);
        check(grown != NULL, "reallocarray(p, 20, 100) failed");
        p = grown;
        leaked[i] = p;
        ESCAPE(p);
    }
}

/* Failed calls must leave every figure unchanged. */
COUNTED static void failed_allocs(void)
{
    volatile size_t huge = (size_t)1 << 62;
    expect_null(malloc(huge), "malloc(2^62) succeeded");
    expect_null(calloc(huge, 16), "calloc overflow succeeded");
    expect_null(reallocarray(NULL, huge, 16), "reallocarray overflow succeeded");
    char *p = malloc(100);
    check(p != NULL, "malloc(100) failed");
    expect_null(realloc(p, huge), "realloc(p, 2^62) succeeded");
    leaked[0] = p;
    ESCAPE(p);
}

COUNTED static char *strdup_20x32(void)
{
    char *last = NULL;
    for (int i = 0; i < 20; i++) {
        last = strdup("0123456789abcdef0123456789abcde"); /* 31 chars + NUL */
        check(last != NULL, "strdup failed");
        leaked[i] = last;
        ESCAPE(last);
    }
    return last;
}

COUNTED static void *thread_worker(void *arg)
{
    void **slots = arg;
    for (int i = 0; i < 250; i++) {
        slots[i] = malloc(128);
        check(slots[i] != NULL, "malloc(128) failed");
        ESCAPE(slots[i]);
    }
    return NULL;
}

static void run_threads(void)
{
    static void *slots[THREADS][250];
    pthread_t tids[THREADS];
    for (int i = 0; i < THREADS; i++)
        check(pthread_create(&tids[i], NULL, thread_worker, slots[i]) == 0,
              "pthread_create failed");
    for (int i = 0; i < THREADS; i++)
        check(pthread_join(tids[i], NULL) == 0, "pthread_join failed");
}

static void run_small(void)
{
    leak_64x1000();
    alloc_free_1000x500();
    calloc_10x100_x200();
    realloc_chain();
    posix_memalign_10x256();
    aligned_alloc_5x4096();
    memalign_3x512();
    valloc_2x1000();
    pvalloc_4x100();
    reallocarray_grow();
    failed_allocs();
    strdup_20x32();
    run_threads();
}

COUNTED static void big_alloc_free_1024(void)
{
    for (int i = 0; i < 2000000; i++) {
        char *p = malloc(1024);
        check(p != NULL, "malloc(1024) failed");
        ESCAPE(p);
        free(p);
    }
}

COUNTED static void big_alloc_free_4096(void)
{
    for (int i = 0; i < 400000; i++) {
        char *p = malloc(4096);
        check(p != NULL, "malloc(4096) failed");
        ESCAPE(p);
        free(p);
    }
}

/* Large blocks, left untouched: they cost address space, not memory. */
COUNTED static void big_keep_4m_x16(void)
{
    for (int i = 0; i < 16; i++) {
        leaked[i] = malloc(4 << 20);
        check(leaked[i] != NULL, "malloc(4 MiB) failed");
        ESCAPE(leaked[i]);
    }
}

COUNTED static void big_keep_2048_x16384(void)
{
    for (int i = 0; i < 16384; i++) {
        leaked[i] = malloc(2048);
        check(leaked[i] != NULL, "malloc(2048) failed");
        ESCAPE(leaked[i]);
    }
}

static void run_big(void)
{
    big_alloc_free_1024();
    big_alloc_free_4096();
    big_keep_4m_x16();
    big_keep_2048_x16384();
}

/* 100 x 1000 bytes, leaked: what a -base diff of two snapshots shows. */
COUNTED static void between_snapshots(void)
{
    for (int i = 0; i < 100; i++)
        ESCAPE(malloc(1000));
}

static __attribute__((noinline)) void poke(void)
{
    void *p = malloc(1);
    ESCAPE(p);
    free(p);
}

/* One stack, block sizes chosen by the input: its average block size
 * changes between snapshots, its call stack does not. */
COUNTED static void mixed_sizes(size_t size)
{
    for (int i = 0; i < 100; i++)
        ESCAPE(malloc(size));
}

static void pause_until_eof(void)
{
    char line[64];
    unsigned long size;
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strcmp(line, "alloc\n") == 0) {
            between_snapshots();
            printf("done\n");
            fflush(stdout);
        } else if (strcmp(line, "poke\n") == 0) {
            poke();
        } else if (sscanf(line, "mixed %lu", &size) == 1 && size > 0) {
            mixed_sizes(size);
            printf("done\n");
            fflush(stdout);
        }
    }
}

int main(int argc, char **argv)
{
    int small = 0, big = 0, pause = 0, status = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "small") == 0) {
            small = 1;
        } else if (strcmp(argv[i], "big") == 0) {
            big = 1;
        } else if (strcmp(argv[i], "pause") == 0) {
            pause = 1;
        } else if (strcmp(argv[i], "exit") == 0 && i + 1 < argc) {
            status = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: known_allocs [small] [big] [pause] [exit N]\n");
            return 2;
        }
    }
    if (!big)
        small = 1;
    if (small)
        run_small();
    if (big)
        run_big();
    if (pause)
        pause_until_eof();
    return status;
}
