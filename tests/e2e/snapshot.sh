#!/usr/bin/env bash
# SIGUSR1 to ppx record writes numbered snapshots (heap.1.pb.gz,
# allocs.1.pb.gz, then .2) while the command runs, readable by go tool pprof;
# a -base diff of two snapshots shows what happened between them;
# the final files are still written, exact, when the command exits.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/known_allocs.sh"
require_built
require_pprof

out="$TMP/snap"
record_paused "$out"

next_snapshot
next_snapshot
for f in heap.1 allocs.1 heap.2 allocs.2; do
    header=$(pprof_raw "$out/$f.pb.gz" --header) ||
        { fail "go tool pprof cannot read snapshot $f.pb.gz"; continue; }
    expect_eq "$f.pb.gz sample types" "alloc_objects alloc_space inuse_objects inuse_space" \
        "$(header_field "$header" sample_types)"
done
expect_eq "heap.1.pb.gz default sample type" inuse_space "$(pprof_raw "$out/heap.1.pb.gz" --default-type)"
expect_eq "allocs.1.pb.gz default sample type" alloc_space "$(pprof_raw "$out/allocs.1.pb.gz" --default-type)"

# Before/after: allocate between two snapshots; `go tool pprof -base` of
# them shows exactly that. The target streams every --flush-ms, so take
# snapshots until one holds the new allocations (bounded).
echo alloc >&3
wait_for 300 grep -q '^done' "$TMP/k.out" || die "known_allocs never finished between_snapshots"
seen=0
while [ $n -lt 40 ] && [ $seen -eq 0 ]; do
    next_snapshot
    seen=$(pprof_raw "$out/allocs.$n.pb.gz" --type alloc_objects --flat between_snapshots)
done
expect_eq "between_snapshots objects in snapshot $n" 100 "$seen"
diff=$(pprof_raw "$out/allocs.$n.pb.gz" --base "$out/allocs.2.pb.gz" --flat-table) ||
    die "go tool pprof -base failed on allocs.2 -> allocs.$n"
expect_figures "$diff" "allocs.$n - allocs.2" between_snapshots 100 100000 100 100000
expect_eq "leak_64x1000 in allocs.$n - allocs.2" 0 \
    "$(pprof_raw "$out/allocs.$n.pb.gz" --base "$out/allocs.2.pb.gz" --type alloc_space --flat leak_64x1000)"

exec 3>&-   # end of input: known_allocs exits
wait "$ppx_pid"
expect_eq "exit status of ppx record" 0 "$?"
flat=$(pprof_raw "$out/heap.pb.gz" --flat-table) || die "final heap.pb.gz unreadable: ls $out: $(ls "$out")"
expect_figures "$flat" "final heap" leak_64x1000  1000  64000 1000  64000
expect_figures "$flat" "final heap" thread_worker 1000 128000 1000 128000
[ ! -e "$out/heap.$((n + 1)).pb.gz" ] || fail "a snapshot heap.$((n + 1)).pb.gz nobody asked for"
finish
