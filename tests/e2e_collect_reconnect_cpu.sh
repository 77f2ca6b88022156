#!/usr/bin/env bash
# A target that reconnects during a CPU profile's window keeps sampling: a
# target started with plain LD_PRELOAD (no PPX_CPU_HZ) is asked for CPU
# samples by profile?seconds=15; during the window it closes every
# descriptor from 3 up, as daemons do, and libppx reconnects with a new
# HELLO (PPX_FLUSH_MS=100). The target sets its rate to 0 on each new
# connection, so the collector must ask again: the function it spins in
# after the reconnect keeps gaining samples inside the window, and has
# them in the profile. Once the window ended, sampling has stopped (on the
# new connection).
. "$(dirname "$0")/lib/common.sh"
require_built
require_pprof
. "$(dirname "$0")/lib/collect.sh"
cd "$TMP" || exit 99
sock="$TMP/sock/ppx.sock"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
fifo_target t 3 spin_close_fds PPX_FLUSH_MS=100
target=$target_pid

# snapshot DIR: ppx snapshot of the target into DIR (--pid: the files are
# in DIR itself); cpu_samples DIR: the samples of its CPU profile.
snapshot() {
    rm -rf "$1"
    "$PPX" snapshot --socket "$sock" --pid "$target" -o "$1" >/dev/null
}
cpu_samples() {
    [ -s "$1/cpu.pb.gz" ] || { echo 0; return; }
    pprof_raw "$1/cpu.pb.gz" --total --type samples 2>/dev/null || echo 0
}
sampling() { snapshot "$TMP/poll" && [ "$(cpu_samples "$TMP/poll")" -gt 0 ]; }

# A long window: the steps below take a few seconds, more on a loaded machine,
# and must all fall inside it.
curl -sf -o "$TMP/cpu.pb.gz" "$pp/profile?seconds=15&pid=$target" &
profile=$!
cleanup_kill "$profile"
# The window has begun once the target samples (nobody else asks it to);
# then it drops its connection and reconnects.
wait_for 30 sampling || die "spin_close_fds does not sample CPU in the profile's window"
echo close >&3
wait_for 100 grep -q '^closed' "$TMP/t.out" || die "spin_close_fds did not close its descriptors"
# after_samples DIR: spin_after's samples in a snapshot's CPU profile.
after_samples() {
    [ -s "$1/cpu.pb.gz" ] || { echo 0; return; }
    pprof_raw "$1/cpu.pb.gz" --type samples --flat spin_after 2>/dev/null || echo 0
}
# Still inside the window, once the target has reconnected (it does so at
# its next flush, within 100 ms; 0.5 s is a bound): its spin_after samples
# keep growing. Without the collector's new command they would stop at
# the few taken before it noticed its connection was gone.
sleep 0.5
snapshot "$TMP/r0" || die "ppx snapshot failed"
reconnected=$(after_samples "$TMP/r0")
grows() { snapshot "$TMP/r1" && [ "$(after_samples "$TMP/r1")" -gt "$reconnected" ]; }
wait_for 20 grows || fail "no CPU samples after the reconnect, inside the window ($reconnected before it)"
wait "$profile" || fail "profile?seconds=15 failed"

samples=$(pprof_raw "$TMP/cpu.pb.gz" --total --type samples 2>/dev/null || echo 0)
before=$(pprof_raw "$TMP/cpu.pb.gz" --type samples --flat spin_before 2>/dev/null || echo 0)
after=$(pprof_raw "$TMP/cpu.pb.gz" --type samples --flat spin_after 2>/dev/null || echo 0)
note "profile?seconds=15: $samples samples, $before in spin_before, $after in spin_after"
[ "$before" -gt 0 ] || fail "profile?seconds=15: no samples in spin_before (before the reconnect)"
[ "$after" -gt "$reconnected" ] ||
    fail "profile?seconds=15: $after samples in spin_after, no more than the $reconnected before the reconnect"

# The window ended: the command that stops sampling reached the new connection.
snapshot "$TMP/s1" || die "ppx snapshot failed"
sleep 1
snapshot "$TMP/s2" || die "ppx snapshot failed"
first=$(cpu_samples "$TMP/s1")
[ "$first" -gt 0 ] || fail "the snapshot after the profile has no CPU samples"
expect_eq "CPU samples one second after the profile window (sampling stopped)" "$first" \
    "$(cpu_samples "$TMP/s2")"

exec 3>&-
wait "$target"
expect_eq "exit status of spin_close_fds" 0 "$?"
kill -TERM "$collector"
wait "$collector"
expect_eq "exit status of ppx collect" 0 "$?"
finish
