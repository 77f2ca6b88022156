# Sourced by the end-to-end tests (bash). Exit codes follow automake:
# 0 pass, 1 fail, 77 skip, 99 hard error.
#
# tests/e2e/Makefile.inc exports top_builddir and top_srcdir (absolute);
# run by hand, the tests fall back to the build tree being the current
# directory. The profile readers are in profiles.sh, sourced at the end.

set -u

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$(pwd)}"
export top_srcdir top_builddir

TEST_NAME=$(basename "$0" .sh)
PPX="$top_builddir/ppx"
LIBPPX="$top_builddir/.libs/libppx.so"
PROGS="$top_builddir/tests/progs"
# The helpers: absolute, as the tests cd into their $TMP.
TESTS_LIB="$top_srcdir/tests/lib"
PPROF_RAW="$TESTS_LIB/pprof_raw.py"
FAILURES=0

# Never leave core files of the signal tests behind.
ulimit -c 0 2>/dev/null || true

note() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }

# fail MESSAGE: records a failure and goes on, so one run shows every wrong figure.
fail() {
    note "FAIL: $*"
    FAILURES=$((FAILURES + 1))
}

# die MESSAGE: a failure after which the test cannot go on.
die() {
    fail "$*"
    exit 1
}

skip() {
    note "SKIP: $*"
    exit 77
}

# finish: the verdict of a test that used fail().
finish() {
    if [ "$FAILURES" -gt 0 ]; then
        note "$FAILURES check(s) failed"
        exit 1
    fi
    note "all checks passed"
    exit 0
}

expect_eq() { # NAME EXPECTED ACTUAL
    if [ "$2" != "$3" ]; then
        fail "$1: expected $2, got $3"
        return 1
    fi
    return 0
}

expect_within_pct() { # NAME EXPECTED ACTUAL PCT
    if ! awk -v e="$2" -v a="$3" -v p="$4" \
        'BEGIN { d = a - e; if (d < 0) d = -d; exit !(a != "" && e > 0 && d * 100 <= e * p) }'; then
        fail "$1: expected $2 within $4%, got $3"
        return 1
    fi
    return 0
}

# require_built: the parts under test exist, else the run is a hard error.
require_built() {
    local part
    for part in "$PPX" "$LIBPPX"; do
        [ -f "$part" ] || { note "ERROR: $part not built"; exit 99; }
    done
}

# have CMD: CMD is installed. require_cmd CMD [PACKAGE]: the test is
# skipped unless it is.
have() { command -v "$1" >/dev/null 2>&1; }
require_cmd() { have "$1" || skip "$1 not found${2:+ (apt-get install $2)}"; }

require_pprof() {
    require_cmd go golang-go
    require_cmd python3
}

# A private temporary directory, removed at exit together with any process
# registered with cleanup_kill.
CLEANUP_PIDS=()
cleanup_kill() { CLEANUP_PIDS+=("$1"); }
_cleanup() {
    local pid
    for pid in "${CLEANUP_PIDS[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    [ -n "${TMP:-}" ] && rm -rf "$TMP"
}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ppx-$TEST_NAME.XXXXXX") || exit 99
trap _cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

# start_fed NAME FD COMMAND...: COMMAND in the background, its stdin the
# fifo $TMP/NAME.in that the test holds open as descriptor FD (a line
# written there is a command to the program; closing it ends the program),
# its output in $TMP/NAME.out and .err. Returns once it printed "ready";
# sets fed_pid.
start_fed() {
    local name=$1 fd=$2
    shift 2
    mkfifo "$TMP/$name.in"
    "$@" <"$TMP/$name.in" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    fed_pid=$!
    cleanup_kill "$fed_pid"
    eval "exec $fd>\"\$TMP/\$name.in\""
    wait_for 300 grep -q '^ready' "$TMP/$name.out" || die "$* never got ready: $(cat "$TMP/$name.err")"
}

# quit_fed FD PID WHAT: tells the program fed through descriptor FD (see
# start_fed) to quit, closes FD, and expects PID to exit 0 ("exit status
# of WHAT").
quit_fed() {
    echo quit >&"$1"
    eval "exec $1>&-"
    wait "$2"
    expect_eq "exit status of $3" 0 "$?"
}

# free_port: a TCP port on 127.0.0.1 nobody listens on now.
free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for TRIES COMMAND...: retries COMMAND every 0.1 s; a bound on a wait,
# never a measurement.
wait_for() {
    local tries=$1
    shift
    while [ "$tries" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
        tries=$((tries - 1))
    done
    return 1
}

. "$TESTS_LIB/profiles.sh"
