#!/usr/bin/env bash
# The target's own use of SIGPROF is respected:
# - tests/progs/own_sigprof installs its own SIGPROF handler (with sigaction,
#   and with signal()) and an ITIMER_PROF: under ppx it sees SIG_DFL as the
#   previous action, its handler is the one installed and its ticks reach it;
#   ppx says once on stderr that it stops CPU sampling, and stops it (no
#   sample after the handler went in); stdout and exit status are those of a
#   plain run, with a collector and without one.
# - tests/progs/block_sigprof blocks SIGPROF in some threads (one inherits the
#   blocked mask through pthread_create): every thread's results and signal
#   mask are those of a plain run, and blocked code gets no samples.
# - kill -PROF ends a program that leaves SIGPROF at SIG_DFL, under ppx too,
#   and one that ignores it runs on.
# - ppx says nothing when a program takes SIGPROF while CPU sampling was never on,
#   and never writes into a file the program put on fd 2 (tests/progs/stderr_redirect).
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/cpu_common.sh"
require_built
require_pprof

same_run() { # WHERE PLAIN_STATUS STATUS PLAIN_OUT OUT
    expect_eq "$1: exit status" "$2" "$3"
    cmp -s "$4" "$5" || fail "$1: stdout differs from the plain run: $(diff "$4" "$5" | head -6 | tr '\n' '|')"
}

for how in sigaction signal; do
    where="own_sigprof $how"
    "$PROGS/own_sigprof" "$how" >"$TMP/plain.$how.out" 2>"$TMP/plain.$how.err"
    plain=$?
    expect_eq "$where (no ppx): exit status" 0 "$plain"

    # The tick count is tried twice: on an overloaded machine the kernel may
    # hold back all of a thread's CPU-timer signals for longer than these
    # 100 ms (tests/lib/cpu_common.sh); the rest is checked on every run.
    for attempt in 1 2; do
        out="$TMP/$how.$attempt"
        "$PPX" record -q -o "$out" -- "$PROGS/own_sigprof" "$how" >"$out.out" 2>"$out.err"
        same_run "$where under ppx record" "$plain" "$?" "$TMP/plain.$how.out" "$out.out"
        ppx_lines=$(grep '^ppx:' "$out.err")
        expect_eq "$where: ppx lines on stderr" 1 "$(printf '%s' "$ppx_lines" | grep -c .)"
        case $ppx_lines in *SIGPROF*) ;; *) fail "$where: ppx's message does not name SIGPROF: $ppx_lines" ;; esac
        note "$where: $ppx_lines"
        note "$where: $(grep '^own_sigprof:' "$out.err")"

        file="$out/cpu.pb.gz"
        [ -s "$file" ] || { fail "$where: cpu.pb.gz not written (ls: $(ls "$out" 2>&1))"; break; }
        dump_profile "$file" "$how"
        expect_eq "$where: samples of after_own_handler (sampling stopped)" 0 \
            "$(dq "$how" samples cum after_own_handler)"
        # 100 ms of main's CPU at 100 Hz: 10 ticks, within the bounds
        # tests/lib/cpu_common.sh explains (ticks ppx could not record may be
        # any thread's)
        before=$(dq "$how" samples cum before_own_handler)
        lost=$(lost_samples "$how")
        if [ "$attempt" -eq 1 ] && ! (expect_ticks "" 100000000 "$before" 10000000 \
            "$(tick_bound 100)" "$lost" 2>/dev/null); then
            note "$where: $before samples of before_own_handler, 10 expected: once more"
            continue
        fi
        expect_ticks "$where: before_own_handler" 100000000 "$before" 10000000 \
            "$(tick_bound 100)" "$lost"
        break
    done

    # libppx.so preloaded, no collector: the same program, the same behaviour.
    LD_PRELOAD="$LIBPPX" PPX_SOCKET="$TMP/nonexistent/ppx.sock" "$PROGS/own_sigprof" "$how" \
        >"$TMP/nc.$how.out" 2>"$TMP/nc.$how.err"
    same_run "$where with libppx.so and no collector" "$plain" "$?" "$TMP/plain.$how.out" "$TMP/nc.$how.out"
    [ "$(grep -c '^ppx:.*SIGPROF' "$TMP/nc.$how.err")" -le 1 ] ||
        fail "$where with no collector: ppx said it more than once: $(grep '^ppx:' "$TMP/nc.$how.err")"
done

