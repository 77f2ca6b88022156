# Sourced by bench/run (BENCH=lock or all): the lock hooks on lock_bench.
# - uncontended: 1 and 2 threads, each locking and unlocking a mutex of its
#   own LOCK_PAIRS times: nanoseconds of CPU time per pair, plain, under the forwarding
#   shim (bench/lock_floor_shim.c: the floor of interposition) and under
#   ppx record at its defaults; ppx's ns above the floor's (the target:
#   within 2 ns a pair);
# - contended: LOCK_THREADS (4) threads on one mutex, LOCK_OPS each:
#   operations per second, plain, floor, ppx at its defaults and ppx
#   recording every event (PPX_BLOCK_RATE=1 PPX_MUTEX_FRACTION=1), against
#   plain (higher is better; the target for the defaults: >= 0.97x).
lock_bench=$build/bench/lock_bench
lock_floor=$build/bench/.libs/lock_floor_shim.so
lock_pairs=${LOCK_PAIRS:-30000000}
lock_threads=${LOCK_THREADS:-4}
lock_ops=${LOCK_OPS:-1000000}
[ -x "$lock_bench" ] && [ -r "$lock_floor" ] ||
    { echo "bench/run: build first (scripts/build): no $lock_bench or $lock_floor" >&2; exit 1; }

# lock_run MODE ARGS...: lock_bench ARGS in MODE; prints its "ns_per_pair
# ops_per_s" figures, nothing if it failed.
lock_run() {
    local m=$1 out
    shift
    case $m in
    plain) out=$("$lock_bench" "$@") ;;
    floor) out=$(LD_PRELOAD=$lock_floor "$lock_bench" "$@") ;;
    ppx_default) out=$("$ppx" record -q -o "$tmp/lock" -- "$lock_bench" "$@") ;;
    ppx_all) out=$(PPX_BLOCK_RATE=1 PPX_MUTEX_FRACTION=1 "$ppx" record -q -o "$tmp/lock" -- "$lock_bench" "$@") ;;
    esac 2>/dev/null || out=
    rm -rf "$tmp/lock"
    printf '%s\n' "$out" | awk '/^lock_bench:/ { print $3, $5 }'
}

declare -A lock_ns1 lock_ns2 lock_ops_s
for ((i = 0; i < repeat; i++)); do
    for m in plain floor ppx_default; do
        read -r ns _ < <(lock_run "$m" uncontended 1 "$lock_pairs") && lock_ns1[$m]+="$ns "
        read -r ns _ < <(lock_run "$m" uncontended 2 "$lock_pairs") && lock_ns2[$m]+="$ns "
    done
    for m in plain floor ppx_default ppx_all; do
        read -r _ ops < <(lock_run "$m" contended "$lock_threads" "$lock_ops") && lock_ops_s[$m]+="$ops "
    done
done

printf 'lock_bench uncontended: %s lock/unlock pairs per thread on %s CPUs, median of %s runs\n' \
    "$lock_pairs" "$(nproc)" "$repeat"
printf '%-12s %12s %10s %12s %10s\n' mode 1thr_ns/pair vs_floor 2thr_ns/pair vs_floor
f1=$(echo "${lock_ns1[floor]:-}" | median)
f2=$(echo "${lock_ns2[floor]:-}" | median)
for m in plain floor ppx_default; do
    a=$(echo "${lock_ns1[$m]:-}" | median)
    b=$(echo "${lock_ns2[$m]:-}" | median)
    [ -n "$a" ] && [ -n "$b" ] && [ -n "$f1" ] && [ -n "$f2" ] || { printf '%-12s %12s\n' "$m" failed; continue; }
    awk -v m="$m" -v a="$a" -v b="$b" -v f1="$f1" -v f2="$f2" \
        'BEGIN { printf "%-12s %12.2f %+9.2f %12.2f %+9.2f\n", m, a, a - f1, b, b - f2 }'
done
printf 'lock_bench contended: %s threads x %s operations on one mutex, median of %s runs\n' \
    "$lock_threads" "$lock_ops" "$repeat"
printf '%-12s %12s %8s\n' mode ops/s ratio
base=$(echo "${lock_ops_s[plain]:-}" | median)
for m in plain floor ppx_default ppx_all; do
    o=$(echo "${lock_ops_s[$m]:-}" | median)
    [ -n "$o" ] && [ -n "$base" ] || { printf '%-12s %12s\n' "$m" failed; continue; }
    awk -v m="$m" -v o="$o" -v b="$base" 'BEGIN { printf "%-12s %12.0f %7.3fx\n", m, o, o / b }'
done
