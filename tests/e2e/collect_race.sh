#!/usr/bin/env bash
# Two `ppx collect` started at once on one socket: exactly one runs, the
# other exits 1 saying another collector runs there (a lock file held for
# the collector's life). Without the lock, checking for a live collector,
# removing a stale socket and binding are three steps: both could pass the
# check, and the second unlink the first's socket and bind its own.
#  - deterministic: under strace, each collector's unlink waits 0.5 s, the
#    second starting 0.1 s after the first: without the lock, the second
#    checks before the first binds and unlinks after it, and both run;
#  - statistical: 50 pairs started together, without strace.
. "$(dirname "$0")/../lib/common.sh"
require_built
cd "$TMP" || exit 99
sock="$TMP/ppx.sock"
message="ppx: another collector is running on $sock (it holds $sock.lock); not starting a second one"

# settle LOG_A LOG_B: both have said something (started or refused).
settle() {
    wait_for 100 test -s "$1" && wait_for 100 test -s "$2"
}

# judge PAIR PID_A PID_B: exactly one of the two is collecting, the other
# exited 1 with the message; then the one running is stopped (exit 0).
judge() {
    local pair=$1 a=$2 b=$3 running=() side pid rc
    for side in a b; do
        pid=${!side}
        if grep -q '^ppx: collecting on' "$TMP/$pair.$side.log"; then
            running+=("$pid")
        else
            wait "$pid"
            rc=$?
            expect_eq "pair $pair: exit status of the refused collector" 1 "$rc"
            expect_eq "pair $pair: its message" "$message" "$(cat "$TMP/$pair.$side.log")"
        fi
    done
    expect_eq "pair $pair: collectors running" 1 "${#running[@]}"
    for pid in "${running[@]}"; do
        # under strace, the collector is strace's child (strace then exits
        # with its status)
        kill -TERM "$(pgrep -P "$pid" -x ppx || echo "$pid")"
        wait "$pid"
        expect_eq "pair $pair: exit status of the running collector" 0 "$?"
    done
}

# ---- deterministic: a hold point between the check and the bind ----
if have strace && strace -q -o /dev/null true 2>/dev/null; then
    for pair in s1 s2; do
        pids=()
        for side in a b; do
            strace -q -o /dev/null -e trace=unlink -e inject=unlink:delay_enter=500000 \
                "$PPX" collect --socket "$sock" 2>"$TMP/$pair.$side.log" &
            cleanup_kill "$!"
            pids+=("$!")
            sleep 0.1
        done
        settle "$TMP/$pair.a.log" "$TMP/$pair.b.log" || fail "pair $pair: a collector said nothing"
        sleep 0.7 # past the hold point: a collector about to unlink has done so
        judge "$pair" "${pids[0]}" "${pids[1]}"
    done
else
    note "strace not usable here: the deterministic pairs are skipped"
fi

# ---- statistical: pairs started together ----
for i in $(seq 1 50); do
    "$PPX" collect --socket "$sock" 2>"$TMP/$i.a.log" &
    a=$!
    "$PPX" collect --socket "$sock" 2>"$TMP/$i.b.log" &
    b=$!
    cleanup_kill "$a"
    cleanup_kill "$b"
    settle "$TMP/$i.a.log" "$TMP/$i.b.log" || fail "pair $i: a collector said nothing"
    judge "$i" "$a" "$b"
done
finish
