# Sourced by bench/run (BENCH=collector or all): the live collector under
# many targets at once, against the same batch plain and under ppx record.
collect_procs=${COLLECT_PROCS:-50}
collect_steps=${COLLECT_STEPS:-1500000}
libppx=$build/.libs/libppx.so
[ -r "$libppx" ] || { echo "bench/run: build first (scripts/build): no $libppx" >&2; exit 1; }
clk_tck=$(getconf CLK_TCK)
collect_modes=(plain ppx_record ppx_live)

# proc_cpu_ticks PID: utime + stime of a process, its threads included
# (fields 14 and 15 of /proc/PID/stat, after the parenthesised name).
proc_cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# collect_batch MODE: "WALL_US CPU_TICKS" of collect_procs targets started at
# once and waited for; CPU_TICKS is what the batch's own processes used
# (cutime + cstime of the subshell that waited for them).
collect_batch() (
    local i start end stat
    start=$(date +%s%N)
    for ((i = 0; i < collect_procs; i++)); do
        case $1 in
        plain) "$bench" 1 "$collect_steps" ;;
        ppx_record) "$ppx" record -q -o "$tmp/record/$i" -- "$bench" 1 "$collect_steps" ;;
        ppx_live) PPX_SOCKET=$tmp/live/ppx.sock LD_PRELOAD=$libppx "$bench" 1 "$collect_steps" ;;
        esac >/dev/null 2>&1 &
    done
    wait
    end=$(date +%s%N)
    # read by this shell: in a pipeline or $(...), $BASHPID is a child's
    read -r stat <"/proc/$BASHPID/stat"
    printf '%s\n' "${stat##*) }" |
        awk -v us=$(( (end - start) / 1000 )) '{ print us, $14 + $15 }'
)

# collect_live: one ppx_live batch against a fresh collector; sets
# live_cpu_ticks, live_hwm_kb and live_written (profile sets it wrote).
collect_live() {
    local i n
    mkdir -m 700 -p "$tmp/live"
    "$ppx" collect -q --socket "$tmp/live/ppx.sock" -o "$tmp/live/out" 2>"$tmp/live/err" &
    server_pid=$!
    for ((i = 0; i < 100; i++)); do [ -S "$tmp/live/ppx.sock" ] && break; sleep 0.05; done
    collect_batch ppx_live
    # the collector writes each target's profiles when its stream ends
    for ((i = 0; i < 300; i++)); do
        n=$(ls "$tmp/live/out" 2>/dev/null | wc -l)
        [ "$n" -ge "$collect_procs" ] && break
        sleep 0.1
    done
    sleep 0.2
    live_written=$(find "$tmp/live/out" -name heap.pb.gz 2>/dev/null | wc -l)
    live_cpu_ticks=$(proc_cpu_ticks "$server_pid")
    live_hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status")
    kill -INT "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

declare -A collect_wall collect_cpu
live_cpus= live_hwms= live_counts=
for ((i = 0; i < repeat; i++)); do
    for m in "${collect_modes[@]}"; do
        if [ "$m" = ppx_live ]; then
            live_written=0 live_cpu_ticks= live_hwm_kb=
            collect_live >"$tmp/live.batch"
            read -r w c <"$tmp/live.batch" || true
            live_cpus+="$live_cpu_ticks " live_hwms+="$live_hwm_kb " live_counts+="$live_written "
        else
            mkdir -p "$tmp/record"
            read -r w c < <(collect_batch "$m") || true
        fi
        [ -n "${w:-}" ] && collect_wall[$m]+="$w " && collect_cpu[$m]+="$c "
        rm -rf "$tmp/record" "$tmp/live" "$tmp/live.batch"
        w= c=
    done
done

printf 'collector: %s malloc_bench processes (1 thread x %s steps) at once on %s CPUs, median of %s runs\n' \
    "$collect_procs" "$collect_steps" "$(nproc)" "$repeat"
printf '%-12s %10s %8s %10s %8s\n' mode wall_s ratio cpu_s ratio
base_w=$(echo "${collect_wall[plain]:-}" | median)
base_c=$(echo "${collect_cpu[plain]:-}" | median)
for m in "${collect_modes[@]}"; do
    w=$(echo "${collect_wall[$m]:-}" | median)
    c=$(echo "${collect_cpu[$m]:-}" | median)
    if [ -z "$w" ] || [ -z "$base_w" ]; then
        printf '%-12s %10s\n' "$m" failed
        continue
    fi
    awk -v m="$m" -v w="$w" -v c="$c" -v bw="$base_w" -v bc="$base_c" -v hz="$clk_tck" \
        'BEGIN { printf "%-12s %10.3f %7.3fx %10.2f %7.3fx\n", m, w / 1e6, w / bw, c / hz, bc ? c / bc : 0 }'
done
rec_w=$(echo "${collect_wall[ppx_record]:-}" | median)
live_w=$(echo "${collect_wall[ppx_live]:-}" | median)
[ -n "$rec_w" ] && [ -n "$live_w" ] &&
    awk -v r="$rec_w" -v l="$live_w" 'BEGIN { printf "live vs record: wall %.3fx\n", l / r }'
awk -v c="$(echo "$live_cpus" | median)" -v h="$(echo "$live_hwms" | median)" -v hz="$clk_tck" \
    -v w="$live_w" -v n="$(echo "$live_counts" | median)" -v p="$collect_procs" \
    'BEGIN { printf "ppx collect: cpu %.2f s (%.0f%% of one CPU over the batch), peak RSS %.1f MiB, profiles of %d/%d targets written\n",
             c / hz, w ? 100 * c / hz / (w / 1e6) : 0, h / 1024, n, p }'
