#!/usr/bin/env bash
# The thread dump (/debug/pprof/goroutine, ppx stacks, goroutine.pb.gz in a
# snapshot) of tests/progs/parked_threads: 4 threads in read() on pipes of
# their own, 3 in pthread_mutex_lock on a mutex main holds, one in
# nanosleep, one spinning, one that blocks every signal (parked in read),
# and main in fgets on stdin; 11 threads.
#  - debug=0, read by go tool pprof: sample type goroutine/count, counts per
#    function exact (park_in_read 4, park_in_mutex 3, spin_forever 1 at
#    the leaf, main 1), the blocking thread on the synthetic "no stack"
#    frame, the sleeper on the "not interrupted" one (a signal would cut
#    its nanosleep short: it is not sent one, and its sleep is never cut
#    short by the dumps), labels kind, thread and state right;
#  - debug=2: each reader "read fd N (pipe)" with its own pipe's N, each
#    locker "pthread_mutex_lock", the spinner running, the blocker without
#    stack; wait times grow from one dump to the next;
#  - debug=1: Go's grouped text, total 11, the group of 4 readers;
#  - the thread that blocks every signal never hangs a request (each
#    request is bounded by curl's --max-time, far above the target's
#    500 ms wait);
#  - merged over two processes, each sample has its pid label;
#  - a program with its own SIGPROF handler gets no stacks (ppx sends it no
#    signal) but its states and blocked-in calls;
#  - a thread in recv() on a socket with SO_RCVTIMEO (a signal would cut
#    it short too) is not sent one: reported not interrupted, its recv
#    never cut short;
#  - ppx stacks --pid prints the same blocks; a pid nobody has is exit 1;
#  - ppx snapshot writes goroutine.pb.gz with the same counts;
#  - the program is not disturbed: after the dumps it exits 0 when told.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"

NREAD=4 NMUTEX=3
TOTAL=$((NREAD + NMUTEX + 4))
NO_STACK_BLOCKED="ppx: no stack (the thread blocks SIGPROF)"
NO_STACK_NOT_INTERRUPTED="ppx: no stack (in a call a signal would cut short: not interrupted)"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
fifo_target t 3 "$PROGS/parked_threads" "$NREAD" "$NMUTEX" -b
target=$target_pid

get() { # URL FILE
    curl -sf --max-time 30 -o "$2" "$1"
}

# parked_threads says "ready" once each thread announced itself, just
# before its call: on a loaded machine one may not be in it yet. Wait (a
# bound, not a measurement) until a dump sees every one in its call.
parked() {
    get "$pp/goroutine?pid=$target&debug=2" "$TMP/settle.txt" &&
        [ "$(grep -c '"reader" \[sleeping, read fd' "$TMP/settle.txt")" = "$NREAD" ] &&
        [ "$(grep -c '"locker" \[sleeping, pthread_mutex_lock for' "$TMP/settle.txt")" = "$NMUTEX" ] &&
        grep -A1 '"sleeper"' "$TMP/settle.txt" | grep -qxF "$NO_STACK_NOT_INTERRUPTED"
}
wait_for 100 parked || note "the threads did not all settle in their calls: $(cat "$TMP/settle.txt")"

get "$pp/goroutine?pid=$target" "$TMP/g.pb.gz" || die "goroutine?pid=$target failed"
header=$(pprof_raw "$TMP/g.pb.gz" --header) || die "go tool pprof cannot read goroutine"
expect_eq "goroutine sample types" goroutine "$(header_field "$header" sample_types)"
expect_eq "goroutine period type" "goroutine count" "$(header_field "$header" period_type)"
expect_eq "goroutine total (threads)" "$TOTAL" "$(pprof_raw "$TMP/g.pb.gz" --total --type goroutine)"
for want in "park_in_read $NREAD" "park_in_mutex $NMUTEX" "spin_forever 1" \
    "main 1" "reader_main $NREAD" "locker_main $NMUTEX"; do
    expect_eq "goroutine: threads under ${want% *}" "${want##* }" \
        "$(pprof_raw "$TMP/g.pb.gz" --type goroutine --cum "${want% *}")"
done
expect_eq "goroutine: spin_forever at the leaf" 1 \
    "$(pprof_raw "$TMP/g.pb.gz" --type goroutine --flat spin_forever)"
expect_eq "goroutine: the thread blocking signals, on its synthetic frame" 1 \
    "$(pprof_raw "$TMP/g.pb.gz" --type goroutine --flat "$NO_STACK_BLOCKED")"
expect_eq "goroutine: the sleeper in nanosleep, on its synthetic frame" 1 \
    "$(pprof_raw "$TMP/g.pb.gz" --type goroutine --flat "$NO_STACK_NOT_INTERRUPTED")"
expect_eq "goroutine: kind labels" thread "$(label_values "$TMP/g.pb.gz" kind)"
expect_eq "goroutine: thread labels" "blocker locker parked_threads reader sleeper spinner" \
    "$(label_values "$TMP/g.pb.gz" thread)"
