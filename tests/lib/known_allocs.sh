# What tests/progs/known_allocs allocates (sourced after common.sh).

# The functions whose every allocation is known.
KNOWN_COUNTED="leak_64x1000 alloc_free_1000x500 calloc_10x100_x200 realloc_chain posix_memalign_10x256
 aligned_alloc_5x4096 memalign_3x512 valloc_2x1000 pvalloc_4x100 reallocarray_grow failed_allocs
 thread_worker between_snapshots"

# counted_rows FILE: the flat figures of the counted functions, a line each:
# FUNC alloc_objects alloc_space inuse_objects inuse_space.
counted_rows() {
    local table fn
    table=$(pprof_raw "$1" --flat-table) || return 1
    for fn in $KNOWN_COUNTED; do
        printf '%s' "$fn"
        for t in alloc_objects alloc_space inuse_objects inuse_space; do
            printf ' %s' "$(table_get "$table" "$fn" "$t")"
        done
        printf '\n'
    done
}

# known_reference DIR: `ppx record --exact` of `known_allocs pause` fed one
# "alloc" line, its counted rows in DIR.heap and DIR.allocs.
known_reference() {
    printf 'alloc\n' | "$PPX" record -q --exact -o "$1" -- "$PROGS/known_allocs" pause \
        >/dev/null 2>"$1.err" ||
        die "ppx record --exact -- known_allocs pause failed: $(cat "$1.err")"
    counted_rows "$1/heap.pb.gz" >"$1.heap" || die "cannot read the reference heap profile"
    counted_rows "$1/allocs.pb.gz" >"$1.allocs" || die "cannot read the reference allocs profile"
    grep -q '^between_snapshots 100 100000 100 100000$' "$1.heap" ||
        die "reference run: between_snapshots not as known: $(cat "$1.heap")"
}

# expect_known_figures TABLE WHERE: the exact figures of the counted
# functions in TABLE (pprof_raw.py --flat-table) of a known_allocs run;
# pvalloc_4x100, whose size may be the page, and between_snapshots, which
# runs on request, are the caller's to check.
expect_known_figures() {
    local t=$1 w=$2
    #                          function              alloc_objects alloc_space inuse_objects inuse_space
    expect_figures "$t" "$w" leak_64x1000          1000   64000 1000  64000
    expect_figures "$t" "$w" alloc_free_1000x500    500  500000    0      0
    expect_figures "$t" "$w" calloc_10x100_x200     200  200000  200 200000
    expect_figures "$t" "$w" realloc_chain           90   81760    0      0
    expect_figures "$t" "$w" posix_memalign_10x256   10    2560   10   2560
    expect_figures "$t" "$w" aligned_alloc_5x4096     5   20480    5  20480
    expect_figures "$t" "$w" memalign_3x512           3    1536    3   1536
    expect_figures "$t" "$w" valloc_2x1000            2    2000    2   2000
    expect_figures "$t" "$w" reallocarray_grow       10   15000    5  10000
    expect_figures "$t" "$w" failed_allocs            1     100    1    100
    expect_figures "$t" "$w" thread_worker         1000  128000 1000 128000
}

# record_paused DIR: `ppx record -q --exact -o DIR` of `known_allocs pause`,
# fed as start_fed feeds it (named k, on descriptor 3); sets ppx_pid.
record_paused() {
    start_fed k 3 "$PPX" record -q --exact -o "$1" -- "$PROGS/known_allocs" pause
    ppx_pid=$fed_pid snapshot_dir=$1 n=0
}

# next_snapshot: SIGUSR1 to that ppx record; returns once its next numbered
# snapshot, n (heap.n.pb.gz and allocs.n.pb.gz), is written.
next_snapshot() {
    n=$((n + 1))
    kill -USR1 "$ppx_pid" || die "cannot signal ppx (pid $ppx_pid)"
    # A bound on the wait, not a measurement: the files appear atomically.
    wait_for 300 test -s "$snapshot_dir/allocs.$n.pb.gz" -a -s "$snapshot_dir/heap.$n.pb.gz" ||
        die "no snapshot $n after SIGUSR1: ls $snapshot_dir: $(ls "$snapshot_dir" 2>&1)"
}
