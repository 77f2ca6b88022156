#!/usr/bin/env bash
# ppx collect keeps answering when what it is given would make it wait or
# spin:
#  - a target's mapping whose file was replaced by a FIFO: heap requests
#    (and the -o files at the target's exit) are answered, that mapping
#    unsymbolized and said once, instead of hanging on the FIFO's open;
#  - a FIFO where a program's separate debug file would be: its functions
#    are named from its own symbol table, nothing waits;
#  - out of descriptors (every one held by idle target connections) with
#    an HTTP client waiting: libmicrohttpd's accept loop fails and says so
#    as fast as it can; ppx says each message at most once a second (a few
#    lines, not megabytes) and answers again once the descriptors are back.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"
mkdir -m 700 "$TMP/run"
sock="$TMP/run/ppx.sock"

# A collector found waiting on a FIFO may wait again on its next look:
# then it is killed rather than stopped, so that the test fails, not hangs.
stuck=0
end_collector() { # NAME
    if [ "$stuck" -eq 1 ]; then
        kill -KILL "$collector"
        wait "$collector" 2>/dev/null
        stuck=0
        return
    fi
    stop_collector
    expect_eq "exit status of ppx collect ($1)" 0 "$?"
}

# ---- a mapping that became a FIFO ----
start_collector "$TMP/c1.log" --socket "$sock" --http 127.0.0.1:0 -o "$TMP/out"
prog="$TMP/fifo_allocs"
cp "$PROGS/known_allocs" "$prog"
# Every allocation recorded: the stacks in that mapping are certain.
fifo_target k 3 PPX_SAMPLE_RATE=1 "$prog" pause
target=$target_pid
# The program runs on from its deleted file; its path now names a FIFO
# nobody writes to. No profile was built before: the symbolizer has not
# opened the file yet.
rm "$prog"
mkfifo "$prog"
# unblock_collector: opens the FIFO for writing and closes it, so that a
# collector stuck on it goes on (the test must fail, not hang).
unblock_collector() { exec 5<>"$prog"; exec 5>&-; }
for q in "heap?pid=$target" "heap?pid=$target&debug=1"; do
    code=$(timeout 20 curl -s -o "$TMP/h.out" -w '%{http_code}' "$pp/$q")
    rc=$?
    if [ "$rc" -eq 124 ]; then
        fail "$q: no answer in 20 s (the collector waits on the FIFO)"
        stuck=1
        unblock_collector
        continue
    fi
    expect_eq "$q: status with a mapping that is a FIFO" 200 "$code"
done
timeout 20 curl -s -o "$TMP/h.pb.gz" "$pp/heap?pid=$target" || { stuck=1; unblock_collector; }
expect_eq "messages about the FIFO (once)" 1 "$(grep -c "cannot symbolize $prog: not a regular file" "$TMP/c1.log")"
# The target exits: its -o files are written too.
exec 3>&-
wait "$target"
wait_for 200 test -s "$TMP/out/fifo_allocs.$target/heap.pb.gz" || {
    fail "no -o files for the target whose mapping is a FIFO: $(ls -R "$TMP/out" 2>&1)"
    stuck=1
}
end_collector FIFO
# go tool pprof would itself open the FIFO to symbolize: gone first.
rm -f "$prog"
for f in "$TMP/h.pb.gz" "$TMP/out/fifo_allocs.$target/heap.pb.gz"; do
    total=$(pprof_raw "$f" --total --type inuse_space 2>"$TMP/total.err") ||
        fail "go tool pprof cannot read $f: $(cat "$TMP/total.err")"
    [ "${total:-0}" -gt 0 ] || fail "$f: no in-use bytes (${total:-})"
done

