#!/usr/bin/env bash
# The heap at its peak (peak.pb.gz, heap?peak=1): tests/progs/phases holds
# 12 blocks of 4 MiB from grow_block() (48 MiB), frees them, holds 6 from
# regrow_block() (24 MiB, a lower high), frees those and ends with nothing
# in use. Read with go tool pprof:
# - ppx record --exact: peak.pb.gz has grow_block's 48 MiB in 12 objects
#   exactly, regrow_block nothing, and in all at most 64 KiB more (libc's
#   own); heap.pb.gz (at exit) none of either; peak.pb.gz's default sample
#   type is inuse_space, as heap.pb.gz's;
# - ppx record under sampling (--rate 262144, half the default: each block
#   is sampled with probability 1 - e^-16, and scaled; at the default's
#   1 - e^-8 one run in 250 left one of the 12 out): grow_block's 48 MiB
#   within 1%;
# - ppx collect: heap?peak=1&pid=N is the same profile; peak=1 with
#   seconds, or on allocs, is refused (400); ppx snapshot writes peak.pb.gz.
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

mib48=$((48 << 20))
check_peak() { # WHERE FILE LOW HIGH
    local table
    table=$(pprof_raw "$2" --cum-table) || { fail "$1: go tool pprof cannot read $2"; return; }
    local grow regrow objects total
    grow=$(table_get "$table" grow_block inuse_space)
    objects=$(table_get "$table" grow_block inuse_objects)
    regrow=$(table_get "$table" regrow_block inuse_space)
    total=$(pprof_raw "$2" --total --type inuse_space)
    note "$1: grow_block ${grow:-0} B in ${objects:-0} objects, regrow_block ${regrow:-0} B, all $total B"
    awk -v v="${grow:-0}" -v lo="$3" -v hi="$4" 'BEGIN { exit !(v >= lo && v <= hi) }' ||
        fail "$1: grow_block's bytes in use at the peak: ${grow:-0}, expected $3..$4"
    expect_eq "$1: regrow_block's bytes at the peak" 0 "${regrow:-0}"
    awk -v t="$total" -v g="${grow:-0}" 'BEGIN { exit !(t >= g && t <= g + 65536) }' ||
        fail "$1: all in use at the peak: $total, grow_block's ${grow:-0} and at most 64 KiB more"
    [ "$1" = exact ] && expect_eq "$1: grow_block's objects at the peak" 12 "${objects:-0}"
}

"$PPX" record -q --exact -o "$TMP/exact" -- "$PROGS/phases" >/dev/null || fail "ppx record --exact: exit $?"
check_peak exact "$TMP/exact/peak.pb.gz" "$mib48" "$mib48"
expect_eq "exact: peak.pb.gz's default sample type" inuse_space "$(pprof_raw "$TMP/exact/peak.pb.gz" --default-type)"
heap=$(pprof_raw "$TMP/exact/heap.pb.gz" --cum-table) || fail "cannot read heap.pb.gz"
expect_eq "exact: grow_block in use at exit" 0 "$(table_get "$heap" grow_block inuse_space)"

"$PPX" record -q --rate 262144 -o "$TMP/default" -- "$PROGS/phases" >/dev/null ||
    fail "ppx record --rate 262144: exit $?"
check_peak sampled "$TMP/default/peak.pb.gz" $((mib48 * 99 / 100)) $((mib48 * 101 / 100))

. "$TESTS_LIB/collect.sh"
start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
PPX_SOCKET="$sock" PPX_SAMPLE_RATE=1 LD_PRELOAD="$LIBPPX" "$PROGS/phases" >"$TMP/phases.out" ||
    fail "phases under the collector: exit $?"
pid=$(awk '$1 == "phases" && $2 == "pid" { print $3 }' "$TMP/phases.out")
curl -sf -o "$TMP/http_peak.pb.gz" "$pp/heap?peak=1&pid=$pid" || fail "heap?peak=1&pid=$pid failed"
check_peak "heap?peak=1" "$TMP/http_peak.pb.gz" "$mib48" "$mib48"
expect_eq "heap?peak=1&seconds=1" 400 "$(curl -s -o /dev/null -w '%{http_code}' "$pp/heap?peak=1&seconds=1")"
expect_eq "allocs?peak=1" 400 "$(curl -s -o /dev/null -w '%{http_code}' "$pp/allocs?peak=1")"
expect_eq "heap?peak=2" 400 "$(curl -s -o /dev/null -w '%{http_code}' "$pp/heap?peak=2")"
"$PPX" snapshot --socket "$sock" --pid "$pid" -o "$TMP/snap" >/dev/null 2>"$TMP/snap.err" ||
    fail "ppx snapshot: $(cat "$TMP/snap.err")"
check_peak "snapshot" "$TMP/snap/peak.pb.gz" "$mib48" "$mib48"
stop_collector || fail "ppx collect exit status $?"
finish
