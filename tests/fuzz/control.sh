#!/bin/sh
# Fuzzes the control connection of `ppx collect` (tests/fuzz/control.c):
# the request parser and the server's first-bytes dispatch, for 10 seconds
# from a seed corpus of requests. Skipped (exit 77) when clang could not
# build the libFuzzer binary. A crash leaves its input in
# tests/fuzz/control-crash-* in the build tree: rerun it with
#   tests/fuzz/control tests/fuzz/control-crash-<hash>
builddir=${top_builddir:-$(dirname "$0")/../..}
bin=$builddir/tests/fuzz/control
if [ ! -x "$bin" ]; then
    echo "SKIP: $bin was not built (needs clang with its libFuzzer runtime)"
    exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/ppx-fuzz.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" || exit 99
# The budget is time, not a pass/fail threshold: any crash, leak, UB or
# broken promise fails the test, however quickly it is found.
PPX_FUZZ_SEEDS=$work/corpus "$bin" -max_total_time="${PPX_FUZZ_SECONDS:-10}" \
    -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$builddir/tests/fuzz/control-crash-" "$work/corpus"
