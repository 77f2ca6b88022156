#!/usr/bin/env bash
# Threads: tests/progs/thread_names creates 8 threads from known functions,
# names them every way a program can (pthread_setname_np from the thread and
# from its creator, prctl(PR_SET_NAME), renamed after a first name, unnamed)
# and prints each one's tid, creator and CPU.
# - threadcreate.pb.gz, laid out as Go writes it: one sample per thread,
#   counts per creation function (the leaf is pthread_create's caller; the
#   main thread is a synthetic "main thread" frame), each thread's final name,
#   tid, creator_tid, start_ns, end_ns and cpu labels matching the program's
#   own figures;
# - cpu.pb.gz agrees with it: each thread's samples match its cpu label;
# - `ppx threads DIR` prints the table (tid, name, creator, CPU, share of the
#   process's CPU) with the same figures, sorted by CPU; bad input is refused
#   with a clear message.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/cpu_common.sh"
require_built
require_pprof

out="$TMP/tn"
"$PPX" record -q -o "$out" -- "$PROGS/thread_names" >"$TMP/tn.out" 2>"$TMP/tn.err" ||
    die "ppx record -- thread_names: exit status $?, stderr: $(cat "$TMP/tn.err")"
file="$out/threadcreate.pb.gz"
[ -s "$file" ] || die "threadcreate.pb.gz not written (ls: $(ls "$out" 2>&1))"
pid=$(awk '$2 == "tn-main" { print $4 }' "$TMP/tn.out")
[ -n "$pid" ] || die "thread_names printed no main thread line: $(cat "$TMP/tn.out")"

header=$(pprof_raw "$file" --header) || die "go tool pprof cannot read $file"
expect_eq "threadcreate sample types" threadcreate "$(header_field "$header" sample_types)"
expect_eq "threadcreate period type" "threadcreate count" "$(header_field "$header" period_type)"
expect_eq "threadcreate period" 1 "$(header_field "$header" period)"
expect_eq "threadcreate samples (one per thread: main + 8)" 9 "$(header_field "$header" samples)"

# Counts per creation site, as `go tool pprof -top` would show them.
dump_profile "$file" tc || die "cannot read $file"
for want in "spawn_pool 3" "spawn_named 1" "spawn_prctl 1" "spawn_nester 1" "spawn_child 1" \
    "spawn_unnamed 1" "main thread 1"; do
    site=${want% *}
    expect_eq "threadcreate count of $site" "${want##* }" "$(dq tc threadcreate flat "$site")"
done
expect_eq "threadcreate total" 9 "$(dq tc threadcreate total)"
expect_eq "threadcreate: the nested thread's stack goes through nester_main" 1 \
    "$(dq tc threadcreate cum nester_main)"
expect_eq "threadcreate: creation stacks reach main" 7 "$(dq tc threadcreate cum main)"

# Per thread: the sample whose tid label is the thread's.
dtable tc threadcreate tid,thread,creator_tid,cpu,start_ns,end_ns >"$TMP/tc.table"
while read -r _ name _ tid _ creator _ site _ cpu_ns; do
    row=$(awk -F'\t' -v t="$tid" '$3 == t' "$TMP/tc.table")
    [ -n "$row" ] || { fail "threadcreate: no sample with tid $tid ($name)"; continue; }
    IFS=$'\t' read -r count leaf _ label creator_label cpu_label start_ns end_ns <<<"$row"
    expect_eq "thread $tid: samples with its tid" 1 "$(printf '%s\n' "$row" | wc -l)"
    expect_eq "thread $tid: its sample's threadcreate count" 1 "$count"
    expect_eq "thread $tid: thread label (its final name)" "$name" "$label"
    if [ "$site" = main ]; then
        expect_eq "main thread: leaf" "main thread" "$leaf"
        expect_eq "main thread: creator_tid label" - "$creator_label"
        # it ends with the process, though no thread destructor says so
        [ "$end_ns" != - ] && [ "$start_ns" != - ] && [ "$end_ns" -ge "$start_ns" ] ||
            fail "main thread: start_ns $start_ns, end_ns $end_ns: expected both (the process exited)"
    else
        expect_eq "thread $name: leaf (the creation function)" "$site" "$leaf"
        expect_eq "thread $name: creator_tid" "$creator" "$creator_label"
        [ "$end_ns" != - ] && [ "$start_ns" != - ] && [ "$end_ns" -ge "$start_ns" ] ||
            fail "thread $name: start_ns $start_ns, end_ns $end_ns: expected both, end after start"
    fi
    # The program read its CPU clock when its work ended; ppx reads it later
    # (at the thread's end, or the final flush for main): a little more, never
    # less. 5 ms covers a thread's exit path; main's flush at exit does more.
    slack=5000000
    [ "$site" = main ] && slack=50000000
    awk -v p="$cpu_ns" -v c="$cpu_label" -v s="$slack" 'BEGIN { exit !(c != "-" && c >= p && c <= p + s) }' ||
        fail "thread $name: cpu label $cpu_label ns, the thread's own clock said $cpu_ns ns (expected up to $((slack / 1000000)) ms more)"
done < <(grep '^thread ' "$TMP/tn.out")

