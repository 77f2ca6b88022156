#!/usr/bin/env bash
# C++: new/delete, new[]/delete[], nothrow and aligned new, std::vector growth
# and std::string in tests/progs/known_allocs_cxx give exact figures in exact
# mode, under the demangled names go tool pprof shows (Widget::Widget), with
# the operator new frames dropped so the leaf is the code that said `new`.
# The profile keeps the linker's (mangled) names, which go tool pprof
# demangles itself; ppx audit shows demangled names in full
# (ns::Logger::write_log(int)).
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

out="$TMP/cxx"
"$PPX" record -q --exact -o "$out" -- "$PROGS/known_allocs_cxx" 2>"$TMP/stderr" ||
    die "ppx record --exact -- known_allocs_cxx: exit status $?, stderr: $(cat "$TMP/stderr")"

for f in heap allocs; do
    file="$out/$f.pb.gz"
    [ -s "$file" ] || die "$file not written"
    flat=$(pprof_raw "$file" --flat-table) || die "go tool pprof cannot read $file"
    cum=$(pprof_raw "$file" --cum-table) || die "go tool pprof cannot read $file"
    #                                 function          alloc_objects alloc_space inuse_objects inuse_space
    expect_figures "$flat" "$f flat" make_widgets       100  4800 100  4800
    expect_figures "$flat" "$f flat" Widget::Widget     100  2400 100  2400
    expect_figures "$flat" "$f flat" array_new_delete    50 50000   0     0
    expect_figures "$flat" "$f flat" nothrow_news        20  2000  20  2000
    expect_figures "$flat" "$f flat" aligned_news        10   640  10   640
    expect_figures "$cum" "$f cum" grow_vector           11  8188   0     0
    expect_figures "$cum" "$f cum" grow_vector_kept       9  2064   2  1048
    expect_figures "$cum" "$f cum" make_strings         200 13300 200 13300
    expect_figures "$flat" "$f flat" make_strings       100  3200 100  3200
    expect_figures "$flat" "$f flat" ns::Logger::format  10   640  10   640

    leaves=$(pprof_raw "$file" --leaves --type alloc_objects) || die "cannot read $file"
    bad=$(printf '%s\n' "$leaves" | awk -F'\t' '$2 ~ /^(operator new|operator delete|malloc|calloc|aligned_alloc|posix_memalign|memalign)/ || $2 ~ /^_Z/')
    [ -z "$bad" ] || fail "$f: leaves that are allocator entry points or still mangled: $bad"
    # The vector's buffers come from template code instantiated in this program
    # (std::vector::_M_realloc_insert, or the allocator if not inlined).
    printf '%s\n' "$leaves" | awk -F'\t' '$2 ~ /^std::(vector|__new_allocator|allocator)/' | grep -q . ||
        fail "$f: no std::vector leaf among: $(printf '%s\n' "$leaves" | cut -f2 | sort -u | tr '\n' ',')"
done

# The function's system name is the mangled one: go tool pprof's own
# demangling (and its -symbolize=demangle=... choices) applies.
go_pprof -raw "$out/heap.pb.gz" >"$TMP/raw" 2>"$TMP/raw.err" || die "go tool pprof -raw: $(cat "$TMP/raw.err")"
grep -Eq ' ns::Logger::format .* s=[0-9]+\(_ZN2ns6Logger6formatEi\)$' "$TMP/raw" ||
    fail "heap.pb.gz: no function ns::Logger::format with system name _ZN2ns6Logger6formatEi: $(grep -m3 format "$TMP/raw")"

# ppx audit: callers and hints by demangled name.
"$PPX" audit --top 100 "$out" >"$TMP/audit" 2>"$TMP/audit.err" ||
    fail "ppx audit: exit status $?: $(cat "$TMP/audit.err")"
row=$(awk '$1 == "write" && $2 == "unix/stream"' "$TMP/audit")
case $row in *" 1000 "*"ns::Logger::write_log(int) 100%"*) ;;
*) fail "audit write row: not 1000 calls by ns::Logger::write_log(int) 100%: $row" ;; esac
grep -Eq '^- write at ns::Logger::write_log\(int\) \(known_allocs_cxx\.cpp:[0-9]+\): 1000 writes to unix/stream sockets, 10 bytes each' "$TMP/audit" ||
    fail "audit: no small-writes hint naming ns::Logger::write_log(int): $(sed -n '/^Hints:/,$p' "$TMP/audit")"
grep -q '_Z' "$TMP/audit" && fail "audit: mangled names left: $(grep '_Z' "$TMP/audit")"
finish
