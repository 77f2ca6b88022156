#!/usr/bin/env bash
# A target that reconnects during a CPU profile's window keeps sampling: a
# target started with plain LD_PRELOAD (no PPX_CPU_HZ) is asked for CPU
# samples by profile?seconds=6; during the window it closes every
# descriptor from 3 up, as daemons do, and libppx reconnects with a new
# HELLO (PPX_FLUSH_MS=100). The target sets its rate to 0 on each new
# connection, so the collector must ask again: spin_close_fds spins in
# spin_after only once the new connection is up, so every sample of
# spin_after in the profile was asked for again. Once the window ended,
# sampling has stopped (on the new connection).
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
fifo_target t 3 PPX_FLUSH_MS=100 "$PROGS/spin_close_fds"
target=$target_pid

curl -sf -o "$TMP/cpu.pb.gz" "$pp/profile?seconds=6&pid=$target" &
profile=$!
cleanup_kill "$profile"
# The window begins as soon as the request arrives (a bound, not a
# measurement: spin_before's samples below show it had begun); then the
# target drops its connection and reconnects.
sleep 1
echo close >&3
wait_for 150 grep -q '^reconnected\|^no socket' "$TMP/t.out" ||
    die "spin_close_fds did not close its descriptors"
grep -q '^reconnected' "$TMP/t.out" || fail "libppx did not reconnect after the descriptors closed"
wait "$profile" || fail "profile?seconds=6 failed"

samples=$(pprof_raw "$TMP/cpu.pb.gz" --total --type samples 2>/dev/null || echo 0)
before=$(pprof_raw "$TMP/cpu.pb.gz" --type samples --flat spin_before 2>/dev/null || echo 0)
after=$(pprof_raw "$TMP/cpu.pb.gz" --type samples --flat spin_after 2>/dev/null || echo 0)
note "profile?seconds=6: $samples samples, $before in spin_before, $after in spin_after"
[ "$before" -gt 0 ] || fail "profile?seconds=6: no samples in spin_before (before the reconnect)"
# Both spins run for seconds at 100 Hz; any sample is proof enough (no
# timing thresholds).
[ "$after" -gt 0 ] || fail "profile?seconds=6: no samples in spin_after (after the reconnect)"

# The window ended: the command that stops sampling reached the new connection.
snapshot_of "$target" "$TMP/s1" || die "ppx snapshot failed"
sleep 1
snapshot_of "$target" "$TMP/s2" || die "ppx snapshot failed"
first=$(cpu_samples "$TMP/s1")
[ "${first:-0}" -gt 0 ] || fail "the snapshot after the profile has no CPU samples"
expect_eq "CPU samples one second after the profile window (sampling stopped)" "$first" \
    "$(cpu_samples "$TMP/s2")"

exec 3>&-
wait "$target"
expect_eq "exit status of spin_close_fds" 0 "$?"
kill -TERM "$collector"
wait "$collector"
expect_eq "exit status of ppx collect" 0 "$?"
finish
