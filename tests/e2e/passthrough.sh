#!/usr/bin/env bash
# The command's stdin, stdout, stderr and exit status pass through ppx record
# unchanged (exit 3, death by SIGTERM and by a real SIGSEGV give the same shell
# status); -q adds nothing on stderr; SIGTERM to ppx reaches the command; and
# with libppx.so preloaded but no collector reachable, the program behaves
# exactly as it does without ppx.
. "$(dirname "$0")/../lib/common.sh"
require_built

prog="$PROGS/outputs"
input="$TMP/input"
{ seq 1 20000; printf 'binary \000\001\002\377 end, no newline'; } >"$input"

same_file() { # NAME EXPECTED_FILE ACTUAL_FILE
    cmp -s "$2" "$3" || fail "$1 differs from the plain run: $(diff "$2" "$3" | head -5 | tr '\n' '|')"
}

n=0
for c in "--stdin" "--stdin --exit 3" "--exit 0" "--signal 15" "--segv"; do
    read -ra args <<<"$c"
    n=$((n + 1))
    "$prog" "${args[@]}" <"$input" >"$TMP/plain.out" 2>"$TMP/plain.err"
    plain=$?

    "$PPX" record -q -o "$TMP/q$n" -- "$prog" "${args[@]}" <"$input" >"$TMP/q.out" 2>"$TMP/q.err"
    expect_eq "outputs $c: exit status under ppx record -q" "$plain" "$?"
    same_file "outputs $c: stdout under ppx record -q" "$TMP/plain.out" "$TMP/q.out"
    same_file "outputs $c: stderr under ppx record -q" "$TMP/plain.err" "$TMP/q.err"
    [ -s "$TMP/q$n/heap.pb.gz" ] || fail "outputs $c: ppx record wrote no heap.pb.gz (ls: $(ls "$TMP/q$n" 2>&1))"

    "$PPX" record -o "$TMP/v$n" -- "$prog" "${args[@]}" <"$input" >"$TMP/v.out" 2>"$TMP/v.err"
    expect_eq "outputs $c: exit status under ppx record" "$plain" "$?"
    same_file "outputs $c: stdout under ppx record" "$TMP/plain.out" "$TMP/v.out"
    grep -qvxF -f "$TMP/v.err" "$TMP/plain.err" &&
        fail "outputs $c: the program's stderr lines are missing under ppx record: $(tr '\n' '|' <"$TMP/v.err")"

    LD_PRELOAD="$LIBPPX" PPX_SOCKET="$TMP/nonexistent/ppx.sock" \
        "$prog" "${args[@]}" <"$input" >"$TMP/n.out" 2>"$TMP/n.err"
    expect_eq "outputs $c: exit status with libppx.so and no collector" "$plain" "$?"
    same_file "outputs $c: stdout with libppx.so and no collector" "$TMP/plain.out" "$TMP/n.out"
    same_file "outputs $c: stderr with libppx.so and no collector" "$TMP/plain.err" "$TMP/n.err"
done

# known_allocs exit 7: the exit status of a program with real work.
"$PPX" record -q -o "$TMP/k" -- "$PROGS/known_allocs" exit 7 </dev/null
expect_eq "known_allocs exit 7: exit status under ppx record" 7 "$?"

# SIGTERM to ppx goes to the command, and ppx ends as the command did.
gone() { [ ! -e "/proc/$1" ] || grep -q '^[0-9]* (.*) [ZX]' "/proc/$1/stat" 2>/dev/null; }
start_fed term 3 "$PPX" record -q -o "$TMP/term" -- "$PROGS/known_allocs" pause
ppx_pid=$fed_pid
target=$(awk '/^ready/ { print $2 }' "$TMP/term.out")
kill -TERM "$ppx_pid"
wait "$ppx_pid"
expect_eq "status of ppx record after SIGTERM to ppx" 143 "$?"
if ! wait_for 50 gone "$target"; then
    fail "SIGTERM to ppx did not reach the command: pid $target still runs"
    kill -KILL "$target" 2>/dev/null
fi
exec 3>&-
finish
