#!/usr/bin/env bash
# Threads with small stacks: libppx.so's static TLS, which glibc takes out of
# every thread's stack, stays a few hundred bytes (its per-thread buffers
# come from its own memory), and walks that would overflow a small stack are
# cut short instead.
# - tests/progs/small_stack: a thread with a 16 KiB stack (PTHREAD_STACK_MIN)
#   and 8000 bytes of locals that allocates and burns CPU exits 0 with the
#   plain run's output under ppx: sampling, exact mode, exact mode with CPU
#   sampling at 1000 Hz; in exact mode its 8 allocations are all counted.
# - 4000 such threads one after another (exact mode): the program's memory
#   grows by less than a thread's buffers times the threads (they are
#   recycled), VmRSS from the 1000th thread to the last < 8 MiB (without
#   recycling, 3000 threads' buffers of 10.9 KiB are 32 MiB; with it, 1.6
#   MiB on a quiet machine, up to 4.4 MiB when load lets threads pile up).
# - libppx.so's PT_TLS segment is below 512 bytes.
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

prog="$PROGS/small_stack"
"$prog" locals 8000 >"$TMP/plain.out" 2>"$TMP/plain.err"
expect_eq "small_stack locals 8000 (no ppx): exit status" 0 "$?"
expect_eq "small_stack (no ppx): output" "8000 bytes of locals on a 16 KiB stack: 9" "$(cat "$TMP/plain.out")"

run_mode() { # NAME ENV...
    local name=$1
    shift
    env "$@" "$PPX" record -q -o "$TMP/$name" -- "$prog" locals 8000 >"$TMP/$name.out" 2>"$TMP/$name.err"
    expect_eq "small_stack under ppx ($name): exit status" 0 "$?"
    cmp -s "$TMP/plain.out" "$TMP/$name.out" ||
        fail "small_stack under ppx ($name): output '$(cat "$TMP/$name.out")', stderr: $(head -3 "$TMP/$name.err")"
}
run_mode sampled PPX_CPU_HZ=100
run_mode exact PPX_SAMPLE_RATE=1
run_mode exact_cpu PPX_SAMPLE_RATE=1 PPX_CPU_HZ=1000

file="$TMP/exact/allocs.pb.gz"
if [ -s "$file" ]; then
    flat=$(pprof_raw "$file" --flat-table) || fail "cannot read $file"
    #                                         alloc_objects alloc_space inuse_objects inuse_space
    expect_figures "$flat" "exact allocs" deep_locals 8 540 0 0
else
    fail "exact: allocs.pb.gz not written (ls: $(ls "$TMP/exact" 2>&1))"
fi

"$PPX" record -q --exact -o "$TMP/churn" -- "$prog" churn 4000 >"$TMP/churn.out" 2>"$TMP/churn.err"
expect_eq "small_stack churn 4000 under ppx --exact: exit status" 0 "$?"
expect_eq "churn: threads" 4000 "$(awk '$1 == "churn:" { print $2 }' "$TMP/churn.out")"
growth=$(awk '$1 == "rss" { print $3 }' "$TMP/churn.out")
note "churn: VmRSS grew by ${growth:-?} KiB over 3000 threads"
[ -n "$growth" ] && [ "$growth" -lt 8192 ] ||
    fail "churn: VmRSS grew by ${growth:-?} KiB over 3000 short threads (per-thread buffers not recycled?), expected < 8192"

if have readelf; then
    tls=$(readelf -lW "$LIBPPX" | awk '$1 == "TLS" { print $6 }')
    note "libppx.so static TLS: $tls bytes ($((tls)))"
    [ -n "$tls" ] && [ $((tls)) -lt 512 ] || fail "libppx.so static TLS is $tls bytes, expected < 512"
fi
finish
