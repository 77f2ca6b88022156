# A private redis-server for the tests that profile one (sourced after
# common.sh): on a free loopback port, nothing saved, its log in $TMP.
for tool in redis-server redis-benchmark redis-cli; do
    require_cmd "$tool" "redis-server redis-tools"
done
server=$(readlink -f "$(command -v redis-server)")
port=$(free_port) || die "no free port"
REDIS_ARGS=(--port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no
    --dir "$TMP" --logfile "$TMP/redis.log")

# redis_answers: the server answers PING.
redis_answers() { [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; }
