#!/usr/bin/env bash
# ppx report DIR -o FILE: one HTML page of a profile directory. known_allocs
# (exact mode), run as a copy named k<a>&b (its threads inherit the name),
# recorded into "run k<a>&b"; with a made-up viewer (PPX_UI_DIR) and
# without any:
# - each top table has the exact figures of the known functions (heap: in
#   use, allocs: allocated bytes), flat = cum for these leaves, and with
#   every row shown (--top) the flat column adds up to the table's total;
# - the audit and threads sections are, unescaped, exactly what ppx audit
#   --top N DIR and ppx threads --top N DIR print (N: ppx report's --top);
#   for known_io's run, the syscalls table
#   counts its calls exactly (sendto and recvfrom 2000 each, sendmmsg 10,
#   2000 under udp_sendto_batch) and the audit text has its sendto row;
# - every string from the run is escaped: neither the directory's nor the
#   thread's raw name is in the page, their escaped forms are;
# - the embedded profile is the file; nothing refers to the network;
# - the viewer is inlined: its script (which holds "</script>") and
#   stylesheet only as base64, the source map comment dropped, the font the
#   stylesheet names a data: URL, its licences at the end of the page;
# - without a viewer: one line on stderr, the page says so, tables intact;
# - a made-up profile (tests/lib/craft_profile.py): its table has exactly
#   the rows go tool pprof -top prints (names: template arguments dropped,
#   C++ operators kept whole, "operator new" not cut at its space; a
#   recursive function's cum counted once per sample; an inlined function's
#   own flat), and its C++ operator's name escaped;
# - the latest numbered snapshot when DIR has no final files (10, not 2);
# - a corrupt profile: exit 1, the page written with its error and the rest;
# - usage errors exit 2; a missing, empty or non-directory DIR and an
#   unwritable output exit 1 with a clear message, leaving no file behind.
. "$(dirname "$0")/../lib/common.sh"
require_cmd python3
page_py() { python3 "$TESTS_LIB/report_page.py" "$@"; }

odd='k<a>&b'
odd_html='k&lt;a&gt;&amp;b'
mkdir -p "$TMP/bin" "$TMP/out"
cp "$PROGS/known_allocs" "$TMP/bin/$odd" || die "cannot copy known_allocs"
run="$TMP/run $odd"
printf 'alloc\n' | "$PPX" record -q --exact -o "$run" -- "$TMP/bin/$odd" pause >/dev/null \
    2>"$TMP/record.err" || die "ppx record --exact -- known_allocs failed: $(cat "$TMP/record.err")"

# A made-up viewer: an index.html naming a script and a stylesheet, the
# stylesheet a font.
v="$TMP/ui/speedscope"
mkdir -p "$v"
printf '<html><head><link rel="stylesheet" href="./style.css"></head><body><script src="app.js"></script></body></html>\n' >"$v/index.html"
printf 'var x = "</script><b>";\n//# sourceMappingURL=app.js.map\n' >"$v/app.js"
printf 'body{font-family:x}@font-face{src:url("./font.woff2") format("woff2")}\n/*# sourceMappingURL=style.css.map */\n' >"$v/style.css"
printf 'wOF2 made-up font' >"$v/font.woff2"
printf 'Made-up <licence> & terms\n' >"$v/LICENSE"
printf 'Font licence\n' >"$v/font.LICENSE.md"

page="$TMP/out/report.html"
PPX_UI_DIR="$TMP/ui" "$PPX" report "$run" -o "$page" --top 1000 >"$TMP/report.out" 2>"$TMP/report.err"
rc=$?
expect_eq "ppx report exit status" 0 "$rc"
expect_eq "ppx report's stderr" "ppx report: wrote $page: 8 profiles of $run, with flame graphs" \
    "$(cat "$TMP/report.err")"
expect_eq "ppx report's stdout" "" "$(cat "$TMP/report.out")"
[ -s "$page" ] || die "no page written"

