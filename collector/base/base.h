/* What every stage of the collector uses: its clock, path joining, files
 * written atomically, hex, HTML and base64 text, and the internal checks. The bottom stage: it
 * includes nothing of ppx. */
#ifndef PPX_BASE_H
#define PPX_BASE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- clock ---- */
/* CLOCK_MONOTONIC in milliseconds: deadlines and intervals. */
long long monotonic_ms(void);
/* CLOCK_REALTIME in nanoseconds: when something happened. */
uint64_t realtime_ns(void);

/* ---- path ---- */
/* dir/name without a doubled slash, malloc'ed; NULL when out of memory. */
char *path_join(const char *dir, const char *name);
/* Creates dir and its missing parents with mode; existing ones are fine if
 * dir itself is a directory. 0, or -1 with errno set and, when a mkdir
 * failed, *failed the prefix it could not make (malloc'ed; else NULL:
 * ENOTDIR when dir is no directory, ENOMEM). */
int path_make_dirs(const char *dir, unsigned mode, char **failed);

/* ---- file ---- */
/* Writes data[0..len) to path atomically: into a temporary file beside
 * it (mode 0644), synced, then renamed over path, so that a reader sees
 * the old file or the whole new one. 0, or -1 with errno set; no
 * temporary file is left behind, and an existing file at path stays as
 * it was. */
int file_write_atomic(const char *path, const void *data, size_t len);
/* The whole of the file at path, at most max bytes, malloc'ed with a NUL
 * after its *len bytes; NULL with errno set (EFBIG: larger than max). */
void *file_read_all(const char *path, size_t max, size_t *len);

/* ---- hex ---- */
/* bytes[0..len) as 2 * len lowercase hex digits and a NUL in out (a GNU
 * build id as pprof and debuginfod write it). */
void hex_encode(char *out, const uint8_t *bytes, size_t len);

/* ---- html ---- */
/* s HTML-escaped (& < > " '), safe as element text and as a quoted
 * attribute value. */
void html_escaped(FILE *f, const char *s);
/* The same for s[0..len), which may hold NULs (shown as U+FFFD). */
void html_escaped_len(FILE *f, const char *s, size_t len);
/* data[0..len) in base64 (RFC 4648, padded), on one line. */
void base64_write(FILE *f, const uint8_t *data, size_t len);

/* ---- checks ----
 * PPX_CHECK(cond, what) states an invariant of the collector's own code
 * (lock ownership, states), never of its input: data from sockets and
 * files is validated and refused with a message instead. Built with
 * PPX_CHECKS (configure --enable-checks, as scripts/check does), a broken
 * invariant aborts with its place and what was expected; otherwise the
 * condition is not evaluated at all. */
#ifdef PPX_CHECKS
#define PPX_CHECK(cond, what)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ppx_check_failed(__FILE__, __LINE__, #cond, what);                                     \
    } while (0)
#else
#define PPX_CHECK(cond, what)                                                                      \
    do {                                                                                           \
        (void)sizeof(cond);                                                                        \
    } while (0)
#endif
_Noreturn void ppx_check_failed(const char *file, int line, const char *cond, const char *what);

/* For PPX_CHECK: whether m is locked. pthread cannot say by whom, so this
 * catches a lock not taken, not one taken by another thread. */
bool ppx_mutex_held(pthread_mutex_t *m);

#endif
