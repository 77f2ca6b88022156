#!/usr/bin/env bash
# main() calls pthread_exit while a worker runs on (tests/progs/main_thread_exit):
# glibc exits the process when the last thread ends, on that thread, whether
# it returns, calls pthread_exit or is cancelled. Under ppx, with a
# collector (ppx record: the flusher thread runs) and without:
#  - the atexit handler runs on the worker (its tid, its thread-local
#    marker), not on a thread of ppx: the output is the plain run's;
#  - exit status 0;
#  - the profile has the worker's allocations.
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

prog="$PROGS/main_thread_exit"
for how in return exit cancel; do
    "$prog" "$how" >"$TMP/plain.out" 2>&1
    expect_eq "exit status, plain, worker ends by $how" 0 "$?"
    expect_eq "output, plain, worker ends by $how" \
        "main ends|worker done|atexit on the worker: tid yes, marker 1" "$(paste -sd'|' "$TMP/plain.out")"

    PPX_SOCKET="$TMP/none/ppx.sock" PPX_SPOOL=0 LD_PRELOAD="$LIBPPX" "$prog" "$how" >"$TMP/alone.out" 2>&1
    expect_eq "exit status, no collector, worker ends by $how" 0 "$?"
    diff -u "$TMP/plain.out" "$TMP/alone.out" >"$TMP/alone.diff" ||
        fail "output with no collector (worker ends by $how) differs from the plain run: $(cat "$TMP/alone.diff")"

    rm -rf "$TMP/rec"
    "$PPX" record -q --exact -o "$TMP/rec" -- "$prog" "$how" >"$TMP/rec.out" 2>"$TMP/rec.err"
    expect_eq "exit status, ppx record, worker ends by $how" 0 "$?"
    diff -u "$TMP/plain.out" "$TMP/rec.out" >"$TMP/rec.diff" ||
        fail "output under ppx record (worker ends by $how) differs from the plain run: $(cat "$TMP/rec.diff")"
    [ ! -s "$TMP/rec.err" ] || fail "ppx record (worker ends by $how) said something: $(cat "$TMP/rec.err")"
    flat=$(pprof_raw "$TMP/rec/heap.pb.gz" --flat-table) || die "cannot read the heap profile ($how)"
    expect_figures "$flat" "ppx record, worker ends by $how" worker_allocs 100 100000 100 100000
done
finish
