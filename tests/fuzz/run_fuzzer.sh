#!/bin/sh
# Runs one libFuzzer target of tests/fuzz for a time budget, from an empty
# work corpus it seeds itself (PPX_FUZZ_SEEDS). Skipped (exit 77) when clang
# could not build the binary. A crash leaves its input in
# tests/fuzz/NAME-crash-* in the build tree: rerun it with
#   tests/fuzz/NAME tests/fuzz/NAME-crash-<hash>
#
# Usage: run_fuzzer.sh NAME SECONDS   (PPX_FUZZ_SECONDS overrides SECONDS)
name=$1
builddir=${top_builddir:-$(dirname "$0")/../..}
bin=$builddir/tests/fuzz/$name
if [ ! -x "$bin" ]; then
    echo "SKIP: $bin was not built (needs clang with its libFuzzer runtime)"
    exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/ppx-fuzz.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" || exit 99
# The budget is time, not a pass/fail threshold: any crash, leak, UB or
# broken invariant fails the test, however quickly it is found.
PPX_FUZZ_SEEDS=$work/corpus "$bin" -max_total_time="${PPX_FUZZ_SECONDS:-$2}" \
    -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$builddir/tests/fuzz/$name-crash-" "$work/corpus"
