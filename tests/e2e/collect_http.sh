#!/usr/bin/env bash
# A real server from Debian, redis-server, started with plain
# LD_PRELOAD=libppx.so (no ppx record) and loaded with redis-benchmark,
# looked at while it runs through ppx collect's HTTP endpoints the way Go
# programs are, with `go tool pprof URL`:
#  - heap, allocs, syscalls and profile?seconds=N (CPU) are profiles whose
#    top functions are redis's own (redis-server exports its function
#    names; their mapping is /usr/bin/redis-server);
#  - -base of two allocs snapshots shows what the load allocated;
#  - ?pid=N selects one process of two, without it both are merged with a
#    pid label; an unknown pid is 404;
#  - ?seconds=N gives the change over the window only;
#  - heap?debug=1 is Go's legacy text format, which go tool pprof reads;
#  - /debug/pprof/ lists the processes with links to their profiles.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"
. "$TESTS_LIB/redis.sh"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0

# Every allocation recorded, so that the top sites are not left to chance.
PPX_SOCKET="$sock" PPX_SAMPLE_RATE=1 LD_PRELOAD="$LIBPPX" redis-server "${REDIS_ARGS[@]}" \
    >"$TMP/redis.out" 2>"$TMP/redis.err" &
redis=$!
cleanup_kill "$redis"
wait_for 300 redis_answers || die "redis-server never answered PING on port $port: $(tail -5 "$TMP/redis.log" "$TMP/redis.err")"
wait_for 100 collector_knows "$redis" || die "redis-server (pid $redis) never connected to the collector"

# A second process, so that merging and ?pid have something to choose from.
fifo_target k 3 PPX_SAMPLE_RATE=1 "$PROGS/known_allocs" pause
known_pid=$target_pid

curl -sf -o "$TMP/allocs1.pb.gz" "$pp/allocs?pid=$redis" || fail "allocs?pid=$redis (before the load) failed"
# The CPU profile spans the load: it starts with it and lasts 2 s more at most.
curl -sf -o "$TMP/cpu.pb.gz" "$pp/profile?seconds=3&pid=$redis" 3>&- &
cpu_curl=$!
curl -sf -o "$TMP/delta.pb.gz" "$pp/allocs?seconds=2&pid=$redis" 3>&- &
delta_curl=$!
redis-benchmark -q -n 20000 -p "$port" -t set,get,lpush >"$TMP/bench" 2>&1 ||
    fail "redis-benchmark failed: $(cat "$TMP/bench")"
# Load for as long as the CPU window lasts: the window starts once the
# collector has asked redis to sample, which may come after the first load.
while kill -0 "$cpu_curl" 2>/dev/null; do
    redis-benchmark -q -n 2000 -p "$port" -t get >/dev/null 2>&1 || break
done
wait "$cpu_curl" || fail "profile?seconds=3 failed"
wait "$delta_curl" || fail "allocs?seconds=2 failed"
sleep 0.3 # one flush interval (100 ms) and some: the last figures are in
curl -sf -o "$TMP/allocs2.pb.gz" "$pp/allocs?pid=$redis" || fail "allocs?pid=$redis (after the load) failed"

# `go tool pprof -top URL`, as a Go programmer would: each profile's top
# functions are redis's own.
redis_symbols=$(nm -D --defined-only "$server" 2>/dev/null | awk '$2 ~ /^[TtWw]$/ { print $3 }' | sort -u)
[ -n "$redis_symbols" ] || skip "cannot read redis-server's dynamic symbols (nm from binutils)"
is_redis_fn() { printf '%s\n' "$redis_symbols" | grep -qxF "$1"; }
# top_functions URL ARGS...: function names of `go tool pprof -top`, by flat.
top_functions() {
    local u=$1
    shift
    go_pprof -top "$@" "$u" 2>"$TMP/pprof.err" | awk 'f { print $NF } /^ *flat  *flat%/ { f = 1 }'
}
for profile in heap allocs; do
    top=$(top_functions "$pp/$profile?pid=$redis" -nodecount=5)
    note "go tool pprof -top $pp/$profile?pid=$redis:"$'\n'"$top"
    [ -n "$top" ] || { fail "$profile: go tool pprof -top read nothing: $(cat "$TMP/pprof.err")"; continue; }
    own=0
    for fn in $top; do is_redis_fn "$fn" && own=$((own + 1)); done
    [ "$own" -ge 3 ] || fail "$profile: only $own of the top 5 functions are redis-server's: $top"
    is_redis_fn "$(printf '%s\n' "$top" | head -1)" || fail "$profile: the top function is not redis-server's: $top"
done
# syscalls: the leaf names the call; redis's reading function is right under it.
top=$(top_functions "$pp/syscalls?pid=$redis" -cum -nodecount=15)
note "go tool pprof -top -cum $pp/syscalls?pid=$redis:"$'\n'"$top"
for fn in readQueryFromClient aeMain main; do
    printf '%s\n' "$top" | grep -qxF "$fn" || fail "syscalls: $fn not among the top functions by cum: $top"
done
# CPU over the load: redis's event loop and command path.
cpu=$(pprof_raw "$TMP/cpu.pb.gz" --cum-table) || die "cannot read profile?seconds=3"
samples=$(pprof_raw "$TMP/cpu.pb.gz" --total --type samples 2>/dev/null || echo 0)
note "profile?seconds=3: $samples samples"
for fn in aeMain processCommand; do
    [ "$(table_get "$cpu" "$fn" cpu)" -gt 0 ] || fail "profile?seconds=3: no CPU time under $fn"
