#!/usr/bin/env bash
# The cache of inflated debug files (collector/symbol/debug_cache.c): with
# it, without it (PPX_CACHE=off), filling it and reading it, known_allocs
# gets the same profiles, libc's frames with their files and lines; the
# copy is what a second run reads; a bad copy (garbage, truncated, another
# file's, a symlink) is ignored, the profile still right, and made again;
# ppx record makes the copies while its command runs.
# Skipped where no separate debug file with compressed sections is
# installed (Debian's libc6-dbg has one for libc).
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

prog="$PROGS/known_allocs"
export XDG_CACHE_HOME="$TMP/cache"
cache="$XDG_CACHE_HOME/ppx/debug"

record() { # NAME [ENV...]: known_allocs, exact, into $TMP/NAME
    local name=$1
    shift
    env "$@" PPX_CPU_HZ=0 "$PPX" record -q --exact -o "$TMP/$name" -- "$prog" \
        >/dev/null 2>"$TMP/$name.stderr" ||
        die "record $name: exit status $?, stderr: $(cat "$TMP/$name.stderr")"
}

# shape NAME: heap and allocs of $TMP/NAME without what ASLR moves: every
# location's lines (function file:line), every sample's values and stack.
shape() {
    local f
    for f in heap allocs; do
        go_pprof -raw "$TMP/$1/$f.pb.gz" 2>/dev/null | sed -n '/^Locations/,/^Mappings/p' |
            sed -E 's/^ *[0-9]+: 0x[0-9a-f]+ M=[0-9]+//; s/^ +//' | sort -u
        pprof_raw "$TMP/$1/$f.pb.gz" --dump | sort
    done
}

record off PPX_CACHE=off
[ -d "$cache" ] && fail "PPX_CACHE=off wrote $cache: $(ls "$cache")"
shape off >"$TMP/off.shape"
grep -q '^__libc_start_call_main .*libc_start_call_main\.h:[1-9]' "$TMP/off.shape" ||
    skip "libc has no line numbers here (no libc6-dbg?): $(grep __libc_start_call_main "$TMP/off.shape")"

record fill
copies=$(ls "$cache" 2>/dev/null | grep -c '\.debug$')
[ "$copies" -gt 0 ] || skip "no separate debug file with compressed sections installed"
libc_id=$(readelf -n "$(ldd "$prog" | awk '$1 ~ /^libc\.so/ { print $3 }')" | awk '/Build ID:/ { print $3 }')
copy="$cache/$libc_id.debug"
[ -f "$copy" ] || skip "libc's debug file is not compressed: no copy of it ($(ls "$cache"))"
expect_eq "copies are private" 600 "$(stat -c %a "$copy")"
ls "$cache" | grep -q tmp && fail "temporary files left in $cache: $(ls "$cache")"
shape fill >"$TMP/fill.shape"
cmp -s "$TMP/off.shape" "$TMP/fill.shape" ||
    fail "filling the cache changed the profiles: $(diff "$TMP/off.shape" "$TMP/fill.shape" | head -20)"

good_size=$(stat -c %s "$copy")
good_inode=$(stat -c %i "$copy")
record warm
expect_eq "the copy is read, not made again" "$good_inode" "$(stat -c %i "$copy")"
shape warm >"$TMP/warm.shape"
cmp -s "$TMP/off.shape" "$TMP/warm.shape" ||
    fail "the cached copy changed the profiles: $(diff "$TMP/off.shape" "$TMP/warm.shape" | head -20)"

# The copy is what is read: a file name changed in it (same length, so the
# file stays sound) shows in the profile.
cp "$copy" "$TMP/good.debug"
perl -0777 -pi -e 's/libc_start_call_main\.h/ppx_cached_copy_read.h/g' "$copy"
record marked
shape marked | grep -q '^__libc_start_call_main .*ppx_cached_copy_read\.h:[1-9]' ||
    fail "the second run did not read the cached copy: $(shape marked | grep __libc_start_call_main)"

# bad NAME: $copy replaced by something bad (made by the caller) is
# ignored: the profile is right and a sound copy is made again.
bad() {
    record "$1"
    shape "$1" >"$TMP/$1.shape"
    cmp -s "$TMP/off.shape" "$TMP/$1.shape" ||
        fail "$1 copy: profiles differ: $(diff "$TMP/off.shape" "$TMP/$1.shape" | head -20)"
    [ -f "$copy" ] && [ ! -L "$copy" ] || fail "$1 copy: not made again"
    expect_eq "$1 copy: made again, whole" "$good_size" "$(stat -c %s "$copy" 2>/dev/null)"
    [ -s "$TMP/$1.stderr" ] && fail "$1 copy: ppx said: $(cat "$TMP/$1.stderr")"
}

head -c 100000 /dev/urandom >"$copy"
bad garbage
head -c $((good_size / 2)) "$TMP/good.debug" >"$copy"
bad truncated
cp "$prog" "$copy" # a sound ELF file, of another build id
bad foreign
rm -f "$copy"
ln -s "$TMP/good.debug" "$copy"
bad symlink
printf 'ELF' >"$copy"
bad short

# ppx record makes the copies while the command runs (cmd/record_warm.c),
# not after it exits: with an empty cache, a command that waits for libc's
# copy (10 s at most) finds it before it ends.
rm -rf "$cache"
"$PPX" record -q -o "$TMP/early" -- sh -c '
    for i in $(seq 100); do [ -f "$1" ] && exit 0; sleep 0.1; done; exit 1' sh "$copy" \
    2>"$TMP/early.stderr" ||
    fail "libc's copy was not made while the command ran (status $?): $(ls "$cache" 2>&1)"
expect_eq "the copy made early is whole" "$good_size" "$(stat -c %s "$copy" 2>/dev/null)"
ls "$cache" | grep -q tmp && fail "temporary files left in $cache: $(ls "$cache")"

finish
