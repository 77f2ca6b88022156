# Sourced by the CPU and thread end-to-end tests after common.sh.
#
# Why the bounds in these tests are what they are: ppx's CPU timers are
# per-thread timers on each thread's own CPU clock (timer_create on
# CLOCK_THREAD_CPUTIME_ID), the clock the test programs measure their own
# CPU with. Such a timer is not a random sampler: it expires every period P
# of that thread's CPU time, from a random first expiry, so a thread that
# used C ns of CPU has floor(C/P) or ceil(C/P) expiries. The kernel checks
# expiries only at its scheduler tick (a jiffy: 4 ms at HZ=250, at most
# 10 ms), on the thread running then; several expiries found at once come
# as one signal whose overrun count says how many (ppx counts them all).
# So, per thread:
# - never more than C/P + 1 samples, plus one for the expiry the tick of
#   the thread's first jiffy may add: tick_bound = 2 + one jiffy's worth;
# - fewer by what the thread used after the tick last caught it running:
#   expiries of its last stretch are never delivered once it ends. On an
#   idle machine that is under a jiffy; when other threads keep it off the
#   CPU (8 threads on 2 cores, or a CI machine running other tests) the tick
#   catches it less often. Measured without ppx (a program counting its own
#   timers' signals and overruns, 8 threads on 2 cores next to 4 busy
#   loops): up to 3 of 16 ticks short. Hence an undercount allowance of
#   tick_bound + 20% of C/P, plus the ticks ppx counted as lost (it could
#   not record them: the thread was inside ppx; they are reported on their
#   own synthetic frame, so the totals stay true, but they could be any
#   thread's).
# That is not the sqrt(N) of a Poisson sampler: the 3:1 ratio test's
# +-5% (+-10 of 200 ticks) keeps a margin of 3x over it. What else is in a
# process's getrusage and not in its profile: the CPU of ppx's own flusher
# thread, what a thread uses before its timer exists and after it is
# deleted, and threads shorter than a jiffy, which the kernel's tick hardly
# ever catches running.
# Not covered: on a machine overloaded several times over (load 5-8 on 2
# cores), Linux 6.18 holds back a thread's CPU-timer signals for a hundred
# ms and more, with or without ppx: a program with its own 10 ms timer,
# spinning 100 ms of its CPU next to 4 busy loops, got no signal at all in
# 6 of 40 runs (timer_gettime said 1 ns left, nothing pending); run longer,
# the signals came back with overrun counts that made up the gap. A thread
# that ends (or a timer deleted) during such a stretch loses its ticks.
# These tests expect a CI machine running tests, not that; the few checks
# on one short stretch try twice.

# check_cpu_header WHERE FILE HZ: cpu.pb.gz is laid out as Go writes CPU
# profiles: sample types samples/count and cpu/nanoseconds (cpu shown by
# default), period type cpu/nanoseconds, period 1e9/HZ, time and duration set.
check_cpu_header() {
    local where=$1 file=$2 hz=$3 header
    header=$(pprof_raw "$file" --header) || { fail "$where: go tool pprof cannot read $file"; return 1; }
    expect_eq "$where sample types" "samples cpu" "$(header_field "$header" sample_types)"
    expect_eq "$where period type" "cpu nanoseconds" "$(header_field "$header" period_type)"
    expect_eq "$where period (1e9/$hz)" $((1000000000 / hz)) "$(header_field "$header" period)"
    [ -n "$(header_field "$header" time)" ] || fail "$where: no time in the profile"
    [ -n "$(header_field "$header" duration)" ] || fail "$where: no duration in the profile"
    expect_eq "$where default sample type" cpu "$(pprof_raw "$file" --default-type)"
}

# tick_bound HZ: the most ticks a thread's count may be off by at HZ
# (2 + one 10 ms jiffy's worth, rounded up).
tick_bound() {
    echo $((2 + ($1 + 99) / 100))
}

