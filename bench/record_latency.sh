#!/usr/bin/env bash
# What `ppx record` adds to a short program's wall time: mostly what it
# does after the program exits (symbolizing, writing five profiles).
# Modes, interleaved, RUNS times each:
#   plain        the program alone
#   record_cold  ppx record with PPX_CACHE=off: every separate debug file
#                read as shipped (compressed sections inflated each run)
#   record_first ppx record with an empty cache each time: the first run
#                after a library update (the copies are made while the
#                command runs, cmd/record_warm.c, as far as it lasts)
#   record       ppx record with its cache, in a private XDG_CACHE_HOME
#                filled by one run first: what a user pays from the
#                second run of a program on
# Prints each mode's median wall time and the median minus plain's.
#
# usage: bench/record_latency.sh [COMMAND [ARGS...]]
#   default COMMAND: bench/malloc_bench 1 100000 (~0.05 s)
# env: RUNS (default 11), PPX_BUILD (the build tree, default this tree)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${PPX_BUILD:-$top}
ppx=$build/ppx
runs=${RUNS:-11}
if [ $# -eq 0 ]; then
    set -- "$build/bench/malloc_bench" 1 100000
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_mode() {
    local mode=$1
    shift
    case $mode in
    plain) "$@" ;;
    record_cold) PPX_CACHE=off "$ppx" record -q -o "$tmp/out" -- "$@" ;;
    record_first) XDG_CACHE_HOME=$tmp/first "$ppx" record -q -o "$tmp/out" -- "$@" ;;
    record) XDG_CACHE_HOME=$tmp/cache "$ppx" record -q -o "$tmp/out" -- "$@" ;;
    esac
}

modes=(plain record_cold record_first record)
run_mode record "$@" >/dev/null 2>&1 # fills the cache
declare -A times
for ((i = 0; i < runs; i++)); do
    for m in "${modes[@]}"; do
        rm -rf "$tmp/first" # (record_first's cache: empty each time)
        start=$(date +%s%N)
        run_mode "$m" "$@" >/dev/null 2>&1
        end=$(date +%s%N)
        times[$m]+="$(((end - start) / 1000)) "
    done
done

base=$(echo "${times[plain]}" | median)
printf '%s, median of %s runs\n' "$*" "$runs"
printf '%-12s %10s %10s\n' mode seconds added_ms
for m in "${modes[@]}"; do
    t=$(echo "${times[$m]}" | median)
    awk -v m="$m" -v t="$t" -v b="$base" \
        'BEGIN {printf "%-12s %10.3f %10.1f\n", m, t / 1e6, (t - b) / 1e3}'
done
