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
#    get 4xx with a message; the collector goes on serving; a query of 500
#    arguments is answered, 1025 arguments or a 100 kB URL get 414;
#  - every HTTP request needs the token written next to the socket (0600):
#    without it 401, a wrong one 403, never any data; with it (URL
#    password, ?token=, Bearer) 200, and go tool pprof symbolizes through
#    the printed URL; --http-allow-any-user needs none;
#  - hz and seconds are capped (400 beyond); past 8 windows at once, more
#    are refused at once (429) while other requests are served.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/collect.sh"
require_cmd python3

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
    if have setpriv; then
        as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
    elif have runuser; then
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
expect_status "/debug/pprof/nosuchprofile" 404 'Unknown profile'
expect_status "/debug/pprof/goroutine?debug=3" 400 'debug=3 is not supported for goroutine'
expect_status "/debug/pprof/goroutine?seconds=1" 400 '"seconds" parameter is not supported'
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
# Long queries: answered, or 414 with a message; never a closed connection.
many=$(python3 -c 'print("&".join("a%d" % i for i in range(500)))')
code=$(curl -s -o "$TMP/body" -w '%{http_code}' "$url/debug/pprof/heap?$many")
expect_eq "a query of 500 arguments (${#many} bytes): status" 200 "$code"
many=$(python3 -c 'print("&".join("a" for i in range(1025)))')
code=$(curl -s -o "$TMP/body" -w '%{http_code}' "$url/debug/pprof/heap?$many")
expect_eq "a query of 1025 arguments: status" 414 "$code"
grep -q 'at most 1024 query arguments' "$TMP/body" || fail "1025 arguments: no message: $(head -c 300 "$TMP/body")"
huge=$(head -c 100000 /dev/zero | tr '\0' a)
code=$(curl -s -o "$TMP/body" -w '%{http_code}' "$url/debug/pprof/heap?x=$huge")
case $code in 414 | 431) ;; *) fail "a 100 kB URL: expected 414 or 431, got $code" ;; esac
code=$(curl -s -o "$TMP/body" -w '%{http_code}' "$url/debug/pprof/${huge:0:9000}")
expect_eq "a 9000-byte path: status" 414 "$code"
grep -q 'URI too long: at most 8192 bytes' "$TMP/body" || fail "a 9000-byte path: no message: $(head -c 300 "$TMP/body")"
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

# ---- the access token ----
sock="$TMP/t.sock"
start_collector "$TMP/t.log" --socket "$sock" --http 127.0.0.1:0
tokfile="$sock.token"
expect_eq "mode of the token file" 600 "$(stat -c %a "$tokfile")"
token=$(cat "$tokfile")
[[ $token =~ ^[0-9a-f]{32}$ ]] || fail "the token file holds '$token', not 32 hex digits"
grep -qF "(token in $tokfile)" "$TMP/t.log" || fail "the start message does not say where the token is: $(cat "$TMP/t.log")"
hostport=${url#*@}
plain="http://$hostport"
expect_eq "the printed URL: the token as its password" "http://ppx:$token@$hostport" "$url"
# A target whose command line (its program's name) must stay private.
cp "$PROGS/known_allocs" "$TMP/private_prog"
fifo_target p 3 PPX_SAMPLE_RATE=1 "$TMP/private_prog" pause
ppid_=$target_pid
for path in "" cmdline "cmdline?pid=$ppid_" heap "heap?debug=1&pid=$ppid_" "profile?seconds=1" "symbol?0x1"; do
    code=$(curl -s -o "$TMP/body" -w '%{http_code}' "$plain/debug/pprof/$path")
    expect_eq "no token: GET /debug/pprof/$path: status" 401 "$code"
    ! grep -q private_prog "$TMP/body" || fail "no token: GET /debug/pprof/$path shows the command line"
    grep -q "needs its access token, which only the collector's user can read in $tokfile" "$TMP/body" ||
        fail "no token: GET /debug/pprof/$path: no message: $(head -c 300 "$TMP/body")"
done
code=$(curl -s -o "$TMP/body" -w '%{http_code}' -X POST --data-binary 0x1 "$plain/debug/pprof/symbol")
expect_eq "no token: POST /debug/pprof/symbol: status" 401 "$code"
wrong=0123456789abcdef0123456789abcdef
# wrong_token NAME CURL-ARGS...: 403, a message, no data.
wrong_token() {
    local name=$1 code
    shift
    code=$(curl -s -o "$TMP/body" -w '%{http_code}' "$@")
    expect_eq "a wrong token ($name): status" 403 "$code"
    ! grep -q private_prog "$TMP/body" || fail "a wrong token ($name) shows the command line"
    grep -q 'wrong access token' "$TMP/body" || fail "a wrong token ($name): no message: $(head -c 300 "$TMP/body")"
}
wrong_token "?token=" "$plain/debug/pprof/cmdline?token=$wrong"
wrong_token "Bearer" -H "Authorization: Bearer $wrong" "$plain/debug/pprof/cmdline"
wrong_token "the URL's password" "http://ppx:$wrong@$hostport/debug/pprof/cmdline"
expect_eq "the token as ?token=" "$TMP/private_prog pause" \
    "$(curl -sf "$plain/debug/pprof/cmdline?pid=$ppid_&token=$token" | tr '\0' ' ')"
expect_eq "the token as Bearer" "$TMP/private_prog pause" \
    "$(curl -sf -H "Authorization: Bearer $token" "$plain/debug/pprof/cmdline?pid=$ppid_" | tr '\0' ' ')"
expect_eq "the token as the URL's password" "$TMP/private_prog pause" \
    "$(curl -sf "$url/debug/pprof/cmdline?pid=$ppid_" | tr '\0' ' ')"
# The index page asked with ?token= links with it.
curl -sf -o "$TMP/index.html" "$plain/debug/pprof/?token=$token" || fail "the index page with ?token= failed"
grep -qF "href='heap?pid=$ppid_&amp;token=$token&amp;debug=1'" "$TMP/index.html" ||
    fail "the index page's links do not carry the token: $(grep -o "href='heap[^']*'" "$TMP/index.html" | head -3)"
