#!/usr/bin/env bash
# The web UI under /ui/ and ?sample_index=, over plain HTTP (the browser's
# view is ui_browser.sh). known_allocs (exact mode) under ppx collect, the
# viewer's directory a made-up one (PPX_UI_DIR), so nothing from npm is
# needed:
# - /ui/ needs the token (401 without); its links carry it, and name the
#   server when the page was asked with the URL's password; it lists the process,
#   with a viewer link per profile and sample type, whose profile URL,
#   fetched, is that profile with that default sample type;
# - the viewer's files need no token, come with their content type, and
#   nothing else is served: no "..", no hidden file, no directory, no
#   symbolic link out of the directory (one inside is followed);
# - the timeline charts: one per figure for the process, the heap's peak
#   the timeline's (JSON), one thread at the last point; with a second
#   process, a row of links to the merged profiles;
# - sample_index: the default sample type of heap becomes inuse_objects
#   (go tool pprof -top says so, and shows leak_64x1000's 1000 objects),
#   index 0 is alloc_objects, an unknown name is a 400 naming the four;
# - without a viewer, ppx collect says so at start, /ui/ says so and links
#   the raw profiles, and the viewer's files are 404.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/collect.sh"
require_pprof

# The viewer's directory: a few files of each kind, a symbolic link inside
# and one out of it, a hidden file, a subdirectory.
ui="$TMP/ui"
v="$ui/speedscope"
mkdir -p "$v/sub" "$TMP/outside"
echo '<html>viewer</html>' >"$v/index.html"
echo 'var x = 1;' >"$v/app.js"
echo 'body{}' >"$v/style.css"
echo '{}' >"$v/sub/data.json"
echo secret >"$TMP/outside/secret.txt"
echo hidden >"$v/.hidden"
ln -s app.js "$v/inside.js"
ln -s "$TMP/outside/secret.txt" "$v/out.txt"
ln -s "$TMP/outside" "$v/outdir"

PPX_UI_DIR="$ui" start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
grep -q "web UI at http://127.0.0.1:[0-9]*/ui/?token=[0-9a-f]\{32\}" "$TMP/collect.log" ||
    fail "the web UI's URL is not printed: $(cat "$TMP/collect.log")"
token=$(cat "$sock.token")
plain=${url/ppx:$token@/} # the URL without credentials
fifo_target k 3 PPX_SAMPLE_RATE=1 "$PROGS/known_allocs" pause
pid=$target_pid

status() { curl -s -o /dev/null -w '%{http_code}' --path-as-is "$@"; }
expect_eq "/ui/ without the token" 401 "$(status "$plain/ui/")"
expect_eq "/ui (no slash)" 301 "$(status "$plain/ui?token=$token")"
curl -sf -D "$TMP/page.h" -o "$TMP/page.html" "$plain/ui/?token=$token" || die "/ui/?token= failed"
grep -qi '^content-type: text/html' "$TMP/page.h" || fail "/ui/ content type: $(grep -i content-type "$TMP/page.h")"
grep -q "<tr class=process data-pid=$pid>" "$TMP/page.html" || fail "/ui/ does not list pid $pid"
links=$(grep -o "data-profile=[a-z]* data-sample-type=[a-z_]* href='[^']*'" "$TMP/page.html" |
    grep -c "%26pid%3D$pid")
# allocs and heap 4 types each, profile 2, syscalls 6, threadcreate 1
[ "$links" -ge 17 ] || fail "links for pid $pid: $links, expected at least 17"
without=$(grep -o "href='speedscope/index.html#profileURL=[^']*'" "$TMP/page.html" | grep -vc "%26token%3D$token")
expect_eq "viewer links without the token (page asked with ?token=)" 0 "$without"
grep -q "href='/debug/pprof/?token=$token'" "$TMP/page.html" || fail "no link to /debug/pprof/ with the token"
# Asked with the URL's password, the links name the server (the viewer's
# fetch refuses a URL with credentials, relative ones inherit the page's),
# with the token; asked with the header, relative ones with the token.
curl -sf -o "$TMP/page_basic.html" "$url/ui/" || fail "/ui/ with the URL's password failed"
host=${plain#http://}
grep -q "data-profile=heap data-sample-type=inuse_space href='speedscope/index.html#profileURL=http%3A%2F%2F${host//:/%3A}%2Fdebug%2Fpprof%2Fheap%3Fsample_index%3Dinuse_space%26pid%3D$pid%26token%3D$token&amp;" "$TMP/page_basic.html" ||
    fail "the page asked with the URL's password: $(grep -o "data-profile=heap data-sample-type=inuse_space href='[^']*'" "$TMP/page_basic.html" | head -1)"
