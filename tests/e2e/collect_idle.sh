#!/usr/bin/env bash
# An idle target (here sleep(1), which makes no call after its start) is
# picked up again by a collector restarted after the first one was killed:
# the target notices the closed connection at its next flush and reconnects,
# although it has nothing new to send.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/collect.sh"

sock="$TMP/run/ppx.sock"
mkdir -m 700 "$TMP/run"

start_collector "$TMP/c1.log" --socket "$sock"

PPX_SOCKET="$sock" LD_PRELOAD="$LIBPPX" sleep 30 &
target=$!
cleanup_kill "$target"
wait_for 100 "$PPX" snapshot --socket "$sock" --pid "$target" -o "$TMP/s1" ||
    die "the first collector never saw pid $target"

kill -KILL "$collector"
wait "$collector" 2>/dev/null
start_collector "$TMP/c2.log" --socket "$sock"
# A flush interval is 100 ms: 5 s is a bound, not a measurement.
wait_for 50 "$PPX" snapshot --socket "$sock" --pid "$target" -o "$TMP/s2" ||
    fail "the restarted collector never saw the idle pid $target"
[ -s "$TMP/s2/threadcreate.pb.gz" ] ||
    fail "no threadcreate.pb.gz in the restarted collector's snapshot: $(ls "$TMP/s2" 2>&1)"
kill -0 "$target" 2>/dev/null || fail "the target is not running any more"
finish