# row ROWS FUNCTION: "FLAT CUM" of FUNCTION's row.
row() { awk -F'\t' -v f="$2" '$1 == f { print $2, $3 }' "$1"; }
page_py "$page" rows heap >"$TMP/heap.rows" || fail "cannot read the heap table"
page_py "$page" rows allocs >"$TMP/allocs.rows" || fail "cannot read the allocs table"
note "heap table: $(head -5 "$TMP/heap.rows" | tr '\t\n' ' |')"
expect_eq "heap: calloc_10x100_x200 flat cum" "200000 200000" "$(row "$TMP/heap.rows" calloc_10x100_x200)"
expect_eq "heap: thread_worker flat cum" "128000 128000" "$(row "$TMP/heap.rows" thread_worker)"
expect_eq "heap: leak_64x1000 flat cum" "64000 64000" "$(row "$TMP/heap.rows" leak_64x1000)"
expect_eq "heap: aligned_alloc_5x4096 flat cum" "20480 20480" "$(row "$TMP/heap.rows" aligned_alloc_5x4096)"
expect_eq "heap: alloc_free_1000x500 (all freed: no row)" "" "$(row "$TMP/heap.rows" alloc_free_1000x500)"
expect_eq "allocs: alloc_free_1000x500 flat cum" "500000 500000" "$(row "$TMP/allocs.rows" alloc_free_1000x500)"
expect_eq "allocs: realloc_chain flat cum" "81760 81760" "$(row "$TMP/allocs.rows" realloc_chain)"
expect_eq "allocs: leak_64x1000 flat cum" "64000 64000" "$(row "$TMP/allocs.rows" leak_64x1000)"
total=$(sed -n '/id=top-heap /,/<\/section>/s/.*data-total=\([0-9]*\)>.*/\1/p' "$page")
expect_eq "heap: the flat column adds up to the total" "$total" \
    "$(awk -F'\t' '{ s += $2 } END { print s }' "$TMP/heap.rows")"
grep -q "<td class=flat data-value=64000 title=64000>62.50 KiB</td>" "$page" ||
    fail "leak_64x1000's flat cell does not read 62.50 KiB"

# The commands' texts, as they print them.
"$PPX" audit --top 1000 "$run" >"$TMP/audit.txt" 2>&1 || fail "ppx audit: exit status $?"
"$PPX" threads --top 1000 "$run" >"$TMP/threads.txt" 2>&1 || fail "ppx threads: exit status $?"
page_py "$page" text audit >"$TMP/page.audit" || fail "no audit text"
page_py "$page" text threads >"$TMP/page.threads" || fail "no threads text"
cmp -s "$TMP/audit.txt" "$TMP/page.audit" ||
    fail "the audit section is not what ppx audit prints: $(diff "$TMP/audit.txt" "$TMP/page.audit" | head -5)"
cmp -s "$TMP/threads.txt" "$TMP/page.threads" ||
    fail "the threads section is not what ppx threads prints: $(diff "$TMP/threads.txt" "$TMP/page.threads" | head -5)"
grep -q "^ *[0-9]*  $odd  " "$TMP/page.threads" || fail "no thread named $odd in the threads text"

# Escaping.
expect_eq "raw '$odd' in the page" 0 "$(grep -cF "$odd" "$page")"
grep -q "<title>ppx report: [^<]*run $odd_html</title>" "$page" || fail "the title does not name the directory, escaped"
grep -q "^ *[0-9]*  $odd_html  " "$page" || fail "the thread named $odd is not in the page, escaped"
expect_eq "references to the network" 0 "$(grep -cE 'https?://' "$page")"
page_py "$page" data profile-heap >"$TMP/heap.embedded" || fail "no embedded heap profile"
cmp -s "$TMP/heap.embedded" "$run/heap.pb.gz" || fail "the embedded heap profile is not heap.pb.gz"

# The viewer, inlined.
expect_eq "the viewer's script in the page as it is" 0 "$(grep -c '</script><b>' "$page")"
expect_eq "<script src= or <link href= in the page" 0 "$(grep -cE '<script[^>]* src=|<link[^>]* href=.[^d]' "$page")"
page_py "$page" data viewer-js >"$TMP/viewer.js" || fail "no inlined viewer script"
grep -q '^var x = "</script><b>";$' "$TMP/viewer.js" || fail "the viewer's script is not inlined: $(head -3 "$TMP/viewer.js")"
expect_eq "source map comments inlined" 0 "$(grep -c sourceMappingURL "$TMP/viewer.js")"
page_py "$page" data viewer-css >"$TMP/viewer.css" || fail "no inlined viewer stylesheet"
font=$(base64 -w0 "$v/font.woff2")
grep -qF "url(\"data:font/woff2;base64,$font\") format(\"woff2\")" "$TMP/viewer.css" ||
    fail "the font is not inlined: $(cat "$TMP/viewer.css")"
grep -q 'id=viewer-missing' "$page" && fail "the page says the viewer is missing"
expect_eq "the licences of what is inlined" "<details id=notices><summary>The licences of speedscope, inlined into this page</summary><pre>== speedscope: LICENSE ==|Made-up &lt;licence&gt; &amp; terms||== font.LICENSE.md ==|Font licence|</pre></details>" \
    "$(sed -n '/^<details id=notices>/,/<\/details>/p' "$page" | tr '\n' '|' | sed 's/|$//')"
