# Running ppx collect in the collector tests (sourced after common.sh).
command -v curl >/dev/null 2>&1 || skip "curl not found (apt-get install curl)"

# start_collector LOG ARGS...: `ppx collect ARGS` in the background, its
# stderr in LOG, not holding the test's descriptors 3 and 4 (targets that
# read a fifo end when the test closes it). Sets collector (its pid), and
# with --http url (http://HOST:PORT) and pp ($url/debug/pprof).
start_collector() {
    local log=$1
    shift
    "$PPX" collect "$@" 2>"$log" 3>&- 4>&- &
    collector=$!
    cleanup_kill "$collector"
    wait_for 100 grep -q 'collecting on' "$log" || die "ppx collect $* did not start: $(cat "$log")"
    url=$(sed -n 's|.*profiles at \(http://[^/]*\)/debug/pprof/.*|\1|p' "$log")
    pp="$url/debug/pprof"
}

# stop_collector: SIGTERM; returns its exit status.
stop_collector() {
    kill -TERM "$collector"
    wait "$collector"
}

# fifo_target NAME FD PROG [VAR=VALUE...]: tests/progs/PROG under
# LD_PRELOAD, streaming to $sock (PPX_CPU_HZ unset unless given), its
# stdin the fifo $TMP/NAME.in that the test holds open as descriptor FD
# (closing it ends the program), its output in $TMP/NAME.out and .err.
# Returns once it printed "ready" and the collector knows it; sets
# target_pid.
fifo_target() {
    local name=$1 fd=$2 prog=$3
    shift 3
    mkfifo "$TMP/$name.in"
    env -u PPX_CPU_HZ PPX_SOCKET="$sock" LD_PRELOAD="$LIBPPX" "$@" "$PROGS/$prog" \
        <"$TMP/$name.in" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    target_pid=$!
    cleanup_kill "$target_pid"
    eval "exec $fd>\"\$TMP/\$name.in\""
    wait_for 300 grep -q '^ready' "$TMP/$name.out" ||
        die "$prog $* never got ready: $(cat "$TMP/$name.err")"
    wait_for 100 curl -sf -o /dev/null "$pp/cmdline?pid=$target_pid" ||
        die "$prog $* never connected to the collector"
}