pprof_raw "$TMP/g.pb.gz" --sum-by thread --type goroutine | sort >"$TMP/by_thread"
expect_eq "goroutine: threads per name" \
    "$(printf 'blocker\t1\nlocker\t%s\nparked_threads\t1\nreader\t%s\nsleeper\t1\nspinner\t1' "$NMUTEX" "$NREAD")" \
    "$(cat "$TMP/by_thread")"
expect_eq "goroutine: the readers' state" sleeping \
    "$(label_values "$TMP/g.pb.gz" state --label thread=reader)"
expect_eq "goroutine: the lockers' state" sleeping \
    "$(label_values "$TMP/g.pb.gz" state --label thread=locker)"
expect_eq "goroutine: one sample for the 4 readers (equal stacks merge)" 1 \
    "$(pprof_raw "$TMP/g.pb.gz" --labels --label thread=reader | awk -F'\t' '$1 == "thread"' | wc -l)"

# debug=2: one block per thread, what it waits for.
get "$pp/goroutine?pid=$target&debug=2" "$TMP/d2.txt" || die "goroutine?debug=2 failed"
expect_eq "debug=2: thread blocks" "$TOTAL" "$(grep -c '^thread ' "$TMP/d2.txt")"
for fd in $(awk '$1 == "reader" { print $2 }' "$TMP/t.out"); do
    expect_eq "debug=2: a reader blocked in read on its pipe, fd $fd" 1 \
        "$(grep -c "^thread [0-9]* \"reader\" \[sleeping, read fd $fd (pipe) for [0-9.]* m\?s\]:$" "$TMP/d2.txt")"
done
expect_eq "debug=2: lockers in pthread_mutex_lock" "$NMUTEX" \
    "$(grep -c '^thread [0-9]* "locker" \[sleeping, pthread_mutex_lock for [0-9.]* m\?s\]:$' "$TMP/d2.txt")"
grep -q '^thread [0-9]* "spinner" \[running\]:$' "$TMP/d2.txt" ||
    fail "debug=2: no running spinner: $(grep '"spinner"' "$TMP/d2.txt")"
grep -A1 '"blocker"' "$TMP/d2.txt" | grep -qxF "$NO_STACK_BLOCKED" ||
    fail "debug=2: the blocker's block: $(grep -A1 '"blocker"' "$TMP/d2.txt")"
grep -A1 '"sleeper"' "$TMP/d2.txt" | grep -qxF "$NO_STACK_NOT_INTERRUPTED" ||
    fail "debug=2: the sleeper's block: $(grep -A4 '"sleeper"' "$TMP/d2.txt")"
awk '/^thread .*"reader"/ { r = 1; next } r && /^park_in_read$/ { n++ } /^$/ { r = 0 } END { print n + 0 }' \
    "$TMP/d2.txt" >"$TMP/readers_with_frame"
expect_eq "debug=2: readers whose stack names park_in_read" "$NREAD" "$(cat "$TMP/readers_with_frame")"

# The waits go on: a later dump says longer (no threshold: only the order).
wait_of() { # FILE FD: the reader's wait in ms
    sed -n "s/.*read fd $2 (pipe) for \([0-9.]*\) \(m\?s\)\].*/\1 \2/p" "$1" |
        awk '{ print ($2 == "s" ? $1 * 1000 : $1) }'
}
fd1=$(awk '$1 == "reader" { print $2; exit }' "$TMP/t.out")
sleep 1.2
get "$pp/goroutine?pid=$target&debug=2" "$TMP/d2b.txt" || die "goroutine?debug=2 failed"
w1=$(wait_of "$TMP/d2.txt" "$fd1") w2=$(wait_of "$TMP/d2b.txt" "$fd1")
awk -v a="$w1" -v b="$w2" 'BEGIN { exit !(a != "" && b > a) }' ||
    fail "reader on fd $fd1 waited $w1 ms, then $w2 ms in a later dump: expected more"

# debug=1: Go's grouped text.
get "$pp/goroutine?pid=$target&debug=1" "$TMP/d1.txt" || die "goroutine?debug=1 failed"
expect_eq "debug=1: first line" "goroutine profile: total $TOTAL" "$(head -1 "$TMP/d1.txt")"
grep -A8 "^$NREAD @ " "$TMP/d1.txt" | grep -q 'park_in_read' ||
    fail "debug=1: no group of $NREAD with park_in_read: $(head -20 "$TMP/d1.txt")"
curl -s --max-time 30 -o /dev/null -w '%{http_code}' "$pp/goroutine?debug=3" >"$TMP/code"
expect_eq "debug=3 refused" 400 "$(cat "$TMP/code")"

# Merged over processes: pid labels (a second target: 1 reader, main,
# sleeper, spinner).
fifo_target u 4 "$PROGS/parked_threads" 1 0
other=$target_pid
get "$pp/goroutine" "$TMP/all.pb.gz" || die "goroutine failed"
expect_eq "goroutine (all processes): threads per pid" \
    "$(printf '%s\t%s\n%s\t4' "$target" "$TOTAL" "$other" | sort)" \
    "$(pprof_raw "$TMP/all.pb.gz" --sum-by pid --type goroutine | sort)"
quit_fed 4 "$other" "the second parked_threads"

