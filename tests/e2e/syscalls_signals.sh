#!/usr/bin/env bash
# I/O calls counted exactly when a signal handler makes calls of its own
# while it interrupts the program's (and the profiler's counting of them),
# and when two threads call from one site: tests/progs/io_signals prints how
# many write() calls each function made; syscalls.pb.gz must hold exactly
# those figures per calling function.
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

prog="$PROGS/io_signals"

for mode in default stacks_all; do
    case $mode in
    default) env=() ;;
    stacks_all) env=(PPX_SYSCALL_STACKS=all) ;;
    esac
    out="$TMP/$mode"
    env "${env[@]}" "$PPX" record -q -o "$out" -- "$prog" >"$TMP/$mode.txt" 2>"$TMP/$mode.err" ||
        die "$mode: ppx record -- io_signals: exit status $?: $(cat "$TMP/$mode.err")"
    read -r handler main thread < <(sed -n \
        's/^handler_writes=\([0-9]*\) main_writes=\([0-9]*\) thread_writes=\([0-9]*\)$/\1 \2 \3/p' \
        "$TMP/$mode.txt")
    [ -n "${thread:-}" ] || die "$mode: io_signals printed: $(cat "$TMP/$mode.txt")"
    io_sites "$out/syscalls.pb.gz" >"$TMP/$mode.sites" ||
        die "$mode: go tool pprof cannot read $out/syscalls.pb.gz"
    calls_from() { awk -v f="$1" '$1 == "write" && $2 == f { s += $4 } END { print s + 0 }' "$TMP/$mode.sites"; }
    expect_eq "$mode: write calls from the SIGALRM handler" "$handler" "$(calls_from alarm_write)"
    expect_eq "$mode: write calls from main_write_loop" "$main" "$(calls_from main_write_loop)"
    expect_eq "$mode: write calls from thread_write_loop (2 threads)" "$thread" "$(calls_from thread_write_loop)"
    note "$mode: $handler handler writes, $main + $thread loop writes"
done
finish
