#!/usr/bin/env bash
# heap?debug=1 (Go's legacy text, whose "#" lines are for people) names C++
# functions demangled in full, as c++filt would: ns::Logger::format(int),
# Widget::Widget(); the stack addresses pprof reads are unchanged.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
. "$TESTS_LIB/collect.sh"

start_collector "$TMP/collect.log" --socket "$sock" --http 127.0.0.1:0
# Every allocation recorded; then it waits for the end of its input.
fifo_target cxx 3 PPX_SAMPLE_RATE=1 "$PROGS/known_allocs_cxx" pause
curl -sf -o "$TMP/heap.txt" "$pp/heap?debug=1&pid=$target_pid" || fail "heap?debug=1 failed"
head -1 "$TMP/heap.txt" | grep -q '^heap profile: ' ||
    fail "heap?debug=1: not Go's header: $(head -1 "$TMP/heap.txt")"
# The record of ns::Logger::format: 10 blocks of 64 bytes, all in use.
grep -q '^10: 640 \[10: 640\] @ ' "$TMP/heap.txt" || fail "heap?debug=1: no record 10: 640 [10: 640]"
grep -Eq $'^#\t0x[0-9a-f]+\tns::Logger::format\\(int\\)\t.*known_allocs_cxx\\.cpp:[0-9]+$' "$TMP/heap.txt" ||
    fail "heap?debug=1: no frame ns::Logger::format(int): $(grep -m3 -i format "$TMP/heap.txt")"
grep -Eq $'^#\t0x[0-9a-f]+\tWidget::Widget\\(\\)\t' "$TMP/heap.txt" ||
    fail "heap?debug=1: no frame Widget::Widget(): $(grep -m3 Widget "$TMP/heap.txt")"
mangled=$(grep -E $'^#\t0x[0-9a-f]+\t_Z' "$TMP/heap.txt")
[ -z "$mangled" ] || fail "heap?debug=1: mangled names left: $mangled"
exec 3>&-
wait "$target_pid"
expect_eq "exit status of known_allocs_cxx" 0 "$?"
finish