done
# Leaves in redis-server's own code: under exact tracking most of the
# time is the profiler's and libc's, so not necessarily among the hottest.
top=$(pprof_raw "$TMP/cpu.pb.gz" --leaves --type cpu --top 1000 | awk -F'\t' -v s="$server" '$3 == s' | wc -l)
[ "$top" -ge 1 ] || fail "profile?seconds=3: no leaf is in redis-server's code"

# -base of two allocs snapshots: what the load allocated.
diff=$(pprof_raw "$TMP/allocs2.pb.gz" --base "$TMP/allocs1.pb.gz" --cum-table) ||
    die "go tool pprof -base allocs1 allocs2 failed"
after=$(pprof_raw "$TMP/allocs2.pb.gz" --cum-table)
before=$(pprof_raw "$TMP/allocs1.pb.gz" --cum-table)
for fn in processCommand main; do
    expect_eq "allocs2 -base allocs1: $fn objects = after - before" \
        $(($(table_get "$after" "$fn" alloc_objects) - $(table_get "$before" "$fn" alloc_objects))) \
        "$(table_get "$diff" "$fn" alloc_objects)"
done
[ "$(table_get "$diff" processCommand alloc_objects)" -gt 20000 ] ||
    fail "allocs2 -base allocs1: fewer allocations under processCommand than requests: $(table_get "$diff" processCommand alloc_objects)"
# The window of allocs?seconds=2 is inside the load: some of it, not all
# of redis's history (its start-up allocations are not in it).
d=$(pprof_raw "$TMP/delta.pb.gz" --cum-table) || die "cannot read allocs?seconds=2"
d_main=$(table_get "$d" main alloc_objects)
[ "$d_main" -gt 0 ] && [ "$d_main" -lt "$(table_get "$after" main alloc_objects)" ] ||
    fail "allocs?seconds=2: $d_main objects under main, not within (0, $(table_get "$after" main alloc_objects))"
expect_eq "allocs?seconds=2: start-up allocations (initServer)" 0 "$(table_get "$d" initServer alloc_objects)"

# ?pid and merging.
curl -sf -o "$TMP/merged.pb.gz" "$pp/heap" || fail "heap (merged) failed"
expect_eq "pid labels of the merged heap" "$(printf '%s\n' "$redis" "$known_pid" | sort | paste -sd' ')" \
    "$(label_values "$TMP/merged.pb.gz" pid)"
curl -sf -o "$TMP/one.pb.gz" "$pp/heap?pid=$known_pid" || fail "heap?pid=$known_pid failed"
expect_eq "heap?pid=$known_pid: leak_64x1000" 64000 "$(pprof_raw "$TMP/one.pb.gz" --type inuse_space --flat leak_64x1000)"
expect_eq "heap?pid=$known_pid: nothing of redis" 0 "$(pprof_raw "$TMP/one.pb.gz" --type inuse_space --cum processCommand)"
expect_eq "heap?pid=$known_pid: no pid labels" "" "$(label_values "$TMP/one.pb.gz" pid)"
code=$(curl -s -o "$TMP/nopid" -w '%{http_code}' "$pp/heap?pid=999999999")
expect_eq "heap?pid=999999999: status" 404 "$code"
grep -q 'no process with pid 999999999' "$TMP/nopid" || fail "heap?pid=999999999: no message: $(cat "$TMP/nopid")"

# Go's legacy text heap profile.
curl -sf -o "$TMP/heap.txt" "$pp/heap?debug=1&pid=$redis" || fail "heap?debug=1 failed"
head -1 "$TMP/heap.txt" | grep -Eq '^heap profile: [0-9]+: [0-9]+ \[[0-9]+: [0-9]+\] @ heap/2$' ||
    fail "heap?debug=1: not Go's header: $(head -1 "$TMP/heap.txt")"
grep -q $'^#\t0x[0-9a-f]*\tprocessCommand\t' "$TMP/heap.txt" || fail "heap?debug=1: no symbolized processCommand frame"
text=$(go_pprof -raw "$TMP/heap.txt" 2>"$TMP/pprof.err") || fail "go tool pprof cannot read heap?debug=1: $(cat "$TMP/pprof.err")"
printf '%s\n' "$text" | grep -q '^alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes' ||
    fail "go tool pprof -raw on heap?debug=1: not a four-column heap profile"
printf '%s\n' "$text" | grep -q "$server" || fail "go tool pprof -raw on heap?debug=1: no mapping of redis-server"
# Over HTTP, pprof names the stripped program's addresses through
# /debug/pprof/symbol, as with a Go server.
top=$(top_functions "$pp/heap?debug=1&pid=$redis" -nodecount=3)
is_redis_fn "$(printf '%s\n' "$top" | head -1)" || fail "go tool pprof -top on heap?debug=1: top is not redis-server's: $top"

# The index page, and cmdline.
curl -sf -o "$TMP/index.html" "$pp/" || fail "the index page failed"
grep -q "<td>$redis</td><td>$server</td><td>running" "$TMP/index.html" || fail "the index page does not list redis-server: $(cat "$TMP/index.html")"
grep -q "href='heap?pid=$redis&amp;debug=1'" "$TMP/index.html" || fail "the index page has no heap link for redis"
expect_eq "cmdline?pid=$known_pid" "$PROGS/known_allocs pause" "$(curl -sf "$pp/cmdline?pid=$known_pid" | tr '\0' ' ')"

redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
wait "$redis"
expect_eq "exit status of redis-server" 0 "$?"
exec 3>&-
wait "$known_pid"
# An exited process stays listed, and in the profiles.
wait_for 100 sh -c "curl -sf '$pp/' | grep -q '<td>$redis</td><td>[^<]*</td><td>exited'" ||
    fail "the index page does not show redis-server as exited"
kill -TERM "$collector"
wait "$collector"
expect_eq "exit status of ppx collect" 0 "$?"
finish
