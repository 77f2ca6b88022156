#!/usr/bin/env bash
# A real server from Debian: redis-server (linked with jemalloc) under
# ppx record --exact (every allocation: the top sites are not left to chance),
# loaded with redis-benchmark, stopped with SHUTDOWN NOSAVE.
# The top allocation sites are redis's own functions (zmalloc & co.),
# symbolized, with stacks up to main, and the server's exit status passes
# through.
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof
. "$TESTS_LIB/redis.sh"

out="$TMP/redis"
cd "$TMP" || exit 99
"$PPX" record -q --exact -o "$out" -- redis-server "${REDIS_ARGS[@]}" >"$TMP/stdout" 2>"$TMP/stderr" &
ppx_pid=$!
cleanup_kill "$ppx_pid"

wait_for 300 redis_answers || die "redis-server under ppx never answered PING on port $port: $(tail -5 "$TMP/redis.log" "$TMP/stderr" 2>&1)"
redis-benchmark -q -n 20000 -p "$port" -t set,get,lpush >"$TMP/bench" 2>&1 ||
    fail "redis-benchmark failed: $(cat "$TMP/bench")"
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
wait "$ppx_pid"
expect_eq "exit status of redis-server under ppx record" 0 "$?"

for f in allocs heap; do
    file="$out/$f.pb.gz"
    [ -s "$file" ] || die "$file not written (stderr: $(cat "$TMP/stderr"))"
    top=$(pprof_raw "$file" --leaves --type alloc_space --top 5) || die "go tool pprof cannot read $file"
    note "$f.pb.gz top leaves by alloc_space:"$'\n'"$top"
    [ "$(printf '%s\n' "$top" | grep -c .)" -eq 5 ] || fail "$f: fewer than 5 allocation sites: $top"
    # No top site is the allocator or ppx, and every one in redis-server is
    # named (Debian's libraries are stripped: their static functions may not be).
    bad=$(printf '%s\n' "$top" | awk -F'\t' -v s="$server" '
        $3 == s && $2 ~ /^(0x[0-9a-f]+|\?\?|<no location>|)$/ ||
        $2 ~ /^(malloc|calloc|realloc|free|je_|__libc_|operator new)/ || $3 ~ /libppx\.so|libjemalloc/')
    [ -z "$bad" ] || fail "$f: top sites unsymbolized or in the allocator: $bad"
    # The largest site and most of the top five are in redis-server itself.
    own=$(printf '%s\n' "$top" | awk -F'\t' -v s="$server" '$3 == s' | wc -l)
    [ "$own" -ge 3 ] || fail "$f: only $own of the top 5 sites are in $server: $top"
    first=$(printf '%s\n' "$top" | head -1 | cut -f3)
    expect_eq "$f: mapping of the largest site" "$server" "$first"
done
# The stacks reach from the allocator wrappers up to redis's command path.
cum=$(pprof_raw "$out/allocs.pb.gz" --cum-table) || die "cannot read allocs.pb.gz"
for fn in readQueryFromClient processCommand main; do
    [ "$(table_get "$cum" "$fn" alloc_objects)" -gt 0 ] || fail "allocs: no allocation under $fn"
done
finish
