#!/bin/sh
# Fuzzes the wire stream decoder (tests/fuzz/wire.c) for 20 seconds from a
# seed corpus of valid streams.
exec sh "$(dirname "$0")/run_fuzzer.sh" wire 20
