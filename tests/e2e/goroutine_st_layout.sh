#!/usr/bin/env bash
# Coroutines of a state-threads whose layout ppx knows only from the
# program's DWARF (/debug/pprof/goroutine): tests/progs/st_own_layout
# runs a scheduler of its own whose records are laid out unlike any
# state-threads build (tests/progs/st_own_layout.h), with thread-local
# scheduler variables (as recent SRS) and a list of every record (as
# state-threads' debug builds, SRS's among them), on a second thread;
# st_own_layout_nolist is the same without the list; st_own_layout_global
# has plain global variables, no such list, and runs on the main thread. Each carves its records from the tops of their
# stacks, as state-threads does, and parks 5 coroutines sleeping, 3
# waiting for input on pipes, 4 waiting on a condition, 2 on the run
# queue, and its primordial coroutine in wait_for_quit (poll on stdin:
# the scheduler thread of st_own_layout, not the main one, is woken for
# the dump as the one whose thread-local _st_this_thread is set).
#  - debug=0 read by go tool pprof: counts per function exact
#    (park_in_sleep 5, park_in_io 3, park_in_yield 2, wait_for_quit 1,
#    park_in_cond 4: through the list of every record, or without it
#    found by their stacks; none on the synthetic "on no scheduler queue"
#    frame), per kind and per coroutine state (running 1, sleeping 5, io
#    wait 3, cond wait 4, runnable 2);
#  - debug=2: every created coroutine's stack ends at _st_thread_main, the
#    I/O waiters name their fd, the sleepers the time left;
#  - the program runs on undisturbed and exits 0.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"
UNREACHABLE="ppx: no stack (a coroutine waiting without timeout, on no scheduler queue)"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0

check_dump() { # PROGRAM FD THREADS
    local prog=$1 fd=$2 threads=$3 target
    fifo_target "$prog" "$fd" "$PROGS/$prog" 5 3 4 2
    target=$target_pid
    curl -sf --max-time 30 -o "$TMP/$prog.pb.gz" "$pp/goroutine?pid=$target" ||
        die "$prog: goroutine failed"
    curl -sf --max-time 30 -o "$TMP/$prog.txt" "$pp/goroutine?pid=$target&debug=2" ||
        die "$prog: debug=2 failed"
    local g=$TMP/$prog.pb.gz want
    for want in "park_in_sleep 5" "park_in_io 3" "park_in_cond 4" "park_in_yield 2" \
        "wait_for_quit 1" "sleeper_main 5" "reader_main 3" "yielder_main 2" \
        "_st_thread_main 14" "$UNREACHABLE 0"; do
        expect_eq "$prog: coroutines under ${want% *}" "${want##* }" \
            "$(pprof_raw "$g" --type goroutine --label kind=coroutine --cum "${want% *}")"
    done
    expect_eq "$prog: threads and coroutines by kind" \
        "$(printf 'coroutine\t15\nthread\t%s' "$threads")" \
        "$(pprof_raw "$g" --sum-by kind --type goroutine | sort)" ||
        note "$prog: the next dump (debug=2): $(cat "$TMP/$prog.txt"); its stderr: $(cat "$TMP/$prog.err")"
    expect_eq "$prog: coroutines by state" \
        "$(printf 'cond wait\t4\nio wait\t3\nrunnable\t2\nrunning\t1\nsleeping\t5')" \
        "$(pprof_raw "$g" --sum-by state --type goroutine --label kind=coroutine | sort)"

    expect_eq "$prog: debug=2 coroutine blocks" 15 "$(grep -c '^coroutine ' "$TMP/$prog.txt")"
    # the last function of each created coroutine's block: where its walk ended
    awk '/^coroutine / { c = !/\[running\]/; last = ""; next }
         c && /^$/ { print last; c = 0; next }
         c && !/^\t/ { last = $0 }' "$TMP/$prog.txt" | LC_ALL=C sort | uniq -c |
        awk '{ n = $1; $1 = ""; print substr($0, 2) "=" n }' | paste -sd, >"$TMP/$prog.roots"
    expect_eq "$prog: coroutine stacks end at the entry" "_st_thread_main=14" \
        "$(cat "$TMP/$prog.roots")"
    expect_eq "$prog: I/O waiters with their fd" 3 \
        "$(grep -c '^coroutine 0x[0-9a-f]* on thread [0-9]* "st_own_layout[_a-z]*" \[io wait, fd [0-9]*\]:$' "$TMP/$prog.txt")"
    expect_eq "$prog: sleepers with the time left" 5 \
        "$(grep -c '^coroutine 0x[0-9a-f]* on thread [0-9]* "st_own_layout[_a-z]*" \[sleeping, [0-9.]* s left\]:$' "$TMP/$prog.txt")"

    quit_fed "$fd" "$target" "$prog"
}

check_dump st_own_layout 3 2
check_dump st_own_layout_nolist 3 2
check_dump st_own_layout_global 4 1

stop_collector
expect_eq "exit status of ppx collect" 0 "$?"
finish
