# Sourced by bench/run (BENCH=cpu or all): the CPU profilers on cpu_bench.
cpu_bench=$build/bench/cpu_bench
cpu_threads=${CPU_THREADS:-4}
cpu_rounds=${CPU_ROUNDS:-300}
[ -x "$cpu_bench" ] || { echo "bench/run: build first (scripts/build): no $cpu_bench" >&2; exit 1; }
cpu_modes=(plain ppx_cpu_off ppx_default)
# (awk reads to the end: ldconfig, cut short, would fail the pipeline)
libprofiler=$(ldconfig -p 2>/dev/null | awk '$1 == "libprofiler.so.0" && p == "" { p = $NF } END { print p }')
[ -n "$libprofiler" ] && cpu_modes+=(gperftools)

# cpu_run MODE: "WORKLOAD_US TOTAL_US CPU_US" of one run: the workload's own
# wall time and its process's CPU time (cpu_bench prints them), and the
# whole command's wall time, in microseconds.
cpu_run() {
    local start end out
    start=$(date +%s%N)
    case $1 in
    plain) out=$("$cpu_bench" "$cpu_threads" "$cpu_rounds") || out= ;;
    ppx_cpu_off) out=$(PPX_CPU_HZ=0 "$ppx" record -q -o "$tmp/cpu_off" -- "$cpu_bench" "$cpu_threads" "$cpu_rounds") || out= ;;
    ppx_default) out=$("$ppx" record -q -o "$tmp/cpu" -- "$cpu_bench" "$cpu_threads" "$cpu_rounds") || out= ;;
    gperftools) out=$(LD_PRELOAD=$libprofiler CPUPROFILE=$tmp/gperftools.prof "$cpu_bench" "$cpu_threads" "$cpu_rounds") || out= ;;
    esac 2>/dev/null
    end=$(date +%s%N)
    printf '%s\n' "$out" | awk -v total=$(( (end - start) / 1000 )) \
        '/^cpu_bench:/ { for (i = 1; i < NF; i++) { if ($i == "wall") w = $(i + 1); if ($i == "cpu") c = $(i + 1) }
                         printf "%.0f %d %.0f\n", w * 1e6, total, c * 1e6 }'
}

declare -A cpu_work cpu_total cpu_cpu cpu_samples
for ((i = 0; i < repeat; i++)); do
    for m in "${cpu_modes[@]}"; do
        read -r w t c < <(cpu_run "$m") || true
        [ -n "${w:-}" ] && cpu_work[$m]+="$w " && cpu_total[$m]+="$t " && cpu_cpu[$m]+="$c "
        # a profiler that wrote no profile measured nothing: the table says so
        case $m in
        ppx_default) [ -s "$tmp/cpu/cpu.pb.gz" ] && cpu_samples[$m]=ok ;;
        gperftools) [ -s "$tmp/gperftools.prof" ] && cpu_samples[$m]=ok ;;
        esac
        rm -rf "$tmp/cpu" "$tmp/cpu_off" "$tmp"/gperftools.prof*
        w= t= c=
    done
done

printf 'cpu_bench %s threads x %s rounds on %s CPUs, median of %s runs\n' "$cpu_threads" "$cpu_rounds" "$(nproc)" "$repeat"
printf '%-12s %10s %8s %10s %8s %10s %8s\n' mode workload_s ratio total_s ratio cpu_s ratio
base_w=$(echo "${cpu_work[plain]:-}" | median)
base_t=$(echo "${cpu_total[plain]:-}" | median)
base_c=$(echo "${cpu_cpu[plain]:-}" | median)
for m in "${cpu_modes[@]}"; do
    w=$(echo "${cpu_work[$m]:-}" | median)
    t=$(echo "${cpu_total[$m]:-}" | median)
    c=$(echo "${cpu_cpu[$m]:-}" | median)
    if [ -z "$w" ] || [ -z "$base_w" ]; then
        printf '%-12s %10s\n' "$m" failed
        continue
    fi
    note=
    case $m in ppx_default | gperftools) [ -n "${cpu_samples[$m]:-}" ] || note="  (no profile written!)" ;; esac
    awk -v m="$m" -v w="$w" -v t="$t" -v c="$c" -v bw="$base_w" -v bt="$base_t" -v bc="$base_c" -v n="$note" \
        'BEGIN { printf "%-12s %10.3f %7.3fx %10.3f %7.3fx %10.3f %7.3fx%s\n", m, w / 1e6, w / bw, t / 1e6, t / bt, c / 1e6, c / bc, n }'
done
[ -n "$libprofiler" ] || echo "(libprofiler.so.0 not installed: apt-get install libgoogle-perftools4 for its figures)"
