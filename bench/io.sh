# Sourced by bench/run (BENCH=io or all): I/O call hooks on a ping-pong and
# on memcached, against strace.
io_modes=(plain ppx_default)
command -v strace >/dev/null && io_modes+=(strace)

# pingpong_rate MODE: round trips per second of one run. strace stops every
# call: it runs a tenth of the round trips (a rate does not depend on them).
pingpong_rate() {
    local out
    case $1 in
    plain) out=$("$pingpong" "$rounds") ;;
    ppx_default) out=$("$ppx" record -q -o "$tmp/pingpong" -- "$pingpong" "$rounds") ;;
    strace) out=$(strace -f -c -o /dev/null "$pingpong" $((rounds / 10))) ;;
    esac
    printf '%s\n' "$out" | sed -n 's/.*: \([0-9]*\) round trips\/s.*/\1/p'
}

free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# pin_cores: sets the caller's pin_server and pin_client to taskset
# commands for cores 0 and 1 when there are two cores or more (else leaves
# them empty).
pin_cores() {
    if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
        pin_server=(taskset -c 0)
        pin_client=(taskset -c 1)
    fi
}

# serve MODE NAME COMMAND...: the server COMMAND (pinned already) in the
# background in MODE: alone, under ppx record (profiles in $tmp/NAME), or
# under strace -f -c, these pinned like it; sets server_pid.
serve() {
    local mode=$1 name=$2
    shift 2
    case $mode in
    plain) "$@" >/dev/null 2>&1 & ;;
    ppx_default) "${pin_server[@]}" "$ppx" record -q -o "$tmp/$name" -- "$@" >/dev/null 2>&1 & ;;
    strace) "${pin_server[@]}" strace -f -c -o /dev/null "$@" >/dev/null 2>&1 & ;;
    esac
    server_pid=$!
}

# memcached_rate MODE: gets per second that memcslap (2 connections) gets
# from a memcached (1 worker thread) started in MODE, stopped after. On a
# 2-core machine the server is pinned to one core and the client to the
# other: with both free to move, the scheduler's placement, not the server,
# set the rate (plain runs varied by 25%). Everything the profiler does in
# the target, its flusher thread included, runs on the server's core.
memcached_rate() {
    local port user=() i out pin_server=() pin_client=()
    port=$(free_port)
    [ "$(id -u)" -eq 0 ] && user=(-u root)
    pin_cores
    local server=("${pin_server[@]}" memcached -l 127.0.0.1 -p "$port" -U 0 -t 1 "${user[@]}")
    serve "$1" memcached "${server[@]}"
    for ((i = 0; i < 100; i++)); do
        grep -qi " 0100007F:$(printf '%04X' "$port") 00000000:0000 0A " /proc/net/tcp && break
        sleep 0.1
    done
    out=$("${pin_client[@]}" memcslap -s "127.0.0.1:$port" -c 2 -e "$memcached_ops" -t get 2>&1) || true
    # ppx relays SIGTERM to memcached; strace does not: there memcached gets it
    local target=$server_pid
    [ "$1" = strace ] && target=$(ps -o pid= --ppid "$server_pid" | tr -d ' ')
    kill -TERM ${target:-$server_pid} 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    # "Time to get 78806 keys by 4 threads: 2.127 seconds."
    printf '%s\n' "$out" | awk '/Time to get .* by .* threads:/ { for (i = 1; i <= NF; i++) {
        if ($i == "get") keys = $(i + 1); if ($i == "threads:") s = $(i + 1) }
        if (s > 0) printf "%.0f\n", keys / s }'
}

# redis_rate MODE: requests per second redis-benchmark gets from a
# redis-server started in MODE (GET and SET, 50 connections, 16 requests
# pipelined, the mean of the two), pinned like memcached above.
redis_rate() {
    local port i out pin_server=() pin_client=()
    port=$(free_port)
    pin_cores
    local server=("${pin_server[@]}" redis-server --port "$port" --bind 127.0.0.1 --save ""
        --appendonly no --daemonize no --dir "$tmp")
    serve "$1" redis "${server[@]}"
    for ((i = 0; i < 100; i++)); do
        redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
    out=$("${pin_client[@]}" redis-benchmark -p "$port" -q -P 16 -n "$redis_ops" -t get,set 2>&1) || true
    local target=$server_pid
    [ "$1" = strace ] && target=$(ps -o pid= --ppid "$server_pid" | tr -d ' ')
    kill -TERM ${target:-$server_pid} 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    # "SET: 512820.53 requests per second, p50=1.271 msec" (\r-separated progress before it)
    printf '%s\n' "$out" | tr '\r' '\n' | awk '/^(GET|SET): [0-9.]+ requests per second/ { s += $2; n++ }
        END { if (n == 2) printf "%.0f\n", s / n }'
}

workloads=(pingpong)
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    workloads+=(redis)
else
    echo "(redis-server or redis-benchmark not installed: no redis figures)"
fi
if command -v memcached >/dev/null && command -v memcslap >/dev/null; then
    workloads+=(memcached)
else
    echo "(memcached or memcslap not installed: no memcached figures)"
fi

declare -A rates
for ((i = 0; i < repeat; i++)); do
    for w in "${workloads[@]}"; do
        for m in "${io_modes[@]}"; do
            r=$("${w}_rate" "$m" 2>/dev/null) || r=
            [ -n "$r" ] && rates[$w.$m]+="$r "
            rm -rf "$tmp/pingpong" "$tmp/memcached" "$tmp/redis"
        done
    done
done

for w in "${workloads[@]}"; do
    echo
    case $w in
    pingpong) printf 'pingpong: 1 pair of threads on one CPU, sendmsg/recvmsg of 64 B on a Unix datagram socketpair, %s round trips, median of %s runs\n' "$rounds" "$repeat"; unit="round trips/s" ;;
    redis) printf 'redis-server (core 0) under redis-benchmark -P 16 -t get,set (core 1), %s requests each, mean of GET and SET, median of %s runs\n' "$redis_ops" "$repeat"; unit="requests/s" ;;
    memcached) printf 'memcached -t 1 (core 0) under memcslap -c 2 -t get (core 1), %s gets per connection, median of %s runs\n' "$memcached_ops" "$repeat"; unit="gets/s" ;;
    esac
    base=$(echo "${rates[$w.plain]:-}" | median)
    printf '%-12s %14s %8s\n' mode "$unit" ratio
    for m in "${io_modes[@]}"; do
        r=$(echo "${rates[$w.$m]:-}" | median)
        if [ -z "$r" ] || [ -z "$base" ]; then
            printf '%-12s %14s %8s\n' "$m" failed -
        else
            awk -v m="$m" -v r="$r" -v b="$base" 'BEGIN {printf "%-12s %14.0f %7.2fx\n", m, r, r / b}'
        fi
    done
done
