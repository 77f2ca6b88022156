#!/usr/bin/env bash
# I/O call audits on tests/progs/known_io, whose every call is known: in
# syscalls.pb.gz each call site (call, calling function) has exactly the
# known calls, bytes, messages, errors and EAGAINs, its descriptor labels,
# its errno breakdown and its stack up to main; nothing else is there. Counts
# are exact whatever the stack sampling (default, PPX_SYSCALL_STACKS=all,
# PPX_SYSCALL_SAMPLE=3). `go tool pprof -peek` shows the callers of a call,
# `ppx audit` prints the counts and the batching and EAGAIN hints. Under ppx
# every call returns what it returns without ppx, errno included.
# PPX_SYSCALLS=0 records no I/O call.
#
# env KNOWN_IO: the build of known_io to check (default known_io; see
# syscalls_fortify.sh); E2E_SYSCALL_MODES: the stack sampling modes.
. "$(dirname "$0")/../lib/common.sh"
require_built
require_pprof

prog="$PROGS/${KNOWN_IO:-known_io}"
export TMPDIR="$TMP" # known_io's temporary file

"$prog" print >"$TMP/plain.txt" 2>"$TMP/plain.err" ||
    die "known_io print (no ppx): exit status $?: $(cat "$TMP/plain.err")"

# Per site: call, caller, descriptor labels ("*": not checked), calls, bytes,
# messages, errors, eagain, and the function that calls the caller.
# fill_unix_stream's figures are what the program saw, filled in per run.
expected_sites() {
    cat <<EOF
sendto      udp_sendto_batch      fd=socket,family=inet,socktype=dgram    2000 200000 2000   0   0 run_udp
recvfrom    udp_recvfrom_batch    fd=socket,family=inet,socktype=dgram    2000 200000 2000   0   0 run_udp
sendmmsg    udp_sendmmsg_8        fd=socket,family=inet,socktype=dgram      10   5120   80   0   0 run_udp
recvmmsg    udp_recvmmsg_8        fd=socket,family=inet,socktype=dgram      10   5120   80   0   0 run_udp
recv        udp_recv_eagain_150   fd=socket,family=inet,socktype=dgram     150      0    0   0 150 run_udp
sendmsg     unix_sendmsg_batch    fd=socket,family=unix,socktype=dgram     300   9600  300   0   0 run_unix_dgram
recvmsg     unix_recvmsg_batch    fd=socket,family=unix,socktype=dgram     300   9600  300   0   0 run_unix_dgram
writev      pipe_writev_100       fd=pipe                                  100   6000  100   0   0 run_pipes
readv       pipe_readv_100        fd=pipe                                  100   6000  100   0   0 run_pipes
write       thread_pipe_write     fd=pipe                                 1000  16000 1000   0   0 thread_main
read        pipe_read_1000        fd=pipe                                 1000  16000 1000   0   0 run_pipes
pwrite      file_pwrite_50        fd=file                                   50  25600   50   0   0 run_file
pwrite      file_pwrite64_10      fd=file                                   10   5120   10   0   0 run_file
pread       file_pread_50         fd=file                                   50  25600   50   0   0 run_file
pread       file_pread64_10       fd=file                                   10   5120   10   0   0 run_file
sendfile    file_sendfile_10      *                                         10   1000   10   0   0 run_file
splice      pipe_splice_10        *                                         10   1000   10   0   0 run_file
connect     tcp_connect_20        fd=socket,family=inet,socktype=stream     20      0    0   0   0 run_tcp
accept      tcp_accept_10         fd=socket,family=inet,socktype=stream     10      0    0   0   0 run_tcp
accept4     tcp_accept4_10        fd=socket,family=inet,socktype=stream     10      0    0   0   0 run_tcp
send        tcp_send_50           fd=socket,family=inet,socktype=stream     50  10000   50   0   0 run_tcp
recv        tcp_recv_50           fd=socket,family=inet,socktype=stream     50  10000   50   0   0 run_tcp
connect     tcp_connect_refused_5 fd=socket,family=inet,socktype=stream      5      0    0   5   0 run_tcp
read        read_badfd_100        -                                        100      0    0 100   0 main
poll        poll_100              -                                        100      0    0   0   0 run_readiness
ppoll       ppoll_10              -                                         10      0    0   0   0 run_readiness
epoll_wait  epoll_wait_100        *                                        100      0    0   0   0 run_readiness
epoll_pwait epoll_pwait_10        *                                         10      0    0   0   0 run_readiness
select      select_100            -                                        100      0    0   0   0 run_readiness
pselect     pselect_10            -                                         10      0    0   0   0 run_readiness
epoll_create epoll_create_2       -                                          2      0    0   0   0 run_readiness
epoll_create1 epoll_create1_3     -                                          3      0    0   0   0 run_readiness
epoll_ctl   epoll_ctl_30          fd=pipe                                   30      0    0   0   0 run_readiness
epoll_ctl   epoll_ctl_enoent_5    fd=pipe                                    5      0    0   5   0 run_readiness
write       fill_unix_stream      fd=socket,family=unix,socktype=stream $1 $2 $(($1 - 1)) 0 1 run_fill
EOF
}

