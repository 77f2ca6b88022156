#!/usr/bin/env bash
# Block and mutex profiles (block.pb.gz, mutex.pb.gz), as Go defines them:
# block charges a wait at the stack that waited, mutex at the stack that
# released the lock others waited for. tests/progs/contention measures its
# own waits (and the holders what they made the waiters wait: from a
# waiter's start to the holder's release, not the waiter's wake-up after
# it, which can take milliseconds on a loaded machine); the profiles must
# agree within 5%, and count as many contentions as its calls that did
# wait (all of them, unless a loaded machine let a holder finish before
# its waiter came):
# - with every event recorded (PPX_BLOCK_RATE=1, PPX_MUTEX_FRACTION=1): a
#   mutex held 50 ms while another thread waits, 20 times: block ~1.0 s and
#   20 contentions at wait_mutex, mutex ~1.0 s and 20 contentions at
#   hold_mutex; a condition variable waited 30 ms x 10 (~0.3 s at
#   wait_cond); an rwlock's read side waiting for its writer (40 ms x 10,
#   at wait_rwlock, and at hold_rwlock in the mutex profile); a semaphore
#   (20 ms x 10 at wait_sem). The profiles are laid out as Go writes them
#   (sample types contentions/count, delay/nanoseconds, period type
#   contentions/count, period 1) and no sample has ppx's frames.
# - return values are glibc's (trylock's EBUSY, EDEADLK, EPERM, ETIMEDOUT,
#   a robust mutex's EOWNERDEAD; errno after a semaphore wait); contended
#   locks inside a dl_iterate_phdr callback with stdio and malloc busy on
#   another thread do not deadlock; a child forked while a thread waits for
#   a lock its parent holds uses that lock.
# - a program linked against the old condition variables
#   (pthread_cond_*@GLIBC_2.2.5, tests/progs/old_cond) still works: only
#   the default versions are hooked.
# - C++: std::mutex, std::shared_mutex, std::condition_variable
#   (tests/progs/contention_cxx), the same way.
# - the defaults (PPX_BLOCK_RATE 100000 ns: every wait here is longer, so the
#   block figures are exact; PPX_MUTEX_FRACTION 10: whatever mutex events
#   were taken stand for 10 each, each ~50 ms);
# - sampling of short waits: 200 semaphore waits of ~2 ms at PPX_BLOCK_RATE
#   10 ms: each is taken with probability wait/rate and stands for rate/wait
#   contentions of rate ns, so delay per contention is the mean wait (within
#   15%: about 40 waits are taken), and the totals estimate 200 contentions and the measured delay
#   (within 50%: about 40 waits are taken, a binomial spread of 14%).
# - PPX_BLOCK_RATE=0 PPX_MUTEX_FRACTION=0: empty profiles.
# - live: /debug/pprof/ lists block and mutex, and mutex?seconds=2 holds
#   the contention of those 2 seconds only.
. "$(dirname "$0")/../lib/common.sh"
. "$TESTS_LIB/cpu_common.sh"
require_built
require_pprof
cd "$TMP" || exit 99

# record WHERE PROGRAM [ENV...]: PROGRAM under ppx record into $TMP/WHERE.
record() {
    local where=$1 prog=$2
    shift 2
    env "$@" "$PPX" record -q -o "$TMP/$where" -- "$PROGS/$prog" \
        >"$TMP/$where.out" 2>"$TMP/$where.err" ||
        die "$where: ppx record -- $prog: exit status $?, stderr: $(cat "$TMP/$where.err")"
    for f in block mutex; do
        [ -s "$TMP/$where/$f.pb.gz" ] || die "$where: $f.pb.gz not written"
        dump_profile "$TMP/$where/$f.pb.gz" "$where.$f" || return
    done
}

# waited WHERE FUNC: the wait_ns FUNC printed for itself; waits WHERE FUNC:
# how many of its calls did wait (a round whose waiter came late, on a
# loaded machine, did not).
waited() {
    prog_field "$(cat "$TMP/$1.out")" "$2" wait_ns
}
waits() {
    prog_field "$(cat "$TMP/$1.out")" "$2" waits
}
# caused WHERE FUNC: what holder FUNC made its waiter wait, as it measured it
# (from the waiter's start to its own release: the mutex profile's delay).
caused() {
    prog_field "$(cat "$TMP/$1.out")" "$2" caused_ns
}

# check_header WHERE PROFILE: laid out as Go's printCountCycleProfile.
check_header() {
    local header
    header=$(pprof_raw "$TMP/$1/$2.pb.gz" --header) || { fail "$1: cannot read $2.pb.gz"; return; }
    expect_eq "$1 $2 sample types" "contentions delay" "$(header_field "$header" sample_types)"
    expect_eq "$1 $2 period type" "contentions count" "$(header_field "$header" period_type)"
    expect_eq "$1 $2 period" 1 "$(header_field "$header" period)"
    expect_eq "$1 $2 default sample type (none, as Go)" "" "$(header_field "$header" default_type)"
}