# ---- threads that block SIGPROF ------------------------------------------------------
"$PROGS/block_sigprof" >"$TMP/plain.block.out" 2>"$TMP/plain.block.err"
plain=$?
expect_eq "block_sigprof (no ppx): exit status" 0 "$plain"
for hz in 100 1000; do
    where="block_sigprof at PPX_CPU_HZ=$hz"
    PPX_CPU_HZ=$hz "$PPX" record -q -o "$TMP/block$hz" -- "$PROGS/block_sigprof" \
        >"$TMP/block$hz.out" 2>"$TMP/block$hz.err"
    same_run "$where" "$plain" "$?" "$TMP/plain.block.out" "$TMP/block$hz.out"
    grep -q '^ppx:' "$TMP/block$hz.err" && fail "$where: ppx printed: $(grep '^ppx:' "$TMP/block$hz.err")"
    file="$TMP/block$hz/cpu.pb.gz"
    [ -s "$file" ] || { fail "$where: cpu.pb.gz not written (ls: $(ls "$TMP/block$hz" 2>&1))"; continue; }
    # ~170 ms of CPU each: 17 ticks at 100 Hz. A tick that was pending while
    # blocked is delivered after the unblocking call, not in the blocked code.
    dump_profile "$file" "block$hz"
    for fn in work_blocked main_work_blocked work_before_unblock; do
        expect_eq "$where: samples of $fn (SIGPROF blocked)" 0 "$(dq "block$hz" samples cum "$fn")"
    done
    for fn in work_unblocked work_after_unblock; do
        n=$(dq "block$hz" samples cum "$fn")
        [ "${n:-0}" -ge $((hz / 10)) ] || fail "$where: $n samples of $fn (~170 ms of CPU), expected more than $((hz / 10))"
    done
done

# ---- SIGPROF from outside: the program's action, not ppx's ----------------------------
# kill -PROF ends a program that left SIGPROF at SIG_DFL (status 128 + SIGPROF), with
# ppx sampling (PPX_CPU_HZ=100) or waiting to be asked, as without ppx; one that
# ignores it (SIG_IGN inherited) runs on.
# killed_by_prof WHERE ENV...: `sleep 2` under ENV, sent SIGPROF after 0.3 s; its status.
killed_by_prof() {
    env "${@:2}" sleep 2 &
    local pid=$!
    sleep 0.3 # inside its 2 s (a bound: the kill needs only to come before the end)
    kill -PROF "$pid"
    wait "$pid"
}
plain_prof=$(killed_by_prof plain; echo $?)
[ "$plain_prof" -gt 128 ] || die "kill -PROF did not end a plain sleep (status $plain_prof)"
for env in "PPX_CPU_HZ=100" "PPX_CPU_HZ=0"; do
    expect_eq "kill -PROF, LD_PRELOAD with $env: exit status" "$plain_prof" \
        "$(killed_by_prof x LD_PRELOAD="$LIBPPX" PPX_SOCKET="$TMP/nonexistent/ppx.sock" $env; echo $?)"
done
expect_eq "kill -PROF to a program ignoring SIGPROF, under ppx: exit status" 0 \
    "$(trap '' PROF; killed_by_prof x LD_PRELOAD="$LIBPPX" PPX_SOCKET="$TMP/nonexistent/ppx.sock" PPX_CPU_HZ=100; echo $?)"
# ---- ppx speaks only when it has something to say, and only to its stderr ------------
# own_sigprof with libppx.so preloaded and no CPU sampling asked for (PPX_CPU_HZ unset:
# on demand, and nobody asks): nothing stops, so ppx says nothing.
for how in sigaction signal; do
    LD_PRELOAD="$LIBPPX" PPX_SOCKET="$TMP/nonexistent/ppx.sock" "$PROGS/own_sigprof" "$how" \
        >"$TMP/od.$how.out" 2>"$TMP/od.$how.err"
    expect_eq "own_sigprof $how, no CPU sampling: exit status" 0 "$?"
    expect_eq "own_sigprof $how, no CPU sampling: ppx lines on stderr" 0 "$(grep -c '^ppx:' "$TMP/od.$how.err")"
done
# stderr_redirect puts a data file on fd 2, then installs its own SIGPROF handler while
# ppx samples (PPX_CPU_HZ=100): ppx's "CPU profiling stops" must not land in that file.
for env in "PPX_CPU_HZ=100" "PPX_CPU_HZ=0" "X=on-demand"; do
    LD_PRELOAD="$LIBPPX" PPX_SOCKET="$TMP/nonexistent/ppx.sock" env $env "$PROGS/stderr_redirect" \
        "$TMP/data" >"$TMP/sr.out" 2>"$TMP/sr.err"
    expect_eq "stderr_redirect ($env): exit status" 0 "$?"
    expect_eq "stderr_redirect ($env): the data file" "data 1|data 2|" "$(tr '\n' '|' <"$TMP/data")"
done
# With fd 2 left alone, the same run says it (once).
LD_PRELOAD="$LIBPPX" PPX_SOCKET="$TMP/nonexistent/ppx.sock" PPX_CPU_HZ=100 "$PROGS/own_sigprof" sigaction \
    >/dev/null 2>"$TMP/said.err"
expect_eq "own_sigprof under PPX_CPU_HZ=100: ppx lines naming SIGPROF" 1 "$(grep -c '^ppx:.*SIGPROF' "$TMP/said.err")"
finish
