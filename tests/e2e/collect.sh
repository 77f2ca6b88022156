#!/usr/bin/env bash
# ppx collect, the live collector, on an exactly known program
# (tests/progs/known_allocs, PPX_SAMPLE_RATE=1: every figure is known):
#  - a target started BEFORE the collector is picked up with its whole
#    history (at an allocation: with no collector it has no thread, and
#    looks for one at most once a second, from its sampled allocations);
#  - the collector killed (SIGKILL) and restarted mid-run loses nothing:
#    allocations made while no collector ran arrive too, and the final
#    profiles the restarted collector writes on the target's exit (-o DIR:
#    DIR/known_allocs.PID/) equal those of an uninterrupted ppx record run;
#  - several targets at once: each gets its own final profiles, and the
#    merged HTTP profile labels samples with their pids;
#  - ?seconds=N (a delta) holds exactly what was allocated in the window;
#  - ppx snapshot writes the profiles now and lists them;
#  - at SIGTERM the collector writes the profiles of targets still running.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/known_allocs.sh"
require_pprof
. "$TESTS_LIB/collect.sh"

out="$TMP/out"
prog="$PROGS/known_allocs"

# known_allocs under LD_PRELOAD, streaming to $sock, every allocation recorded.
target=(env PPX_SOCKET="$sock" PPX_SAMPLE_RATE=1 LD_PRELOAD="$LIBPPX" "$prog")
fetch() { curl -sf -o "$1" "$2"; }
# has_figure URL FILE FUNC TYPE VALUE: the profile at URL (saved in FILE)
# has VALUE for FUNC; for wait_for.
has_figure() {
    fetch "$2" "$1" || return 1
    [ "$(table_get "$(pprof_raw "$2" --flat-table 2>/dev/null)" "$3" "$4")" = "$5" ]
}

# The reference: the same run, uninterrupted, under ppx record.
known_reference "$TMP/ref"

# 1. The target first, with no collector anywhere: it runs, quietly.
start_fed a 3 "${target[@]}" pause
a=$fed_pid
[ ! -s "$TMP/a.err" ] || fail "the target said something without a collector: $(cat "$TMP/a.err")"

# 2. The collector, later: at its next allocations the target finds it,
# connects and sends its whole history.
start_collector "$TMP/c1.log" --socket "$sock" --http 127.0.0.1:0 -o "$out"
poked_has_figure() {
    echo poke >&3
    has_figure "$@"
}
wait_for 100 poked_has_figure "$url/debug/pprof/heap?pid=$a" "$TMP/h1.pb.gz" leak_64x1000 inuse_space 64000 ||
    die "a target started before the collector never showed its history (log: $(cat "$TMP/c1.log"))"
flat=$(pprof_raw "$TMP/h1.pb.gz" --flat-table)
expect_figures "$flat" "history at first contact" leak_64x1000 1000 64000 1000 64000
expect_figures "$flat" "history at first contact" thread_worker 1000 128000 1000 128000

# 3. The collector dies without a word; the target allocates meanwhile.
# (A target notices a dead collector when a send fails: an idle one would
# stay unseen by the next collector until it has something to send.)
kill -KILL "$collector"
wait "$collector" 2>/dev/null
echo alloc >&3
wait_for 300 grep -q '^done' "$TMP/a.out" || die "known_allocs did not run between_snapshots"

# 4. A new collector on the same (stale) socket gets everything back.
start_collector "$TMP/c2.log" --socket "$sock" --http 127.0.0.1:0 -o "$out"
wait_for 100 has_figure "$url/debug/pprof/allocs?pid=$a" "$TMP/a2.pb.gz" between_snapshots alloc_objects 100 ||
    die "after the collector's restart, the allocations made meanwhile never arrived (log: $(cat "$TMP/c2.log"))"
# The threads are resent too: the main one and the 4 workers.
fetch "$TMP/threads.pb.gz" "$url/debug/pprof/threadcreate?pid=$a" || fail "threadcreate?pid=$a failed"
flat=$(pprof_raw "$TMP/threads.pb.gz" --flat-table) || die "cannot read threadcreate?pid=$a"
expect_eq "threads created by run_threads, after the restart" 4 "$(table_get "$flat" run_threads threadcreate)"
expect_eq "main thread, after the restart" 1 "$(table_get "$flat" "main thread" threadcreate)"

# 5. A delta: ?seconds=N holds what was allocated in the window, exactly.
curl -sf -o "$TMP/delta.pb.gz" "$url/debug/pprof/allocs?pid=$a&seconds=2" 3>&- &
curl_pid=$!
sleep 0.5 # inside the window (a bound, not a measurement: the window is 2 s)
echo alloc >&3
wait "$curl_pid" || fail "allocs?seconds=2 failed"
flat=$(pprof_raw "$TMP/delta.pb.gz" --flat-table) || die "cannot read the delta profile"
expect_figures "$flat" "allocs?seconds=2" between_snapshots 100 100000 100 100000
expect_figures "$flat" "allocs?seconds=2" leak_64x1000 0 0 0 0
duration=$(header_field "$(pprof_raw "$TMP/delta.pb.gz" --header)" duration)
case $duration in 2.* | 2) ;; *) fail "delta profile duration: expected the 2 s window, got '$duration'" ;; esac

