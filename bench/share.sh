# Sourced by bench/run (BENCH=share or all): how much of a heap workload's
# CPU the preloaded library's own code takes, read within each run, so that
# the machine's drift between runs (which moves wall and CPU times by more
# than the hooks cost) cancels out. Each workload of bench/heap.sh runs
# under `perf record -e cpu-clock` with the floor shim preloaded and with
# libppx.so preloaded streaming to a `ppx collect` (ppx_live); the table
# shows the median share of the samples in the preloaded object, ppx's split
# into its malloc hook, its free hook and the rest (the sampled path), and
# ppx's share less the floor's. Needs perf (linux-perf) and permission to
# use it; without them it says so and shows nothing.
share_hz=${SHARE_HZ:-4000}
if ! command -v perf >/dev/null || ! perf record -q -e cpu-clock -o "$tmp/probe.data" true >/dev/null 2>&1; then
    echo "(perf missing or not permitted: no share figures)"
    return 0
fi

share_sock=$tmp/share.sock
live_collector_start "$share_sock"

# share_run LIB COMMAND...: "total own malloc free" samples of one run of
# COMMAND with LIB preloaded (own: the samples in LIB's code).
share_run() {
    local lib=$1
    shift
    PPX_SOCKET=$share_sock perf record -q -e cpu-clock -F "$share_hz" -o "$tmp/share.data" \
        env LD_PRELOAD="$lib" "$@" >/dev/null 2>&1 || return 1
    perf report -i "$tmp/share.data" -n --no-children --sort dso,sym -g none 2>/dev/null |
        awk -v d="$(basename "$lib")" '/%/ && $2 ~ /^[0-9]+$/ {
            total += $2
            if ($3 == d) { own += $2; if ($5 == "malloc") m += $2; else if ($5 == "free") f += $2 }
        } END { printf "%d %d %d %d\n", total, own, m, f }'
}

# pct PART TOTAL
pct() { awk -v p="$1" -v t="$2" 'BEGIN { printf "%.2f", (t > 0 ? 100 * p / t : 0) }'; }

share_workload() { # TITLE COMMAND...
    local title=$1 i line total own m f
    shift
    local floor_own=() ppx_own=() ppx_malloc=() ppx_free=() ppx_rest=()
    for ((i = 0; i < repeat; i++)); do
        line=$(share_run "$floor" "$@") && read -r total own m f <<<"$line" &&
            floor_own+=("$(pct "$own" "$total")")
        line=$(share_run "$build/.libs/libppx.so" "$@") && read -r total own m f <<<"$line" && {
            ppx_own+=("$(pct "$own" "$total")")
            ppx_malloc+=("$(pct "$m" "$total")")
            ppx_free+=("$(pct "$f" "$total")")
            ppx_rest+=("$(pct $((own - m - f)) "$total")")
        }
    done
    echo
    printf '%s, %% of the CPU samples in the preloaded object, median of %s runs (perf, %s Hz)\n' \
        "$title" "$repeat" "$share_hz"
    local fo po
    fo=$(echo "${floor_own[*]:-}" | median)
    po=$(echo "${ppx_own[*]:-}" | median)
    printf '%-10s %7s %7s %7s %7s   %s\n' mode own malloc free rest "runs"
    printf '%-10s %6s%% %7s %7s %7s   %s\n' floor "${fo:-?}" - - - "${floor_own[*]:-}"
    printf '%-10s %6s%% %6s%% %6s%% %6s%%   %s\n' ppx_live "${po:-?}" \
        "$(echo "${ppx_malloc[*]:-}" | median)" "$(echo "${ppx_free[*]:-}" | median)" \
        "$(echo "${ppx_rest[*]:-}" | median)" "${ppx_own[*]:-}"
    [ -n "$fo" ] && [ -n "$po" ] &&
        awk -v p="$po" -v f="$fo" 'BEGIN { printf "ppx_live - floor: %+.2f points of the CPU\n", p - f }'
}

share_workload "malloc_bench $threads threads x $steps steps" "$bench" "$threads" "$steps"
share_workload "window_bench 2 threads x $window_steps steps" "$window" 2 "$window_steps"
live_collector_stop