# ---- a FIFO where a separate debug file would be ----
# A program without debug information: libdwfl looks for NAME.debug
# beside it (and under .debug/ there), and would open a FIFO found there
# and wait on it. Its own symbol table names its functions instead.
if have strip; then
    start_collector "$TMP/c3.log" --socket "$sock" --http 127.0.0.1:0
    mkdir "$TMP/bin"
    prog="$TMP/bin/nodebug_allocs"
    cp "$PROGS/known_allocs" "$prog"
    strip --strip-debug "$prog" || die "strip --strip-debug $prog failed"
    mkfifo "$prog.debug"
    fifo_target d 3 PPX_SAMPLE_RATE=1 "$prog" pause
    target=$target_pid
    code=$(timeout 20 curl -s -o "$TMP/d.pb.gz" -w '%{http_code}' "$pp/heap?pid=$target")
    if [ $? -eq 124 ]; then
        fail "heap?pid=$target: no answer in 20 s (the collector waits on $prog.debug)"
        stuck=1
    else
        expect_eq "heap with a FIFO at NAME.debug: status" 200 "$code"
    fi
    expect_eq "messages about the FIFO at NAME.debug (once)" 1 \
        "$(grep -c "$prog: a candidate for its separate debug file is not a regular file" "$TMP/c3.log")"
    exec 3>&-
    wait "$target"
    end_collector "debug file"
    rm -f "$prog.debug"
    expect_eq "heap with a FIFO at NAME.debug: leak_64x1000, named from the symbol table" 64000 \
        "$(pprof_raw "$TMP/d.pb.gz" --type inuse_space --flat leak_64x1000)"
else
    note "strip not found: the FIFO at NAME.debug is not checked"
fi

# ---- out of descriptors, one HTTP client ----
# The collector with 64 descriptors at most (soft and hard limit: it
# raises the soft one to the hard one).
limit=64
(
    ulimit -n "$limit" || exit 99
    exec "$PPX" collect --socket "$sock" --http 127.0.0.1:0 2>"$TMP/c2.log" 3>&- 4>&-
) &
collector=$!
cleanup_kill "$collector"
wait_for 100 grep -q 'collecting on' "$TMP/c2.log" || die "ppx collect did not start: $(cat "$TMP/c2.log")"
url=$(sed -n 's|.*profiles at \(http://[^/]*\)/debug/pprof/.*|\1|p' "$TMP/c2.log")
pp="$url/debug/pprof"
expect_eq "status before the descriptors run out" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$pp/")"
# Idle connections to the socket until the collector has no descriptor
# left (it accepts each one); they are held until the fifo is closed.
mkfifo "$TMP/hold"
cat >"$TMP/hold.py" <<'EOF'
import socket, sys
conns = []
# Past the collector's last descriptor its backlog fills, and a connect
# then waits: that one ends the filling.
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1)
    try:
        s.connect(sys.argv[1])
    except OSError:
        break
    conns.append(s)
print("connected", len(conns), flush=True)
sys.stdin.read()
EOF
python3 "$TMP/hold.py" "$sock" "$((limit * 4))" <"$TMP/hold" >"$TMP/hold.out" 2>&1 &
holder=$!
cleanup_kill "$holder"
exec 4>"$TMP/hold"
wait_for 100 grep -q connected "$TMP/hold.out" || die "cannot connect to the collector: $(cat "$TMP/hold.out")"
# Once the collector has accepted all it could, it says so on stderr.
wait_for 100 grep -q 'cannot accept a connection' "$TMP/c2.log" ||
    note "the collector said nothing of its own accept failing: $(tail -3 "$TMP/c2.log")"
before=$(wc -c <"$TMP/c2.log")
# A client for 3 s: its connection waits in the listen backlog; the
# collector cannot accept it.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$pp/")
expect_eq "status while out of descriptors (000: no answer)" 000 "$code"
sleep 1 # the accept loop would go on after the client left; its output with it
bytes=$(($(wc -c <"$TMP/c2.log") - before))
lines=$(tail -c "$bytes" "$TMP/c2.log" | grep -c 'ppx: http:')
note "out of descriptors for 4 s: $lines lines, $bytes bytes on stderr:"$'\n'"$(tail -c "$bytes" "$TMP/c2.log" | head -c 4096)"
[ "$lines" -le 12 ] || fail "out of descriptors: $lines lines of libmicrohttpd messages in 4 s (at most 12: each kind once a second)"
[ "$bytes" -le 4096 ] || fail "out of descriptors: $bytes bytes on stderr in 4 s (at most 4096)"
tail -c "$bytes" "$TMP/c2.log" | grep -q 'Too many open files' ||
    fail "out of descriptors: the reason was not said: $(tail -c 600 "$TMP/c2.log")"
# The connections go; the collector answers again.
exec 4>&-
wait "$holder"
wait_for 100 curl -sf -o /dev/null --max-time 2 "$pp/" || fail "no answer once the descriptors were back"
expect_eq "status once the descriptors are back" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$pp/")"
stop_collector
expect_eq "exit status of ppx collect (descriptors)" 0 "$?"
finish
