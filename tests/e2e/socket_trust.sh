#!/usr/bin/env bash
# libppx.so sends nothing to a collector socket another user could have
# planted (its HELLO carries the whole command line):
#  - a socket directory of another user (daemon), reached by a process of
#    nobody and by one of root: 0 connections, 0 bytes at the listener;
#  - a directory of ours that group or others may write, or a symlink to a
#    good directory: refused the same way;
#  - a good directory holding a listener of another uid: one connection
#    (SO_PEERCRED is read after connect), 0 bytes, and no second attempt
#    over many flush intervals;
#  - each refusal is said once on stderr, and the program's output and exit
#    status are those it has without ppx;
#  - a listener of the target's uid, or of root, gets the stream.
# Needs root (to act as three users) and setpriv (util-linux).
. "$(dirname "$0")/../lib/common.sh"
require_built
[ "$(id -u)" -eq 0 ] || skip "not root: cannot act as other users"
id daemon >/dev/null 2>&1 && id nobody >/dev/null 2>&1 || skip "no daemon or nobody user"
require_cmd setpriv util-linux
py=/usr/bin/python3 # the system's: one from root's PATH may be closed to others
[ -x "$py" ] || skip "$py not found"
as_daemon=(setpriv --reuid=daemon --regid=daemon --clear-groups --)
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
chmod 711 "$TMP"
cd "$TMP" || exit 99
"${as_nobody[@]}" test -r "$LIBPPX" -a -x "$PROGS/known_allocs" ||
    skip "nobody cannot read $LIBPPX or run the test programs (a private build tree)"

# The listener: accepts on PATH (made mode 777), and keeps in TALLY
# "connections N bytes B closed C", rewritten as things happen.
cat >"$TMP/listener.py" <<'EOF'
import os, socket, sys, threading
path, tally = sys.argv[1], sys.argv[2]
lock = threading.Lock()
counts = {"connections": 0, "bytes": 0, "closed": 0}
def save():
    with open(tally + ".tmp", "w") as f:
        f.write("connections %(connections)d bytes %(bytes)d closed %(closed)d\n" % counts)
    os.rename(tally + ".tmp", tally)
def serve(conn):
    while True:
        data = conn.recv(65536)
        with lock:
            if not data:
                counts["closed"] += 1
                save()
                return
            counts["bytes"] += len(data)
            save()
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
s.listen(16)
with lock:
    save()
while True:
    conn, _ = s.accept()
    with lock:
        counts["connections"] += 1
        save()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
EOF
chmod 644 "$TMP/listener.py"
mkdir -m 1777 "$TMP/tally" # where listeners of any user keep their tallies

# start_listener NAME DIR [USER-PREFIX...]: a listener on DIR/ppx.sock,
# tallying into $TMP/tally/NAME.
start_listener() {
    local name=$1 dir=$2
    shift 2
    "$@" "$py" "$TMP/listener.py" "$dir/ppx.sock" "$TMP/tally/$name" 2>"$TMP/$name.listener.err" &
    cleanup_kill "$!"
    wait_for 100 test -S "$dir/ppx.sock" -a -f "$TMP/tally/$name" ||
        die "listener $name did not start: $(cat "$TMP/$name.listener.err")"
}

# run_target NAME SOCKET [USER-PREFIX...]: known_allocs under ppx, streaming
# to SOCKET, alive for about 60 flush intervals; output in $TMP/NAME.out
# and .err, exit status in $TMP/NAME.rc.
run_target() {
    local name=$1 sock=$2
    shift 2
    (sleep 1.2) | "$@" env PPX_SOCKET="$sock" PPX_FLUSH_MS=20 LD_PRELOAD="$LIBPPX" \
        "$PROGS/known_allocs" small pause exit 3 >"$TMP/$name.out" 2>"$TMP/$name.err"
    echo "$?" >"$TMP/$name.rc"
}

# The program's own output, without ppx (its pid varies: the word dropped).
(sleep 0.1) | "$PROGS/known_allocs" small pause exit 3 >"$TMP/plain.out" 2>"$TMP/plain.err"
plain_rc=$?
expect_eq "exit status without ppx" 3 "$plain_rc"

# expect_unchanged NAME: output and exit status as without ppx.
expect_unchanged() {
    expect_eq "$1: exit status" "$plain_rc" "$(cat "$TMP/$1.rc")"
    expect_eq "$1: standard output" "$(sed 's/[0-9]*$//' "$TMP/plain.out")" \
        "$(sed 's/[0-9]*$//' "$TMP/$1.out")"
}

