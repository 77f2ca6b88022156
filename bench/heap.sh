# Sourced by bench/run (BENCH=heap or all): the heap profilers on two
# workloads, malloc_bench (threads x steps) and window_bench (2 threads,
# malloc-dominated), one table each, the same rows in both:
# - plain, and floor: a forwarding shim preloaded (bench/floor_shim.c), the
#   cost of interposition alone; ppx and heaptrack are shown against it too;
# - ppx_live: the workload preloaded, streaming to a `ppx collect` started
#   once for the tables (the target's own cost, what the floor is for);
# - ppx_default, ppx_exact (ppx record: with its start and its profiles
#   written after the exit), heaptrack when installed;
# - jemalloc alone and jeprof (its own profiler, prof:true,lg_prof_sample:19:
#   ppx's default rate), tcmalloc alone and heapprofile (gperftools'
#   HEAPPROFILE), each against its allocator alone, when the libraries are
#   installed. These run under a timeout (HEAP_TIMEOUT seconds, default 60):
#   one that does not finish is shown so and not run again.
# HEAP_MODES="plain floor ppx_live" runs only those rows.
heap_timeout=${HEAP_TIMEOUT:-60}
[ -x "$window" ] && [ -r "$floor" ] || { echo "bench/run: build first (scripts/build): no $window or $floor" >&2; exit 1; }

# find_lib NAME: the path of an installed shared library, or nothing.
find_lib() {
    local d
    for d in "/usr/lib/$(uname -m)-linux-gnu" /usr/lib64 /usr/lib; do
        [ -r "$d/$1" ] && { echo "$d/$1"; return; }
    done
}
jemalloc=$(find_lib libjemalloc.so.2)
tcmalloc=$(find_lib libtcmalloc.so.4)

modes=(plain floor ppx_default ppx_exact)
command -v heaptrack >/dev/null && modes+=(heaptrack)
heap_notes=()
if [ -n "$jemalloc" ]; then
    modes+=(jemalloc)
    # A jemalloc built without --enable-prof warns about prof:true and
    # profiles nothing: no row then, and a note says why.
    if [ -z "$(cd "$tmp" && MALLOC_CONF=prof:true LD_PRELOAD=$jemalloc "$window" 1 1 2>&1 >/dev/null)" ]; then
        modes+=(jeprof)
    else
        heap_notes+=("jeprof: $jemalloc is built without --enable-prof")
    fi
fi
[ -n "$tcmalloc" ] && modes+=(tcmalloc heapprofile)
modes=(plain floor ppx_live "${modes[@]:2}")
[ -n "${HEAP_MODES:-}" ] && read -ra modes <<<"$HEAP_MODES"

# The live collector ppx_live streams to.
live_sock=$tmp/live.sock
live_collector_start "$live_sock"

# The row each mode is also compared with: the profilers that hook glibc's
# malloc with the floor, the allocators' own profilers with their allocator.
declare -A heap_base=([ppx_live]=floor [ppx_default]=floor [ppx_exact]=floor [heaptrack]=floor
    [jeprof]=jemalloc [heapprofile]=tcmalloc)

# heap_mode MODE COMMAND...: runs COMMAND in MODE, its output dropped;
# exit status 124 when it ran out of time.
heap_mode() {
    local m=$1
    shift
    case $m in
    plain) "$@" ;;
    floor) LD_PRELOAD=$floor "$@" ;;
    ppx_live) PPX_SOCKET=$live_sock LD_PRELOAD=$build/.libs/libppx.so "$@" ;;
    ppx_default) "$ppx" record -q -o "$tmp/default" -- "$@" ;;
    ppx_exact) "$ppx" record -q --exact -o "$tmp/exact" -- "$@" ;;
    heaptrack) heaptrack -o "$tmp/heaptrack" "$@" ;;
    jemalloc) LD_PRELOAD=$jemalloc timeout "$heap_timeout" "$@" ;;
    # prof_final: a profile written at exit, as the others write theirs
    jeprof) MALLOC_CONF=prof:true,lg_prof_sample:19,prof_final:true,prof_prefix:$tmp/jeprof \
        LD_PRELOAD=$jemalloc timeout "$heap_timeout" "$@" ;;
    tcmalloc) LD_PRELOAD=$tcmalloc timeout "$heap_timeout" "$@" ;;
    heapprofile) HEAPPROFILE=$tmp/heapprofile LD_PRELOAD=$tcmalloc timeout "$heap_timeout" "$@" ;;
    esac >/dev/null 2>&1
}

