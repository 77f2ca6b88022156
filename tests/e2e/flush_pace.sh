#!/usr/bin/env bash
# The flusher's pace: PPX_FLUSH_MS (100 ms) while the heap moves, doubling
# up to PPX_FLUSH_IDLE_MS (1 s) while nothing much changes, so that a
# steady server is woken once a second, not ten times. tests/progs/phases
# grows its heap by 4 MiB every 250 ms for 3 s, then holds it while it
# spins 1.5 s, and at the end sleeps 2 s with nothing in use. The
# flusher's wake-ups (its poll() on the collector's socket, strace -f) are
# counted in each phase: ~30 while it grows (each flush sees the heap
# moved), ~9 in the 3.5 s of spin and end (100 + 200 + 400 + 800 ms, then
# a second each), where a flush every 100 ms would make 35. The same with
# a CPU profile running, below.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/collect.sh"
require_cmd strace strace
start_collector "$TMP/collect.log" --socket "$sock"
strace -f -qq -ttt -e trace=poll -o "$TMP/strace" \
    -E PPX_SOCKET="$sock" -E LD_PRELOAD="$LIBPPX" "$PROGS/phases" >"$TMP/phases.out" 2>"$TMP/phases.err" ||
    die "phases failed: $(cat "$TMP/phases.err")"
count() { # FROM_PHASE TO_PHASE (or "exit"): the flusher's polls between them
    awk -v from="$1" -v to="$2" '
        FNR == NR { if (NF == 2) t[$1] = $2; next }
        $3 ~ /^poll\(/ && $1 != "" {
            if ($2 >= t[from] && (to == "exit" || $2 < t[to])) n++
        }
        END { print n + 0 }' "$TMP/phases.out" "$TMP/strace"
}
grow=$(count grow spin)
spin=$(count spin free)
end=$(count end exit)
note "flusher wake-ups: grow (3 s) $grow, spin (1.5 s) $spin, end (2 s) $end"
[ "$grow" -ge 15 ] || fail "the heap grew 4 MiB every 250 ms, yet only $grow flushes in 3 s (expected ~30: the fast pace)"
[ $((spin + end)) -le 15 ] || fail "$((spin + end)) flushes in the 3.5 s of spin and end, where the heap was steady (expected ~9; 35 at a fixed 100 ms)"
[ $((spin + end)) -ge 4 ] || fail "$((spin + end)) flushes in 3.5 s: the flusher stopped flushing"
stop_collector || fail "ppx collect exit status $?"

# Under a CPU profile (ppx record: 100 Hz), tests/progs/deep_spin sleeps
# 1.5 s, spins 2 s of CPU 60 calls deep (a tick is ~62 words: its thread's
# ring, sized for two 100 ms flushes of a thread at full speed, is half
# full every ~160 ms of CPU), then sleeps 1.5 s. The flusher slows down
# while the ticks come slowly (the idle stretches: ~5 wake-ups, where a
# fixed 100 ms pace makes 30), and the SIGPROF handlers wake it through its
# pipe as rings fill: every tick of the spin arrives, none lost. (Target
# polls are told from ppx record's own by their descriptors: libppx.so's
# are above the soft limit.)
require_pprof
strace -f -qq -ttt -e trace=poll -o "$TMP/cpu.strace" \
    "$PPX" record -q -o "$TMP/cpu" -- "$PROGS/deep_spin" 2 >"$TMP/deep.out" 2>"$TMP/deep.err" ||
    die "deep_spin under ppx record failed: $(cat "$TMP/deep.err")"
awk '$3 ~ /^poll\(\[\{fd=[0-9][0-9][0-9]+,/' "$TMP/cpu.strace" >"$TMP/target.strace"
count_in() { # FROM TO FILE_OF_PHASES: target polls between two phases ("exit": the end)
    awk -v from="$1" -v to="$2" '
        FNR == NR { if (NF == 2) t[$1] = $2; next }
        $2 >= t[from] && (to == "exit" || $2 < t[to]) { n++ }
        END { print n + 0 }' "$TMP/deep.out" "$TMP/target.strace"
}
idle=$(count_in idle spin)
rest=$(count_in rest exit)
wake_fd=$(sed -n '1s/.*}, {fd=\([0-9]*\), events=POLLIN}.*/\1/p' "$TMP/target.strace")
woken=$(grep -c "{fd=${wake_fd:-none}, revents=POLLIN}" "$TMP/cpu.strace")
ticks=$(pprof_raw "$TMP/cpu/cpu.pb.gz" --dump |
    awk -F'\t' 'NR > 1 && $3 ~ /(^|;)spin_leaf;spin_down;/ { split($1, v, " "); s += v[1] } END { print s + 0 }')
lost=$(pprof_raw "$TMP/cpu/cpu.pb.gz" --dump | grep -c 'lost samples')
note "CPU profile: flusher wake-ups idle (1.5 s) $idle, rest (1.5 s) $rest; woken by a ring $woken times; spin_leaf ticks $ticks (2 s at 100 Hz: 200)"
[ $((idle + rest)) -le 14 ] || fail "$((idle + rest)) flushes in 3 s of sleep under a CPU profile (expected ~6; 30 at a fixed 100 ms)"
[ "$ticks" -ge 185 ] && [ "$ticks" -le 215 ] || fail "spin_leaf has $ticks ticks, expected 200 (2 s of CPU at 100 Hz): ticks lost?"
expect_eq "stacks of lost samples" 0 "$lost"
[ "$woken" -ge 3 ] || fail "the rings woke the flusher $woken times in 2 s of deep CPU (expected ~12)"
finish
