/* What the unit tests of the pprof writers share: the CHECK macro and its
 * failure count, return addresses of known call sites, a synthetic struct
 * proc built from the test binary's own mappings, a temporary directory,
 * profiles read back with protobuf-c, and commands run for their output. */
#ifndef PPX_TESTS_UNIT_SUPPORT_H
#define PPX_TESTS_UNIT_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "model/model.h"
#include "profile.pb-c.h"

typedef Perftools__Profiles__Profile Profile;

/* Failed CHECKs so far; unit_finish turns it into the exit status. */
extern int unit_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            unit_failures++;                                                                       \
        }                                                                                          \
    } while (0)

/* Kept whole under their own names, so the symbol table names the pcs. */
#ifdef __clang__
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noclone))
#endif

/* The return address of the call to it: a pc inside the caller. */
uint64_t unit_return_address(void);

/* A process of this test binary: the executable segments of the main
 * program, and with main_only false those of every shared object too
 * (the vdso aside), each with its GNU build ID. */
struct proc *unit_proc_new(uint32_t pid, uint64_t sample_rate, uint64_t start_ns, bool main_only);
/* Adds a stack of depth pcs (leaf first) with zero figures; returns it. */
struct proc_stack *unit_proc_add_stack(struct proc *p, uint32_t id, const uint64_t *pcs,
                                       uint32_t depth);
void unit_proc_free(struct proc *p);

/* The test's temporary directory, made by unit_tmpdir_make from a
 * /tmp/ppx-unit-NAME-XXXXXX template. */
extern char unit_tmpdir[];
/* False (with perror's message) when mkdtemp fails. */
bool unit_tmpdir_make(const char *name);
/* tmpdir/name in one of 8 static buffers, reused in turn. */
char *unit_tmp_path(const char *name);

/* A gzipped profile decoded with protobuf-c; NULL when unreadable. */
Profile *unit_read_profile(const char *path);

/* Runs cmd through popen; returns its output, malloc'ed, and its exit
 * status in *status (-1 when it could not be started, 128 when killed). */
char *unit_run(const char *cmd, int *status);

/* tests/lib/pprof_raw.py and this build's ppx: $top_srcdir and
 * $top_builddir when make check sets them, else the configured trees. */
const char *unit_pprof_raw_py(void);
const char *unit_ppx_bin(void);
/* `pprof_raw.py FILE ARGS` and `go tool pprof ARGS FILE` (offline, for any
 * user, as pprof_raw.py runs it), through unit_run(), stderr included. */
char *unit_pprof_query(const char *file, const char *args, int *status);
char *unit_go_pprof(const char *args, const char *file, int *status);
/* The value in column `type` of row `name` of pprof_raw.py's
 * --flat-table/--cum-table output: 0 when the row is absent, -1 when the
 * column is. */
long long unit_table_get(const char *table, const char *name, const char *type);

/* Prints the failure count, or passed_message when there is none, and
 * returns the exit status: 1 or 0. */
int unit_finish(const char *passed_message);

#endif
