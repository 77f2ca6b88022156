#!/usr/bin/env bash
# The time/nanoseconds figures are true: the wall time ppx records inside 20
# poll calls lies within what the program itself measured around them (an
# interval nested in the program's), and loses at most 1% to the hook.
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

out="$TMP/out"
own_ns=$("$PPX" record -q -o "$out" -- "$PROGS/io_timed") || die "io_timed failed under ppx"
calls=$(pprof_raw "$out/syscalls.pb.gz" --type calls --cum timed_polls)
ppx_ns=$(pprof_raw "$out/syscalls.pb.gz" --type time --cum timed_polls)
expect_eq "poll calls from timed_polls" 20 "$calls"
[ "$ppx_ns" -le "$own_ns" ] || fail "ppx's poll time $ppx_ns ns exceeds the program's own $own_ns ns"
[ "$ppx_ns" -ge $((own_ns * 99 / 100)) ] ||
    fail "ppx's poll time $ppx_ns ns is under 99% of the program's own $own_ns ns"
[ "$ppx_ns" -ge 500000000 ] || fail "20 polls of 25 ms took $ppx_ns ns by ppx's clock"
finish
