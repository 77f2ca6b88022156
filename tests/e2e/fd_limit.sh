#!/usr/bin/env bash
# The profiler's own descriptors stay out of the program's RLIMIT_NOFILE:
# under `ulimit -Sn 16` (hard limit higher), a program that opens files
# until EMFILE gets as many with libppx.so preloaded, every allocation
# sampled (libunwind's pipe is open), as without it. No collector listens:
# the collector's socket is not part of this count.
. "$(dirname "$0")/../lib/common.sh"
require_built

prog="$PROGS/open_until_emfile"
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -gt 64 ] || skip "hard RLIMIT_NOFILE $hard leaves no room above 16"
plain=$(ulimit -Sn 16 && "$prog") || die "open_until_emfile without ppx: exit status $?"
case $plain in "opened "*" EMFILE") ;; *) die "open_until_emfile without ppx printed: $plain" ;; esac
profiled=$(ulimit -Sn 16 && PPX_SOCKET="$TMP/none.sock" PPX_SAMPLE_RATE=1 LD_PRELOAD="$LIBPPX" "$prog" 2>"$TMP/stderr") ||
    die "open_until_emfile under libppx.so: exit status $?, stderr: $(cat "$TMP/stderr")"
expect_eq "descriptors the program opens at ulimit -Sn 16" "$plain" "$profiled"
expect_eq "stderr" "" "$(cat "$TMP/stderr")"
# A limit as large as usual: the same.
plain=$(ulimit -Sn 1024 && "$prog")
profiled=$(ulimit -Sn 1024 && PPX_SOCKET="$TMP/none.sock" PPX_SAMPLE_RATE=1 LD_PRELOAD="$LIBPPX" "$prog" 2>/dev/null)
expect_eq "descriptors the program opens at ulimit -Sn 1024" "$plain" "$profiled"
finish
