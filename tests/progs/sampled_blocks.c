/* What a program sees of the blocks the profiler samples: the contents and
 * alignment it asked for, whatever the profiler does to tell its sampled
 * blocks apart. Run with a small PPX_SAMPLE_RATE, nearly every block below
 * is sampled. Prints one figure a line (name value); exits 0.
 *
 *   page_aligned     of 1000 malloc(64 KiB) blocks, how many start on a
 *                    4096-byte boundary
 *   calloc_dirty     bytes not zero in 1000 calloc(1000) blocks made from
 *                    memory just freed full of 0xAB
 *   calloc_big_dirty bytes not zero in 4 calloc(64 MiB) blocks (one a page)
 *   calloc_big_kib   how much those 4 blocks added to the resident set
 *   realloc_bad      bytes wrong after growing and shrinking blocks with
 *                    realloc, 200 steps each
 *   misaligned       blocks of memalign, posix_memalign, aligned_alloc,
 *                    valloc, pvalloc not on the boundary asked for
 *   huge_refused     of malloc, calloc, realloc and memalign of 2^62 bytes,
 *                    how many returned NULL with errno ENOMEM
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "known_allocs.h"

#define BLOCKS 1000

static long resident_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

COUNTED static void page_aligned_64k(void)
{
    static void *blocks[BLOCKS];
    int aligned = 0;
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(64 * 1024);
        ESCAPE(blocks[i]);
        aligned += ((uintptr_t)blocks[i] & 4095) == 0;
    }
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    printf("page_aligned %d\n", aligned);
}

COUNTED static void calloc_after_dirty(void)
{
    static unsigned char *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(1000);
        memset(blocks[i], 0xAB, 1000);
    }
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    long dirty = 0;
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = calloc(10, 100);
        for (int j = 0; j < 1000; j++)
            dirty += blocks[i][j] != 0;
    }
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    printf("calloc_dirty %ld\n", dirty);
}

COUNTED static void calloc_big(void)
{
    enum { N = 4, SIZE = 64 << 20 };
    unsigned char *blocks[N];
    long before = resident_kib();
    for (int i = 0; i < N; i++)
        blocks[i] = calloc(1, SIZE);
    long after = resident_kib();
    long dirty = 0;
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < SIZE; j += 4096)
            dirty += blocks[i][j] != 0;
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    printf("calloc_big_dirty %ld\n", dirty);
    printf("calloc_big_kib %ld\n", after - before);
}

static unsigned char pattern(size_t i, int block)
{
    return (unsigned char)(i * 7 + (size_t)block * 13 + 1);
}

COUNTED static void realloc_steps(void)
{
    long bad = 0;
    for (int b = 0; b < 20; b++) {
        unsigned char *p = NULL;
        size_t size = 0;
        for (int step = 0; step < 200; step++) {
            /* grows mostly, shrinks every fifth step */
            size_t next = step % 5 == 4 ? size / 2 : size + 1000 + (size_t)step * 37;
            unsigned char *grown = realloc(p, next);
            if (grown == NULL)
                abort();
            p = grown;
            for (size_t i = 0; i < (next < size ? next : size); i++)
                bad += p[i] != pattern(i, b);
            for (size_t i = size; i < next; i++)
                p[i] = pattern(i, b);
            size = next;
        }
        free(p);
    }
    printf("realloc_bad %ld\n", bad);
}

static int off_boundary(const void *p, size_t align)
{
    return p == NULL || ((uintptr_t)p & (align - 1)) != 0;
}

COUNTED static void aligned_family(void)
{
    static const size_t aligns[] = {16, 64, 4096, 8192, 65536};
    int misaligned = 0;
    for (int round = 0; round < 50; round++) {
        for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
            size_t align = aligns[a], size = 20000 + (size_t)round;
            void *p = memalign(align, size), *q = NULL, *r = aligned_alloc(align, size);
            misaligned += off_boundary(p, align) + off_boundary(r, align);
            misaligned += posix_memalign(&q, align, size) != 0 || off_boundary(q, align);
            free(p);
            free(q);
            free(r);
        }
        void *v = valloc(30000), *pv = pvalloc(30000);
        misaligned += off_boundary(v, 4096) + off_boundary(pv, 4096);
        free(v);
        free(pv);
    }
    printf("misaligned %d\n", misaligned);
}

/* Counts a refusal: p NULL with errno ENOMEM. A block (never expected) is freed. */
static int refused_with_enomem(void *p)
{
    int refused = p == NULL && errno == ENOMEM;
    free(p);
    errno = 0;
    return refused;
}

COUNTED static void huge(void)
{
    size_t size = (size_t)1 << 62;
    void *kept = malloc(16);
    errno = 0;
    int refused = refused_with_enomem(malloc(size));
    refused += refused_with_enomem(calloc(1, size));
    refused += refused_with_enomem(memalign(64, size));
    void *grown = realloc(kept, size);
    if (grown != NULL)
        kept = grown; /* never expected */
    refused += grown == NULL && errno == ENOMEM;
    free(kept);
    printf("huge_refused %d\n", refused);
}

int main(void)
{
    page_aligned_64k();
    calloc_after_dirty();
    calloc_big();
    realloc_steps();
    aligned_family();
    huge();
    return 0;
}