# expect_wait WHERE PROFILE FUNC WANT_NS COUNT [flat|cum]: FUNC has WANT_NS
# of delay within 5%, and COUNT contentions (if not "-").
expect_wait() {
    local where=$1 prof=$2 func=$3 want=$4 count=$5 how=${6:-flat} delay n
    delay=$(dq "$where.$prof" delay "$how" "$func")
    n=$(dq "$where.$prof" contentions "$how" "$func")
    note "$where $prof: $func $(awk -v d="$delay" 'BEGIN { printf "%.1f", d / 1e6 }') ms in $n contentions (it measured $(awk -v d="$want" 'BEGIN { printf "%.1f", d / 1e6 }') ms)"
    expect_within_pct "$where $prof: delay at $func (ns)" "$want" "$delay" 5
    [ "$count" = - ] || expect_eq "$where $prof: contentions at $func" "$count" "$n"
}

# no_own_frames WHERE PROFILE: no sample has ppx's or libunwind's frames,
# nor a pthread or sem function at its leaf.
no_own_frames() {
    local bad
    bad=$(awk -F'\t' 'NR > 1 && $3 ~ /(^|;)(ppx_[^;]*|lock_slow|unlock_slow|cond_wait|sem_wait_slow|_ULx86_64[^;]*|unw_[^;]*)(;|$)/' "$TMP/$1.$2.dump" | head -3)
    [ -z "$bad" ] || fail "$1 $2: samples with ppx's or libunwind's frames: $bad"
    bad=$(awk -F'\t' 'NR > 1 { split($3, f, ";"); if (f[1] ~ /^(pthread_|sem_)/) print }' "$TMP/$1.$2.dump" | head -3)
    [ -z "$bad" ] || fail "$1 $2: samples whose leaf is the lock call itself: $bad"
}

# ---- every event recorded ---------------------------------------------------
record all contention PPX_BLOCK_RATE=1 PPX_MUTEX_FRACTION=1
out=$(cat "$TMP/all.out")
check_header all block
check_header all mutex
expect_wait all block wait_mutex "$(waited all wait_mutex)" "$(waits all wait_mutex)"
expect_wait all block wait_cond "$(waited all wait_cond)" "$(waits all wait_cond)"
expect_wait all block wait_rwlock "$(waited all wait_rwlock)" "$(waits all wait_rwlock)"
expect_wait all block wait_sem "$(waited all wait_sem)" "$(waits all wait_sem)"
expect_wait all mutex hold_mutex "$(caused all hold_mutex)" "$(waits all wait_mutex)"
expect_wait all mutex hold_rwlock "$(caused all hold_rwlock)" "$(waits all wait_rwlock)"
no_own_frames all block
no_own_frames all mutex
grep -qx 'semantics ok' <<<"$out" || fail "return values: $(cat "$TMP/all.err")"
expect_eq "fork: the child's exit status" 0 "$(prog_field "$out" fork child_status)"
[ "$(prog_field "$out" loader callbacks)" -gt 0 ] 2>/dev/null ||
    fail "loader: no dl_iterate_phdr callback ran: $out"

# ---- the old condition variables ------------------------------------------------
PPX_BLOCK_RATE=1 timeout 60 "$PPX" record -q -o "$TMP/old" -- "$PROGS/old_cond" >"$TMP/old.out" 2>"$TMP/old.err" ||
    fail "old_cond under ppx record: exit status $?: $(cat "$TMP/old.out" "$TMP/old.err")"
grep -Eqx 'old_cond (ok|skipped)' "$TMP/old.out" || fail "old_cond: $(cat "$TMP/old.out")"

# ---- C++ ----------------------------------------------------------------------
record cxx contention_cxx PPX_BLOCK_RATE=1 PPX_MUTEX_FRACTION=1
expect_wait cxx block cxx_wait "$(waited cxx cxx_wait)" "$(waits cxx cxx_wait)" cum
expect_wait cxx block cxx_wait_shared "$(waited cxx cxx_wait_shared)" "$(waits cxx cxx_wait_shared)" cum
expect_wait cxx block cxx_wait_cv "$(waited cxx cxx_wait_cv)" "$(waits cxx cxx_wait_cv)" cum
expect_wait cxx mutex cxx_hold "$(caused cxx cxx_hold)" "$(waits cxx cxx_wait)" cum
expect_wait cxx mutex cxx_hold_shared "$(caused cxx cxx_hold_shared)" "$(waits cxx cxx_wait_shared)" cum