# A program with a SIGPROF handler of its own: no signal is sent to it,
# so no stacks, but states and blocked-in calls all the same.
fifo_target p 4 "$PROGS/parked_threads" 2 1 -p
own=$target_pid
owned_parked() {
    get "$pp/goroutine?pid=$own&debug=2" "$TMP/own.txt" &&
        [ "$(grep -c '"locker" \[sleeping, pthread_mutex_lock for' "$TMP/own.txt")" = 1 ] &&
        [ "$(grep -c '"reader" \[sleeping, read fd' "$TMP/own.txt")" = 2 ]
}
wait_for 100 owned_parked || note "parked_threads -p did not settle: $(cat "$TMP/own.txt")"
get "$pp/goroutine?pid=$own" "$TMP/own.pb.gz" || die "goroutine (own SIGPROF) failed"
expect_eq "own SIGPROF: every thread on the no-signal frame" 6 \
    "$(pprof_raw "$TMP/own.pb.gz" --type goroutine --flat "ppx: no stack (SIGPROF is the program's, or CPU profiling is off)")"
get "$pp/goroutine?pid=$own&debug=2" "$TMP/own.txt" || die "goroutine?debug=2 (own SIGPROF) failed"
expect_eq "own SIGPROF: readers still seen in read" 2 \
    "$(grep -c '^thread [0-9]* "reader" \[sleeping, read fd [0-9]* (pipe) for' "$TMP/own.txt")"
expect_eq "own SIGPROF: the locker still seen in pthread_mutex_lock" 1 \
    "$(grep -c '^thread [0-9]* "locker" \[sleeping, pthread_mutex_lock for' "$TMP/own.txt")"
quit_fed 4 "$own" "parked_threads -p"

# A receive on a socket with SO_RCVTIMEO set ends with EINTR after any
# signal handler (signal(7)): that thread is not sent one, and its recv is
# never cut short by the dumps.
fifo_target m 4 "$PROGS/parked_threads" 0 0 -t
timed=$target_pid
timed_parked() {
    get "$pp/goroutine?pid=$timed&debug=2" "$TMP/timed.txt" &&
        grep -A1 '"timed"' "$TMP/timed.txt" | grep -qxF "$NO_STACK_NOT_INTERRUPTED"
}
wait_for 100 timed_parked ||
    fail "the receiver with SO_RCVTIMEO is not reported as not interrupted: $(grep -A2 '"timed"' "$TMP/timed.txt")"
for i in 1 2 3; do
    get "$pp/goroutine?pid=$timed" "$TMP/timed.pb.gz" || fail "goroutine?pid=$timed failed"
done
quit_fed 4 "$timed" "parked_threads -t"
expect_eq "the timed receiver's recv cut short by the dumps" "recv interrupted 0" \
    "$(grep '^recv interrupted' "$TMP/m.out")"

# ppx stacks: the debug=2 view from the command line.
"$PPX" stacks --socket "$sock" --pid "$target" >"$TMP/stacks.txt" 2>"$TMP/stacks.err" ||
    fail "ppx stacks --pid $target: exit $?: $(cat "$TMP/stacks.err")"
expect_eq "ppx stacks: thread blocks" "$TOTAL" "$(grep -c '^thread ' "$TMP/stacks.txt")"
expect_eq "ppx stacks: readers in read" "$NREAD" \
    "$(grep -c '^thread [0-9]* "reader" \[sleeping, read fd [0-9]* (pipe) for' "$TMP/stacks.txt")"
grep -q "^process $target " "$TMP/stacks.txt" || fail "ppx stacks: no process header: $(head -2 "$TMP/stacks.txt")"
"$PPX" stacks --socket "$sock" --pid 999999999 >/dev/null 2>"$TMP/nopid.err"
expect_eq "ppx stacks --pid of nobody: exit status" 1 "$?"
grep -q 'no process with pid 999999999' "$TMP/nopid.err" || fail "ppx stacks --pid of nobody said: $(cat "$TMP/nopid.err")"

# ppx snapshot: goroutine.pb.gz among the files.
snapshot_of "$target" "$TMP/snap" || die "ppx snapshot failed"
[ -s "$TMP/snap/goroutine.pb.gz" ] || die "no goroutine.pb.gz in the snapshot: $(ls "$TMP/snap")"
expect_eq "snapshot goroutine.pb.gz: total" "$TOTAL" \
    "$(pprof_raw "$TMP/snap/goroutine.pb.gz" --total --type goroutine)"
expect_eq "snapshot goroutine.pb.gz: park_in_mutex" "$NMUTEX" \
    "$(pprof_raw "$TMP/snap/goroutine.pb.gz" --type goroutine --cum park_in_mutex)"

# The program ran through all of it undisturbed.
quit_fed 3 "$target" "parked_threads"
expect_eq "the sleeper's nanosleep cut short by the dumps" "sleep interrupted 0" \
    "$(grep '^sleep interrupted' "$TMP/t.out")"
grep -q . "$TMP/t.err" && fail "parked_threads wrote on stderr: $(cat "$TMP/t.err")"

stop_collector
expect_eq "exit status of ppx collect" 0 "$?"
finish
