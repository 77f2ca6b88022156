#!/usr/bin/env bash
# Exact mode: every figure of tests/progs/known_allocs (including 4 threads)
# equals the known value, in heap.pb.gz and in allocs.pb.gz, with Go's heap
# profile layout; the leaf of each sample is the code that called malloc.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/known_allocs.sh"
require_built
require_pprof

prog="$PROGS/known_allocs"
out="$TMP/exact"
"$PPX" record -q --exact -o "$out" -- "$prog" 2>"$TMP/stderr"
status=$?
[ "$status" -eq 0 ] || die "ppx record --exact -- known_allocs: exit status $status, stderr: $(cat "$TMP/stderr")"

for f in heap allocs; do
    file="$out/$f.pb.gz"
    [ -s "$file" ] || die "$file not written (ls: $(ls "$out" 2>&1))"
    header=$(pprof_raw "$file" --header) || die "go tool pprof cannot read $file"
    expect_eq "$f sample types" "alloc_objects alloc_space inuse_objects inuse_space" \
        "$(header_field "$header" sample_types)"
    expect_eq "$f period type" "space bytes" "$(header_field "$header" period_type)"
    expect_eq "$f period (exact mode)" 1 "$(header_field "$header" period)"
    main_map=$(printf '%s\n' "$header" | awk -F'\t' '$1 == "mapping" && $2 == 1 { print $3 }')
    expect_eq "$f first mapping is the main executable" "$(readlink -f "$prog")" "$(readlink -f "$main_map" 2>/dev/null || echo "$main_map")"
    flags=$(printf '%s\n' "$header" | awk -F'\t' '$1 == "mapping" && $2 == 1 { print $5 }')
    case $flags in *'[FN]'*) ;; *) fail "$f main mapping lacks has_functions: flags '$flags'" ;; esac
    if have readelf; then
        build_id=$(readelf -n "$prog" | awk '/Build ID:/ { print $3 }')
        expect_eq "$f main mapping build id" "$build_id" \
            "$(printf '%s\n' "$header" | awk -F'\t' '$1 == "mapping" && $2 == 1 { print $4 }')"
    fi

    flat=$(pprof_raw "$file" --flat-table) || die "cannot read $file"
    expect_known_figures "$flat" "$f"
    # pvalloc: the size recorded may be the request (100) or the page it rounds to
    expect_eq "$f pvalloc_4x100 alloc_objects" 4 "$(table_get "$flat" pvalloc_4x100 alloc_objects)"
    expect_eq "$f pvalloc_4x100 inuse_objects" 4 "$(table_get "$flat" pvalloc_4x100 inuse_objects)"
    pv=$(table_get "$flat" pvalloc_4x100 alloc_space)
    [ "$pv" = 400 ] || [ "$pv" = $((4 * $(getconf PAGESIZE))) ] ||
        fail "$f pvalloc_4x100 alloc_space: expected 400 or 4 pages, got $pv"

    cum=$(pprof_raw "$file" --cum-table) || die "cannot read $file"
    # strdup allocates inside libc: counted through the unwound caller
    expect_figures "$cum" "$f cum" strdup_20x32   20  640   20  640

    # The leaf is the caller of the allocator, never the allocator or ppx itself.
    # (The dynamic loader's TLS setup calls an inline wrapper named calloc:
    # that is ld.so's code, not an entry point.)
    bad=$(pprof_raw "$file" --leaves --type alloc_objects | awk -F'\t' '
        $2 ~ /^(malloc|calloc|realloc|reallocarray|free|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|__libc_[a-z_]*)$/ && $3 !~ /\/ld-linux/ ||
        $3 ~ /libppx\.so/')
    [ -z "$bad" ] || fail "$f: samples whose leaf is an allocator entry point or libppx.so: $bad"
    expect_eq "$f pid labels (one process)" "" "$(label_values "$file" pid)"
    # No bytes label: per stack it could only be an average (snapshot_base.sh).
    expect_eq "$f bytes labels of leak_64x1000" "" "$(label_values "$file" bytes --leaf leak_64x1000)"
done
expect_eq "heap.pb.gz default sample type" inuse_space "$(pprof_raw "$out/heap.pb.gz" --default-type)"
expect_eq "allocs.pb.gz default sample type" alloc_space "$(pprof_raw "$out/allocs.pb.gz" --default-type)"
[ -z "$(find "$out" -mindepth 1 -type d)" ] || fail "one process, yet per-process directories: $(ls "$out")"

# PPX_SAMPLE_RATE=1 from the environment is exact mode too.
out2="$TMP/env"
PPX_SAMPLE_RATE=1 "$PPX" record -q -o "$out2" -- "$prog" 2>"$TMP/stderr2" ||
    die "PPX_SAMPLE_RATE=1 ppx record: exit status $?, stderr: $(cat "$TMP/stderr2")"
flat=$(pprof_raw "$out2/heap.pb.gz" --flat-table) || die "cannot read $out2/heap.pb.gz"
expect_figures "$flat" "PPX_SAMPLE_RATE=1 heap" leak_64x1000  1000 64000 1000 64000
expect_figures "$flat" "PPX_SAMPLE_RATE=1 heap" thread_worker 1000 128000 1000 128000
finish
