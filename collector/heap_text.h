/* Go's legacy text heap profile (`/debug/pprof/heap?debug=1`), as
 * runtime/pprof's writeHeapInternal writes it for debug != 0:
 *
 *   heap profile: INUSE_OBJ: INUSE_BYTES [ALLOC_OBJ: ALLOC_BYTES] @ heap/2*RATE
 *   INUSE_OBJ: INUSE_BYTES [ALLOC_OBJ: ALLOC_BYTES] @ 0xPC 0xPC ...
 *   #	0xPC-1	function	file:line
 *   ...
 *
 * one record per stack, sorted by in-use bytes, with the raw sampled
 * figures (a reader scales them by the rate in the header, as pprof's
 * legacy parser does: "heap/N" means a sampling rate of N/2, a convention
 * of the C++ heap profiler that Go kept), program counters as return
 * addresses (the reader takes 1 off), and symbolized "#" lines (inlined
 * functions included, innermost first). Allocator frames at the leaf are
 * left out, as in the pprof profiles. After a "# ppx" comment section
 * naming the processes comes, for a single process, its memory map in the
 * brief format pprof's legacy parser knows (start-limit perms file
 * (@offset) build-id), so `go tool pprof` can symbolize the text too. */
#ifndef PPX_HEAP_TEXT_H
#define PPX_HEAP_TEXT_H

#include <stddef.h>
#include "process.h"

/* The text of procs[0..n) merged, malloc'ed in *out (*len bytes, NUL
 * terminated). Symbolizes: call it under the build lock (live.h).
 * Returns 0, or -1 when out of memory. */
int heap_text_write(struct proc *const *procs, size_t n, char **out, size_t *len);

#endif
