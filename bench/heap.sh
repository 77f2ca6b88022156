# Sourced by bench/run (BENCH=heap or all): the heap profilers on malloc_bench.
modes=(plain ppx_default ppx_exact)
command -v heaptrack >/dev/null && modes+=(heaptrack)

run_mode() {
    case $1 in
    plain) "$bench" "$threads" "$steps" ;;
    ppx_default) "$ppx" record -q -o "$tmp/default" -- "$bench" "$threads" "$steps" ;;
    ppx_exact) "$ppx" record -q --exact -o "$tmp/exact" -- "$bench" "$threads" "$steps" ;;
    heaptrack) heaptrack -o "$tmp/heaptrack" "$bench" "$threads" "$steps" ;;
    esac >/dev/null 2>&1
}

declare -A times
for ((i = 0; i < repeat; i++)); do
    for m in "${modes[@]}"; do
        start=$(date +%s%N)
        run_mode "$m"
        end=$(date +%s%N)
        times[$m]+="$(( (end - start) / 1000 )) "
        rm -rf "$tmp"/heaptrack* 
    done
done

base=$(echo "${times[plain]}" | median)
printf 'malloc_bench %s threads x %s steps, median of %s runs\n' "$threads" "$steps" "$repeat"
printf '%-12s %10s %8s\n' mode seconds ratio
for m in "${modes[@]}"; do
    t=$(echo "${times[$m]}" | median)
    awk -v m="$m" -v t="$t" -v b="$base" 'BEGIN {printf "%-12s %10.3f %7.2fx\n", m, t / 1e6, t / b}'
done
