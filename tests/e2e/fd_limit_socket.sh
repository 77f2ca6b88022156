#!/usr/bin/env bash
# The collector connection stays out of the program's RLIMIT_NOFILE: under
# `ulimit -Sn 16` (and 1024; the hard limit higher), a program that opens
# files until EMFILE (tests/progs/open_until_emfile) gets as many with a
# collector listening, libppx.so connected to it, as with none: the socket
# sits above the soft limit (preload/fd_place.c). Whatever else libppx.so
# opens (libunwind's pipe) is in both counts alike.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/collect.sh"
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -gt 1100 ] || skip "hard RLIMIT_NOFILE $hard leaves no room above 1024"
prog="$PROGS/open_until_emfile"
sock="$TMP/ppx.sock"
start_collector "$TMP/c.log" --socket "$sock" --http 127.0.0.1:0
for soft in 16 1024; do
    none=$(ulimit -Sn "$soft" && PPX_SOCKET="$TMP/none.sock" LD_PRELOAD="$LIBPPX" "$prog" 2>"$TMP/none.err") ||
        die "at $soft, with no collector: exit status $?, stderr: $(cat "$TMP/none.err")"
    case $none in "opened "*" EMFILE") ;; *) die "at $soft, with no collector, the program printed: $none" ;; esac
    with=$(ulimit -Sn "$soft" && PPX_SOCKET="$sock" LD_PRELOAD="$LIBPPX" "$prog" 2>"$TMP/with.err")
    expect_eq "at ulimit -Sn $soft: exit status with a collector" 0 "$?"
    expect_eq "at ulimit -Sn $soft: descriptors the program opens with a collector" "$none" "$with"
    expect_eq "at ulimit -Sn $soft: stderr" "" "$(cat "$TMP/with.err")"
done
# It was connected: both runs are in the collector.
n=$(curl -sf "$pp/" | grep -c 'open_until_emfile')
[ "$n" -ge 2 ] || fail "the collector lists $n open_until_emfile processes, not 2: $(curl -sf "$pp/")"
stop_collector
finish
