#!/usr/bin/env bash
# A state-threads layout that does not fit is not used, said once, and
# the program runs on (/debug/pprof/goroutine):
#  - st_own_layout_swapped: its DWARF is read right, but its saved
#    contexts hold the stack pointer where state-threads' md.S has rbx:
#    no parked coroutine's saved stack pointer lies inside its stack, so
#    two dumps show its thread and no coroutine, and its stderr says
#    once that coroutine dumps are off;
#  - st_own_layout_global under a collector (tests/lib/layout_collector.py)
#    that sends a layout whose state member lies past the end of its
#    record: refused before anything is read (said once), the dump still
#    answered with the thread and no coroutine, and a next dump without a
#    layout answered on the same connection;
#  - both programs exit 0.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
fifo_target swapped 3 "$PROGS/st_own_layout_swapped" 5 3 4 2
for i in 1 2; do
    curl -sf --max-time 30 -o "$TMP/swapped$i.pb.gz" "$pp/goroutine?pid=$target_pid" ||
        die "goroutine failed"
    expect_eq "swapped context, dump $i: threads and coroutines by kind" "$(printf 'thread\t1')" \
        "$(pprof_raw "$TMP/swapped$i.pb.gz" --sum-by kind --type goroutine)"
done
quit_fed 3 "$target_pid" "st_own_layout_swapped"
expect_eq "swapped context: said once" \
    "ppx: state-threads coroutines are not dumped: no parked record has its saved stack pointer inside its stack: the layout does not match" \
    "$(grep '^ppx: ' "$TMP/swapped.err")"
stop_collector
expect_eq "exit status of ppx collect" 0 "$?"

fake=$TMP/fake/ppx.sock
start_fed collector 4 python3 "$TESTS_LIB/layout_collector.py" "$fake"
start_fed global 5 env -u PPX_CPU_HZ PPX_SOCKET="$fake" LD_PRELOAD="$LIBPPX" \
    "$PROGS/st_own_layout_global" 5 3 4 2
global_pid=$fed_pid
echo bad >&4
wait_for 300 grep -q '^dump 1 ' "$TMP/collector.out" || die "no answer to the bad layout"
echo plain >&4
wait_for 300 grep -q '^dump 2 ' "$TMP/collector.out" || die "no answer after the bad layout"
expect_eq "the dumps' answers" "$(printf 'dump 1 threads 1 coroutines 0\ndump 2 threads 1 coroutines 0')" \
    "$(grep '^dump ' "$TMP/collector.out")"
quit_fed 5 "$global_pid" "st_own_layout_global"
expect_eq "a layout out of its records: said once" \
    "ppx: the collector's state-threads layout is refused (a member outside the thread record): coroutines are not dumped" \
    "$(grep '^ppx: ' "$TMP/global.err")"
exec 4>&-
finish