expected_errnos() {
    printf '%s\t%s\t%s\t%s\t%s\n' \
        connect tcp_connect_refused_5 ECONNREFUSED 5 0 \
        epoll_ctl epoll_ctl_enoent_5 ENOENT 5 0 \
        read read_badfd_100 EBADF 100 0 \
        recv udp_recv_eagain_150 EAGAIN 0 150 \
        write fill_unix_stream EAGAIN 0 1 | sort
}

# check_sites WHERE EXPECTED SITES: every expected site with its figures,
# and no other site.
check_sites() {
    local where=$1 problems
    problems=$(awk -v where="$where" '
        NR == FNR {
            if ($0 ~ /^[ \t]*$/) next
            key = $1 SUBSEP $2
            want_labels[key] = $3
            want[key] = $4 " " $5 " " $6 " " $7 " " $8
            order[++n] = key
            next
        }
        {   # io_sites.py: call caller labels calls time bytes messages errors eagain mapping
            key = $1 SUBSEP $2
            if (!(key in want)) {
                printf "%s: unexpected site %s called from %s (%s): %s calls\n", where, $1, $2, $3, $4
                next
            }
            calls[key] += $4; time[key] += $5; bytes[key] += $6; msgs[key] += $7
            errs[key] += $8; eagain[key] += $9
            if (key in labels)
                labels[key] = labels[key] "|" $3
            else
                labels[key] = $3
        }
        END {
            for (i = 1; i <= n; i++) {
                key = order[i]
                split(key, kp, SUBSEP)
                site = kp[1] " in " kp[2]
                if (!(key in calls)) {
                    printf "%s: no site %s (expected calls bytes messages errors eagain: %s)\n", where, site, want[key]
                    continue
                }
                got = calls[key] " " bytes[key] " " msgs[key] " " errs[key] " " eagain[key]
                if (got != want[key])
                    printf "%s: %s: calls bytes messages errors eagain: expected %s, got %s\n", where, site, want[key], got
                if (want_labels[key] != "*" && labels[key] != want_labels[key])
                    printf "%s: %s: descriptor labels: expected %s, got %s\n", where, site, want_labels[key], labels[key]
                if (!(time[key] > 0))
                    printf "%s: %s: no time recorded for %s calls\n", where, site, calls[key]
            }
        }' "$2" "$3")
    [ -z "$problems" ] || fail "$problems"
}

# check_stacks WHERE EXPECTED STACKS: each site's stacks start with its
# caller and the caller's caller, and reach main (thread_main for the
# threads).
check_stacks() {
    local problems
    problems=$(awk -v where="$1" '
        NR == FNR { if (NF) parent[$1 SUBSEP $2] = $NF; next }
        {   # call, stack (caller;...;root), calls
            split($2, frames, ";")
            key = $1 SUBSEP frames[1]
            if (!(key in parent)) next   # check_sites reports it
            root = parent[key] == "thread_main" ? "thread_main" : "main"
            if (frames[2] != parent[key] || index(";" $2 ";", ";" root ";") == 0)
                printf "%s: %s calls of %s: stack %s, expected %s;%s;...%s\n", where, $3, $1, $2, frames[1], parent[key], root
        }' "$2" "$3")
    [ -z "$problems" ] || fail "$problems"
}

# fill_figures OUTPUT: "CALLS BYTES" as fill_unix_stream printed them.
fill_figures() {
    sed -n 's/^fill_unix_stream calls=\([0-9]*\) bytes=\([0-9]*\) partial=\([0-9]*\) eagain=1$/\1 \2 \3/p' "$1"
}

read -r fill_calls fill_bytes fill_partial < <(fill_figures "$TMP/plain.txt")
[ -n "${fill_calls:-}" ] || die "known_io printed no fill_unix_stream line: $(tail -3 "$TMP/plain.txt")"
[ "$fill_partial" -ge 1 ] || note "no partial write seen (calls=$fill_calls bytes=$fill_bytes)"

for mode in ${E2E_SYSCALL_MODES:-default stacks_all sample_3}; do
    out="$TMP/$mode"
    case $mode in
    default) env=() ;;
    stacks_all) env=(PPX_SYSCALL_STACKS=all) ;;
    sample_3) env=(PPX_SYSCALL_SAMPLE=3) ;;
    esac
    env "${env[@]}" "$PPX" record -q --exact -o "$out" -- "$prog" print \
        >"$TMP/$mode.txt" 2>"$TMP/$mode.err" ||
        die "$mode: ppx record -- known_io print: exit status $?, stderr: $(cat "$TMP/$mode.err")"

    # The same return values and errno as without ppx, call by call.
    if ! diff -u "$TMP/plain.txt" "$TMP/$mode.txt" >"$TMP/$mode.diff"; then
        fail "$mode: return values or errno differ under ppx: $(head -20 "$TMP/$mode.diff")"
    fi

    file="$out/syscalls.pb.gz"
    [ -s "$file" ] || die "$mode: $file not written (ls: $(ls "$out" 2>&1))"
    read -r calls bytes partial < <(fill_figures "$TMP/$mode.txt")
    expected_sites "${calls:-0}" "${bytes:-0}" >"$TMP/$mode.expected"
    io_sites "$file" >"$TMP/$mode.sites" || die "$mode: go tool pprof cannot read $file"
    check_sites "$mode" "$TMP/$mode.expected" "$TMP/$mode.sites"
    io_sites "$file" --errnos >"$TMP/$mode.errnos" || die "$mode: cannot read $file"
    expected_errnos >"$TMP/errnos.expected"
    diff -u "$TMP/errnos.expected" "$TMP/$mode.errnos" >"$TMP/$mode.errnos.diff" ||
        fail "$mode: errno-labelled failures (call caller errno errors eagain) differ: $(cat "$TMP/$mode.errnos.diff")"
    io_sites "$file" --stacks >"$TMP/$mode.stacks" || die "$mode: cannot read $file"
    check_stacks "$mode" "$TMP/$mode.expected" "$TMP/$mode.stacks"
    # Every caller is in known_io itself.
    other=$(awk -F'\t' -v p="$(readlink -f "$prog")" '$10 != p' "$TMP/$mode.sites")
    [ -z "$other" ] || fail "$mode: sites whose caller is not in known_io: $other"
