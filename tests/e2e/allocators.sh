#!/usr/bin/env bash
# The exact figures of tests/progs/known_allocs stay the same when the next
# allocator is not glibc's: jemalloc or tcmalloc preloaded by the user
# (LD_PRELOAD set before ppx record, which puts libppx.so in front of it).
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/known_allocs.sh"
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
        expect_known_figures "$flat" "$w"
        bad=$(pprof_raw "$out/$f.pb.gz" --leaves --type alloc_objects | awk -F'\t' '
            $2 ~ /^(malloc|calloc|realloc|reallocarray|free|posix_memalign|aligned_alloc|memalign|valloc|pvalloc)$/ && $3 !~ /\/ld-linux/ ||
            $2 ~ /^(je_|tc_|__libc_)/ || $3 ~ /libppx\.so|libjemalloc|libtcmalloc/')
        [ -z "$bad" ] || fail "$w: leaves in the allocator or in libppx.so: $bad"
    done
done
[ "$ran" -gt 0 ] || skip "neither jemalloc nor tcmalloc is installed"
finish
