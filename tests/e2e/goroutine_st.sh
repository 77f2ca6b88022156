#!/usr/bin/env bash
# State-threads coroutines in the thread dump (/debug/pprof/goroutine):
# tests/progs/st_parked parks 5 coroutines in st_sleep, 3 in st_read on
# pipes, 4 in st_cond_wait (one with a larger stack), 2 in st_mutex_lock
# on a mutex main holds, 1 in st_usleep without timeout, and its
# primordial coroutine (main) in st_read on stdin; 4 more coroutines have ended (2 of
# them joined), their stacks on libst's free list; libst's idle coroutine
# runs (its thread in select). Linked with Debian's libst.so (st_parked:
# coroutines known from the st_thread_create hook) and with libst.a
# (st_parked_static: the scheduler's queues walked, found through the
# executable's symbols, and the cond, mutex and st_usleep waiters, on no
# queue, found by their stacks).
#  - debug=0 read by go tool pprof: counts per function exact
#    (park_in_sleep 5, park_in_st_read 3, park_in_cond_wait 4,
#    park_in_mutex_lock 2, park_in_suspend 1, wait_for_quit 1, none on
#    the synthetic "on no scheduler queue" frame, none of the ended ones),
#    per kind (17 coroutines with the idle and the primordial ones, 1
#    thread) and per coroutine state (sleeping 6, io wait 4, cond wait 6
#    (the mutex waiters among them), running 1);
#  - debug=2: every coroutine's stack ends at the coroutine entry
#    (st_thread_create, where Debian's libst inlines _st_thread_main),
#    the primordial one's at _start; the sleepers say the time left;
#  - the program runs on undisturbed and exits 0.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"
[ -x "$PROGS/st_parked" ] && [ -x "$PROGS/st_parked_static" ] ||
    skip "st_parked not built (libst-dev missing)"
UNREACHABLE="ppx: no stack (a coroutine waiting without timeout, on no scheduler queue)"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0

check_dump() { # PROGRAM FD
    local prog=$1 fd=$2 target
    fifo_target "$prog" "$fd" "$PROGS/$prog" 5 3 4 4 2 1
    target=$target_pid
    curl -sf --max-time 30 -o "$TMP/$prog.pb.gz" "$pp/goroutine?pid=$target" ||
        die "$prog: goroutine failed"
    local g=$TMP/$prog.pb.gz want
    for want in "park_in_sleep 5" "park_in_st_read 3" "park_in_cond_wait 4" \
        "park_in_mutex_lock 2" "park_in_suspend 1" "wait_for_quit 1" "sleeper_main 5" \
        "reader_main 3" "waiter_main 4" "locker_main 2" "suspended_main 1" \
        "st_thread_exit 0" "$UNREACHABLE 0"; do
        expect_eq "$prog: coroutines under ${want% *}" "${want##* }" \
            "$(pprof_raw "$g" --type goroutine --cum "${want% *}")"
    done
    expect_eq "$prog: threads and coroutines by kind" "$(printf 'coroutine\t17\nthread\t1')" \
        "$(pprof_raw "$g" --sum-by kind --type goroutine | sort)"
    expect_eq "$prog: coroutines by state" \
        "$(printf 'cond wait\t6\nio wait\t4\nrunning\t1\nsleeping\t6')" \
        "$(pprof_raw "$g" --sum-by state --type goroutine --label kind=coroutine | sort)"

    curl -sf --max-time 30 -o "$TMP/$prog.txt" "$pp/goroutine?pid=$target&debug=2" ||
        die "$prog: debug=2 failed"
    expect_eq "$prog: debug=2 coroutine blocks" 17 "$(grep -c '^coroutine ' "$TMP/$prog.txt")"
    # the last function of each coroutine block: where its walk ended
    awk '/^coroutine / { c = 1; last = ""; next }
         c && /^$/ { print last; c = 0; next }
         c && !/^\t/ { last = $0 }' "$TMP/$prog.txt" | LC_ALL=C sort | uniq -c |
        awk '{ n = $1; $1 = ""; print substr($0, 2) "=" n }' | paste -sd, >"$TMP/$prog.roots"
    expect_eq "$prog: coroutine stacks end at the entry (the primordial one at _start)" \
        "_start=1,st_thread_create=16" "$(cat "$TMP/$prog.roots")"
    expect_eq "$prog: sleepers with the time left" 5 \
        "$(grep -c '^coroutine 0x[0-9a-f]* on thread [0-9]* "st_parked[_a-z]*" \[sleeping, [0-9.]* s left\]:$' "$TMP/$prog.txt")"

    quit_fed "$fd" "$target" "$prog"
}

check_dump st_parked 3
check_dump st_parked_static 4

stop_collector
expect_eq "exit status of ppx collect" 0 "$?"
finish
