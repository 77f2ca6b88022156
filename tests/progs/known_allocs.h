/* Shared by the end-to-end test programs: keep every allocation and every
 * function boundary the tests count, whatever the optimisation level. */
#ifndef PPX_TESTS_KNOWN_ALLOCS_H
#define PPX_TESTS_KNOWN_ALLOCS_H

/* A counted function must stay a function of its own: not inlined, cloned,
 * folded with an identical twin, or reduced to a tail call. */
#if defined(__clang__)
#define COUNTED __attribute__((noinline, used, optnone))
#else
#define COUNTED __attribute__((noipa, used, optimize("no-optimize-sibling-calls")))
#endif

/* The pointer escapes: the compiler may not drop a malloc/free pair. */
#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

#endif
