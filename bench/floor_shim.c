/* The floor of interposition: an LD_PRELOAD library that hooks the same
 * allocation calls as libppx.so and only forwards them to glibc's own
 * entry points. What it costs is what any malloc profiler pays before it
 * records anything (the PLT call and the extra frame); bench/run shows
 * ppx's time against it as well as against the plain run. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

/* glibc's allocator under its internal names: exported, though no header
 * declares them; calling them never re-enters the hooks below. */
void *__libc_malloc(size_t size);
void __libc_free(void *ptr);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_valloc(size_t size);

void *malloc(size_t size)
{
    return __libc_malloc(size);
}

void free(void *ptr)
{
    __libc_free(ptr);
}

void *calloc(size_t n, size_t size)
{
    return __libc_calloc(n, size);
}

void *realloc(void *ptr, size_t size)
{
    return __libc_realloc(ptr, size);
}

void *memalign(size_t alignment, size_t size)
{
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    return __libc_memalign(alignment, size);
}

void *valloc(size_t size)
{
    return __libc_valloc(size);
}

/* The checks glibc's posix_memalign makes before it allocates, since
 * __libc_memalign accepts any alignment. */
int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 || alignment == 0)
        return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}
