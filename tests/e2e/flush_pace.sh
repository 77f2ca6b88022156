#!/usr/bin/env bash
# The flusher's pace: PPX_FLUSH_MS (100 ms) while the heap moves, doubling
# up to PPX_FLUSH_IDLE_MS (1 s) while nothing much changes, so that a
# steady server is woken once a second, not ten times. tests/progs/phases
# grows its heap by 4 MiB every 250 ms for 3 s, then holds it while it
# spins 1.5 s, and at the end sleeps 2 s with nothing in use. The
# flusher's wake-ups (its poll() on the collector's socket, strace -f) are
# counted in each phase: ~30 while it grows (each flush sees the heap
# moved), ~9 in the 3.5 s of spin and end (100 + 200 + 400 + 800 ms, then
# a second each), where a flush every 100 ms would make 35.
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
finish