# 6. A second target, short-lived: its own final profiles; while it is
# kept, the merged profile labels both.
"${target[@]}" >"$TMP/b.out" 2>"$TMP/b.err" 3>&- &
b=$!
wait "$b"
expect_eq "exit status of a second target" 0 "$?"
wait_for 100 test -s "$out/known_allocs.$b/heap.pb.gz" ||
    die "no final profiles for the second target in $out/known_allocs.$b (log: $(cat "$TMP/c2.log"))"
flat=$(pprof_raw "$out/known_allocs.$b/heap.pb.gz" --flat-table) || die "cannot read $out/known_allocs.$b/heap.pb.gz"
expect_figures "$flat" "second target's final heap" leak_64x1000 1000 64000 1000 64000
expect_figures "$flat" "second target's final heap" between_snapshots 0 0 0 0
fetch "$TMP/merged.pb.gz" "$url/debug/pprof/heap" || fail "merged heap: request failed"
expect_eq "pid labels of the merged heap" "$(printf '%s\n' "$a" "$b" | sort | paste -sd' ')" \
    "$(label_values "$TMP/merged.pb.gz" pid)"
expect_eq "merged heap: leak_64x1000 objects of both" 2000 \
    "$(pprof_raw "$TMP/merged.pb.gz" --type inuse_objects --flat leak_64x1000)"

# 7. ppx snapshot: files now, listed.
"$PPX" snapshot --socket "$sock" --pid "$a" -o "$TMP/snap" >"$TMP/snap.list" 2>"$TMP/snap.err"
expect_eq "exit status of ppx snapshot" 0 "$?"
expect_eq "files listed by ppx snapshot" \
    "$TMP/snap/allocs.pb.gz $TMP/snap/block.pb.gz $TMP/snap/cpu.pb.gz $TMP/snap/goroutine.pb.gz $TMP/snap/heap.pb.gz $TMP/snap/mutex.pb.gz $TMP/snap/peak.pb.gz $TMP/snap/syscalls.pb.gz $TMP/snap/threadcreate.pb.gz" \
    "$(sort "$TMP/snap.list" | tr '\n' ' ' | sed 's/ $//')"
flat=$(pprof_raw "$TMP/snap/heap.pb.gz" --flat-table) || die "cannot read the snapshot's heap.pb.gz"
expect_figures "$flat" "snapshot heap" between_snapshots 200 200000 200 200000
expect_figures "$flat" "snapshot heap" leak_64x1000 1000 64000 1000 64000
"$PPX" snapshot --socket "$sock" --pid 999999999 -o "$TMP/snap2" >/dev/null 2>"$TMP/snap2.err"
expect_eq "exit status of ppx snapshot --pid of no process" 1 "$?"
grep -q 'no process with pid 999999999' "$TMP/snap2.err" ||
    fail "ppx snapshot --pid 999999999: no clear message: $(cat "$TMP/snap2.err")"
"$PPX" snapshot --socket "$TMP/none.sock" >/dev/null 2>"$TMP/snap3.err"
expect_eq "exit status of ppx snapshot without a collector" 1 "$?"
grep -q 'no collector answers' "$TMP/snap3.err" || fail "ppx snapshot without collector: $(cat "$TMP/snap3.err")"

# 8. The target exits: its final profiles equal the uninterrupted run's,
# although the collector was started late and killed in between (the
# second window's allocation is the one more between_snapshots call).
exec 3>&-
wait "$a"
expect_eq "exit status of the target" 0 "$?"
wait_for 100 test -s "$out/known_allocs.$a/allocs.pb.gz" ||
    die "no final profiles for the target in $out/known_allocs.$a (log: $(cat "$TMP/c2.log"))"
for f in heap allocs; do
    counted_rows "$out/known_allocs.$a/$f.pb.gz" >"$TMP/final.$f" || die "cannot read final $f.pb.gz"
    # The reference allocated in between_snapshots once, this run twice.
    sed 's/^between_snapshots 100 100000 100 100000$/between_snapshots 200 200000 200 200000/' \
        "$TMP/ref.$f" >"$TMP/expected.$f"
    diff -u "$TMP/expected.$f" "$TMP/final.$f" >"$TMP/diff.$f" ||
        fail "final $f.pb.gz differs from an uninterrupted run's: $(cat "$TMP/diff.$f")"
done
grep -q "pid $a exited: profiles in $out/known_allocs.$a/" "$TMP/c2.log" ||
    fail "no message for the target's exit: $(cat "$TMP/c2.log")"

# 9. SIGTERM: the profiles of a target still running are written too.
start_fed c 4 "${target[@]}" pause
c=$fed_pid
wait_for 100 has_figure "$url/debug/pprof/heap?pid=$c" "$TMP/c.pb.gz" leak_64x1000 inuse_space 64000 ||
    die "third target never showed up"
kill -TERM "$collector"
wait "$collector"
expect_eq "exit status of ppx collect after SIGTERM" 0 "$?"
flat=$(pprof_raw "$out/known_allocs.$c/heap.pb.gz" --flat-table) ||
    die "no profiles of a running target at SIGTERM: ls $out: $(ls "$out")"
expect_figures "$flat" "running target at SIGTERM" leak_64x1000 1000 64000 1000 64000
grep -q "pid $c still running at the collector's exit" "$TMP/c2.log" ||
    fail "no message for the running target: $(cat "$TMP/c2.log")"
[ ! -e "$sock" ] || fail "the socket $sock is left behind after SIGTERM"
exec 4>&-
wait "$c"
expect_eq "exit status of a target whose collector went away" 0 "$?"
finish
