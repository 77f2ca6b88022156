#!/usr/bin/env bash
# Who may reach ppx collect, and what it answers to bad input:
#  - the default socket directory is created 0700; one open to others, or
#    owned by another user, is refused with a message;
#  - a process of another user (nobody) is refused even when the socket's
#    permissions let it connect (SO_PEERCRED), said once per uid, and its
#    data never shows;
#  - HTTP listens on 127.0.0.1 unless a host is given: not reachable on
#    this machine's other addresses;
#  - malformed HTTP requests, bad query values, unknown paths and methods
#    get 4xx with a message; the collector goes on serving.
. "$(dirname "$0")/lib/common.sh"
require_built
. "$(dirname "$0")/lib/collect.sh"
command -v python3 >/dev/null 2>&1 || skip "python3 not found"
cd "$TMP" || exit 99

# ---- the default socket directory ----
xdg="$TMP/xdg"
mkdir -m 700 "$xdg"
XDG_RUNTIME_DIR="$xdg" start_collector "$TMP/d1.log"
[ -S "$xdg/ppx/ppx.sock" ] || fail "no socket at \$XDG_RUNTIME_DIR/ppx/ppx.sock: $(cat "$TMP/d1.log")"
expect_eq "mode of the socket directory it created" 700 "$(stat -c %a "$xdg/ppx")"
# libppx.so finds it without PPX_SOCKET, and ppx snapshot too.
XDG_RUNTIME_DIR="$xdg" LD_PRELOAD="$LIBPPX" "$PROGS/known_allocs" >/dev/null 2>"$TMP/t.err" ||
    fail "known_allocs under LD_PRELOAD failed: $(cat "$TMP/t.err")"
XDG_RUNTIME_DIR="$xdg" "$PPX" snapshot -o "$TMP/snap" >"$TMP/snap.list" 2>"$TMP/snap.err" ||
    fail "ppx snapshot on the default socket: $(cat "$TMP/snap.err")"
[ "$(grep -c . "$TMP/snap.list")" -ge 5 ] || fail "ppx snapshot listed: $(cat "$TMP/snap.list")"
stop_collector
chmod 755 "$xdg/ppx"
XDG_RUNTIME_DIR="$xdg" "$PPX" collect 2>"$TMP/d2.log" &
p=$!
cleanup_kill "$p"
wait_for 100 sh -c "! kill -0 $p 2>/dev/null" || die "ppx collect accepted a socket directory open to others"
wait "$p"
expect_eq "exit status with a socket directory open to others" 1 "$?"
grep -q "is open to others (mode 755)" "$TMP/d2.log" || fail "no clear message: $(cat "$TMP/d2.log")"
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
    chmod 700 "$xdg/ppx"
    chown nobody "$xdg/ppx"
    XDG_RUNTIME_DIR="$xdg" "$PPX" collect 2>"$TMP/d3.log"
    expect_eq "exit status with a socket directory owned by another user" 1 "$?"
    grep -q "belongs to uid $(id -u nobody), not to you" "$TMP/d3.log" || fail "no clear message: $(cat "$TMP/d3.log")"
fi

# ---- another user's processes ----
as_nobody=()
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
    if command -v setpriv >/dev/null 2>&1; then
        as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
    elif command -v runuser >/dev/null 2>&1; then
        as_nobody=(runuser -u nobody --)
    fi