grep -q "<button data-flamegraph=heap>heap</button>" "$page" || fail "no heap flame graph button"
grep -q "<script type=application/octet-stream id=profile-heap data-file='heap.pb.gz' data-types='alloc_objects:[0-9]* alloc_space:[0-9]* inuse_objects:[0-9]* inuse_space:[0-9]*' data-default='inuse_space'>" "$page" ||
    fail "the heap profile's sample types are not offered: $(grep -o "id=profile-heap[^>]*>" "$page")"

# Without a viewer.
mkdir -p "$TMP/noui"
PPX_UI_DIR="$TMP/noui" "$PPX" report "$run" -o "$TMP/out/plain.html" 2>"$TMP/plain.err"
expect_eq "ppx report without a viewer: exit status" 0 "$?"
expect_eq "without a viewer: stderr" "ppx report: the flame graph viewer (speedscope) is not installed (looked in $TMP/noui/speedscope/): the report has the tables only
ppx report: wrote $TMP/out/plain.html: 8 profiles of $run" "$(cat "$TMP/plain.err")"
grep -q "<p class=missing id=viewer-missing>The flame graphs need speedscope, which is not installed" \
    "$TMP/out/plain.html" || fail "the page does not say the viewer is missing"
grep -q 'id=viewer-js' "$TMP/out/plain.html" && fail "a viewer script without a viewer"
expect_eq "without a viewer: leak_64x1000 in use" "64000 64000" \
    "$(page_py "$TMP/out/plain.html" rows heap | awk -F'\t' '$1 == "leak_64x1000" { print $2, $3 }')"
expect_eq "without a viewer: 20 rows by default" 20 "$(page_py "$TMP/out/plain.html" rows heap | wc -l)"

# Known I/O calls: the syscalls table and the audit text.
TMPDIR="$TMP" "$PPX" record -q -o "$TMP/io" -- "$PROGS/known_io" >/dev/null 2>"$TMP/io.err" ||
    die "ppx record -- known_io failed: $(cat "$TMP/io.err")"
PPX_UI_DIR="$TMP/noui" "$PPX" report --top 1000 "$TMP/io" -o "$TMP/out/io.html" 2>"$TMP/io.err" ||
    fail "ppx report of known_io: exit status $?: $(cat "$TMP/io.err")"
page_py "$TMP/out/io.html" rows syscalls >"$TMP/io.rows" || fail "cannot read the syscalls table"
expect_eq "syscalls: sendto flat cum" "2000 2000" "$(row "$TMP/io.rows" sendto)"
expect_eq "syscalls: recvfrom flat cum" "2000 2000" "$(row "$TMP/io.rows" recvfrom)"
expect_eq "syscalls: sendmmsg flat cum" "10 10" "$(row "$TMP/io.rows" sendmmsg)"
expect_eq "syscalls: udp_sendto_batch flat cum" "0 2000" "$(row "$TMP/io.rows" udp_sendto_batch)"
"$PPX" audit --top 1000 "$TMP/io" >"$TMP/io.audit" 2>&1 || fail "ppx audit of known_io: exit status $?"
page_py "$TMP/out/io.html" text audit >"$TMP/io.page.audit" || fail "no audit text for known_io"
cmp -s "$TMP/io.audit" "$TMP/io.page.audit" ||
    fail "known_io's audit section is not what ppx audit prints: $(diff "$TMP/io.audit" "$TMP/io.page.audit" | head -5)"
grep -q "^sendto  *inet/dgram  *2000 .* udp_sendto_batch 100%$" "$TMP/io.page.audit" ||
    fail "no sendto row of 2000 calls in the audit text: $(head -6 "$TMP/io.page.audit")"

# A made-up profile whose table is known.
mkdir -p "$TMP/craft"
python3 "$TESTS_LIB/craft_profile.py" "$TMP/craft/heap.pb.gz" || die "cannot make a profile"
PPX_UI_DIR="$TMP/noui" "$PPX" report "$TMP/craft" -o "$TMP/out/craft.html" 2>"$TMP/craft.err" ||
    fail "ppx report of a made-up profile: exit status $?: $(cat "$TMP/craft.err")"
expect_eq "the made-up profile's table" "a&c 100 100|Foo::operator<< 50 80|operator new 30 30|main 0 180" \
    "$(page_py "$TMP/out/craft.html" rows heap | tr '\t\n' ' |' | sed 's/|$//')"
