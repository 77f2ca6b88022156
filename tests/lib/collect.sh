# Running ppx collect in the collector tests (sourced after common.sh).
# A test runs in its $TMP; its collector's socket is $sock unless it sets
# another (ppx collect creates the directory).
require_built
require_cmd curl curl
cd "$TMP" || exit 99
sock="$TMP/sock/ppx.sock"

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

# collector_knows PID: the collector at $pp has heard of process PID.
collector_knows() {
    curl -sf -o /dev/null "$pp/cmdline?pid=$1"
}

# fifo_target NAME FD [VAR=VALUE...] PROGRAM [ARG...]: PROGRAM under
# LD_PRELOAD, streaming to $sock (PPX_CPU_HZ unset unless given), fed as
# start_fed feeds it. Returns once it printed "ready" and the collector
# knows it; sets target_pid.
fifo_target() {
    local name=$1 fd=$2
    shift 2
    start_fed "$name" "$fd" env -u PPX_CPU_HZ PPX_SOCKET="$sock" LD_PRELOAD="$LIBPPX" "$@"
    target_pid=$fed_pid
    wait_for 100 collector_knows "$target_pid" || die "$* never connected to the collector"
}

# snapshot_of PID DIR: `ppx snapshot` of process PID from the collector on
# $sock (--pid: the files are in DIR itself).
snapshot_of() {
    rm -rf "$2"
    "$PPX" snapshot --socket "$sock" --pid "$1" -o "$2" >/dev/null
}

# cpu_samples DIR: the samples of the CPU profile in the snapshot DIR;
# nothing (and a note) if it has none.
cpu_samples() {
    [ -s "$1/cpu.pb.gz" ] || { note "no cpu.pb.gz in the snapshot $1: $(ls "$1" 2>&1)"; return 1; }
    pprof_raw "$1/cpu.pb.gz" --total --type samples
}