fi
# The system's python: one from root's PATH (pyenv) may be closed to nobody.
py=/usr/bin/python3
if [ ${#as_nobody[@]} -gt 0 ] && "${as_nobody[@]}" "$py" -c '' 2>/dev/null; then
    # A directory nobody may enter, and a socket it may write: only the
    # uid check stands between it and the collector.
    pub="$TMP/pub"
    mkdir -m 755 "$pub"
    chmod 711 "$TMP"
    start_collector "$TMP/u.log" --socket "$pub/ppx.sock" --http 127.0.0.1:0
    chmod 666 "$pub/ppx.sock"
    # Plain connects, as nobody: accepted by the kernel, refused by ppx.
    for i in 1 2; do
        "${as_nobody[@]}" "$py" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
try:
    s.sendall(b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sys.exit(0 if s.recv(1) == b"" else 3)
except (BrokenPipeError, ConnectionResetError):
    sys.exit(0)
' "$pub/ppx.sock" 2>"$TMP/nobody.err"
        expect_eq "connection $i as nobody closed by ppx" 0 "$?"
    done
    expect_eq "refusals said (once per uid)" 1 "$(grep -c "refused a connection on $pub/ppx.sock from uid $(id -u nobody)" "$TMP/u.log")"
    # A real target as nobody, if it can read the library: never listed.
    if "${as_nobody[@]}" test -r "$LIBPPX" -a -x "$PROGS/known_allocs" 2>/dev/null; then
        "${as_nobody[@]}" env PPX_SOCKET="$pub/ppx.sock" LD_PRELOAD="$LIBPPX" "$PROGS/known_allocs" \
            >/dev/null 2>&1 &
        nobody_pid=$!
        wait "$nobody_pid"
        code=$(curl -s -o /dev/null -w '%{http_code}' "$url/debug/pprof/cmdline?pid=$nobody_pid")
        expect_eq "a target of uid nobody is not in the collector (status of cmdline?pid)" 404 "$code"
    fi
    # Our own processes still get in.
    PPX_SOCKET="$pub/ppx.sock" LD_PRELOAD="$LIBPPX" "$PROGS/known_allocs" >/dev/null 2>&1 &
    own=$!
    wait "$own"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/debug/pprof/cmdline?pid=$own")
    expect_eq "a target of our own uid is in the collector (status of cmdline?pid)" 200 "$code"
    stop_collector
    chmod 700 "$TMP"
else
    note "not root, no nobody user, or no $py it may run: the other-uid checks are skipped"
fi

# ---- HTTP on loopback only, unless told ----
port=$(free_port) || die "no free port"
start_collector "$TMP/h.log" --socket "$TMP/h.sock" --http "$port"
token=$(cat "$TMP/h.sock.token")
expect_eq "--http PORT listens on" "http://ppx:$token@127.0.0.1:$port" "$url"
expect_eq "reachable on 127.0.0.1" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$url/debug/pprof/")"
others=$(ip -o addr show 2>/dev/null | awk '$3 == "inet" && $4 !~ /^127\./ { sub(/\/.*/, "", $4); print $4 }')
for a in $others; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "${url%%@*}@$a:$port/debug/pprof/")
    expect_eq "HTTP on $a:$port by default (000: unreachable)" 000 "$code"
done
[ -n "$others" ] || note "no address besides loopback: nothing to check unreachable"

# ---- bad requests ----
# raw REQUEST: the status line's code of the answer to REQUEST sent as is
# ("none" if the connection closed without one).
raw() {
    python3 - "$port" "$1" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin1"))
s.settimeout(5)
data = b""
try:
    while b"\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
parts = data.split(b" ")
print(parts[1].decode() if data.startswith(b"HTTP/1.") and len(parts) > 1 else "none")
EOF
}
get() { # PATH: status and body of a GET
    curl -s -o "$TMP/body" -w '%{http_code}' "$url$1"
}
expect_status() { # PATH STATUS [MESSAGE]
    local code
    code=$(get "$1")
    expect_eq "GET $1: status" "$2" "$code"
    if [ $# -ge 3 ] && ! grep -qF "$3" "$TMP/body"; then
        fail "GET $1: expected a message with '$3', got: $(head -c 300 "$TMP/body")"
    fi
}
expect_status "/debug/pprof/heap?pid=abc" 400 'invalid value for "pid"'
expect_status "/debug/pprof/heap?pid=0" 400 'invalid value for "pid"'
expect_status "/debug/pprof/heap?pid=99999999999" 400 'invalid value for "pid"'
expect_status "/debug/pprof/heap?pid=999999999" 404 'no process with pid 999999999'
expect_status "/debug/pprof/heap?seconds=0" 400 'invalid value for "seconds"'
expect_status "/debug/pprof/heap?seconds=-1" 400 'invalid value for "seconds"'
expect_status "/debug/pprof/heap?seconds=1x" 400 'invalid value for "seconds"'
expect_status "/debug/pprof/heap?seconds=99999" 400 'invalid value for "seconds"'
expect_status "/debug/pprof/profile?seconds=" 400 'invalid value for "seconds"'
expect_status "/debug/pprof/heap?debug=x" 400 'invalid value for "debug"'
expect_status "/debug/pprof/heap?seconds=1&debug=1" 400 'seconds and debug params are incompatible'
expect_status "/debug/pprof/syscalls?debug=1" 400 'debug=1 is not supported for syscalls'
expect_status "/debug/pprof/goroutine" 404 'Unknown profile'
expect_status "/debug/pprof/heap/x" 404 'Unknown profile'
expect_status "/nothing" 404 '404 page not found'
expect_status "/debug/pprof/heap?gc=1" 200
expect_status "/debug/pprof/heap?gc=1&debug=1" 200 'heap profile: '
expect_status "/debug/pprof/symbol" 200 'num_symbols: 1'
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/debug/pprof")
expect_eq "GET /debug/pprof: redirected" 301 "$code"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' -X POST --data x "$url/debug/pprof/heap")
expect_eq "POST /debug/pprof/heap: status" 405 "$code"
grep -q 'method not allowed' "$TMP/body" || fail "POST: no message: $(cat "$TMP/body")"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$url/debug/pprof/")
expect_eq "DELETE /debug/pprof/: status" 405 "$code"
# X-Go-Pprof tells go tool pprof to show the message.
curl -s -D "$TMP/headers" -o /dev/null "$url/debug/pprof/heap?pid=abc"
grep -qi '^X-Go-Pprof: 1' "$TMP/headers" || fail "no X-Go-Pprof header on an error: $(cat "$TMP/headers")"
# Malformed HTTP, sent raw.
expect_eq "no Host header (HTTP/1.1)" 400 "$(raw 'GET /debug/pprof/ HTTP/1.1\r\n\r\n')"
expect_eq "a header line without colon" 400 "$(raw 'GET /debug/pprof/ HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n')"
expect_eq "a bad Content-Length" 400 "$(raw 'GET /debug/pprof/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n')"
expect_eq "a request line that is not HTTP" 400 "$(raw 'hello world\r\n\r\n')"
expect_eq "an unknown method" 405 "$(raw "BREW /debug/pprof/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $token\r\n\r\n")"
long=$(head -c 70000 /dev/zero | tr '\0' a)
case $(raw "GET /debug/pprof/$long HTTP/1.1\r\nHost: x\r\n\r\n") in
4*) ;;
*) fail "a 70 kB request line: not a 4xx answer" ;;
esac
# One-word request lines: libmicrohttpd 0.9.75 closes without an answer.
answer=$(raw 'GARBAGE\r\n\r\n')
case $answer in 4* | none) ;; *) fail "GARBAGE: expected a 4xx or a closed connection, got $answer" ;; esac
# And it still serves.
expect_eq "still serving after the bad requests" 200 "$(get /debug/pprof/)"
stop_collector
expect_eq "exit status of ppx collect" 0 "$?"

# ---- a non-loopback address when asked ----
if [ -n "$others" ]; then
    a=$(printf '%s\n' $others | head -1)
    start_collector "$TMP/h2.log" --socket "$TMP/h2.sock" --http "0.0.0.0:$port"
    expect_eq "--http 0.0.0.0:PORT: reachable on $a" 200 \
        "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "${url%%@*}@$a:$port/debug/pprof/")"
    stop_collector
fi
"$PPX" collect --socket "$TMP/h3.sock" --http "127.0.0.1:http" 2>"$TMP/bad.log"
expect_eq "exit status with --http 127.0.0.1:http" 1 "$?"
grep -q 'the port must be a number' "$TMP/bad.log" || fail "--http 127.0.0.1:http: $(cat "$TMP/bad.log")"
finish
