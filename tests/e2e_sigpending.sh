#!/usr/bin/env bash
# CPU timers and the per-user limit of queued signals (RLIMIT_SIGPENDING,
# `ulimit -i`): each POSIX timer holds one slot of it, and ppx's per-thread
# timers must leave the program its share. tests/progs/timer_limit starts 30
# threads, then creates timers until timer_create fails.
# - At `ulimit -i` = what the user uses now + 40, a plain run gets ~40 timers.
#   Under ppx with PPX_CPU_HZ=100 (31 threads to sample) the program still
#   gets at least half of the plain run's (README: ppx takes at most half of
#   what the user's other signals leave), exit status 0, and ppx says once
#   that threads go unsampled.
# (The count is per user: other processes of the same user may take or give
# back a few slots meanwhile, hence a margin of 3.)
. "$(dirname "$0")/lib/common.sh"
require_built

prog="$PROGS/timer_limit"
used=$(awk '$1 == "SigQ:" { split($2, q, "/"); print q[1] }' /proc/self/status)
[ -n "$used" ] || skip "no SigQ in /proc/self/status"
limit=$((used + 40))
note "queued signals of this user now: $used; ulimit -i $limit"

run() { # NAME ENV...
    local name=$1
    shift
    (ulimit -i "$limit" && env "$@" "$prog" 30) >"$TMP/$name.out" 2>"$TMP/$name.err"
}
run plain X=plain || die "timer_limit 30 (no ppx, ulimit -i $limit): exit status $?, stderr: $(cat "$TMP/plain.err")"
plain=$(awk '$1 == "timers:" { print $2 }' "$TMP/plain.out")
[ "${plain:-0}" -ge 20 ] || skip "only ${plain:-0} timers at ulimit -i $limit without ppx: the user's other processes use too many"

run ppx LD_PRELOAD="$LIBPPX" PPX_SOCKET="$TMP/nonexistent/ppx.sock" PPX_CPU_HZ=100
expect_eq "timer_limit 30 under ppx (PPX_CPU_HZ=100, ulimit -i $limit): exit status" 0 "$?"
got=$(awk '$1 == "timers:" { print $2 }' "$TMP/ppx.out")
note "timers: $plain without ppx, ${got:-?} under ppx"
[ "${got:-0}" -ge $((plain / 2 - 3)) ] ||
    fail "timer_limit under ppx got ${got:-?} timers, plain run $plain: expected at least $((plain / 2 - 3)) (half, less a margin of 3)"
expect_eq "ppx lines on stderr naming ulimit -i" 1 "$(grep -c '^ppx:.*ulimit -i' "$TMP/ppx.err")"
expect_eq "other ppx lines on stderr" 0 "$(grep '^ppx:' "$TMP/ppx.err" | grep -vc 'ulimit -i')"

# The limit far away: ppx samples every thread and says nothing.
(env LD_PRELOAD="$LIBPPX" PPX_SOCKET="$TMP/nonexistent/ppx.sock" PPX_CPU_HZ=100 "$prog" 30) \
    >"$TMP/free.out" 2>"$TMP/free.err"
expect_eq "timer_limit 30 under ppx, default ulimit -i: exit status" 0 "$?"
expect_eq "default ulimit -i: ppx lines on stderr" 0 "$(grep -c '^ppx:' "$TMP/free.err")"
finish
