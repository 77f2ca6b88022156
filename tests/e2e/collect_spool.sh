#!/usr/bin/env bash
# Spool files: a target that exits while no collector is reachable leaves
# its final state next to the socket; the next ppx collect turns it into
# profiles. On known_allocs (PPX_SAMPLE_RATE=1: every figure is known):
#  - with no collector, the target's output, stderr and exit status are
#    unchanged, and it leaves one spool file;
#  - ppx collect without -o serves it over HTTP, exactly, and keeps the file;
#    with -o DIR it writes DIR/known_allocs.PID/ equal to an uninterrupted
#    ppx record run, and removes the file;
#  - a collector killed mid-run: the target exits meanwhile, and the next
#    collector writes its profiles, every sample in them;
#  - a file appearing while a collector runs is read within seconds;
#  - fork + exec: the parent and both images of the child, each its own;
#  - bad spool files (cut short, garbage, a .part whose writer died): a
#    message, the data before the damage kept, the file renamed *.bad, the
#    other files read all the same;
#  - no spool file with PPX_SPOOL=0, in a directory others may enter, or
#    when there is no directory; a full spool directory is said once.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/known_allocs.sh"
require_pprof
. "$TESTS_LIB/collect.sh"
dir="$TMP/sock"
sock="$dir/ppx.sock"
out="$TMP/out"
prog="$PROGS/known_allocs"
mkdir -m 700 "$dir" "$TMP/aside"

known_reference "$TMP/ref"

# run_alone NAME [ENV...]: known_allocs pause, fed one "alloc", with no
# collector; its stdout, stderr and exit status in $TMP/NAME.*
run_alone() {
    local name=$1
    shift
    printf 'alloc\n' | env PPX_SOCKET="$sock" PPX_SAMPLE_RATE=1 LD_PRELOAD="$LIBPPX" "$@" \
        "$prog" pause >"$TMP/$name.out" 2>"$TMP/$name.err"
    echo $? >"$TMP/$name.rc"
}
spool_of() { ls "$dir"/spool."$1".*.ppx 2>/dev/null; }
pid_of() { sed -n 's/^ready \([0-9]*\)$/\1/p' "$TMP/$1.out"; }
# same_as_reference WHERE DIR: DIR's heap and allocs equal the reference's.
same_as_reference() {
    local f
    for f in heap allocs; do
        counted_rows "$2/$f.pb.gz" >"$TMP/got.$f" || { fail "$1: cannot read $2/$f.pb.gz"; continue; }
        diff -u "$TMP/ref.$f" "$TMP/got.$f" >"$TMP/diff.$f" ||
            fail "$1: $f.pb.gz differs from an uninterrupted ppx record run: $(cat "$TMP/diff.$f")"
    done
}

# 1. No collector: the program behaves as without ppx, and spools.
printf 'alloc\n' | "$prog" pause >"$TMP/plain.out" 2>"$TMP/plain.err"
plain_rc=$?
run_alone a
a=$(pid_of a)
[ -n "$a" ] || die "known_allocs printed no pid: $(cat "$TMP/a.out" "$TMP/a.err")"
expect_eq "exit status" "$plain_rc" "$(cat "$TMP/a.rc")"
expect_eq "stdout (pid aside)" "$(sed 's/^ready .*/ready/' "$TMP/plain.out")" "$(sed 's/^ready .*/ready/' "$TMP/a.out")"
[ ! -s "$TMP/a.err" ] || fail "the target said something while spooling: $(cat "$TMP/a.err")"
[ -n "$(spool_of "$a")" ] || die "no spool file for pid $a in $dir: $(ls -la "$dir")"
[ -z "$(ls "$dir"/*.part 2>/dev/null)" ] || fail "a .part file was left: $(ls "$dir")"
mode=$(stat -c %a "$(spool_of "$a")")
expect_eq "spool file mode" 600 "$mode"

# 2. A collector without -o: the spooled process over HTTP, the file kept.
start_collector "$TMP/c1.log" --socket "$sock" --http 127.0.0.1:0
wait_for 100 curl -sf -o "$TMP/h1.pb.gz" "$url/debug/pprof/heap?pid=$a" ||
    die "the spooled process is not served over HTTP (log: $(cat "$TMP/c1.log"))"
