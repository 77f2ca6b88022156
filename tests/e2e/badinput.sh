#!/usr/bin/env bash
# Bad input gets a clear message and a distinct status: usage errors exit 2,
# an output directory that cannot be created stops ppx before the command
# runs, an invalid PPX_SAMPLE_RATE gives one `ppx:` warning and the default
# rate, and a static executable (nothing can be preloaded) is detected.
. "$(dirname "$0")/../lib/common.sh"
require_built

# usage_error NAME ARGS...: ppx ARGS exits 2 with a message, runs nothing.
usage_error() {
    local name=$1
    shift
    rm -f "$TMP/marker"
    "$PPX" "$@" >"$TMP/out" 2>"$TMP/err"
    local status=$?
    expect_eq "$name: exit status of ppx $*" 2 "$status"
    [ -s "$TMP/err" ] || fail "$name: ppx $* printed no message on stderr"
    [ ! -e "$TMP/marker" ] || fail "$name: ppx $* ran the command"
}

cd "$TMP" || exit 99
usage_error "unknown option" record --bogus -- touch "$TMP/marker"
grep -q -- '--bogus' "$TMP/err" || fail "unknown option: message does not name --bogus: $(cat "$TMP/err")"
usage_error "non-numeric --rate" record --rate abc -- touch "$TMP/marker"
usage_error "negative --rate" record --rate -5 -- touch "$TMP/marker"
usage_error "non-numeric --max-depth" record --max-depth many -- touch "$TMP/marker"
usage_error "non-numeric --flush-ms" record --flush-ms soon -- touch "$TMP/marker"
usage_error "-o without a value" record -o
usage_error "missing command" record
usage_error "missing command after --" record -o "$TMP/none" --
usage_error "unknown subcommand" frobnicate
usage_error "no subcommand"
[ ! -e "$TMP/none" ] || fail "missing command: ppx record created the output directory anyway"

"$PPX" record --help >"$TMP/help" 2>&1
expect_eq "exit status of ppx record --help" 0 "$?"
for opt in -o --rate --exact --max-depth --flush-ms -q; do
    grep -q -- "$opt" "$TMP/help" || fail "ppx record --help does not document $opt"
done

# An output directory that cannot be created, even by root: its parent is a file.
echo file >"$TMP/afile"
for dir in "$TMP/afile/sub" "$TMP/afile"; do
    rm -f "$TMP/marker"
    "$PPX" record -q -o "$dir" -- touch "$TMP/marker" >"$TMP/out" 2>"$TMP/err"
    status=$?
    [ "$status" -ne 0 ] || fail "-o $dir: exit status 0"
    grep -qF "$dir" "$TMP/err" || fail "-o $dir: message does not name the directory: $(cat "$TMP/err")"
    [ ! -e "$TMP/marker" ] || fail "-o $dir: the command ran although no profile can be written"
done

# A command that does not exist.
"$PPX" record -q -o "$TMP/nocmd" -- "$TMP/no/such/command" >"$TMP/out" 2>"$TMP/err"
status=$?
[ "$status" -ne 0 ] || fail "missing executable: exit status 0"
grep -qF "$TMP/no/such/command" "$TMP/err" || fail "missing executable: message does not name it: $(cat "$TMP/err")"

# PPX_SAMPLE_RATE=abc: one warning from the target, default rate used.
if have go; then
    PPX_SAMPLE_RATE=abc "$PPX" record -q -o "$TMP/rate" -- "$PROGS/known_allocs" >"$TMP/out" 2>"$TMP/err"
    expect_eq "PPX_SAMPLE_RATE=abc: exit status" 0 "$?"
    expect_eq "PPX_SAMPLE_RATE=abc: ppx: lines on stderr" 1 "$(grep -c '^ppx:' "$TMP/err")"
    grep -q 'PPX_SAMPLE_RATE' "$TMP/err" || fail "PPX_SAMPLE_RATE=abc: the warning does not name the variable: $(cat "$TMP/err")"
    expect_eq "PPX_SAMPLE_RATE=abc: period (the default rate)" 524288 \
        "$(header_field "$(pprof_raw "$TMP/rate/heap.pb.gz" --header)" period)"
fi
# The same straight from the preload, no collector: exactly one added line.
"$PROGS/outputs" >"$TMP/plain.out" 2>"$TMP/plain.err"
LD_PRELOAD="$LIBPPX" PPX_SOCKET="$TMP/nonexistent/ppx.sock" PPX_SAMPLE_RATE=abc \
    "$PROGS/outputs" >"$TMP/out" 2>"$TMP/err"
expect_eq "preload, PPX_SAMPLE_RATE=abc: exit status" 0 "$?"
cmp -s "$TMP/plain.out" "$TMP/out" || fail "preload, PPX_SAMPLE_RATE=abc: stdout differs from the plain run"
expect_eq "preload, PPX_SAMPLE_RATE=abc: stderr = the program's + one ppx: line" \
    "$(cat "$TMP/plain.err")|1" "$(grep -v '^ppx:' "$TMP/err")|$(grep -c '^ppx:' "$TMP/err")"

# A static executable cannot be interposed: ppx record says so.
"$PPX" record -q -o "$TMP/static" -- "$PROGS/static_hello" >"$TMP/out" 2>"$TMP/err"
grep -qi 'static' "$TMP/err" || fail "static executable: no message saying so: $(cat "$TMP/err")"
finish