done

file="$TMP/default/syscalls.pb.gz"
header=$(pprof_raw "$file" --header) || die "go tool pprof cannot read $file"
expect_eq "sample types" "calls time bytes messages errors eagain" \
    "$(printf '%s\n' "$header" | awk -F'\t' '$1 == "sample_types" { print $2 }')"
expect_eq "default sample type" calls "$(pprof_raw "$file" --default-type)"
expect_eq "pid labels (one process)" "" "$(pprof_raw "$file" --labels | awk -F'\t' '$1 == "pid"' | head -1)"

# go tool pprof -peek: the callers of the synthetic frames.
expect_eq "-peek sendto" "udp_sendto_batch 2000" "$(io_sites "$file" --peek sendto | tr '\t\n' '  ' | sed 's/ $//')"
expect_eq "-peek pread" "file_pread_50 50 file_pread64_10 10" \
    "$(io_sites "$file" --peek pread | tr '\t\n' '  ' | sed 's/ $//')"

# ppx audit: totals, rows and hints (all rows: --top 100).
read -r calls bytes partial < <(fill_figures "$TMP/default.txt")
total=$(expected_sites "$calls" "$bytes" | awk '{ s += $4 } END { print s }')
"$PPX" audit --top 100 "$TMP/default" >"$TMP/audit" 2>"$TMP/audit.err" ||
    fail "ppx audit DIR: exit status $?: $(cat "$TMP/audit.err")"
