#!/usr/bin/env bash
# ppx collect and ppx snapshot choose their socket as libppx.so does:
# --socket, else $PPX_SOCKET, else the default. With PPX_SOCKET exported
# once, collector, targets and snapshots meet; --socket wins over it; an
# unusable PPX_SOCKET is said, and the default used (as libppx.so does).
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/collect.sh"
export PPX_SOCKET="$TMP/env/ppx.sock"
mkdir -m 700 "$TMP/env"
# ppx snapshot, with only PPX_SOCKET to go by.
start_collector "$TMP/c.log" --socket "$PPX_SOCKET"
LD_PRELOAD="$LIBPPX" "$PROGS/known_allocs" >/dev/null 2>"$TMP/t.err" ||
    fail "known_allocs under LD_PRELOAD failed: $(cat "$TMP/t.err")"
"$PPX" snapshot -o "$TMP/snap" >"$TMP/snap.list" 2>"$TMP/snap.err"
expect_eq "exit status of ppx snapshot with PPX_SOCKET" 0 "$?"
expect_eq "ppx snapshot stderr" "" "$(cat "$TMP/snap.err")"
expect_eq "files listed by ppx snapshot (goroutine.pb.gz, empty: no process runs)" 6 "$(grep -c '\.pb\.gz$' "$TMP/snap.list")"
[ -s "$TMP/snap/heap.pb.gz" ] || fail "no heap.pb.gz from ppx snapshot: $(ls "$TMP/snap" 2>&1)"
# --socket wins over PPX_SOCKET.
"$PPX" snapshot --socket "$TMP/none.sock" -o "$TMP/snap2" >/dev/null 2>"$TMP/snap2.err"
expect_eq "exit status of ppx snapshot --socket (nothing there)" 1 "$?"
grep -qF "no collector answers on $TMP/none.sock" "$TMP/snap2.err" ||
    fail "ppx snapshot --socket: $(cat "$TMP/snap2.err")"
stop_collector
expect_eq "exit status of ppx collect --socket" 0 "$?"
# ppx collect, with only PPX_SOCKET to go by; a second one: the same
# socket, taken.
start_collector "$TMP/c1.log"
grep -qF "collecting on $PPX_SOCKET" "$TMP/c1.log" || fail "ppx collect without --socket: $(cat "$TMP/c1.log")"
"$PPX" collect 2>"$TMP/c2.log"
expect_eq "exit status of a second ppx collect on PPX_SOCKET" 1 "$?"
grep -qF "another collector is running on $PPX_SOCKET" "$TMP/c2.log" ||
    fail "second ppx collect: $(cat "$TMP/c2.log")"
stop_collector
expect_eq "exit status of ppx collect" 0 "$?"
# An unusable PPX_SOCKET: said, and the default used.
long="$TMP/$(head -c 120 /dev/zero | tr '\0' x).sock"
xdg="$TMP/xdg"
mkdir -m 700 "$xdg"
PPX_SOCKET="$long" XDG_RUNTIME_DIR="$xdg" "$PPX" snapshot -o "$TMP/snap3" >/dev/null 2>"$TMP/snap3.err"
expect_eq "exit status of ppx snapshot with a too long PPX_SOCKET (no collector)" 1 "$?"
grep -qF "ppx: PPX_SOCKET=\"$long\" is too long for a socket path; using $xdg/ppx/ppx.sock, as libppx.so does" \
    "$TMP/snap3.err" || fail "too long PPX_SOCKET: $(cat "$TMP/snap3.err")"
finish
