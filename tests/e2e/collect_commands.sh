#!/usr/bin/env bash
# The collector's commands to its targets (wire.h), on a target started
# with plain LD_PRELOAD, without PPX_CPU_HZ, with PPX_FLUSH_MS=60000 (so
# that no periodic flush happens during the test):
#  - it samples no CPU until profile?seconds=2 asks: a snapshot after a
#    second of spinning has no CPU sample; the profile's samples are
#    spin_forever's; once the window ended, sampling has stopped;
#  - heap?pid=N asks it to flush first: what it allocated after its last
#    flush is in the profile (100 blocks of 1000 bytes, every allocation
#    recorded);
#  - under PPX_CPU_HZ it samples from the start, and a profile window does
#    not stop it.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
fifo_target t 3 PPX_SAMPLE_RATE=1 PPX_FLUSH_MS=60000 "$PROGS/spin_on_demand"
target=$target_pid

sleep 1 # a target sampling at 100 Hz would have ~100 samples of spinning by now
snapshot_of "$target" "$TMP/s1" || die "ppx snapshot failed"
expect_eq "CPU samples before anyone asked" 0 "$(cpu_samples "$TMP/s1")"

curl -sf -o "$TMP/cpu.pb.gz" "$pp/profile?seconds=2&pid=$target" || fail "profile?seconds=2 failed"
samples=$(pprof_raw "$TMP/cpu.pb.gz" --total --type samples 2>/dev/null || echo 0)
spin=$(pprof_raw "$TMP/cpu.pb.gz" --type samples --flat spin_forever 2>/dev/null || echo 0)
note "profile?seconds=2: $samples samples, $spin in spin_forever"
# 2 s of a spinning thread at 100 Hz is ~200; any is proof enough here
# (no timing thresholds), and most must be the spinning function's.
[ "$samples" -gt 0 ] || fail "profile?seconds=2: no CPU samples"
[ $((spin * 2)) -gt "$samples" ] || fail "profile?seconds=2: only $spin of $samples samples in spin_forever"

snapshot_of "$target" "$TMP/s2" || die "ppx snapshot failed"
sleep 1
snapshot_of "$target" "$TMP/s3" || die "ppx snapshot failed"
after=$(cpu_samples "$TMP/s2")
[ "${after:-0}" -gt 0 ] || fail "the snapshot after the profile has no CPU samples"
expect_eq "CPU samples one second after the profile window (sampling stopped)" "$after" "$(cpu_samples "$TMP/s3")"

# Flush now: allocations made after the last flush (the one that answered
# the last snapshot) are in heap?pid=N.
curl -sf -o "$TMP/heap1.pb.gz" "$pp/heap?pid=$target" || fail "heap?pid=$target failed"
expect_eq "allocate_late before it ran" 0 \
    "$(pprof_raw "$TMP/heap1.pb.gz" --type inuse_space --flat allocate_late 2>/dev/null || echo 0)"
echo alloc >&3
wait_for 300 grep -q '^allocated' "$TMP/t.out" || die "spin_on_demand did not allocate"
curl -sf -o "$TMP/heap2.pb.gz" "$pp/heap?pid=$target" || fail "heap?pid=$target failed"
expect_eq "allocate_late in heap?pid=N right after it ran (inuse_space)" 100000 \
    "$(pprof_raw "$TMP/heap2.pb.gz" --type inuse_space --flat allocate_late 2>/dev/null || echo 0)"
curl -sf -o "$TMP/allocs.txt" "$pp/allocs?pid=$target&debug=1" || fail "allocs?debug=1 failed"
grep -q 'allocate_late' "$TMP/allocs.txt" || fail "allocs?debug=1: no allocate_late"
exec 3>&-
wait "$target"
expect_eq "exit status of spin_on_demand" 0 "$?"

# PPX_CPU_HZ set: sampled from the start, and still after a window.
fifo_target f 4 PPX_CPU_HZ=100 PPX_FLUSH_MS=60000 "$PROGS/spin_on_demand"
fixed=$target_pid
sleep 1
snapshot_of "$fixed" "$TMP/f1" || die "ppx snapshot failed"
[ "$(cpu_samples "$TMP/f1")" -gt 0 ] 2>/dev/null || fail "PPX_CPU_HZ=100: no CPU samples before any profile window"
curl -sf -o /dev/null "$pp/profile?seconds=1&pid=$fixed" || fail "profile?seconds=1 (PPX_CPU_HZ=100) failed"
snapshot_of "$fixed" "$TMP/f2" || die "ppx snapshot failed"
sleep 1
snapshot_of "$fixed" "$TMP/f3" || die "ppx snapshot failed"
[ "$(cpu_samples "$TMP/f3")" -gt "$(cpu_samples "$TMP/f2")" ] 2>/dev/null ||
    fail "PPX_CPU_HZ=100: sampling stopped after a profile window"
exec 4>&-
wait "$fixed"

kill -TERM "$collector"
wait "$collector"
expect_eq "exit status of ppx collect" 0 "$?"
finish
