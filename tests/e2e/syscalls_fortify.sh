#!/usr/bin/env bash
# syscalls.sh on known_io built with -D_FORTIFY_SOURCE=2, as Debian and
# Ubuntu build their packages: read, pread, recv, recvfrom, poll and ppoll
# then reach the C library through glibc's inline wrappers (bits/unistd.h,
# bits/socket2.h, bits/poll2.h), which the debug information records as
# inlined functions named like the call at the caller's address. The caller
# of each call must still be the program's function, in the profile and in
# ppx audit, not the wrapper.
export KNOWN_IO=known_io_fortify E2E_SYSCALL_MODES=default
exec bash "$(dirname "$0")/syscalls.sh"
