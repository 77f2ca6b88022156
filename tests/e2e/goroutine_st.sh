#!/usr/bin/env bash
# State-threads coroutines in the thread dump (/debug/pprof/goroutine):
# tests/progs/st_parked, linked with Debian's libst.so, parks 5 coroutines
# in st_sleep, 3 in st_read on pipes, 4 in st_cond_wait, and its
# primordial coroutine (main) in st_read on stdin; libst's idle coroutine
# runs (its thread in select).
#  - debug=0 read by go tool pprof: counts per function exact
#    (park_in_sleep 5, park_in_st_read 3, park_in_cond_wait 4,
#    wait_for_quit 1), per kind (14 coroutines with the idle and the
#    primordial ones, 1 thread) and per coroutine state (sleeping 5,
#    io wait 4, cond wait 4, running 1);
#  - debug=2: every coroutine's stack ends at the coroutine entry
#    (st_thread_create, where Debian's libst inlines _st_thread_main),
#    the primordial one's at _start; the sleepers say the time left;
#  - linked with libst.a (st_parked_static) the coroutines cannot be
#    found (no hook reaches them, README): the dump holds its thread, and
#    the program runs on undisturbed.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"
[ -x "$PROGS/st_parked" ] && [ -x "$PROGS/st_parked_static" ] ||
    skip "st_parked not built (libst-dev missing)"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
fifo_target s 3 "$PROGS/st_parked" 5 3 4
target=$target_pid

curl -sf --max-time 30 -o "$TMP/g.pb.gz" "$pp/goroutine?pid=$target" || die "goroutine failed"
for want in "park_in_sleep 5" "park_in_st_read 3" "park_in_cond_wait 4" "wait_for_quit 1" \
    "sleeper_main 5" "reader_main 3" "waiter_main 4"; do
    expect_eq "coroutines under ${want% *}" "${want##* }" \
        "$(pprof_raw "$TMP/g.pb.gz" --type goroutine --cum "${want% *}")"
done
expect_eq "threads and coroutines by kind" "$(printf 'coroutine\t14\nthread\t1')" \
    "$(pprof_raw "$TMP/g.pb.gz" --sum-by kind --type goroutine | sort)"
expect_eq "coroutines by state" "$(printf 'cond wait\t4\nio wait\t4\nrunning\t1\nsleeping\t5')" \
    "$(pprof_raw "$TMP/g.pb.gz" --sum-by state --type goroutine --label kind=coroutine | sort)"

curl -sf --max-time 30 -o "$TMP/d2.txt" "$pp/goroutine?pid=$target&debug=2" || die "debug=2 failed"
expect_eq "debug=2: coroutine blocks" 14 "$(grep -c '^coroutine ' "$TMP/d2.txt")"
# the last function of each coroutine block: where its walk ended
awk '/^coroutine / { c = 1; last = ""; next }
     c && /^$/ { print last; c = 0; next }
     c && !/^\t/ { last = $0 }' "$TMP/d2.txt" | sort | uniq -c | awk '{ print $2, $1 }' >"$TMP/roots"
expect_eq "debug=2: coroutine stacks end at the entry (the primordial one at _start)" \
    "$(printf '_start 1\nst_thread_create 13')" "$(cat "$TMP/roots")"
expect_eq "debug=2: sleepers with the time left" 5 \
    "$(grep -c '^coroutine 0x[0-9a-f]* on thread [0-9]* "st_parked" \[sleeping, [0-9.]* s left\]:$' "$TMP/d2.txt")"
grep -A4 '\[cond wait\]' "$TMP/d2.txt" | grep -q '^park_in_cond_wait$' ||
    fail "debug=2: no cond wait block through park_in_cond_wait: $(grep -A4 'cond wait' "$TMP/d2.txt" | head)"

echo quit >&3
exec 3>&-
wait "$target"
expect_eq "exit status of st_parked" 0 "$?"

# libst.a: the thread only.
fifo_target t 4 "$PROGS/st_parked_static" 5 3 4
static=$target_pid
curl -sf --max-time 30 -o "$TMP/gs.pb.gz" "$pp/goroutine?pid=$static" || die "goroutine (static) failed"
expect_eq "st_parked_static: its one thread, no coroutine found" "$(printf 'thread\t1')" \
    "$(pprof_raw "$TMP/gs.pb.gz" --sum-by kind --type goroutine)"
echo quit >&4
exec 4>&-
wait "$static"
expect_eq "exit status of st_parked_static" 0 "$?"

stop_collector
expect_eq "exit status of ppx collect" 0 "$?"
finish
