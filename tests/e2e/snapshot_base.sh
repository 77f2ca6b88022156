#!/usr/bin/env bash
# `go tool pprof -base` of two allocs snapshots of a running program cancels
# what both hold, even where a stack's average block size changed between
# them: mixed_sizes allocates 100 blocks of 100 bytes before the first
# snapshot and 100 of 10000 bytes (same stack) before the second. The diff
# has no negative figure, mixed_sizes shows exactly the second batch, and
# the total `go tool pprof -top` reports is the second snapshot's total
# minus the first's (pprof adds up absolute values: a stack left twice,
# once negative, would count twice).
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/known_allocs.sh"
require_built
require_pprof

out="$TMP/base"
record_paused "$out"

# snapshot_with OBJECTS: takes snapshots until one holds OBJECTS blocks of
# mixed_sizes (the target streams every --flush-ms); its number is n.
snapshot_with() {
    local seen=-1 tries=0
    while [ "$seen" != "$1" ] && [ $tries -lt 40 ]; do
        tries=$((tries + 1))
        next_snapshot
        seen=$(pprof_raw "$out/allocs.$n.pb.gz" --type alloc_objects --flat mixed_sizes)
    done
    [ "$seen" = "$1" ] || die "no snapshot with $1 mixed_sizes blocks (last: $seen)"
}

done_lines() { [ "$(grep -c '^done' "$TMP/k.out")" -ge "$1" ]; }
echo "mixed 100" >&3
wait_for 300 done_lines 1 || die "mixed 100 never done"
snapshot_with 100
s1="$out/allocs.$n.pb.gz"
echo "mixed 10000" >&3
wait_for 300 done_lines 2 || die "mixed 10000 never done"
snapshot_with 200
s2="$out/allocs.$n.pb.gz"

diff=$(pprof_raw "$s2" --base "$s1" --flat-table) || die "go tool pprof -base failed on $s1 -> $s2"
expect_figures "$diff" "s2 - s1" mixed_sizes 100 1000000 100 1000000
# No sample of the diff is negative (go tool pprof -raw, after -base merged
# the two profiles' samples of the same stack).
negative=$(pprof_raw "$s2" --base "$s1" --dump | awk -F'\t' '
    /^#/ { next } { split($1, v, " "); for (i in v) if (v[i] < 0) { print; break } }')
[ -z "$negative" ] || fail "negative samples in s2 - s1: $negative"

# The totals of -top: s2's minus s1's, per sample type.
for type in alloc_objects alloc_space; do
    t1=$(pprof_raw "$s1" --total --type "$type")
    t2=$(pprof_raw "$s2" --total --type "$type")
    top=$(go_pprof -top -sample_index="$type" -unit=byte -base "$s1" "$s2" 2>"$TMP/pprof.err") ||
        { fail "go tool pprof -top -base: $(cat "$TMP/pprof.err")"; continue; }
    total=$(printf '%s\n' "$top" | sed -n 's/^Showing nodes accounting for .* of \(-\{0,1\}[0-9]*\)[A-Za-z]* total$/\1/p')
    expect_eq "go tool pprof -top -base $type total" "$((t2 - t1))" "$total"
done

exec 3>&-   # end of input: known_allocs exits
wait "$ppx_pid"
expect_eq "exit status of ppx record" 0 "$?"
finish