grep -q "<td class=name>Foo::operator&lt;&lt;</td>" "$TMP/out/craft.html" || fail "Foo::operator<< is not escaped"
expect_eq "raw 'operator<<' in the page" 0 "$(grep -c "operator<<" "$TMP/out/craft.html")"
if have go; then # the same rows as go tool pprof -top
    go_pprof -top "$TMP/craft/heap.pb.gz" 2>/dev/null |
        awk '/flat%/ { on = 1; next } on { n = $1; c = $4; sub(/B$/, "", n); sub(/B$/, "", c);
            name = $6; for (i = 7; i <= NF && $i != "(inline)"; i++) name = name " " $i;
            printf "%s %s %s|", name, n, c }' | sed 's/|$//' >"$TMP/craft.go"
    expect_eq "go tool pprof -top of the made-up profile" "a&c 100 100|Foo::operator<< 50 80|operator new 30 30|main 0 180" \
        "$(cat "$TMP/craft.go")"
fi

# Snapshots only: the latest (10, not 2).
mkdir -p "$TMP/snap"
cp "$run/allocs.pb.gz" "$TMP/snap/heap.2.pb.gz"
cp "$run/heap.pb.gz" "$TMP/snap/heap.10.pb.gz"
PPX_UI_DIR="$TMP/noui" "$PPX" report "$TMP/snap" -o "$TMP/out/snap.html" 2>"$TMP/snap.err" ||
    fail "ppx report of snapshots: exit status $?: $(cat "$TMP/snap.err")"
grep -q "<h2>heap.10.pb.gz: " "$TMP/out/snap.html" || fail "the snapshot report does not show heap.10.pb.gz"
expect_eq "snapshot 10: alloc_free_1000x500 (not in use)" "" \
    "$(page_py "$TMP/out/snap.html" rows heap | awk -F'\t' '$1 == "alloc_free_1000x500"')"

# A corrupt profile: the page without it, exit status 1.
cp -r "$run" "$TMP/bad"
echo garbage >"$TMP/bad/cpu.pb.gz"
PPX_UI_DIR="$TMP/noui" "$PPX" report "$TMP/bad" -o "$TMP/out/bad.html" 2>"$TMP/bad.err"
expect_eq "a corrupt profile: exit status" 1 "$?"
grep -qx "ppx report: $TMP/bad/cpu.pb.gz is not gzip-compressed: not a pprof profile" "$TMP/bad.err" ||
    fail "no message for the corrupt profile: $(cat "$TMP/bad.err")"
grep -q "<p class=error>Cannot read it: $TMP/bad/cpu.pb.gz is not gzip-compressed" "$TMP/out/bad.html" ||
    fail "the page does not say cpu.pb.gz cannot be read"
expect_eq "a corrupt cpu profile: leak_64x1000 in use still" "64000 64000" \
    "$(page_py "$TMP/out/bad.html" rows heap | awk -F'\t' '$1 == "leak_64x1000" { print $2, $3 }')"

# Errors.
# bad STATUS MESSAGE ARGS...: ppx report ARGS exits STATUS, MESSAGE a line
# of its stderr.
bad() {
    local status=$1 msg=$2
    shift 2
    PPX_UI_DIR="$TMP/noui" "$PPX" report "$@" >/dev/null 2>"$TMP/err"
    local rc=$?
    expect_eq "ppx report $*: exit status" "$status" "$rc"
    grep -qxF "$msg" "$TMP/err" || fail "ppx report $*: no line '$msg' on stderr: $(cat "$TMP/err")"
}
mkdir -p "$TMP/empty"
touch "$TMP/afile"
bad 2 "ppx report: no directory given"
bad 2 "ppx report: one directory at a time, not also 'x'" "$run" x
bad 2 "ppx report: unknown option '--bogus'" --bogus "$run"
bad 2 "ppx report: option '-o' needs a value" "$run" -o
bad 2 "ppx report: --top takes a number of rows from 1 to 1000000, not '0'" --top 0 "$run"
bad 1 "ppx report: cannot read $TMP/missing: No such file or directory" "$TMP/missing"
bad 1 "ppx report: no profiles in $TMP/empty: it has none of cpu.pb.gz, heap.pb.gz, allocs.pb.gz, ... (ppx record -o DIR and ppx snapshot -o DIR write them)" "$TMP/empty"
bad 1 "ppx report: $TMP/afile is not a directory: ppx report reads the directory that ppx record -o DIR or ppx snapshot -o DIR wrote" "$TMP/afile"
bad 1 "ppx report: cannot write $TMP/nodir/r.html: No such file or directory" "$run" -o "$TMP/nodir/r.html"
mkdir -p "$TMP/out/adir"
bad 1 "ppx report: cannot write $TMP/out/adir: Is a directory" "$run" -o "$TMP/out/adir"
expect_eq "files left in the output directory" "adir bad.html craft.html io.html plain.html report.html snap.html" \
    "$(ls -A "$TMP/out" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "files in $TMP/out/adir" "" "$(ls -A "$TMP/out/adir")"
finish