# heap_table TITLE COMMAND...: REPEAT interleaved runs of every mode, then
# the table of medians: wall time, and CPU time (user + system of the run's
# processes: ppx record's collector included, ppx_live's not; steadier than
# wall time on a loaded machine), each against plain and the mode's base.
heap_table() {
    local title=$1 i m t b rc c cb
    shift
    local -A times=() cpus=() unfinished=()
    local TIMEFORMAT='%3U %3S' # bash's time: the CPU of the run's processes
    for ((i = 0; i < repeat; i++)); do
        for m in "${modes[@]}"; do
            [ -n "${unfinished[$m]:-}" ] && continue
            start=$(date +%s%N)
            rc=0
            { time heap_mode "$m" "$@"; } 2>"$tmp/cpu" || rc=$?
            end=$(date +%s%N)
            rm -rf "$tmp"/heaptrack* "$tmp"/jeprof* "$tmp"/heapprofile*
            if [ "$rc" = 124 ]; then
                unfinished[$m]=1
            elif [ "$rc" != 0 ]; then
                echo "bench/run: $m failed (exit status $rc): $*" >&2
                exit 1
            else
                times[$m]+="$(((end - start) / 1000)) "
                cpus[$m]+="$(awk 'END { printf "%d", ($1 + $2) * 1e6 }' "$tmp/cpu") "
            fi
        done
    done

    local -A med=() cmed=()
    for m in "${modes[@]}"; do
        [ -z "${unfinished[$m]:-}" ] || continue
        med[$m]=$(echo "${times[$m]}" | median)
        cmed[$m]=$(echo "${cpus[$m]}" | median)
    done
    b=${med[plain]} cb=${cmed[plain]}
    printf '%s, median of %s runs\n' "$title" "$repeat"
    printf '%-12s %10s %8s %18s %8s %8s\n' mode seconds ratio "" cpu_s ratio
    for m in "${modes[@]}"; do
        if [ -n "${unfinished[$m]:-}" ]; then
            printf '%-12s %10s\n' "$m" "did not finish in ${heap_timeout} s"
            continue
        fi
        t=${med[$m]} c=${cmed[$m]}
        local base=${heap_base[$m]:-} against="" cpu_against=""
        if [ -n "$base" ] && [ -n "${med[$base]:-}" ]; then
            against=$(awk -v t="$t" -v b="${med[$base]}" -v n="$base" 'BEGIN {printf "%7.2fx %s", t / b, n}')
            cpu_against=$(awk -v t="$c" -v b="${cmed[$base]}" 'BEGIN {printf "%7.2fx", b ? t / b : 0}')
        fi
        awk -v m="$m" -v t="$t" -v b="$b" -v a="$against" -v c="$c" -v cb="$cb" -v ca="$cpu_against" \
            'BEGIN {printf "%-12s %10.3f %7.2fx %18s %8.3f %7.2fx %s\n", m, t / 1e6, t / b, a, c / 1e6, cb ? c / cb : 0, ca}'
    done
    if [ -n "${med[heaptrack]:-}" ]; then
        awk -v e="${med[ppx_exact]}" -v h="${med[heaptrack]}" \
            'BEGIN {printf "heaptrack / ppx_exact: %.2fx\n", h / e}'
    fi
    for m in "${heap_notes[@]}"; do echo "$m"; done
}

heap_table "malloc_bench $threads threads x $steps steps" "$bench" "$threads" "$steps"
echo
heap_table "window_bench 2 threads x $window_steps steps" "$window" 2 "$window_steps"
live_collector_stop