head -1 "$TMP/audit" | grep -Eq ": $total I/O calls in [0-9.]+ s, 261 failed \(151 EAGAIN\)$" ||
    fail "ppx audit: first line: expected $total I/O calls, 261 failed (151 EAGAIN), got: $(head -1 "$TMP/audit")"
row() { awk -v c="$1" -v d="$2" '$1 == c && $2 == d' "$TMP/audit"; }
expect_eq "audit sendto inet/dgram calls" 2000 "$(row sendto inet/dgram | awk '{ print $3 }')"
expect_eq "audit sendto inet/dgram avg_B" 100.0 "$(row sendto inet/dgram | awk '{ print $7 }')"
case $(row sendto inet/dgram) in *"udp_sendto_batch 100%"*) ;;
*) fail "audit sendto row: top caller not udp_sendto_batch 100%: $(row sendto inet/dgram)" ;; esac
expect_eq "audit recvmmsg inet/dgram calls" 10 "$(row recvmmsg inet/dgram | awk '{ print $3 }')"
expect_eq "audit recvmmsg inet/dgram avg_B" 512.0 "$(row recvmmsg inet/dgram | awk '{ print $7 }')"
expect_eq "audit recv inet/dgram eagain%" 100.0% "$(row recv inet/dgram | awk '{ print $9 }')"
expect_eq "audit read (no descriptor) errors" 100 "$(row read - | awk '{ print $8 }')"
expect_eq "audit epoll_ctl pipe calls errors" "35 5" "$(row epoll_ctl pipe | awk '{ print $3, $8 }')"
expect_eq "audit epoll_create1 calls" 3 "$(row epoll_create1 - | awk '{ print $3 }')"
expect_eq "audit epoll_create calls" 2 "$(row epoll_create - | awk '{ print $3 }')"
case $(row pread file) in *"file_pread_50 83%, file_pread64_10 17%"*) ;;
*) fail "audit pread row: callers not file_pread_50 83%, file_pread64_10 17%: $(row pread file)" ;; esac
hints=$(sed -n '/^Hints:$/,$p' "$TMP/audit" | grep '^- ')
expect_eq "audit hints" 3 "$(printf '%s\n' "$hints" | grep -c .)"
for want in '^- recvfrom at udp_recvfrom_batch \(known_io\.c:[0-9]+\): 2000 calls on inet/dgram sockets, 100 bytes per call .*recvmmsg' \
    '^- sendto at udp_sendto_batch \(known_io\.c:[0-9]+\): 2000 calls on inet/dgram sockets, 100 bytes per call .*sendmmsg' \
    '^- 100% of recv calls at udp_recv_eagain_150 \(known_io\.c:[0-9]+\) returned EAGAIN: check readiness'; do
    printf '%s\n' "$hints" | grep -Eq "$want" || fail "audit: no hint matching /$want/ in: $hints"
done

# PPX_SYSCALLS=0: the calls pass through, none is recorded; heap profiles still are.
PPX_SYSCALLS=0 "$PPX" record -q -o "$TMP/off" -- "$prog" print >"$TMP/off.txt" 2>"$TMP/off.err" ||
    die "PPX_SYSCALLS=0 ppx record: exit status $?, stderr: $(cat "$TMP/off.err")"
diff -q "$TMP/plain.txt" "$TMP/off.txt" >/dev/null || fail "PPX_SYSCALLS=0: return values differ from a plain run"
[ -s "$TMP/off/heap.pb.gz" ] || fail "PPX_SYSCALLS=0: heap.pb.gz not written"
if [ -s "$TMP/off/syscalls.pb.gz" ]; then
    expect_eq "PPX_SYSCALLS=0 samples in syscalls.pb.gz" 0 \
        "$(pprof_raw "$TMP/off/syscalls.pb.gz" --header | awk -F'\t' '$1 == "samples" { print $2 }')"
fi
finish
