#!/bin/sh
# Fuzzes the control connection of `ppx collect` (tests/fuzz/control.c): the
# request parser and the server's first-bytes dispatch, for 10 seconds from a
# seed corpus of requests.
exec sh "$(dirname "$0")/run_fuzzer.sh" control 10