if have go; then
    # go tool pprof through the printed URL, names from /debug/pprof/symbol
    # only: its symbol POSTs carry the URL's password (not its query).
    top=$(go_pprof -symbolize=remote -top -sample_index=inuse_space "$url/debug/pprof/heap?debug=1&pid=$ppid_" 2>"$TMP/pprof.err")
    printf '%s\n' "$top" | grep -q ' calloc_10x100_x200$' ||
        fail "go tool pprof -symbolize=remote on the printed URL: no calloc_10x100_x200: $top $(cat "$TMP/pprof.err")"
    go_pprof -raw "$plain/debug/pprof/heap?pid=$ppid_&token=$token" >"$TMP/raw" 2>"$TMP/pprof.err" ||
        fail "go tool pprof with ?token=: $(cat "$TMP/pprof.err")"
    grep -q 'calloc_10x100_x200' "$TMP/raw" || fail "go tool pprof with ?token=: no calloc_10x100_x200"
else
    note "go not found: go tool pprof through the token URL not checked"
fi
if [ ${#as_nobody[@]} -gt 0 ]; then
    "${as_nobody[@]}" cat "$tokfile" >/dev/null 2>&1 && fail "nobody can read the token file"
    code=$("${as_nobody[@]}" curl -s -o /dev/null -w '%{http_code}' "$plain/debug/pprof/cmdline?pid=$ppid_")
    expect_eq "nobody, without the token: status" 401 "$code"
fi

# ---- caps on hz, seconds and windows ----
# expect_status (above) asks with the token: $url carries it.
expect_status "/debug/pprof/profile?seconds=1&hz=1001" 400 'invalid value for "hz" - at most 1000 samples per second'
expect_status "/debug/pprof/profile?seconds=1&hz=1000" 200
expect_status "/debug/pprof/heap?seconds=601" 400 'invalid value for "seconds" - at most 600'
# 12 windows at once: 8 run, 4 are refused at once; a plain request is
# served meanwhile.
wpids=()
for i in $(seq 1 12); do
    what=heap
    [ "$i" -gt 10 ] && what=profile
    curl -s -o "$TMP/w$i.body" -w '%{http_code}\n' "$url/debug/pprof/$what?seconds=8" >"$TMP/w$i.code" 3>&- &
    wpids+=($!)
done
refused() { [ "$(cat "$TMP"/w*.code 2>/dev/null | grep -c 429)" -ge 4 ]; }
wait_for 100 refused || fail "12 windows at once: never 4 refusals: $(cat "$TMP"/w*.code)"
expect_status "/debug/pprof/heap?pid=$ppid_" 200
running=0
for p in "${wpids[@]}"; do kill -0 "$p" 2>/dev/null && running=$((running + 1)); done
expect_eq "windows still under way when the refusals came" 8 "$running"
wait "${wpids[@]}"
expect_eq "12 windows at once: answered 200" 8 "$(cat "$TMP"/w*.code | grep -c 200)"
expect_eq "12 windows at once: refused 429" 4 "$(cat "$TMP"/w*.code | grep -c 429)"
grep -l 'too many profile windows under way (at most 8 at once' "$TMP"/w*.body >/dev/null ||
    fail "the refused windows: no message: $(cat "$TMP"/w*.body | grep -av '^\x1f' | head -3)"
exec 3>&-
wait "$ppid_"
stop_collector
[ -e "$tokfile" ] && fail "the token file stays after the collector stopped"

# ---- --http-allow-any-user ----
start_collector "$TMP/a.log" --socket "$TMP/a.sock" --http 127.0.0.1:0 --http-allow-any-user
[ -e "$TMP/a.sock.token" ] && fail "--http-allow-any-user wrote a token file"
case $url in *@*) fail "--http-allow-any-user: the printed URL has a token: $url" ;; esac
expect_eq "--http-allow-any-user: no token: status" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$url/debug/pprof/cmdline")"
grep -q 'any local user may read them' "$TMP/a.log" || fail "--http-allow-any-user: not said at start: $(cat "$TMP/a.log")"
stop_collector
"$PPX" collect --socket "$TMP/b.sock" --http-allow-any-user 2>"$TMP/b.log"
expect_eq "exit status of --http-allow-any-user without --http" 2 "$?"

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
