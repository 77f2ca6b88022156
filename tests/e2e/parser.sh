#!/usr/bin/env bash
# The profile reader of the other end-to-end tests (tests/lib/pprof_raw.py)
# parses what `go tool pprof -raw` really prints: a profile with known figures,
# labels, inlined frames and C++ names, written by the script itself.
. "$(dirname "$0")/../lib/common.sh"
require_pprof
pprof_raw --selftest || die "pprof_raw.py --selftest failed"
note "pprof_raw.py reads go tool pprof -raw output correctly"
