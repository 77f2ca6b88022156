#!/usr/bin/env bash
# /debug/pprof/timeline: a point (at most one a second) of what each process's profiles
# sum to. tests/progs/phases grows its heap by 12 blocks of 4 MiB (with
# 1200 write()s of 4 KiB), spins 1.5 s of CPU, frees everything, takes 6
# blocks again for a while, frees them and sleeps; sampled at half the
# default rate (PPX_SAMPLE_RATE=262144: each 4 MiB block is sampled with
# probability 1 - e^-16; at the default's 1 - e^-8 one run in 170 left one
# of the 18 out), its timeline must show:
# - the peak in use: 48 MiB within 1% (scaled as the heap profile scales
#   it), and under 1 MiB once freed;
# - the allocation rate summed over the points: 72 MiB within 1%; the I/O
#   calls: 1200 to 1210 (its few printf()s write too); CPU seconds: the
#   spin's 1.5 and at most 1 s more, no point above one core;
# - one running thread at every point but the last (its figures at exit);
# - the same figures as CSV with format=csv; format=xml refused (400), an
#   unknown pid 404; the process in the merged timeline.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/collect.sh"
require_cmd python3 python3

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
PPX_SOCKET="$sock" PPX_SAMPLE_RATE=262144 LD_PRELOAD="$LIBPPX" "$PROGS/phases" >"$TMP/phases.out" 2>"$TMP/phases.err" ||
    die "phases failed: $(cat "$TMP/phases.err")"
pid=$(awk '$1 == "phases" && $2 == "pid" { print $3 }' "$TMP/phases.out")
[ -n "$pid" ] || die "phases printed no pid: $(cat "$TMP/phases.out")"

curl -sf -D "$TMP/json.h" -o "$TMP/timeline.json" "$pp/timeline?pid=$pid" || die "timeline?pid=$pid failed"
grep -qi '^content-type: application/json' "$TMP/json.h" || fail "JSON content type: $(grep -i content-type "$TMP/json.h")"
figures=$(python3 - "$TMP/timeline.json" "$pid" "$TMP/phases.out" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
pid = int(sys.argv[2])
phase = {l.split()[0]: float(l.split()[1]) for l in open(sys.argv[3]) if len(l.split()) == 2}
procs = doc["processes"]
assert len(procs) == 1 and procs[0]["pid"] == pid, procs
cols = doc["columns"]
pts = [dict(zip(cols, p)) for p in procs[0]["points"]]
times = [procs[0]["start_s"]] + [p["time_s"] for p in pts]
def total(col):  # a rate times the time since the point before (the first: since the start)
    return sum(p[col] * (t1 - t0) for p, t0, t1 in zip(pts, times, times[1:]))
after_free = [p for p in pts if p["time_s"] > phase["end"]]  # the final frees' flush
print("points", len(pts))
print("exe", procs[0]["exe"].rsplit("/", 1)[-1])
print("peak_inuse", max(p["inuse_bytes"] for p in pts))
print("inuse_after_free", after_free[-1]["inuse_bytes"] if after_free else -1)
print("alloc_bytes", round(total("alloc_bytes_per_s")))
print("io_calls", round(total("io_calls_per_s")))
print("cpu_s", round(total("cpu_cores"), 3))
print("max_cores", max(p["cpu_cores"] for p in pts))
print("threads", ",".join(sorted({str(p["threads"]) for p in pts[:-1]})))  # the last: after the exit
PY
) || die "cannot read the timeline: $(head -c 600 "$TMP/timeline.json")"
note "timeline of phases:"$'\n'"$figures"
fig() { printf '%s\n' "$figures" | awk -v k="$1" '$1 == k { print $2 }'; }
within() { # WHAT VALUE LOW HIGH
    awk -v v="$2" -v lo="$3" -v hi="$4" 'BEGIN { exit !(v != "" && v >= lo && v <= hi) }' ||
        fail "$1: $2, expected $3..$4"
}
mib48=$((48 << 20))
expect_eq "executable" phases "$(fig exe)"
within "points (at most one a second over a ~9 s run)" "$(fig points)" 7 14
within "peak heap in use" "$(fig peak_inuse)" $((mib48 * 99 / 100)) $((mib48 * 101 / 100))
within "heap in use after the frees" "$(fig inuse_after_free)" 0 $((1 << 20))
mib72=$((72 << 20))
within "bytes allocated (rate x time)" "$(fig alloc_bytes)" $((mib72 * 99 / 100)) $((mib72 * 101 / 100 + (1 << 20)))
within "I/O calls (rate x time)" "$(fig io_calls)" 1200 1210
within "CPU seconds (cores x time)" "$(fig cpu_s)" 1.4 2.5
# one thread: never more than a core (how much of one depends on the load)
within "the busiest point's cores" "$(fig max_cores)" 0.1 1.05
expect_eq "running threads at every point before the exit" 1 "$(fig threads)"

# CSV: the same points.
curl -sf -D "$TMP/csv.h" -o "$TMP/timeline.csv" "$pp/timeline?pid=$pid&format=csv" || fail "format=csv failed"
grep -qi '^content-type: text/csv' "$TMP/csv.h" || fail "CSV content type: $(grep -i content-type "$TMP/csv.h")"
expect_eq "CSV header" "pid,time_s,inuse_bytes,inuse_objects,alloc_bytes_per_s,alloc_objects_per_s,cpu_cores,io_calls_per_s,io_bytes_per_s,threads" "$(head -1 "$TMP/timeline.csv")"
expect_eq "CSV rows" "$(fig points)" "$(awk -F, -v p="$pid" 'NR > 1 && $1 == p' "$TMP/timeline.csv" | wc -l)"
csv_peak=$(awk -F, 'NR > 1 && $3 > m { m = $3 } END { print m }' "$TMP/timeline.csv")
expect_eq "CSV peak in use" "$(fig peak_inuse)" "$csv_peak"

expect_eq "format=xml" 400 "$(curl -s -o /dev/null -w '%{http_code}' "$pp/timeline?format=xml")"
expect_eq "an unknown pid" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$pp/timeline?pid=999999999")"
curl -sf "$pp/timeline" | grep -q "\"pid\":$pid," || fail "the merged timeline lacks pid $pid"
curl -sf "$pp/" | grep -q "timeline?pid=$pid" || fail "the index page has no timeline link for $pid"
stop_collector || fail "ppx collect exit status $?"
finish
