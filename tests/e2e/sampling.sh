#!/usr/bin/env bash
# Default sampling (mean 524288 bytes between samples, like Go's
# MemProfileRate): large totals of tests/progs/known_allocs land within 10%
# of the truth after Go's unbiased scaling; freed sites show nothing in use.
#
# Bounds are at least 4.4 standard deviations of the estimate: a block of s
# bytes is sampled with p = 1 - exp(-s/rate), and n blocks of one site give
# a relative standard deviation of sqrt((1 - p) / (n p)).
#   2,000,000 x 1024 B: 1.6%    400,000 x 4096 B: 1.8%
#   16 x 4 MiB:         0.5%    16,384 x 2048 B: 12.5% (checked within 60%)
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

# check_site TABLE WHERE FUNC OBJECTS BYTES INUSE(0|1) PCT
check_site() {
    local table=$1 where=$2 fn=$3 objects=$4 bytes=$5 live=$6 pct=$7
    expect_within_pct "$where $fn alloc_objects" "$objects" "$(table_get "$table" "$fn" alloc_objects)" "$pct"
    expect_within_pct "$where $fn alloc_space" "$bytes" "$(table_get "$table" "$fn" alloc_space)" "$pct"
    if [ "$live" = 1 ]; then
        expect_within_pct "$where $fn inuse_objects" "$objects" "$(table_get "$table" "$fn" inuse_objects)" "$pct"
        expect_within_pct "$where $fn inuse_space" "$bytes" "$(table_get "$table" "$fn" inuse_space)" "$pct"
    else
        # every sampled block was freed again: exactly nothing in use
        expect_eq "$where $fn inuse_objects" 0 "$(table_get "$table" "$fn" inuse_objects)"
        expect_eq "$where $fn inuse_space" 0 "$(table_get "$table" "$fn" inuse_space)"
    fi
}

record_big() { # NAME RATE(empty: default) -> flat table of heap.pb.gz in $TMP/NAME.table
    local name=$1 out="$TMP/$1"
    shift
    "$PPX" record -q -o "$out" "$@" -- "$PROGS/known_allocs" big 2>"$TMP/$name.stderr" ||
        die "ppx record $* -- known_allocs big: exit status $?, stderr: $(cat "$TMP/$name.stderr")"
    local heap allocs
    heap=$(pprof_raw "$out/heap.pb.gz" --flat-table) || die "cannot read $out/heap.pb.gz"
    allocs=$(pprof_raw "$out/allocs.pb.gz" --flat-table) || die "cannot read $out/allocs.pb.gz"
    expect_eq "$name: heap.pb.gz and allocs.pb.gz hold the same figures" "$heap" "$allocs"
    printf '%s\n' "$heap" >"$TMP/$name.table"
}

period() { header_field "$(pprof_raw "$1" --header)" period; }

# Default rate.
record_big default
t=$(cat "$TMP/default.table")
expect_eq "default period" 524288 "$(period "$TMP/default/heap.pb.gz")"
check_site "$t" default big_alloc_free_1024  2000000 2048000000 0 10
check_site "$t" default big_alloc_free_4096   400000 1638400000 0 10
check_site "$t" default big_keep_4m_x16           16   67108864 1 10
check_site "$t" default big_keep_2048_x16384   16384   33554432 1 60
# No bytes label: per stack it could only be an average, which breaks -base
# (snapshot_base.sh).
expect_eq "default: bytes labels of big_alloc_free_1024" "" \
    "$(label_values "$TMP/default/heap.pb.gz" bytes --leaf big_alloc_free_1024)"

# --rate: 65536 bytes between samples, eight times as many samples.
record_big rate --rate 65536
t=$(cat "$TMP/rate.table")
expect_eq "--rate 65536 period" 65536 "$(period "$TMP/rate/heap.pb.gz")"
check_site "$t" rate big_alloc_free_1024  2000000 2048000000 0 10
check_site "$t" rate big_alloc_free_4096   400000 1638400000 0 10
check_site "$t" rate big_keep_2048_x16384   16384   33554432 1 25
finish
