#!/usr/bin/env bash
# ppx collect as a scrape target of Grafana Alloy's pyroscope.scrape and of
# Parca (doc/scraping.md). Neither can run here, so this test sends their
# requests as their code builds them, to a running target
# (tests/progs/phases: 400 write()s and a 4 MiB block a second for 3 s):
# - the headers their Go HTTP client sends (User-Agent, Accept-Encoding:
#   gzip, X-Prometheus-Scrape-Timeout-Seconds) with the token as
#   `authorization { type = "Bearer" }` or `basic_auth` sends it;
# - CPU and ppx's syscalls as delta targets (`?seconds=N` added to the
#   configured params, here pid): a profile of the window (its duration N
#   seconds, the window's calls only);
# - mutex and block as cumulative targets, with Go's sample types, and
#   goroutine (a thread dump) as a level;
# - allocs as a cumulative target (no seconds): two scrapes a few seconds
#   apart, whose difference (what the scrapers compute) has no negative
#   figure and holds the blocks allocated in between.
# Each answer: 200, application/octet-stream, a gzipped profile (the
# scrapers look for gzip's magic themselves: no Content-Encoding), read by
# go tool pprof.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
token=$(cat "$sock.token") || die "no token file"
plain_url=${url/ppx:$token@/}

PPX_SOCKET="$sock" LD_PRELOAD="$LIBPPX" "$PROGS/phases" >"$TMP/phases.out" 2>&1 &
target=$!
cleanup_kill "$target"
wait_for 100 grep -q '^grow' "$TMP/phases.out" || die "phases did not start: $(cat "$TMP/phases.out")"
pid=$(awk '$1 == "phases" && $2 == "pid" { print $3 }' "$TMP/phases.out")
wait_for 100 collector_knows "$pid" || die "phases (pid $pid) never connected to the collector"

# scrape NAME PATH_AND_QUERY AUTH: one request as the scrapers send it;
# the body in $TMP/NAME.pb.gz, the headers in $TMP/NAME.h.
scrape() {
    local auth
    case $3 in
    bearer) auth=(-H "Authorization: Bearer $token") ;;
    basic) auth=(-u "ppx:$token") ;;
    esac
    curl -s -o "$TMP/$1.pb.gz" -D "$TMP/$1.h" -w '%{http_code}' "${auth[@]}" \
        -H 'User-Agent: Alloy/v1.10.0' -H 'Accept-Encoding: gzip' \
        -H 'X-Prometheus-Scrape-Timeout-Seconds: 18' "$plain_url$2"
}
check_answer() { # NAME STATUS
    expect_eq "$1: status" 200 "$2"
    grep -qi '^content-type: application/octet-stream' "$TMP/$1.h" ||
        fail "$1: content type: $(grep -i '^content-type' "$TMP/$1.h")"
    grep -qi '^content-encoding' "$TMP/$1.h" && fail "$1: a Content-Encoding: $(grep -i '^content-encoding' "$TMP/$1.h")"
    [ "$(head -c 2 "$TMP/$1.pb.gz" | od -An -tx1 | tr -d ' ')" = 1f8b ] || fail "$1: not gzipped"
    pprof_raw "$TMP/$1.pb.gz" --header >"$TMP/$1.header" || fail "$1: go tool pprof cannot read it"
}

s=$(scrape allocs1 "/debug/pprof/allocs?pid=$pid" bearer)
check_answer allocs1 "$s"
# The delta targets, at once, as the scrape loops run side by side.
scrape cpu "/debug/pprof/profile?pid=$pid&seconds=2" basic >"$TMP/cpu.status" &
cpu_job=$!
s=$(scrape syscalls "/debug/pprof/syscalls?pid=$pid&seconds=2" bearer)
check_answer syscalls "$s"
wait "$cpu_job"
check_answer cpu "$(cat "$TMP/cpu.status")"
s=$(scrape allocs2 "/debug/pprof/allocs?pid=$pid" basic)
check_answer allocs2 "$s"
# mutex and block: cumulative, with Go's sample types (contentions, delay)
# goroutine: a level, pprof with sample type goroutine
s=$(scrape goroutine "/debug/pprof/goroutine?pid=$pid" bearer)
check_answer goroutine "$s"
expect_eq "goroutine: sample types" goroutine "$(header_field "$(cat "$TMP/goroutine.header")" sample_types)"
for p in mutex block; do
    s=$(scrape "$p" "/debug/pprof/$p?pid=$pid" bearer)
    check_answer "$p" "$s"
    expect_eq "$p: sample types" "contentions delay" "$(header_field "$(cat "$TMP/$p.header")" sample_types)"
done

duration=$(header_field "$(cat "$TMP/cpu.header")" duration)
case $duration in 2.* | 3.0*) ;; *) fail "profile?seconds=2: duration $duration, not the 2 s window" ;; esac
calls=$(pprof_raw "$TMP/syscalls.pb.gz" --total --type calls)
[ "${calls:-0}" -gt 100 ] && [ "${calls:-0}" -lt 1200 ] ||
    fail "syscalls?seconds=2: $calls calls, expected the window's (some, not all 1200)"
diff=$(pprof_raw "$TMP/allocs2.pb.gz" --base "$TMP/allocs1.pb.gz" --flat-table) ||
    fail "go tool pprof -base allocs1 allocs2 failed"
negative=$(printf '%s\n' "$diff" | awk -F'\t' 'NR > 1 { for (i = 2; i <= NF; i++) if ($i + 0 < 0) print $1 }' | sort -u)
expect_eq "allocs2 - allocs1: functions with a negative figure" "" "$negative"
grown=$(table_get "$(pprof_raw "$TMP/allocs2.pb.gz" --base "$TMP/allocs1.pb.gz" --cum-table)" grow_block alloc_space)
[ "${grown:-0}" -ge $((4 << 20)) ] || fail "allocs2 - allocs1: grow_block allocated ${grown:-0} bytes, not a block or more"
note "scrapes: cpu duration $duration, syscalls window $calls calls, allocs delta grow_block $grown bytes"

kill "$target" 2>/dev/null
wait "$target" 2>/dev/null
stop_collector || fail "ppx collect exit status $?"
finish
