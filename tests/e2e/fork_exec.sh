#!/usr/bin/env bash
# fork and exec are followed: tests/progs/forker's parent, forked child and
# exec'd image each get their own profile in <dir>/<pid>/ (<pid>.1/ for the
# program <pid> exec'd), and the top-level files merge them with a numeric pid
# label on every sample; every figure is exact, and a forked child starts
# clean (its parent's allocations are not its).
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

# record_forker MODE: runs forker -v MODE under ppx record --exact into $TMP/MODE
record_forker() {
    local out="$TMP/$1"
    "$PPX" record -q --exact -o "$out" -- "$PROGS/forker" -v "$1" >"$out.pids" 2>"$out.stderr" ||
        die "ppx record --exact -- forker $1: exit status $?, stderr: $(cat "$out.stderr")"
    parent=$(awk '$1 == "parent" { print $2 }' "$out.pids")
    child=$(awk '$1 == "child" { print $2 }' "$out.pids")
    [ -n "$parent" ] || die "forker $1 printed no pids: $(cat "$out.pids")"
    for f in heap allocs; do
        [ -s "$out/$f.pb.gz" ] || die "forker $1: $out/$f.pb.gz not written"
        expect_eq "forker $1 $f.pb.gz: samples without a pid label" 0 \
            "$(pprof_raw "$out/$f.pb.gz" --unlabeled pid)"
    done
    # exec'd images are checked below: PID/ or PID.I/ (ppx record --help)
    local dirs="$parent $child"
    [ "$1" = exec ] && dirs=$parent
    for pid in $dirs; do
        for f in heap allocs; do
            [ -s "$out/$pid/$f.pb.gz" ] || fail "forker $1: per-process $out/$pid/$f.pb.gz not written (ls: $(ls "$out"))"
        done
    done
}

# fork: parent and child, each exact, each on its own.
record_forker fork
merged=$(pprof_raw "$TMP/fork/heap.pb.gz" --flat-table --label "pid=$parent") || die "cannot read merged heap.pb.gz"
expect_figures "$merged" "fork merged pid=parent" parent_work        100  30000 100  30000
expect_figures "$merged" "fork merged pid=parent" parent_after_fork   50  35000  50  35000
expect_figures "$merged" "fork merged pid=parent" child_work           0      0   0      0
merged=$(pprof_raw "$TMP/fork/heap.pb.gz" --flat-table --label "pid=$child") || die "cannot read merged heap.pb.gz"
expect_figures "$merged" "fork merged pid=child" child_work          200 100000 200 100000
expect_figures "$merged" "fork merged pid=child" parent_work           0      0   0      0
expect_eq "fork merged: pid label values" "$(printf '%s\n' "$parent" "$child" | sort | paste -sd' ')" \
    "$(label_values "$TMP/fork/heap.pb.gz" pid)"
file="$TMP/fork/$parent/heap.pb.gz"
[ ! -s "$file" ] || expect_file_figures "$file" "fork $parent/heap.pb.gz" \
    parent_work 100 30000 100 30000 \
    child_work 0 0 0 0
file="$TMP/fork/$child/allocs.pb.gz"
[ ! -s "$file" ] || expect_file_figures "$file" "fork $child/allocs.pb.gz" \
    child_work 200 100000 200 100000 \
    parent_work 0 0 0 0

# exec: the forked child becomes a new image of forker running exec_work.
record_forker exec
merged=$(pprof_raw "$TMP/exec/heap.pb.gz" --flat-table --label "pid=$child") || die "cannot read merged heap.pb.gz"
expect_figures "$merged" "exec merged pid=child" exec_work  300 60000 300 60000
merged=$(pprof_raw "$TMP/exec/heap.pb.gz" --flat-table --label "pid=$parent") || die "cannot read merged heap.pb.gz"
expect_figures "$merged" "exec merged pid=parent" parent_work        100 30000 100 30000
expect_figures "$merged" "exec merged pid=parent" parent_after_fork   50 35000  50 35000
expect_figures "$merged" "exec merged pid=parent" exec_work            0     0   0     0
# The exec'd image's own files: in <child>/ if the forked child never
# reported before exec, else in <child>.1/ (the first program <child> exec'd).
found=
for d in "$TMP/exec/$child" "$TMP/exec/$child".[0-9]*; do
    [ -s "$d/heap.pb.gz" ] || continue
    t=$(pprof_raw "$d/heap.pb.gz" --flat-table) || die "cannot read $d/heap.pb.gz"
    [ "$(table_get "$t" exec_work alloc_objects)" = 0 ] && continue
    found=$d
    expect_figures "$t" "exec $(basename "$d")/heap.pb.gz" exec_work 300 60000 300 60000
    [ -s "$d/allocs.pb.gz" ] || fail "exec: $d/allocs.pb.gz not written"
done
[ -n "$found" ] || fail "exec: no per-process profile $child/ or $child.N/ holds exec_work (ls: $(ls "$TMP/exec" | tr '\n' ' '))"

# work-exec: the forked child allocates, then execs. Both images are
# profiled: the first in <child>/, the program it exec'd in <child>.1/, and
# what the first allocated before exec is not lost.
record_forker work-exec
merged=$(pprof_raw "$TMP/work-exec/allocs.pb.gz" --flat-table --label "pid=$child") || die "cannot read merged allocs.pb.gz"
expect_figures "$merged" "work-exec merged pid=child" child_work 200 100000 200 100000
expect_figures "$merged" "work-exec merged pid=child" exec_work  300  60000 300  60000
file="$TMP/work-exec/$child/allocs.pb.gz"
[ ! -s "$file" ] || expect_file_figures "$file" "work-exec $child/allocs.pb.gz" \
    child_work 200 100000 200 100000 \
    exec_work 0 0 0 0
file="$TMP/work-exec/$child.1/allocs.pb.gz"
if [ -s "$file" ]; then
    expect_file_figures "$file" "work-exec $child.1/allocs.pb.gz" \
        exec_work 300 60000 300 60000 \
        child_work 0 0 0 0
else
    fail "work-exec: $file not written (ls: $(ls "$TMP/work-exec" | tr '\n' ' '))"
fi

# system(): through /bin/sh, which is profiled too.
record_forker system
all=$(pprof_raw "$TMP/system/allocs.pb.gz" --flat-table) || die "cannot read merged allocs.pb.gz"
expect_figures "$all" "system merged (all processes)" exec_work 300 60000 300 60000
merged=$(pprof_raw "$TMP/system/allocs.pb.gz" --flat-table --label "pid=$parent") || die "cannot read merged allocs.pb.gz"
expect_figures "$merged" "system merged pid=parent" parent_work 100 30000 100 30000
expect_figures "$merged" "system merged pid=parent" exec_work     0     0   0     0
pids=$(label_values "$TMP/system/allocs.pb.gz" pid | wc -w)
[ "$pids" -ge 2 ] || fail "system: expected samples of 2 or more processes, got pid labels of $pids"
dirs=$(find "$TMP/system" -mindepth 1 -maxdepth 1 -type d | wc -l)
[ "$dirs" -ge 2 ] || fail "system: expected 2 or more per-process directories, got $dirs ($(ls "$TMP/system"))"
finish