# expect_tally NAME CONNECTIONS BYTES: what the listener received, once
# every connection it took is closed.
expect_tally() {
    wait_for 50 awk '$2 == $6 { ok = 1 } END { exit !ok }' "$TMP/tally/$1"
    expect_eq "$1: connections at the listener" "$2" "$(awk '{print $2}' "$TMP/tally/$1")"
    expect_eq "$1: bytes at the listener" "$3" "$(awk '{print $4}' "$TMP/tally/$1")"
}

# expect_refusal NAME MESSAGE: said once, and nothing else on stderr.
expect_refusal() {
    expect_eq "$1: refusals said" 1 "$(grep -c '^ppx: not connecting to the collector socket' "$TMP/$1.err")"
    grep -qF -- "$2" "$TMP/$1.err" || fail "$1: no '$2' in: $(cat "$TMP/$1.err")"
    expect_eq "$1: stderr lines" 1 "$(grep -c . "$TMP/$1.err")"
}

# ---- a directory another user (daemon) planted ----
planted="$TMP/planted"
mkdir -m 755 "$planted"
chown daemon:daemon "$planted"
start_listener planted "$planted" "${as_daemon[@]}"
run_target planted_nobody "$planted/ppx.sock" "${as_nobody[@]}"
expect_unchanged planted_nobody
expect_refusal planted_nobody "its directory $planted belongs to uid $(id -u daemon), neither this process's uid $(id -u nobody) nor root"
run_target planted_root "$planted/ppx.sock"
expect_unchanged planted_root
expect_refusal planted_root "its directory $planted belongs to uid $(id -u daemon), neither this process's uid 0 nor root"
expect_tally planted 0 0

# ---- a good directory, another user's listener in it ----
# daemon binds in its own directory; the socket is then moved into one of
# root's (a rename keeps the listener).
peer="$TMP/peer"
mkdir -m 755 "$peer"
mkdir -m 755 "$TMP/daemon_own"
chown daemon:daemon "$TMP/daemon_own"
start_listener peer "$TMP/daemon_own" "${as_daemon[@]}"
mv "$TMP/daemon_own/ppx.sock" "$peer/ppx.sock"
run_target peer_root "$peer/ppx.sock"
expect_unchanged peer_root
expect_refusal peer_root "the listener runs as uid $(id -u daemon), neither this process's uid 0 nor root"
run_target peer_nobody "$peer/ppx.sock" "${as_nobody[@]}"
expect_unchanged peer_nobody
expect_refusal peer_nobody "the listener runs as uid $(id -u daemon), neither this process's uid $(id -u nobody) nor root"
# One connect each (to read the peer's uid), then never again.
expect_tally peer 2 0

# ---- our own directory, but open to others; a symlink ----
open_dir="$TMP/open"
mkdir -m 755 "$open_dir"
start_listener open "$open_dir"
for mode in 775 757 1777; do
    chmod "$mode" "$open_dir"
    run_target "open_$mode" "$open_dir/ppx.sock"
    expect_unchanged "open_$mode"
    expect_refusal "open_$mode" "its directory $open_dir may be written by others (mode 0${mode: -3})"
done
chmod 755 "$open_dir"
ln -s "$open_dir" "$TMP/link"
run_target link "$TMP/link/ppx.sock"
expect_unchanged link
expect_refusal link "its directory $TMP/link is not a directory (a symlink?)"
expect_tally open 0 0

# ---- trusted: a listener of the target's uid, or root's for nobody ----
run_target good_root "$open_dir/ppx.sock"
expect_unchanged good_root
expect_eq "good_root: stderr" "" "$(cat "$TMP/good_root.err")"
run_target good_nobody "$open_dir/ppx.sock" "${as_nobody[@]}"
expect_unchanged good_nobody
expect_eq "good_nobody: stderr" "" "$(cat "$TMP/good_nobody.err")"
wait_for 50 awk '$2 == 2 && $6 == 2 { ok = 1 } END { exit !ok }' "$TMP/tally/open"
expect_eq "trusted listener: connections" 2 "$(awk '{print $2}' "$TMP/tally/open")"
bytes=$(awk '{print $4}' "$TMP/tally/open")
[ "$bytes" -gt 1000 ] || fail "trusted listener: only $bytes bytes received"
finish
