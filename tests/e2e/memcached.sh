#!/usr/bin/env bash
# A real server from Debian: memcached (stripped; libevent) under ppx record,
# loaded with a deterministic client of our own (tests/lib/memcached_load.py:
# sets and gets one at a time over a few connections, then `stats`), stopped
# with SIGTERM sent to ppx, which relays it.
#
# The profile's I/O calls are checked against two independent counts of the
# same run:
#  - strace -f, which traces ppx and memcached together (ppx's own calls are
#    told apart by descriptor: they are on Unix sockets, pipes and files;
#    memcached's network I/O is on TCP sockets). memcached and libevent make
#    every call here through the PLT, so ppx must see each one: calls and
#    bytes of read, sendmsg and accept4 on TCP sockets, and of epoll_wait,
#    are equal. ppx counts a call when it returns; strace also sees the calls
#    still blocked when the process exits (epoll_wait in each thread), so
#    the comparison uses the calls strace saw finish.
#  - memcached's own stats: bytes read = bytes_read; bytes sent =
#    bytes_written + the stats reply (sent after the figures were taken);
#    one sendmsg per response; accept4 calls = connections.
# The call sites are memcached's (stripped: their callers have no names, only
# addresses in /usr/bin/memcached) under libevent's event_base_loop, in the
# worker threads for read/sendmsg and the main thread for accept4.
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof
require_cmd memcached memcached
server=$(readlink -f "$(command -v memcached)")

KEYS=250
CONNS=4
port=$(free_port) || die "no free port"
out="$TMP/memcached"
cd "$TMP" || exit 99
user=()
[ "$(id -u)" -eq 0 ] && user=(-u root) # memcached refuses root without -u

use_strace=1
if ! have strace; then
    use_strace=0
    note "strace not found: comparing with memcached's stats only"
elif ! strace -qq -o /dev/null true 2>/dev/null; then
    use_strace=0
    note "strace cannot trace here (ptrace not permitted): comparing with memcached's stats only"
fi

cmd=("$PPX" record -q -o "$out" -- memcached -l 127.0.0.1 -p "$port" -U 0 -t 2 "${user[@]}")
if [ "$use_strace" -eq 1 ]; then
    strace -f -yy -qq -e signal=none -e trace=read,sendmsg,accept4,epoll_wait,epoll_ctl,write \
        -o "$TMP/strace.log" -- "${cmd[@]}" >"$TMP/stdout" 2>"$TMP/stderr" &
    top_pid=$!
else
    "${cmd[@]}" >"$TMP/stdout" 2>"$TMP/stderr" &
    top_pid=$!
fi
cleanup_kill "$top_pid"

# Listening, seen in /proc/net/tcp: probing with a connection would add one.
listening() { grep -qi " 0100007F:$(printf '%04X' "$port") 00000000:0000 0A " /proc/net/tcp; }
wait_for 300 listening || die "memcached under ppx never listened on port $port: $(tail -5 "$TMP/stderr")"
ppx_pid=$top_pid
if [ "$use_strace" -eq 1 ]; then
    ppx_pid=$(ps -o pid= --ppid "$top_pid" | tr -d ' ')
    [ -n "$ppx_pid" ] || die "no ppx process under strace (pid $top_pid)"
fi

# ppx's own threads, told apart in the strace log
exclude=()
for tid in $(ls "/proc/$ppx_pid/task" 2>/dev/null); do exclude+=(--exclude-pid "$tid"); done
python3 "$TESTS_LIB/memcached_load.py" "$port" "$KEYS" "$CONNS" >"$TMP/load" 2>"$TMP/load.err" ||
    fail "memcached_load.py failed: $(cat "$TMP/load.err")"
kill -TERM "$ppx_pid"
stopped() { ! kill -0 "$top_pid" 2>/dev/null; }
wait_for 300 stopped || die "memcached under ppx did not exit after SIGTERM to ppx"
wait "$top_pid"
expect_eq "exit status of memcached (SIGTERM relayed by ppx)" 0 "$?"

file="$out/syscalls.pb.gz"
[ -s "$file" ] || die "$file not written after SIGTERM (stderr: $(cat "$TMP/stderr"))"
load_stat() { sed -n "s/^$1=//p" "$TMP/load"; }
requests=$(load_stat requests)
connections=$(load_stat connections)
expect_eq "memcached cmd_get" $((KEYS * CONNS)) "$(load_stat stat_cmd_get)"
expect_eq "memcached cmd_set" $((KEYS * CONNS)) "$(load_stat stat_cmd_set)"
expect_eq "memcached get_hits" $((KEYS * CONNS)) "$(load_stat stat_get_hits)"

# ppx's figures per call and descriptor, callers grouped by mapping:
# call mapping labels calls time bytes messages errors eagain
io_sites "$file" --by-mapping >"$TMP/sites" || die "go tool pprof cannot read $file"
note "sites by caller mapping:"$'\n'"$(cat "$TMP/sites")"
TCP=fd=socket,family=inet,socktype=stream
# ppx_total CALL LABELS COLUMN: the total of a column (4 calls, 6 bytes, 8 errors)
# over the sites of CALL on descriptors LABELS (any for "*").
ppx_total() {
    awk -F'\t' -v c="$1" -v l="$2" -v col="$3" '
        $1 == c && (l == "*" || $3 == l) { s += $col } END { print s + 0 }' "$TMP/sites"
}