curl -sf -o "$TMP/page_bearer.html" -H "Authorization: Bearer $token" "$plain/ui/" || fail "/ui/ with the header failed"
grep -q "data-profile=heap data-sample-type=inuse_space href='speedscope/index.html#profileURL=%2Fdebug%2Fpprof%2Fheap%3Fsample_index%3Dinuse_space%26pid%3D$pid%26token%3D$token&amp;" "$TMP/page_bearer.html" ||
    fail "the page asked with the header: $(grep -o "data-profile=heap data-sample-type=inuse_space href='[^']*'" "$TMP/page_bearer.html" | head -1)"

# The heap inuse_objects link of the process: its profile URL, fetched.
link=$(grep -o "data-profile=heap data-sample-type=inuse_objects href='[^']*'" "$TMP/page.html" |
    grep "%26pid%3D$pid" | head -1)
profile_url=$(python3 -c 'import sys, urllib.parse as u
frag = sys.argv[1].split("#", 1)[1].rstrip("'\''")
print(u.parse_qs(frag)["profileURL"][0])' "$link") || die "no heap inuse_objects link: $link"
expect_eq "the link's profile" "/debug/pprof/heap?sample_index=inuse_objects&pid=$pid&token=$token" "$profile_url"
curl -sf -o "$TMP/linked.pb.gz" "$plain$profile_url" || fail "the linked profile failed"
top() { go tool pprof -top "$1" 2>/dev/null; }
flat_of() { awk -v f="$2" '$NF == f { print $1 }' <<<"$1"; }
t=$(top "$TMP/linked.pb.gz")
grep -q '^Type: inuse_objects$' <<<"$t" || fail "the linked profile's type: $(grep '^Type' <<<"$t")"
expect_eq "leak_64x1000 in the linked profile (objects in use)" 1000 "$(flat_of "$t" leak_64x1000)"

# ---- the timeline charts ----
wait_for 100 sh -c "[ \"\$(curl -sf '$pp/timeline?pid=$pid' | grep -c '^\[')\" -ge 2 ]" ||
    fail "no two timeline points in 10 s: $(curl -s "$pp/timeline?pid=$pid" | head -c 300)"
fifo_target k2 4 PPX_SAMPLE_RATE=1 "$PROGS/known_allocs" pause
pid2=$target_pid
curl -sf -o "$TMP/page2.html" "$plain/ui/?token=$token" || fail "/ui/ failed"
grep -q "<tr class=process data-pid=$pid2>" "$TMP/page2.html" || fail "/ui/ does not list pid $pid2"
merged=$(sed -n "/<tr class=merged>/,/<\/tr>/p" "$TMP/page2.html")
grep -q "data-profile=heap data-sample-type=inuse_space href='speedscope/index.html#profileURL=%2Fdebug%2Fpprof%2Fheap%3Fsample_index%3Dinuse_space%26token%3D$token&amp;title=heap%20inuse_space%2C%20every%20process'" <<<"$merged" ||
    fail "no merged heap link with two processes: $(head -c 600 <<<"$merged")"
json_peak=$(curl -sf "$pp/timeline?pid=$pid" | python3 -c 'import json, sys
d = json.load(sys.stdin); c = d["columns"].index("inuse_bytes")
print("%.3f" % max(p[c] for p in d["processes"][0]["points"]))')
row=$(sed -n "/<tr class=process data-pid=$pid>/,/<\/tr>/p" "$TMP/page2.html")
expect_eq "charts of pid $pid" "inuse_bytes alloc_bytes_per_s cpu_cores io_calls_per_s threads" \
    "$(grep -o 'data-series=[a-z_]*' <<<"$row" | cut -d= -f2 | tr '\n' ' ' | sed 's/ $//')"
expect_eq "the heap chart's peak (the timeline's)" "$json_peak" \
    "$(grep -o 'data-series=inuse_bytes data-peak=[0-9.]*' <<<"$row" | sed 's/.*data-peak=//')"
expect_eq "the threads chart's last point" "1.000" \
    "$(grep -o 'data-series=threads data-peak=[0-9.]* data-last=[0-9.]*' <<<"$row" | sed 's/.*data-last=//')"

# ---- sample_index ----
curl -sf -o "$TMP/default.pb.gz" "$pp/heap?pid=$pid" || fail "heap failed"
grep -q '^Type: inuse_space$' <<<"$(top "$TMP/default.pb.gz")" || fail "heap's default type is not inuse_space"
curl -sf -o "$TMP/index0.pb.gz" "$pp/heap?pid=$pid&sample_index=0" || fail "sample_index=0 failed"
t=$(top "$TMP/index0.pb.gz")
grep -q '^Type: alloc_objects$' <<<"$t" || fail "sample_index=0: $(grep '^Type' <<<"$t")"
expect_eq "alloc_free_1000x500's objects (sample_index=0)" 500 "$(flat_of "$t" alloc_free_1000x500)"
curl -sf -o "$TMP/tc.pb.gz" "$pp/threadcreate?sample_index=threadcreate" || fail "threadcreate?sample_index=threadcreate failed"
expect_eq "an unknown sample_index" 400 "$(status "$pp/heap?sample_index=bogus")"
expect_eq "its message" 'invalid value for "sample_index" - heap has alloc_objects, alloc_space, inuse_objects, inuse_space (not "bogus")' \
    "$(curl -s "$pp/heap?sample_index=bogus")"
expect_eq "sample_index=4 (heap has 4)" 400 "$(status "$pp/heap?sample_index=4")"
expect_eq "sample_index of another profile's type" 400 "$(status "$pp/syscalls?sample_index=inuse_space")"
expect_eq "sample_index with debug=1" 400 "$(status "$pp/heap?sample_index=inuse_space&debug=1")"
expect_eq "an empty sample_index" 400 "$(status "$pp/heap?sample_index=")"

# ---- the viewer's files: no token, content types, nothing else ----
file_is() { # PATH STATUS [CONTENT-TYPE]
    local got
    got=$(curl -s -o "$TMP/file" -w '%{http_code} %{content_type}' --path-as-is "$plain/ui/speedscope/$1")
    expect_eq "/ui/speedscope/$1" "$2${3:+ $3}" "${got% }"
}
file_is "" 200 "text/html; charset=utf-8"
grep -q viewer "$TMP/file" || fail "/ui/speedscope/ is not the viewer's index.html"
file_is index.html 200 "text/html; charset=utf-8"
file_is app.js 200 "text/javascript; charset=utf-8"
file_is style.css 200 "text/css; charset=utf-8"
file_is sub/data.json 200 application/json
file_is inside.js 200 "text/javascript; charset=utf-8"
for bad in out.txt outdir/secret.txt ../speedscope/app.js sub/../app.js %2e%2e/app.js .hidden sub \
    sub/ missing.js ../../outside/secret.txt //app.js ../../debug/pprof/heap ../../debug/pprof/cmdline; do
    got=$(curl -s -o "$TMP/file" -w '%{http_code}' --path-as-is "$plain/ui/speedscope/$bad")
    expect_eq "/ui/speedscope/$bad" 404 "$got"
    if grep -q secret "$TMP/file"; then fail "/ui/speedscope/$bad served the file outside"; fi
done
expect_eq "another path under /ui/" 404 "$(status "$plain/ui/other?token=$token")"
exec 3>&- 4>&-
stop_collector || fail "ppx collect exit status $?"

# ---- no viewer ----
PPX_UI_DIR="$TMP/none" start_collector "$TMP/none.log" --socket "$sock" --http 127.0.0.1:0
grep -q "viewer (speedscope) is not installed (looked in $TMP/none/speedscope/)" "$TMP/none.log" ||
    fail "no message about the missing viewer: $(cat "$TMP/none.log")"
token=$(cat "$sock.token")
plain=${url/ppx:$token@/}
fifo_target k2 3 PPX_SAMPLE_RATE=1 "$PROGS/known_allocs" pause
curl -sf -o "$TMP/none.html" "$plain/ui/?token=$token" || fail "/ui/ without a viewer failed"
grep -q 'id=viewer-missing' "$TMP/none.html" || fail "/ui/ does not say the viewer is missing"
grep -q "href='/debug/pprof/heap?sample_index=inuse_space&amp;pid=$target_pid&amp;token=$token'" "$TMP/none.html" ||
    fail "/ui/ without a viewer does not link the raw heap profile"
expect_eq "a viewer file without a viewer" 404 "$(status "$plain/ui/speedscope/index.html")"
exec 3>&-
stop_collector || fail "ppx collect exit status $?"
finish