# ---- the defaults ---------------------------------------------------------------
record defaults contention -u PPX_BLOCK_RATE -u PPX_MUTEX_FRACTION
expect_wait defaults block wait_mutex "$(waited defaults wait_mutex)" "$(waits defaults wait_mutex)"
expect_wait defaults block wait_cond "$(waited defaults wait_cond)" "$(waits defaults wait_cond)"
n=$(dq defaults.mutex contentions flat hold_mutex)
delay=$(dq defaults.mutex delay flat hold_mutex)
note "defaults mutex: hold_mutex $n contentions, $(awk -v d="$delay" 'BEGIN { printf "%.1f", d / 1e6 }') ms"
[ $((n % 10)) -eq 0 ] || fail "defaults mutex: $n contentions at hold_mutex, not a multiple of 10"
if [ "$n" -gt 0 ]; then
    # each event taken is one ~50 ms wait standing for 10
    expect_within_pct "defaults mutex: delay per contention at hold_mutex (ns)" \
        "$(awk -v w="$(caused defaults hold_mutex)" -v n="$(waits defaults wait_mutex)" 'BEGIN { printf "%.0f", w / n }')" \
        "$(awk -v d="$delay" -v n="$n" 'BEGIN { printf "%.0f", d / n }')" 15
fi

# ---- sampled short waits ----------------------------------------------------------
env PPX_BLOCK_RATE=10000000 "$PPX" record -q -o "$TMP/short" -- "$PROGS/contention" short \
    >"$TMP/short.out" 2>"$TMP/short.err" || die "short: exit status $?: $(cat "$TMP/short.err")"
dump_profile "$TMP/short/block.pb.gz" short.block
want=$(waited short wait_short)
n=$(dq short.block contentions flat wait_short)
delay=$(dq short.block delay flat wait_short)
note "short: wait_short $n contentions, $(awk -v d="$delay" 'BEGIN { printf "%.1f", d / 1e6 }') ms (it waited 200 times, $(awk -v d="$want" 'BEGIN { printf "%.1f", d / 1e6 }') ms)"
if [ "${n:-0}" -gt 0 ]; then
    # the harmonic mean of ~40 sampled waits, whose spread a loaded machine
    # widens (30%: a standard error of 5%): 15% is three of them
    expect_within_pct "short: delay per contention at wait_short (ns)" \
        "$(awk -v w="$want" -v n="$(waits short wait_short)" 'BEGIN { printf "%.0f", w / n }')" "$(awk -v d="$delay" -v n="$n" 'BEGIN { printf "%.0f", d / n }')" 15
else
    fail "short: no sample at wait_short"
fi
expect_within_pct "short: contentions at wait_short (estimate)" "$(waits short wait_short)" "$n" 50
expect_within_pct "short: delay at wait_short (estimate, ns)" "$want" "$delay" 50

# ---- off ----------------------------------------------------------------------
record off contention PPX_BLOCK_RATE=0 PPX_MUTEX_FRACTION=0
expect_eq "off: block samples" 0 "$(dq off.block delay total)"
expect_eq "off: mutex samples" 0 "$(dq off.mutex delay total)"
grep -qx 'semantics ok' "$TMP/off.out" || fail "off: return values: $(cat "$TMP/off.err")"

# ---- live -----------------------------------------------------------------------
. "$TESTS_LIB/collect.sh"
start_collector "$TMP/collect.log" --socket "$sock" --http "127.0.0.1:$(free_port)"
fifo_target loop 3 PPX_BLOCK_RATE=1 PPX_MUTEX_FRACTION=1 "$PROGS/contention" loop
curl -sf "$pp/" >"$TMP/index.html" || fail "GET /debug/pprof/ failed"
for name in block mutex; do
    grep -q "href='$name?" "$TMP/index.html" || fail "the index page does not link $name"
    grep -q "$name: </div>" "$TMP/index.html" || fail "the index page does not describe $name"
done
sleep 1 # some contention before the window, which the delta must leave out
curl -sf -o "$TMP/window.pb.gz" "$pp/mutex?pid=$target_pid&seconds=2" ||
    fail "mutex?seconds=2 failed"
curl -sf -o "$TMP/since.pb.gz" "$pp/block?pid=$target_pid" || fail "block failed"
if [ -s "$TMP/window.pb.gz" ] && [ -s "$TMP/since.pb.gz" ]; then
    dump_profile "$TMP/window.pb.gz" window
    dump_profile "$TMP/since.pb.gz" since
    window=$(dq window delay flat hold_mutex)
    since=$(dq since delay flat wait_mutex)
    note "live: mutex?seconds=2 has $(awk -v d="$window" 'BEGIN { printf "%.0f", d / 1e6 }') ms at hold_mutex; block since the start $(awk -v d="$since" 'BEGIN { printf "%.0f", d / 1e6 }') ms at wait_mutex"
    # The waiter waits nearly all the time: the window holds about 2 s of
    # it, and no more than 2 s and a flush interval's.
    awk -v d="$window" 'BEGIN { exit !(d >= 1.0e9 && d <= 2.3e9) }' ||
        fail "live: mutex?seconds=2 holds $window ns at hold_mutex, expected 1..2.3 s"
    awk -v d="$since" -v w="$window" 'BEGIN { exit !(d > w) }' ||
        fail "live: block since the start ($since ns) is not more than the 2 s window ($window ns)"
fi
exec 3>&-
stop_collector || fail "ppx collect exited with status $?"
finish
