#!/usr/bin/env bash
# The exact figures of tests/progs/known_allocs stay the same when the next
# allocator is not glibc's: jemalloc or tcmalloc preloaded by the user
# (LD_PRELOAD set before ppx record, which puts libppx.so in front of it).
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

libdir=/usr/lib/x86_64-linux-gnu
ran=0
for lib in "$libdir/libjemalloc.so.2" "$libdir/libtcmalloc_minimal.so.4"; do
    if [ ! -e "$lib" ]; then
        note "$lib absent (apt-get install libjemalloc2 libgoogle-perftools4): not tested"
        continue
    fi
    ran=$((ran + 1))
    name=$(basename "$lib")
    out="$TMP/$name"
    LD_PRELOAD="$lib" "$PPX" record -q --exact -o "$out" -- "$PROGS/known_allocs" 2>"$out.stderr" ||
        { fail "$name: ppx record --exact -- known_allocs: exit status $?, stderr: $(head -c 2000 "$out.stderr")"; continue; }
    # The allocator is really in use in the target.
    LD_PRELOAD="$lib" "$PPX" record -q --exact -o "$out.maps" -- \
        sh -c 'grep -q "$1" /proc/$$/maps' sh "$name" 2>/dev/null ||
        fail "$name: not mapped in a target run with LD_PRELOAD=$lib under ppx record"
    for f in heap allocs; do
        flat=$(pprof_raw "$out/$f.pb.gz" --flat-table) || { fail "$name: go tool pprof cannot read $out/$f.pb.gz"; continue; }
        w="$name $f"
        expect_figures "$flat" "$w" leak_64x1000          1000   64000 1000  64000
        expect_figures "$flat" "$w" alloc_free_1000x500    500  500000    0      0
        expect_figures "$flat" "$w" calloc_10x100_x200     200  200000  200 200000
        expect_figures "$flat" "$w" realloc_chain           90   81760    0      0
        expect_figures "$flat" "$w" posix_memalign_10x256   10    2560   10   2560
        expect_figures "$flat" "$w" aligned_alloc_5x4096     5   20480    5  20480
        expect_figures "$flat" "$w" memalign_3x512           3    1536    3   1536
        expect_figures "$flat" "$w" valloc_2x1000            2    2000    2   2000
        expect_figures "$flat" "$w" reallocarray_grow       10   15000    5  10000
        expect_figures "$flat" "$w" failed_allocs            1     100    1    100
        expect_figures "$flat" "$w" thread_worker         1000  128000 1000 128000
        bad=$(pprof_raw "$out/$f.pb.gz" --leaves --type alloc_objects | awk -F'\t' '
            $2 ~ /^(malloc|calloc|realloc|reallocarray|free|posix_memalign|aligned_alloc|memalign|valloc|pvalloc)$/ && $3 !~ /\/ld-linux/ ||
            $2 ~ /^(je_|tc_|__libc_)/ || $3 ~ /libppx\.so|libjemalloc|libtcmalloc/')
        [ -z "$bad" ] || fail "$w: leaves in the allocator or in libppx.so: $bad"
    done
done
[ "$ran" -gt 0 ] || skip "neither jemalloc nor tcmalloc is installed"
finish