# expect_ticks NAME EXPECTED_NS SAMPLES PERIOD_NS BOUND [LOST]: a thread or
# function that used EXPECTED_NS of CPU got SAMPLES ticks of PERIOD_NS: at
# most BOUND more than EXPECTED_NS/PERIOD_NS, at most BOUND + 20% + LOST
# fewer (see the top of this file).
expect_ticks() {
    local lost=${6:-0}
    if ! awk -v e="$2" -v s="$3" -v p="$4" -v b="$5" -v l="$lost" \
        'BEGIN { want = e / p; exit !(s != "" && s - want <= b && want - s <= b + 0.2 * want + l) }'; then
        fail "$1: used $(awk -v e="$2" 'BEGIN { printf "%.1f ms", e / 1e6 }') of CPU, expected $(awk -v e="$2" -v p="$4" 'BEGIN { printf "%.1f", e / p }') samples of $(($4 / 1000000)) ms (+$5, -$5-20%-$lost lost), got ${3:-none}"
        return 1
    fi
    return 0
}

# dump_profile FILE NAME: FILE read once through `go tool pprof` into
# $TMP/NAME.dump (pprof_raw.py --dump: a line per sample), for dq.
dump_profile() {
    pprof_raw "$1" --dump >"$TMP/$2.dump" || { fail "go tool pprof cannot read $1"; return 1; }
}

# dq NAME TYPE total|flat FUNC|cum FUNC|by KEY [KEY=VALUE]: a figure of the
# profile dumped as NAME, summed over sample type TYPE: all samples, those
# whose leaf is FUNC, those with FUNC anywhere in their stack, or the total
# per value of label KEY ("VALUE<TAB>total" lines, "" for samples without
# it); only samples labelled KEY=VALUE if given.
dq() {
    awk -F'\t' -v type="$2" -v what="$3" -v arg="${4:-}" -v label="${5:-}" '
        NR == 1 { n = split($2, t, " "); for (i = 1; i <= n; i++) if (t[i] == type) col = i; next }
        !col { exit 2 }
        label != "" && index(";" $2 ";", ";" label ";") == 0 { next }
        {
            split($1, v, " "); val = v[col]
            if (what == "total") tot += val
            else if (what == "flat") { split($3, f, ";"); if (f[1] == arg) tot += val }
            else if (what == "cum") { if (index(";" $3 ";", ";" arg ";")) tot += val }
            else if (what == "by") {
                key = ""; m = split($2, l, ";")
                for (i = 1; i <= m; i++) if (index(l[i], arg "=") == 1) key = substr(l[i], length(arg) + 2)
                by[key] += val
            }
        }
        END {
            if (what == "by") { for (k in by) printf "%s\t%.0f\n", k, by[k] }
            else printf "%.0f\n", tot
        }' "$TMP/$1.dump" | sort
}

# dtable NAME TYPE K1,K2,...: per sample of the dump NAME, its value of
# TYPE, its leaf function, then its labels K1, K2, ... ("-" if absent),
# tab-separated (as pprof_raw.py --sample-table).
dtable() {
    awk -F'\t' -v type="$2" -v keys="$3" '
        NR == 1 { n = split($2, t, " "); for (i = 1; i <= n; i++) if (t[i] == type) col = i
                  nk = split(keys, k, ","); next }
        {
            split($1, v, " "); split($3, f, ";"); line = v[col] "\t" f[1]
            delete lab
            m = split($2, l, ";")
            for (i = 1; i <= m; i++) { e = index(l[i], "="); lab[substr(l[i], 1, e - 1)] = substr(l[i], e + 1) }
            for (j = 1; j <= nk; j++) line = line "\t" ((k[j] in lab) ? lab[k[j]] : "-")
            print line
        }' "$TMP/$1.dump"
}

# lost_samples NAME: ticks ppx could not record (its synthetic frame), in
# the profile dumped as NAME.
lost_samples() {
    dq "$1" samples flat "ppx: lost samples"
}

# prog_field OUTPUT FIRST_WORD KEY: in the line of OUTPUT starting with
# FIRST_WORD, the word after KEY ("spin_three tid 12 cpu_ns 34" -> 34).
prog_field() {
    printf '%s\n' "$1" | awk -v w="$2" -v k="$3" '$1 == w { for (i = 2; i < NF; i++) if ($i == k) { print $(i + 1); exit } }'
}
