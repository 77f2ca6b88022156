#!/usr/bin/env bash
# The page of ppx report in a real browser, offline: Debian's chromium,
# headless, driven by playwright-core (tests/lib/report_browser.js), opens
# the page from file:// with every request other than file: refused. The
# page: ppx report of known_allocs (exact mode) recorded by ppx record, the
# viewer the build tree's speedscope (scripts/deps installs both). Without a
# console error, a failed or refused request:
# - the heap and allocs flame graphs load in the inlined viewer, titled
#   with their file and sample type, also of a sample type chosen in the
#   page (heap inuse_objects, allocs alloc_objects);
# - in its Sandwich view (a table), the known functions with their exact
#   figures as speedscope prints them: in use, calloc_10x100_x200 195.31 KB,
#   thread_worker 125.00 KB, leak_64x1000 62.50 KB, and no
#   alloc_free_1000x500 (all freed); allocated, alloc_free_1000x500
#   488.28 KB, realloc_chain 79.84 KB; objects in use, leak_64x1000 and
#   thread_worker 1,000 each, calloc_10x100_x200 200; objects allocated,
#   alloc_free_1000x500 500, realloc_chain 90;
# - the top tables show the same figures (62.50 KiB, 488.28 KiB), and the
#   audit and threads texts their first lines.
# Screenshots of the page, the flame graphs and the sandwich views are kept
# in tests/artifacts/report_browser/ of the build tree.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/browser.sh"
unset PPX_UI_DIR # the build tree's viewer

run="$TMP/run"
printf 'alloc\n' | "$PPX" record -q --exact -o "$run" -- "$PROGS/known_allocs" pause >/dev/null \
    2>"$TMP/record.err" || die "ppx record --exact -- known_allocs failed: $(cat "$TMP/record.err")"
"$PPX" report "$run" -o "$TMP/report.html" 2>"$TMP/report.err" ||
    die "ppx report: exit status $?: $(cat "$TMP/report.err")"
grep -q "with flame graphs$" "$TMP/report.err" || die "no flame graphs in the page: $(cat "$TMP/report.err")"

artifacts="$top_builddir/tests/artifacts/report_browser"
rm -rf "$artifacts"
mkdir -p "$artifacts"
out="$TMP/browser"
PPX_UI_NODE_MODULES="$modules" PPX_CHROMIUM="$chromium" \
    timeout 240 node "$TESTS_LIB/report_browser.js" "$TMP/report.html" "$artifacts" \
    heap allocs heap:inuse_objects allocs:alloc_objects \
    >"$out" 2>"$out.err"
rc=$?
note "what the browser shows:"$'\n'"$(grep -v '^cell' "$out" | head -12)"
[ "$rc" -eq 0 ] || fail "the browser could not show the page (exit status $rc): $(grep '^error' "$out") $(tail -5 "$out.err")"
if grep -q '^console\|^request' "$out"; then
    fail "console errors, failed or refused requests: $(grep '^console\|^request' "$out")"
fi
expect_eq "the heap viewer's title" "heap.pb.gz (inuse_space) - speedscope" "$(sed -n 's/^title heap //p' "$out")"
expect_eq "the allocs viewer's title" "allocs.pb.gz (alloc_space) - speedscope" "$(sed -n 's/^title allocs //p' "$out")"

# self PROFILE FUNCTION: FUNCTION's self figure in PROFILE's sandwich view,
# the percentage dropped ("62.50 KB (15%)" -> "62.50 KB").
self() {
    awk -F'\t' -v f="frame $1 $2" '$1 == f { sub(/ \(.*/, "", $3); print $3; exit }' "$out"
}
expect_eq "calloc_10x100_x200 in use (flame graph)" "195.31 KB" "$(self heap calloc_10x100_x200)"
expect_eq "thread_worker in use (flame graph)" "125.00 KB" "$(self heap thread_worker)"
expect_eq "leak_64x1000 in use (flame graph)" "62.50 KB" "$(self heap leak_64x1000)"
expect_eq "alloc_free_1000x500 in use (all freed: not shown)" "" "$(self heap alloc_free_1000x500)"
expect_eq "alloc_free_1000x500 allocated (flame graph)" "488.28 KB" "$(self allocs alloc_free_1000x500)"
expect_eq "realloc_chain allocated (flame graph)" "79.84 KB" "$(self allocs realloc_chain)"
expect_eq "the heap inuse_objects viewer's title" "heap.pb.gz (inuse_objects) - speedscope" \
    "$(sed -n 's/^title heap:inuse_objects //p' "$out")"
expect_eq "leak_64x1000 objects in use (flame graph)" "1,000" "$(self heap:inuse_objects leak_64x1000)"
expect_eq "thread_worker objects in use (flame graph)" "1,000" "$(self heap:inuse_objects thread_worker)"
expect_eq "calloc_10x100_x200 objects in use (flame graph)" 200 "$(self heap:inuse_objects calloc_10x100_x200)"
expect_eq "alloc_free_1000x500 objects allocated (flame graph)" 500 "$(self allocs:alloc_objects alloc_free_1000x500)"
expect_eq "realloc_chain objects allocated (flame graph)" 90 "$(self allocs:alloc_objects realloc_chain)"

# cell PROFILE FUNCTION: "FLAT CUM" as the page's table shows them.
cell() { awk -F'\t' -v f="cell $1 $2" '$1 == f { print $2 "/" $3; exit }' "$out"; }
expect_eq "leak_64x1000 in use (table)" "62.50 KiB/62.50 KiB" "$(cell heap leak_64x1000)"
expect_eq "alloc_free_1000x500 allocated (table)" "488.28 KiB/488.28 KiB" "$(cell allocs alloc_free_1000x500)"
expect_eq "the audit text's first line" "$run/syscalls.pb.gz: " \
    "$(sed -n 's/^text audit \(.*pb.gz: \).*/\1/p' "$out")"
expect_eq "the threads text's first line" "$run/threadcreate.pb.gz: 5 threads" "$(sed -n 's/^text threads //p' "$out")"

for shot in page heap.flamegraph heap.sandwich allocs.flamegraph allocs.sandwich \
    heap.inuse_objects.sandwich allocs.alloc_objects.sandwich; do
    [ -s "$artifacts/$shot.png" ] || fail "no screenshot $shot.png"
done
finish
