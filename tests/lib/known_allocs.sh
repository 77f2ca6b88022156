# What tests/progs/known_allocs allocates, as the collector tests compare it
# (sourced after common.sh).

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
