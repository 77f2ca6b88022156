# Sourced by bench/run (BENCH=stacks or all): a thread dump of STACKS_THREADS
# threads (default 1000), each STACKS_DEPTH calls deep (default 16), blocked
# in read (bench/parked_bench), under a live `ppx collect --http`. Shown, as
# medians of REPEAT dumps: the time the target took (its TASKS_END took_ns,
# from the debug=2 header: listing, signalling, unwinding, waiting), the
# wall time of goroutine?debug=0 (dump, transfer, pprof build) and of
# `ppx stacks` (dump and symbolized text); the first request of each kind,
# which symbolizes the program and libc for the first time, is left out.
# Then, when tests/progs/st_parked is built (make check, libst-dev), the
# same for STACKS_COROUTINES (default 10000) state-threads coroutines
# parked in st_sleep (libst.so), and in st_cond_wait (libst.a: on no
# scheduler queue, found by their stacks).
stacks_threads=${STACKS_THREADS:-1000}
stacks_depth=${STACKS_DEPTH:-16}
libppx=$build/.libs/libppx.so
parked=$build/bench/parked_bench
[ -x "$parked" ] && [ -r "$libppx" ] || { echo "bench/run: build first (scripts/build)" >&2; exit 1; }

mkdir -m 700 -p "$tmp/stacks"
"$ppx" collect --socket "$tmp/stacks/ppx.sock" --http 127.0.0.1:0 2>"$tmp/stacks/err" &
server_pid=$!
for ((i = 0; i < 100; i++)); do grep -q 'profiles at' "$tmp/stacks/err" 2>/dev/null && break; sleep 0.05; done
stacks_url=$(sed -n 's|.*profiles at \(http://[^ ]*\)/debug/pprof/.*|\1|p' "$tmp/stacks/err")
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# dump_bench WAIT KIND TITLE PROGRAM ARGS...: PROGRAM ARGS preloaded, fed
# through a fifo, waited for (WAIT tenths of a second) until it says ready;
# then the figures of REPEAT dumps of it, TITLE, KIND ("thread" or
# "coroutine") the blocks counted in the debug=2 text.
dump_bench() {
    local wait=$1 kind=$2 title=$3 prog=$4 pid
    shift 4
    rm -f "$tmp/stacks/in"
    mkfifo "$tmp/stacks/in"
    PPX_SOCKET=$tmp/stacks/ppx.sock LD_PRELOAD=$libppx "$prog" "$@" \
        <"$tmp/stacks/in" >"$tmp/stacks/out" 2>&1 &
    pid=$!
    exec 5>"$tmp/stacks/in"
    for ((i = 0; i < wait; i++)); do grep -q ready "$tmp/stacks/out" && break; sleep 0.1; done
    for ((i = 0; i < 100; i++)); do
        curl -sf -o /dev/null "$stacks_url/debug/pprof/cmdline?pid=$pid" && break
        sleep 0.1
    done
    local took=() http=() text=()
    curl -sf -o /dev/null "$stacks_url/debug/pprof/goroutine?pid=$pid" # symbolizes once
    for ((r = 0; r < repeat; r++)); do
        start=$(date +%s%N)
        curl -sf -o "$tmp/stacks/g.pb.gz" "$stacks_url/debug/pprof/goroutine?pid=$pid"
        http+=("$(ms_since "$start")")
        start=$(date +%s%N)
        "$ppx" stacks --socket "$tmp/stacks/ppx.sock" --pid "$pid" >"$tmp/stacks/text"
        text+=("$(ms_since "$start")")
        took+=("$(sed -n 's/.*dump took \([0-9.]*\) ms.*/\1/p' "$tmp/stacks/text")")
    done
    dumped=$(grep -c "^$kind " "$tmp/stacks/text")
    echo "$kind dump: $title ($dumped dumped), median of $repeat"
    printf '  %-34s %8s ms\n' "in the target (TASKS_END took_ns)" "$(echo "${took[*]}" | median)"
    printf '  %-34s %8s ms\n' "goroutine?debug=0 over HTTP" "$(echo "${http[*]}" | median)"
    printf '  %-34s %8s ms\n' "ppx stacks (debug=2 text)" "$(echo "${text[*]}" | median)"
    exec 5>&-
    wait "$pid" || true
}

dump_bench 300 thread "$stacks_threads threads $stacks_depth calls deep" \
    "$parked" "$stacks_threads" "$stacks_depth"

st_parked=$build/tests/progs/st_parked
stacks_coroutines=${STACKS_COROUTINES:-10000}
if [ -x "$st_parked" ] && [ -x "${st_parked}_static" ]; then
    dump_bench 600 coroutine "$stacks_coroutines coroutines in st_sleep (libst.so)" \
        "$st_parked" "$stacks_coroutines" 0 0
    # on no scheduler queue: found by their stacks
    dump_bench 600 coroutine "$stacks_coroutines coroutines in st_cond_wait (libst.a)" \
        "${st_parked}_static" 0 0 "$stacks_coroutines"
else
    echo "coroutine dump: skipped (tests/progs/st_parked not built: make check, libst-dev)"
fi
kill "$server_pid" 2>/dev/null
wait "$server_pid" 2>/dev/null || true
server_pid=
