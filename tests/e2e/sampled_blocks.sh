#!/usr/bin/env bash
# Sampled blocks start on a page boundary, so that free() tells the others
# unsampled from their address alone; the program still gets what it asked
# for: calloc's zeros (also under MALLOC_PERTURB_, and without making a
# large calloc resident), realloc's contents, the aligned family's
# alignment, ENOMEM for what cannot be had (and nothing on stderr). tests/progs/sampled_blocks prints what it saw.
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

prog="$PROGS/sampled_blocks"

# figure FILE NAME: a "name value" line of the program's output.
figure() { awk -v n="$2" '$1 == n { print $2 }' "$1"; }

# expect_program_saw WHERE FILE: contents and alignment as asked.
expect_program_saw() {
    local where=$1 out=$2
    expect_eq "$where: calloc bytes not zero after dirty frees" 0 "$(figure "$out" calloc_dirty)"
    expect_eq "$where: large calloc bytes not zero" 0 "$(figure "$out" calloc_big_dirty)"
    expect_eq "$where: bytes wrong after realloc" 0 "$(figure "$out" realloc_bad)"
    expect_eq "$where: aligned allocations off their boundary" 0 "$(figure "$out" misaligned)"
    expect_eq "$where: 2^62-byte requests refused with ENOMEM" 4 "$(figure "$out" huge_refused)"
}

"$prog" >"$TMP/plain.out" || die "sampled_blocks alone: exit status $?"
expect_program_saw "plain" "$TMP/plain.out"
plain_aligned=$(figure "$TMP/plain.out" page_aligned)
[ "$plain_aligned" -lt 100 ] ||
    fail "plain: $plain_aligned of 1000 64 KiB blocks page-aligned without ppx (the test assumes few)"

# Every 64 KiB block sampled (rate 4096: p = 1 - e^-16 each).
"$PPX" record -q --rate 4096 -o "$TMP/rec" -- "$prog" >"$TMP/rec.out" 2>"$TMP/rec.err" ||
    die "ppx record --rate 4096 -- sampled_blocks: exit status $?"
# requests that fail anyway lose no sample: nothing said
expect_eq "--rate 4096: stderr" "" "$(cat "$TMP/rec.err")"
expect_program_saw "--rate 4096" "$TMP/rec.out"
aligned=$(figure "$TMP/rec.out" page_aligned)
[ "$aligned" -ge 990 ] || fail "--rate 4096: $aligned of 1000 sampled 64 KiB blocks page-aligned (expected all)"
# glibc's mmapped chunks are zero already: not written again.
big_kib=$(figure "$TMP/rec.out" calloc_big_kib)
[ "$big_kib" -lt 16384 ] ||
    fail "--rate 4096: 4 calloc(64 MiB) made $big_kib KiB resident before they were read (zeroed again?)"
table=$(pprof_raw "$TMP/rec/allocs.pb.gz" --flat-table) || die "cannot read allocs.pb.gz"
expect_within_pct "--rate 4096: page_aligned_64k alloc_space" 65536000 \
    "$(table_get "$table" page_aligned_64k alloc_space)" 1
expect_within_pct "--rate 4096: calloc_big alloc_space" 268435456 \
    "$(table_get "$table" calloc_big alloc_space)" 1
heap=$(pprof_raw "$TMP/rec/heap.pb.gz" --flat-table) || die "cannot read heap.pb.gz"
for fn in page_aligned_64k calloc_after_dirty calloc_big realloc_steps aligned_family; do
    expect_eq "--rate 4096: $fn inuse_space (all freed)" 0 "$(table_get "$heap" "$fn" inuse_space)"
done

# MALLOC_PERTURB_ fills glibc's new blocks, mmapped ones too: zeroed then.
MALLOC_PERTURB_=165 "$PPX" record -q --rate 4096 -o "$TMP/perturb" -- "$prog" >"$TMP/perturb.out" ||
    die "MALLOC_PERTURB_=165 ppx record -- sampled_blocks: exit status $?"
expect_program_saw "MALLOC_PERTURB_=165 --rate 4096" "$TMP/perturb.out"

# Exact mode samples every block and moves none.
"$PPX" record -q --exact -o "$TMP/exact" -- "$prog" >"$TMP/exact.out" ||
    die "ppx record --exact -- sampled_blocks: exit status $?"
expect_program_saw "--exact" "$TMP/exact.out"
aligned=$(figure "$TMP/exact.out" page_aligned)
[ "$aligned" -lt 100 ] || fail "--exact: $aligned of 1000 64 KiB blocks page-aligned (exact mode moves none)"
expect_file_figures "$TMP/exact/allocs.pb.gz" "--exact" \
    page_aligned_64k 1000 65536000 0 0 \
    calloc_big 4 268435456 0 0
finish
