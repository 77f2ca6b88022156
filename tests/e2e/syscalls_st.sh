#!/usr/bin/env bash
# The audit's EAGAIN hint on a coroutine runtime: tests/progs/st_pingpong's
# state-threads coroutines read with st_read, which tries read(2) first and
# waits for readiness only after EAGAIN, so about half its reads return
# EAGAIN by design. The audit counts them exactly (1000 reads that moved
# 100 bytes each, every other call EAGAIN), and its hint says the share is
# state-threads' design instead of asking to check the readiness handling,
# which it still asks of a plain program (syscalls.sh).
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof
prog="$PROGS/st_pingpong"
[ -x "$prog" ] || skip "st_pingpong not built: no libst (apt-get install libst-dev)"

out="$TMP/st"
"$PPX" record -q --exact -o "$out" -- "$prog" >"$TMP/stdout" 2>"$TMP/stderr" ||
    die "ppx record -- st_pingpong: exit status $?, stderr: $(cat "$TMP/stderr")"
expect_eq "st_pingpong output" "reads=1000 bytes=100000" "$(cat "$TMP/stdout")"

# call caller labels calls time bytes messages errors eagain mapping
io_sites "$out/syscalls.pb.gz" >"$TMP/sites" || die "go tool pprof cannot read the profile"
read -r calls bytes messages errors eagain < <(awk -F'\t' '$1 == "read" && $2 == "st_read" {
    c += $4; b += $6; m += $7; e += $8; a += $9 } END { print c + 0, b + 0, m + 0, e + 0, a + 0 }' "$TMP/sites")
expect_eq "read calls from st_read that moved data" 1000 "$((calls - eagain))"
expect_eq "bytes, messages, errors of read from st_read" "100000 1000 0" "$bytes $messages $errors"
[ "$eagain" -ge 100 ] || fail "read from st_read: $eagain EAGAIN of $calls calls, expected about half"

"$PPX" audit --top 100 "$out" >"$TMP/audit" 2>"$TMP/audit.err" ||
    fail "ppx audit: exit status $?: $(cat "$TMP/audit.err")"
row=$(awk '$1 == "read" && $2 == "unix/stream"' "$TMP/audit")
expect_eq "audit read unix/stream calls, eagain%" \
    "$calls $(awk -v a="$eagain" -v c="$calls" 'BEGIN { printf "%.1f%%", 100 * a / c }')" \
    "$(printf '%s\n' "$row" | awk '{ print $3, $9 }')"
case $row in *"st_read 100%"*) ;; *) fail "audit read row: top caller not st_read 100%: $row" ;; esac
hints=$(sed -n '/^Hints:$/,$p' "$TMP/audit" | grep '^- ')
want='^- [0-9]+% of read calls at st_read( \([^)]*\))? returned EAGAIN: by design of state-threads \(a coroutine tries the call first and waits for readiness only after EAGAIN'
printf '%s\n' "$hints" | grep -Eq "$want" || fail "audit: no state-threads EAGAIN hint in: $hints"
if printf '%s\n' "$hints" | grep -q 'at st_read.*check readiness'; then
    fail "audit: asks to check the readiness handling of st_read: $hints"
fi
finish
