#!/usr/bin/env bash
# A program that writes garbage into every descriptor it has, libppx's
# socket among them (tests/progs/write_all_fds): the collector closes the
# corrupt stream with one clear line, takes the process back when it
# reconnects with a fresh HELLO, and the final profile holds the
# allocations made before the garbage and after it, exactly; the program's
# exit status is its own. With libc's write() (libppx's I/O hook sees the
# program touch its socket, and reconnects at once), with the raw system
# call (the collector's close is what libppx notices), and with half a
# record header written (nothing the collector can see until more follows:
# without the hook, the final state would go after it, and be lost).
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"
out="$TMP/out"
start_collector "$TMP/c.log" --socket "$sock" -o "$out"
for mode in write raw half; do
    arg=()
    [ "$mode" = write ] || arg=("$mode")
    (
        # Only descriptors of its own: what the test inherited (a pipe of
        # whoever runs the suite, make's jobserver) is not the program's to
        # write into.
        for fd in /proc/"$BASHPID"/fd/*; do
            fd=${fd##*/}
            [ "$fd" -le 2 ] || eval "exec $fd>&-"
        done
        PPX_SOCKET="$sock" PPX_SAMPLE_RATE=1 PPX_FLUSH_MS=20 LD_PRELOAD="$LIBPPX" \
            exec "$PROGS/write_all_fds" "${arg[@]}"
    ) >"$TMP/$mode.out" 2>"$TMP/$mode.err" &
    pid=$!
    wait "$pid"
    expect_eq "$mode: exit status" 7 "$?"
    expect_eq "$mode: stderr" "" "$(cat "$TMP/$mode.err")"
    grep -q '^wrote [1-9]' "$TMP/$mode.out" || fail "$mode: wrote into no descriptor: $(cat "$TMP/$mode.out")"
    wait_for 100 grep -q "^ppx: pid $pid exited" "$TMP/c.log" ||
        { fail "$mode: pid $pid never ended at the collector: $(cat "$TMP/c.log")"; continue; }
    flat=$(pprof_raw "$out/write_all_fds.$pid/heap.pb.gz" --flat-table) ||
        { fail "$mode: no final heap profile"; continue; }
    expect_figures "$flat" "$mode: final heap" garbage_before 100 100000 100 100000
    expect_figures "$flat" "$mode: final heap" garbage_after 100 200000 100 200000
    # The process ended once; one line about the corrupt stream, nothing
    # else. (None when the collector read the process's new connection
    # before the corrupt one: the old stream, stale, is then ignored.)
    expect_eq "$mode: ends of pid $pid" 1 "$(grep -c "^ppx: pid $pid exited" "$TMP/c.log")" ||
        note "$(cat "$TMP/c.log")"
    # (half a header: libppx.so, having seen the write, drops the connection
    # before the collector can tell, which then sees it cut short)
    line="ppx: pid $pid: unknown record type 4294967295 (length 4294967295); connection closed (the data before it is kept; a reconnection of the process resends its whole state)"
    [ "$mode" = half ] &&
        line="ppx: pid $pid: stream ended inside a record header (4 of 8 bytes); the data before it is kept"
    said=$(grep "^ppx: pid $pid:" "$TMP/c.log")
    [ -z "$said" ] || expect_eq "$mode: the corrupt stream's line" "$line" "$said"
done
stop_collector
expect_eq "exit status of ppx collect" 0 "$?"
finish
