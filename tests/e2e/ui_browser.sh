#!/usr/bin/env bash
# The web UI in a real browser: Debian's chromium, headless, driven by
# playwright-core (tests/lib/ui_browser.js), the viewer the build tree's
# speedscope (scripts/deps installs both). known_allocs (exact mode) under
# ppx collect; from /ui/?token= (the URL ppx collect prints), a click on
# its heap inuse_space link, then on its allocs alloc_objects link (and
# the heap link again on the page opened with the URL's password), must
# show in the viewer, without a console error or a failed request:
# - the profile's title (profile, sample type, pid, program);
# - in its Sandwich view (the functions, as a table in the page), the
#   known functions with their exact figures as speedscope prints them:
#   in use, calloc_10x100_x200 195.31 KB, thread_worker 125.00 KB,
#   leak_64x1000 62.50 KB, and no alloc_free_1000x500 (all freed);
#   allocated objects, leak_64x1000 and thread_worker 1,000 each,
#   alloc_free_1000x500 500, realloc_chain 90;
# - a CPU link (a 10 s profile) of spin_on_demand: spin_forever() first.
# Screenshots of the page, the flame graph and the sandwich view are kept
# in tests/artifacts/ui_browser/ of the build tree.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/collect.sh"
. "$TESTS_LIB/browser.sh"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
ui_url=$(sed -n 's|.*web UI at \(http://[^ ;]*\).*|\1|p' "$TMP/collect.log")
[ -n "$ui_url" ] || die "ppx collect printed no web UI URL: $(cat "$TMP/collect.log")"
fifo_target k 3 PPX_SAMPLE_RATE=1 "$PROGS/known_allocs" pause
pid=$target_pid

artifacts="$top_builddir/tests/artifacts/ui_browser"
rm -rf "$artifacts"
mkdir -p "$artifacts"

# view PROFILE SAMPLE_TYPE [PAGE [PID [PROGRAM]]]: what the viewer shows of the link
# of PID (default $pid) on PAGE (default $ui_url), in
# $TMP/PROFILE.SAMPLE_TYPE; screenshots in $artifacts/PROFILE.SAMPLE_TYPE/.
view() {
    local out="$TMP/$1.$2" shots="$artifacts/$1.$2"
    rm -rf "$shots"
    mkdir -p "$shots"
    PPX_UI_NODE_MODULES="$modules" PPX_CHROMIUM="$chromium" \
        timeout 180 node "$TESTS_LIB/ui_browser.js" "${3:-$ui_url}" "${4:-$pid}" "$1" "$2" "$shots" \
        >"$out" 2>"$out.err"
    local rc=$?
    note "$1 $2 in the viewer:"$'\n'"$(head -20 "$out")"
    [ "$rc" -eq 0 ] || fail "the browser could not show $1 $2 (exit status $rc): $(grep '^error' "$out") $(tail -5 "$out.err")"
    if grep -q '^console' "$out"; then
        fail "console errors or failed requests showing $1 $2: $(grep '^console' "$out")"
    fi
    expect_eq "the viewer's title" "$1 $2, pid ${4:-$pid} (${5:-known_allocs}) - speedscope" \
        "$(sed -n 's/^title //p' "$out")"
}
# self FILE FUNCTION: FUNCTION's self figure in the sandwich view, the
# percentage dropped ("62.50 KB (15%)" -> "62.50 KB").
self() {
    awk -F'\t' -v f="frame $2" '$1 == f { sub(/ \(.*/, "", $3); print $3; exit }' "$1"
}

view heap inuse_space
f="$TMP/heap.inuse_space"
expect_eq "calloc_10x100_x200 in use" "195.31 KB" "$(self "$f" calloc_10x100_x200)"
expect_eq "thread_worker in use" "125.00 KB" "$(self "$f" thread_worker)"
expect_eq "leak_64x1000 in use" "62.50 KB" "$(self "$f" leak_64x1000)"
expect_eq "alloc_free_1000x500 in use (all freed: not shown)" "" "$(self "$f" alloc_free_1000x500)"

view allocs alloc_objects
f="$TMP/allocs.alloc_objects"
expect_eq "leak_64x1000 objects allocated" "1,000" "$(self "$f" leak_64x1000)"
expect_eq "thread_worker objects allocated" "1,000" "$(self "$f" thread_worker)"
expect_eq "alloc_free_1000x500 objects allocated" 500 "$(self "$f" alloc_free_1000x500)"
expect_eq "realloc_chain objects allocated" 90 "$(self "$f" realloc_chain)"

# The page opened with the URL's password (what ppx collect prints for
# go tool pprof): the same profile.
view heap inuse_space "$url/ui/"
expect_eq "leak_64x1000 in use (page asked with the URL's password)" "62.50 KB" \
    "$(self "$TMP/heap.inuse_space" leak_64x1000)"

# A CPU profile (a 10 s window) of a thread spinning in spin_forever(): its
# first row, by own time.
fifo_target s 4 "$PROGS/spin_on_demand"
view profile cpu "$ui_url" "$target_pid" spin_on_demand
expect_eq "the function with the most CPU time" spin_forever \
    "$(awk -F'\t' '$1 ~ /^frame / { sub(/^frame /, "", $1); print $1; exit }' "$TMP/profile.cpu")"

for shot in ui flamegraph sandwich; do
    [ -s "$artifacts/heap.inuse_space/$shot.png" ] || fail "no screenshot $shot.png"
done
exec 3>&- 4>&-
stop_collector || fail "ppx collect exit status $?"
finish