curl -sf -o "$TMP/a1.pb.gz" "$url/debug/pprof/allocs?pid=$a" || fail "allocs?pid=$a failed"
mkdir "$TMP/http"
cp "$TMP/h1.pb.gz" "$TMP/http/heap.pb.gz"
cp "$TMP/a1.pb.gz" "$TMP/http/allocs.pb.gz"
same_as_reference "spooled, over HTTP" "$TMP/http"
stop_collector
[ -n "$(spool_of "$a")" ] || fail "a collector without -o removed the spool file"

# 3. Bad files beside it: the last bytes cut off (a .ppx, and a .part
# whose writer has exited), and garbage.
for n in x y; do
    run_alone "$n" PPX_SOCKET="$TMP/aside/ppx.sock"
    eval "$n=\$(pid_of $n)"
done
for n in x y; do
    f=$(ls "$TMP/aside"/spool."${!n}".*.ppx 2>/dev/null) || die "no spool file for $n in $TMP/aside"
    base=$(basename "$f" .ppx)
    [ $n = x ] && to="$dir/$base.ppx" || to="$dir/$base.part"
    head -c $(($(stat -c %s "$f") - 12)) "$f" >"$to"
    rm -f "$f"
done
head -c 3000 /dev/urandom >"$dir/spool.4000002.2.ppx"

# 4. A collector with -o: final profiles from the spool file, which goes.
start_collector "$TMP/c2.log" --socket "$sock" --http 127.0.0.1:0 -o "$out"
wait_for 100 test -s "$out/known_allocs.$a/allocs.pb.gz" ||
    die "no profiles from the spool file in $out/known_allocs.$a (log: $(cat "$TMP/c2.log"))"
same_as_reference "spooled, -o" "$out/known_allocs.$a"
wait_for 50 test -z "$(spool_of "$a")" || fail "the spool file stays after its profiles were written"
grep -q "pid $a exited while no collector ran (spool file): profiles in $out/known_allocs.$a/" \
    "$TMP/c2.log" || fail "no message for the spooled process: $(cat "$TMP/c2.log")"
for f in "$(basename "$(ls "$dir"/spool."$x".*.ppx.bad 2>/dev/null)" .bad)" spool.4000002.2.ppx \
    "$(basename "$(ls "$dir"/spool."$y".*.part.bad 2>/dev/null)" .bad)"; do
    [ -e "$dir/$f.bad" ] || fail "${f:-a cut file} was not set aside as .bad: $(ls "$dir")"
    grep -q "spool file $dir/$f " "$TMP/c2.log" || fail "no message about $f: $(cat "$TMP/c2.log")"
done
grep -q "spool.4000002.2.ppx is not a whole stream: pid 4000002: unknown record type" "$TMP/c2.log" ||
    fail "the garbage file's message does not say why: $(cat "$TMP/c2.log")"
grep -q "spool.$y.[0-9]*.part is incomplete (its process died while writing it)" "$TMP/c2.log" ||
    fail "the .part file's message does not say it is incomplete: $(cat "$TMP/c2.log")"
# What came before the damage is kept: all the figures (the cut fell in
# the last records).
for n in x y; do
    wait_for 50 test -s "$out/known_allocs.${!n}/allocs.pb.gz" ||
        fail "no profiles from the cut spool file of $n (log: $(cat "$TMP/c2.log"))"
    same_as_reference "cut spool file of $n" "$out/known_allocs.${!n}"
done
kill -0 "$collector" || fail "the collector died on bad spool files"

# 5. A file that appears while the collector runs is read too.
run_alone b PPX_SOCKET="$TMP/aside/ppx.sock"
b=$(pid_of b)
[ -n "$(ls "$TMP/aside"/spool."$b".*.ppx 2>/dev/null)" ] || die "no spool file for b in $TMP/aside"
mv "$TMP/aside"/spool."$b".*.ppx "$dir/"
wait_for 50 test -s "$out/known_allocs.$b/allocs.pb.gz" ||
    fail "a spool file that appeared while the collector ran was not read (log: $(cat "$TMP/c2.log"))"

