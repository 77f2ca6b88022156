#!/usr/bin/env bash
# With no collector, libppx.so starts no thread: a program that must be
# single-threaded (unshare(CLONE_NEWUSER), tests/progs/single_thread) works
# as without ppx. A collector started later is found: the program, at a
# sampled allocation, looks for one at most once a second, and then starts
# its flusher; the collector gets the whole profile.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"

prog="$PROGS/single_thread"
"$prog" unshare >"$TMP/plain.out" 2>&1
plain_status=$?
expect_eq "threads, plain" "threads 1" "$(head -n 1 "$TMP/plain.out")"
PPX_SOCKET="$TMP/none/ppx.sock" PPX_SPOOL=0 LD_PRELOAD="$LIBPPX" "$prog" unshare >"$TMP/ppx.out" 2>&1
ppx_status=$?
expect_eq "threads, under ppx with no collector" "threads 1" "$(head -n 1 "$TMP/ppx.out")"
if [ "$plain_status" -eq 0 ]; then
    expect_eq "unshare(CLONE_NEWUSER), under ppx with no collector" "unshare ok" "$(sed -n 2p "$TMP/ppx.out")"
    expect_eq "exit status, under ppx with no collector" 0 "$ppx_status"
else
    # The kernel refuses user namespaces here even without ppx: the thread
    # count above is what this test can check.
    note "unshare(CLONE_NEWUSER) fails here without ppx ($(sed -n 2p "$TMP/plain.out")): checked Threads: only"
fi

# Allocations over more than a second (the target looks for a collector
# then) start no thread while there is none.
{ echo alloc; sleep 1.2; echo alloc; } |
    PPX_SOCKET="$TMP/none/ppx.sock" PPX_SPOOL=0 PPX_SAMPLE_RATE=1 LD_PRELOAD="$LIBPPX" "$prog" wait \
        >"$TMP/alone.out" 2>&1
expect_eq "exit status, allocating with no collector" 0 "$?"
expect_eq "threads at the end, allocating with no collector" "threads 1" "$(tail -n 1 "$TMP/alone.out")"

# A collector started after the target.
sock="$TMP/run/ppx.sock"
start_fed t 3 env PPX_SOCKET="$sock" PPX_SAMPLE_RATE=1 LD_PRELOAD="$LIBPPX" "$prog" wait
target=$fed_pid
expect_eq "threads of the waiting target with no collector" "threads 1" "$(head -n 1 "$TMP/t.out")"
start_collector "$TMP/c.log" --socket "$sock" -o "$TMP/out"
# poke: one "alloc" line (alloc_100x1000 runs), then is the target known?
pokes=0
poke() {
    echo alloc >&3
    pokes=$((pokes + 1))
    "$PPX" snapshot --socket "$sock" --pid "$target" -o "$TMP/snap"
}
# A bound on the wait (the target looks once a second), not a measurement.
wait_for 100 poke || die "a collector started after the target never heard of it (log: $(cat "$TMP/c.log"))"
exec 3>&-
wait "$target"
expect_eq "exit status of the target" 0 "$?"
# With a collector there is a flusher thread (README: the cost).
expect_eq "threads of the target at its end, a collector running" "threads 2" "$(tail -n 1 "$TMP/t.out")"
wait_for 100 test -s "$TMP/out/single_thread.$target/allocs.pb.gz" ||
    die "no final profiles for the target (log: $(cat "$TMP/c.log"))"
flat=$(pprof_raw "$TMP/out/single_thread.$target/allocs.pb.gz" --flat-table) || die "cannot read allocs.pb.gz"
n=$((pokes * 100))
expect_figures "$flat" "final allocs, $pokes lines" alloc_100x1000 "$n" $((n * 1000)) "$n" $((n * 1000))
finish