# cpu.pb.gz agrees with the threads' cpu labels, thread by thread.
cpu_file="$out/cpu.pb.gz"
if [ -s "$cpu_file" ]; then
    dump_profile "$cpu_file" cpu
    dq cpu samples by tid >"$TMP/cpu.by_tid"
    dq cpu samples by thread >"$TMP/cpu.by_name"
    lost=$(lost_samples cpu)
    while IFS=$'\t' read -r _ _ tid name _ cpu_label _; do
        [ "$cpu_label" != - ] || continue
        got=$(awk -F'\t' -v t="$tid" '$1 == t { print $2 }' "$TMP/cpu.by_tid")
        expect_ticks "cpu.pb.gz samples of thread $name (tid $tid) against its cpu label" \
            "$cpu_label" "${got:-0}" 10000000 "$(tick_bound 100)" "$lost"
        [ "${got:-0}" -gt 0 ] && ! grep -q "^$name	" "$TMP/cpu.by_name" &&
            fail "cpu.pb.gz: no samples labelled thread=$name (names: $(cut -f1 "$TMP/cpu.by_name" | tr '\n' ' '))"
    done <"$TMP/tc.table"
else
    fail "cpu.pb.gz not written (ls: $(ls "$out"))"
fi

# ---- ppx threads ------------------------------------------------------------------
"$PPX" threads "$out" >"$TMP/threads.txt" 2>"$TMP/threads.err" ||
    die "ppx threads DIR: exit status $?: $(cat "$TMP/threads.err")"
"$PPX" threads "$file" >"$TMP/threads_file.txt" 2>"$TMP/threads_file.err" ||
    fail "ppx threads FILE: exit status $?: $(cat "$TMP/threads_file.err")"
cmp -s "$TMP/threads.txt" "$TMP/threads_file.txt" ||
    fail "ppx threads DIR and ppx threads DIR/threadcreate.pb.gz differ: $(diff "$TMP/threads.txt" "$TMP/threads_file.txt" | head -5)"
# a header line per process: "pid N: 9 threads ..." ("process:" if unknown)
grep -Eq "^(process|pid $pid): 9 threads \(0 still running\)" "$TMP/threads.txt" ||
    fail "ppx threads: no header line for the exited process with its 9 threads, none running: $(head -4 "$TMP/threads.txt")"

# Rows: TID NAME CREATED-BY... START LIFETIME CPU SHARE, read from both ends
# (CREATED BY may hold spaces: "main thread"; LIFETIME ends in + while running).
row_field() { # TID FIELD: name, creator, start, lifetime, cpu, share
    awk -v t="$1" -v f="$2" '$1 == t {
        share = $NF; sub(/%$/, "", share); cpu = $(NF - 1); sub(/s$/, "", cpu)
        creator = $3; for (i = 4; i <= NF - 4; i++) creator = creator " " $i
        v["name"] = $2; v["creator"] = creator; v["start"] = $(NF - 3); v["lifetime"] = $(NF - 2)
        v["cpu"] = cpu; v["share"] = share; print v[f]; exit }' "$TMP/threads.txt"
}
rows=$(awk '$1 ~ /^[0-9]+$/' "$TMP/threads.txt" | wc -l)
expect_eq "ppx threads: rows (main + 8 threads)" 9 "$rows"
total_cpu=$(awk '$1 ~ /^[0-9]+$/ { c = $(NF - 1); sub(/s$/, "", c); t += c } END { print t }' "$TMP/threads.txt")
while read -r _ name _ tid _ creator _ site _ cpu_ns; do
    expect_eq "ppx threads: name of $tid" "$name" "$(row_field "$tid" name)"
    if [ "$site" != main ]; then
        case $(row_field "$tid" creator) in
        "$site"*) ;;
        *) fail "ppx threads: thread $name created by '$(row_field "$tid" creator)', expected $site" ;;
        esac
    else
        expect_eq "ppx threads: CREATED BY of the main thread" "main thread" "$(row_field "$tid" creator)"
    fi
    cpu=$(row_field "$tid" cpu)
    # printed in ms (rounded), never less than the program's own figure, at
    # most the cpu label's slack more (above)
    slack=0.005
    [ "$site" = main ] && slack=0.05
    awk -v c="$cpu" -v p="$cpu_ns" -v s="$slack" 'BEGIN { d = c - p / 1e9; exit !(c != "" && d >= -0.0005 && d <= s + 0.0005) }' ||
        fail "ppx threads: CPU of $name: $cpu s, the thread's own clock said $(awk -v p="$cpu_ns" 'BEGIN { printf "%.4f", p / 1e9 }') s"
    share=$(row_field "$tid" share)
    awk -v s="$share" -v c="$cpu" -v t="$total_cpu" 'BEGIN { d = s - 100 * c / t; if (d < 0) d = -d; exit !(s != "" && t > 0 && d <= 1.5) }' ||
        fail "ppx threads: share of $name: $share%, expected $cpu s of $total_cpu s"
done < <(grep '^thread ' "$TMP/tn.out")
awk '$1 ~ /^[0-9]+$/ { c = $(NF - 1); sub(/s$/, "", c); if (n++ && c > last + 0.0001) bad = 1; last = c }
     END { exit bad }' "$TMP/threads.txt" || fail "ppx threads: rows not sorted by CPU: $(cat "$TMP/threads.txt")"

# Bad input: exit status 1 and one message naming the file.
printf 'not a profile' >"$TMP/garbage.pb.gz"
for bad in "$TMP/nonexistent" "$TMP/garbage.pb.gz" "$out/heap.pb.gz"; do
    "$PPX" threads "$bad" >"$TMP/bad.out" 2>"$TMP/bad.err"
    status=$?
    expect_eq "ppx threads $(basename "$bad"): exit status" 1 "$status"
    grep -q "^ppx threads: .*$(basename "$bad")" "$TMP/bad.err" ||
        fail "ppx threads $(basename "$bad"): expected a 'ppx threads: ...' message naming it, got: $(cat "$TMP/bad.err")"
    [ ! -s "$TMP/bad.out" ] || fail "ppx threads $(basename "$bad"): printed on stdout: $(head -3 "$TMP/bad.out")"
done
note "ppx threads:"$'\n'"$(cat "$TMP/threads.txt")"
finish