# 6. The collector killed mid-run; the target exits meanwhile.
fifo_target c 3 PPX_SAMPLE_RATE=1 "$prog" pause
c=$target_pid
kill -KILL "$collector"
wait "$collector" 2>/dev/null
echo alloc >&3
exec 3>&-
wait "$c"
expect_eq "exit status of the target whose collector died" 0 "$?"
[ ! -s "$TMP/c.err" ] || fail "the target said something: $(cat "$TMP/c.err")"
[ -n "$(spool_of "$c")" ] || die "no spool file for the target whose collector died: $(ls "$dir")"
start_collector "$TMP/c3.log" --socket "$sock" --http 127.0.0.1:0 -o "$out"
wait_for 100 test -s "$out/known_allocs.$c/allocs.pb.gz" ||
    die "no profiles for the target that exited between collectors (log: $(cat "$TMP/c3.log"))"
same_as_reference "exited between collectors" "$out/known_allocs.$c"
stop_collector

# 7. fork + exec, no collector: three processes, each its own profiles.
PPX_SOCKET="$sock" PPX_SAMPLE_RATE=1 LD_PRELOAD="$LIBPPX" "$PROGS/forker" -v work-exec \
    >"$TMP/f.out" 2>"$TMP/f.err" || fail "forker work-exec failed under ppx: $(cat "$TMP/f.err")"
parent=$(sed -n 's/^parent \([0-9]*\)$/\1/p' "$TMP/f.out")
child=$(sed -n 's/^child \([0-9]*\)$/\1/p' "$TMP/f.out")
[ -n "$parent" ] && [ -n "$child" ] || die "forker -v printed no pids: $(cat "$TMP/f.out")"
start_collector "$TMP/c4.log" --socket "$sock" --http 127.0.0.1:0 -o "$out"
wait_for 100 test -s "$out/forker.$child.1/allocs.pb.gz" ||
    die "no profiles for the exec'd child image (log: $(cat "$TMP/c4.log"); $(ls "$out"))"
wait_for 100 test -s "$out/forker.$parent/allocs.pb.gz" || die "no profiles for forker's parent"
flat_of() { pprof_raw "$out/$1/allocs.pb.gz" --flat-table; }
expect_eq "parent_work in the parent" 30000 "$(table_get "$(flat_of "forker.$parent")" parent_work alloc_space)"
expect_eq "child_work in the child before exec" 100000 \
    "$(table_get "$(flat_of "forker.$child")" child_work alloc_space)"
expect_eq "exec_work in the child's exec'd image" 60000 \
    "$(table_get "$(flat_of "forker.$child.1")" exec_work alloc_space)"
expect_eq "child_work in the exec'd image" 0 \
    "$(table_get "$(flat_of "forker.$child.1")" child_work alloc_space)"
stop_collector

# 8. Where no spool file may be written: nothing is, and nothing is said.
before=$(ls "$dir" | wc -l)
run_alone off PPX_SPOOL=0
expect_eq "spool files after a run with PPX_SPOOL=0" "$before" "$(ls "$dir" | wc -l)"
mkdir -m 755 "$TMP/open"
run_alone open PPX_SOCKET="$TMP/open/ppx.sock"
expect_eq "spool files in a directory others may enter" 0 "$(ls "$TMP/open" | wc -l)"
run_alone nodir PPX_SOCKET="$TMP/none/ppx.sock"
[ ! -e "$TMP/none" ] || fail "libppx.so created the socket directory"
for r in off open nodir; do
    [ ! -s "$TMP/$r.err" ] || fail "$r: the target said something: $(cat "$TMP/$r.err")"
    expect_eq "$r: exit status" "$plain_rc" "$(cat "$TMP/$r.rc")"
done

# 9. A full spool directory: said once, no file, exit status unchanged.
mkdir -m 700 "$TMP/full"
head -c $((1024 * 1024)) /dev/zero >"$TMP/full/spool.1.1.ppx"
run_alone full PPX_SOCKET="$TMP/full/ppx.sock" PPX_SPOOL_MAX_MB=1
expect_eq "exit status with a full spool directory" "$plain_rc" "$(cat "$TMP/full.rc")"
expect_eq "files in the full spool directory" 1 "$(ls "$TMP/full" | wc -l)"
grep -q "spool directory $TMP/full is full" "$TMP/full.err" ||
    fail "a full spool directory was not said: $(cat "$TMP/full.err")"
expect_eq "lines said about it" 1 "$(wc -l <"$TMP/full.err")"

finish
