#!/usr/bin/env bash
# CPU timers and the per-user limit of queued signals (RLIMIT_SIGPENDING,
# `ulimit -i`): each POSIX timer holds one slot of it, and ppx's per-thread
# timers must leave the program its slots. tests/progs/timer_limit starts 30
# threads, then creates timers (or queues signals) until that fails.
# At `ulimit -i` = what the user uses now + 40, with PPX_CPU_HZ=100 (31 threads
# to sample), exit status 0 each time, and:
# - timers: the program gets as many as in a plain run (~40): ppx gives its
#   own timers back when the program's timer_create fails with EAGAIN;
# - queued signals (sigqueue, not hooked): the program gets at least half of
#   the plain run's (README: ppx takes at most half of what the user's other
#   signals leave);
# - ppx says so on stderr, naming ulimit -i, and nothing else.
# (The count is per user: other processes of the same user may take or give
# back a few slots meanwhile, hence a margin of 3.)
. "$(dirname "$0")/../lib/common.sh"
require_built

prog="$PROGS/timer_limit"
used=$(awk '$1 == "SigQ:" { split($2, q, "/"); print q[1] }' /proc/self/status)
[ -n "$used" ] || skip "no SigQ in /proc/self/status"
limit=$((used + 40))
note "queued signals of this user now: $used; ulimit -i $limit"

run_limited() { # NAME WHAT ENV...: timer_limit 30 WHAT at ulimit -i $limit
    local name=$1 what=$2
    shift 2
    (ulimit -i "$limit" && env "$@" "$prog" 30 "$what") >"$TMP/$name.out" 2>"$TMP/$name.err"
}
figure() { awk -v k="$2:" '$1 == k { print $2 }' "$TMP/$1.out"; }

for what in timers signals; do
    run_limited "plain.$what" "$what" X=plain ||
        die "timer_limit 30 $what (no ppx, ulimit -i $limit): exit status $?, stderr: $(cat "$TMP/plain.$what.err")"
    plain=$(figure "plain.$what" "$what")
    [ "${plain:-0}" -ge 20 ] ||
        skip "only ${plain:-0} $what at ulimit -i $limit without ppx: the user's other processes use too many"
    run_limited "ppx.$what" "$what" LD_PRELOAD="$LIBPPX" PPX_SOCKET="$TMP/nonexistent/ppx.sock" PPX_CPU_HZ=100
    expect_eq "timer_limit 30 $what under ppx (PPX_CPU_HZ=100, ulimit -i $limit): exit status" 0 "$?"
    got=$(figure "ppx.$what" "$what")
    note "$what: $plain without ppx, ${got:-?} under ppx"
    if [ "$what" = timers ]; then
        want=$((plain - 3)) rule="as many as without ppx"
    else
        want=$((plain / 2 - 3)) rule="half of those without ppx"
    fi
    [ "${got:-0}" -ge "$want" ] ||
        fail "timer_limit under ppx got ${got:-?} $what, plain run $plain: expected at least $want ($rule, less a margin of 3)"
    grep -q '^ppx:.*ulimit -i' "$TMP/ppx.$what.err" || fail "$what: ppx did not say it leaves threads unsampled"
    expect_eq "$what: ppx lines on stderr not about ulimit -i" 0 "$(grep '^ppx:' "$TMP/ppx.$what.err" | grep -vc 'ulimit -i')"
done

finish
