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
# Deterministically, what the counts above catch only when the timing is
# right: no thread of libppx.so's takes a descriptor under the soft limit
# while the program runs (the main thread's come before main(), or are
# moved at once). strace -f: every call that makes a descriptor, and on
# which thread.
if command -v strace >/dev/null; then
    (ulimit -Sn 16 && PPX_SOCKET="$sock" LD_PRELOAD="$LIBPPX" strace -f -qq -o "$TMP/strace" \
        -e trace=open,openat,socket,pipe,pipe2,dup,dup2,dup3,fcntl,eventfd2,memfd_create "$prog" \
        >/dev/null 2>&1)
    main=$(awk 'NR == 1 { print $1 }' "$TMP/strace")
    low=$(awk -v main="$main" '$1 != main && / = [0-9]+/ {
            n = $NF + 0; if ($(NF - 1) == "=" && n < 16 && $0 !~ /F_GETF|F_SETF/) print }' "$TMP/strace")
    expect_eq "descriptors under the soft limit from threads other than main" "" "$low"
    grep -q 'open_until_emfile\|/dev/null' "$TMP/strace" || fail "strace saw no open of the program's"
else
    note "no strace: the per-thread descriptor check is skipped"
fi

# It was connected: both runs are in the collector.
n=$(curl -sf "$pp/" | grep -c 'open_until_emfile')
[ "$n" -ge 3 ] || fail "the collector lists $n open_until_emfile processes, not 3: $(curl -sf "$pp/")"
stop_collector
finish