# The profile agrees with the server's own figures.
expect_eq "bytes read from TCP sockets = memcached bytes_read" \
    "$(load_stat stat_bytes_read)" "$(ppx_total read "$TCP" 6)"
expect_eq "bytes sent (sendmsg) = memcached bytes_written + the stats reply" \
    $(($(load_stat stat_bytes_written) + $(load_stat stats_reply))) "$(ppx_total sendmsg "$TCP" 6)"
expect_eq "sendmsg calls on TCP sockets: one per response" $((requests + 1)) "$(ppx_total sendmsg "$TCP" 4)"
expect_eq "accept4 calls on TCP sockets: one per connection" "$connections" "$(ppx_total accept4 "$TCP" 4)"
# every request is read: one read per request (one at a time), at least
reads=$(ppx_total read "$TCP" 4)
[ "$reads" -ge "$requests" ] || fail "read calls on TCP sockets: $reads, fewer than the $requests requests"

# The call sites are memcached's own, under libevent's loop.
for call in read sendmsg accept4; do
    where=$(awk -F'\t' -v c="$call" -v l="$TCP" '$1 == c && $3 == l { print $2 }' "$TMP/sites" | sort -u)
    expect_eq "mapping of the callers of $call on TCP sockets" "$server" "$where"
done
where=$(awk -F'\t' '$1 == "epoll_wait" { print $2 }' "$TMP/sites" | sort -u)
case $where in */libevent*) ;; *) fail "epoll_wait callers not in libevent: $where" ;; esac
io_sites "$file" --stacks >"$TMP/stacks" || die "cannot read $file"
stack_has() { # CALL FUNCTION: every stack of CALL has FUNCTION
    awk -F'\t' -v c="$1" -v f="$2" '
        $1 == c { n++; if (index(";" $2 ";", ";" f ";")) k++ }
        END { exit !(n > 0 && n == k) }' "$TMP/stacks"
}
stack_has read event_base_loop || fail "read: not every stack has event_base_loop: $(grep '^read' "$TMP/stacks")"
stack_has read start_thread || fail "read: not every stack is in a worker thread: $(grep '^read' "$TMP/stacks")"
stack_has sendmsg event_base_loop || fail "sendmsg: not every stack has event_base_loop: $(grep '^sendmsg' "$TMP/stacks")"
stack_has accept4 __libc_start_main || fail "accept4: not every stack is in the main thread: $(grep '^accept4' "$TMP/stacks")"

# ppx audit names the calls with the same counts.
"$PPX" audit "$out" >"$TMP/audit" 2>&1 || fail "ppx audit: $(cat "$TMP/audit")"
expect_eq "ppx audit: sendmsg inet/stream calls" $((requests + 1)) \
    "$(awk '$1 == "sendmsg" && $2 == "inet/stream" { print $3 }' "$TMP/audit")"

# The same run as strace saw it.
if [ "$use_strace" -eq 1 ]; then
    python3 "$TESTS_LIB/strace_io.py" "$TMP/strace.log" "${exclude[@]}" \
        >"$TMP/strace" || die "cannot read the strace log"
    note "strace (call kind started finished bytes errors):"$'\n'"$(cat "$TMP/strace")"
    # strace COLUMN CALL KIND: 3 started, 4 finished, 5 bytes, 6 errors
    strace_fig() {
        awk -F'\t' -v c="$2" -v k="$3" -v col="$1" '$1 == c && $2 == k { s += $col } END { print s + 0 }' "$TMP/strace"
    }
    for call in read sendmsg accept4; do
        expect_eq "$call calls on TCP sockets: ppx = strace" "$(strace_fig 4 "$call" TCP)" "$(ppx_total "$call" "$TCP" 4)"
        expect_eq "$call failures on TCP sockets: ppx = strace" "$(strace_fig 6 "$call" TCP)" \
            $(($(ppx_total "$call" "$TCP" 8) + $(ppx_total "$call" "$TCP" 9)))
    done
    for call in read sendmsg; do
        expect_eq "$call bytes on TCP sockets: ppx = strace" "$(strace_fig 5 "$call" TCP)" "$(ppx_total "$call" "$TCP" 6)"
    done
    expect_eq "epoll_wait calls (finished): ppx = strace" "$(strace_fig 4 epoll_wait eventpoll)" "$(ppx_total epoll_wait '*' 4)"
    expect_eq "epoll_ctl calls: ppx = strace" "$(strace_fig 4 epoll_ctl eventpoll)" "$(ppx_total epoll_ctl '*' 4)"
    # memcached's thread notifications: eventfd reads and writes
    expect_eq "read calls on eventfds: ppx = strace" "$(strace_fig 4 read eventfd)" "$(ppx_total read fd=anon 4)"
    expect_eq "write calls on eventfds: ppx = strace" "$(strace_fig 4 write eventfd)" "$(ppx_total write fd=anon 4)"
fi
finish
