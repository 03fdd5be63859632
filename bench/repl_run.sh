#!/usr/bin/env bash
# repl_run.sh - replication benchmark, pdsync against Redis in the same run:
#   1. Redis 7 primary + replica, both appendfsync always: N clients doing
#      SET + WAIT 1 (the replica acknowledges each write), then 1 client;
#      then, for reference, two raw LMDB writers at once on the same disk
#      (record-shaped keys, then log-shaped ones);
#   2. pdsync server + standby in standby ack mode: N writers, then 1;
#   3. catch-up: a fresh client joins a server holding --catchup entries;
#   4. cold client: a fresh client joins a server holding a group of 1,000
#      users x 50 items x 1 KiB, from the log and from a snapshot.
# Everything on loopback, data under the build directory, every process
# stopped by its PID.
#
#   bench/repl_run.sh [--seconds S=5] [--writers N=64] [--catchup E=100000]
#                     [--cold-users U=1000] [--build DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
seconds=5
writers=64
catchup=100000
cold_users=1000
build=""
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=${2:?}; shift 2 ;;
    --writers) writers=${2:?}; shift 2 ;;
    --catchup) catchup=${2:?}; shift 2 ;;
    --cold-users) cold_users=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "repl_run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
"$root/tools/deps.sh" redis-server
if [ -z "$build" ]; then
    (cd "$root" && cmake --preset release >/dev/null &&
        cmake --build --preset release -j"$(nproc)" >/dev/null)
    build="$root/build/release"
fi
pdsyncd="$build/pdsyncd"
pdsync="$build/pdsync"
load="$build/bench/pds_load"
rwait="$build/bench/pds_redis_wait"
raw="$build/bench/pds_lmdb_raw"
for b in "$pdsyncd" "$pdsync" "$load" "$rwait" "$raw"; do
    [ -x "$b" ] || { echo "repl_run.sh: $b is not built" >&2; exit 1; }
done

work=$(mktemp -d "$build/repl-run.XXXXXX")
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
poll() {  # SECONDS CMD...: until CMD succeeds, every $poll_every s
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "repl_run.sh: timed out: $*" >&2; exit 1; }
        sleep "${poll_every:-0.05}"
    done
}
poll_fine() {  # SECONDS CMD...: the same every 10 ms (for timed phases)
    poll_every=0.01 poll "$@"
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}

# 1. Redis primary + replica, appendfsync always on both.
p1=$(free_port); p2=$(free_port)
mkdir -p "$work/r1" "$work/r2"
redis-server --port "$p1" --bind 127.0.0.1 --dir "$work/r1" --appendonly yes \
    --appendfsync always --save '' --daemonize no >"$work/r1.log" 2>&1 &
pids+=($!)
redis-server --port "$p2" --bind 127.0.0.1 --dir "$work/r2" --appendonly yes \
    --appendfsync always --save '' --replicaof 127.0.0.1 "$p1" \
    --daemonize no >"$work/r2.log" 2>&1 &
pids+=($!)
link_up() { redis-cli -p "$p2" info replication | grep -q 'master_link_status:up'; }
poll 20 link_up
"$rwait" -p "$p1" -c "$writers" -s "$seconds" | tee "$work/redis_n.json"
"$rwait" -p "$p1" -c 1 -s "$seconds" | tee "$work/redis_1.json"

# Reference: two raw LMDB writers at once on this disk, each durable
# transaction holding as many 256-byte puts as there are writers: what a
# server and a standby on one machine can at most do together. Twice:
# record-shaped random keys (each change written to its record, as the
# design's one transaction per change and log entry does), and log-shaped
# sequential keys (what a commit holding only the log would cost).
run_raw_pair() {  # KEYS: sets pair_each
    "$raw" --dir "$work/raw1" --seconds "$seconds" --batch "$writers" \
        --value-size 256 --keys "$1" >"$work/raw1.json" &
    rawpid=$!
    pids+=($rawpid)
    "$raw" --dir "$work/raw2" --seconds "$seconds" --batch "$writers" \
        --value-size 256 --keys "$1" >"$work/raw2.json"
    wait "$rawpid"
    rm -rf "$work/raw1" "$work/raw2"
    pair_each=$(cat "$work/raw1.json" "$work/raw2.json" |
        sed -E 's/.*"puts_per_s":([0-9]+).*/\1/' |
        awk '{ s += $1 } END { printf "%d", s / 2 }')
}
run_raw_pair random
raw_pair=$pair_each
echo "{\"bench\":\"lmdb_raw_pair\",\"keys\":\"random\",\"batch\":$writers,\"value_size\":256,\"puts_per_s_each\":$raw_pair}"
run_raw_pair seq
raw_pair_seq=$pair_each
echo "{\"bench\":\"lmdb_raw_pair\",\"keys\":\"seq\",\"batch\":$writers,\"value_size\":256,\"puts_per_s_each\":$raw_pair_seq}"

# 2. pdsync server + standby.
conf='[group]\nheartbeat_ms = 500\nretry_max_ms = 300\n[storage]\nlog_retain_entries = 1000000\n'
mkdir -p "$work/s" "$work/b" "$work/c"
printf "$conf" | tee "$work/s/pdsyncd.conf" "$work/b/pdsyncd.conf" "$work/c/pdsyncd.conf" >/dev/null
"$pdsyncd" --data "$work/s" --listen 127.0.0.1:0 2>"$work/s.log" &
pids+=($!)
"$pdsyncd" --data "$work/b" 2>"$work/b.log" &
pids+=($!)
poll 10 "$pdsync" --data "$work/s" status
poll 10 "$pdsync" --data "$work/b" status
head -c 32 /dev/urandom | base64 >"$work/secret"
"$pdsync" --data "$work/s" server start --join-secret-file "$work/secret" >/dev/null
"$pdsync" --data "$work/b" client start "$(cat "$work/s/listen.addr")" \
    --join-secret-file "$work/secret" --name standby >/dev/null
following() { "$pdsync" --data "$work/s" status | grep -q 'standby: .*following'; }
# Enrollment completes in the background: wait until the server has it.
enrolled() { "$pdsync" --data "$work/s" clients | grep -q ' standby '; }
poll 20 enrolled
"$pdsync" --data "$work/s" replication start standby >/dev/null
poll 20 following
"$load" --socket "$work/s/pdsyncd.sock" --writers "$writers" --seconds "$seconds" \
    --value-size 256 | tee "$work/pds_n.json"
"$load" --socket "$work/s/pdsyncd.sock" --writers 1 --seconds "$seconds" \
    --value-size 256 --prefix one | tee "$work/pds_1.json"

# 3. Catch-up: the server holds at least --catchup entries; a fresh client
#    joins and is timed until its position equals the server's.
have=$("$pdsync" --data "$work/s" --json status | sed -E 's/.*"last_index":([0-9]+).*/\1/')
if [ "$have" -lt "$catchup" ]; then
    "$load" --socket "$work/s/pdsyncd.sock" --writers 64 --count $((catchup - have)) \
        --value-size 256 --prefix fill >/dev/null
fi
last=$("$pdsync" --data "$work/s" --json status | sed -E 's/.*"last_index":([0-9]+).*/\1/')
"$pdsyncd" --data "$work/c" 2>"$work/c.log" &
pids+=($!)
poll 10 "$pdsync" --data "$work/c" status
t0=$(date +%s%N)
"$pdsync" --data "$work/c" client start "$(cat "$work/s/listen.addr")" \
    --join-secret-file "$work/secret" --name fresh >/dev/null
caught_up() {
    [ "$("$pdsync" --data "$work/c" --json status | sed -E 's/.*"last_index":([0-9]+).*/\1/')" -ge "$last" ]
}
poll_fine 120 caught_up
t1=$(date +%s%N)
catch_ms=$(( (t1 - t0) / 1000000 ))
echo "{\"bench\":\"catchup\",\"entries\":$last,\"ms\":$catch_ms}"

# 4. Cold client: a group of 1,000 users x 50 items x 1 KiB on a server
#    of its own; a fresh client joins and is timed until it has it all.
#    Twice: once from the log, once from a snapshot (the server's log
#    retention cut to 1,000 entries).
cold() {  # NAME RETAIN: sets cold_ms
    local sd="$work/$1-s" cd="$work/$1-c" last t0 t1
    mkdir -p "$sd" "$cd"
    printf "$conf" >"$cd/pdsyncd.conf"
    printf '[group]\nheartbeat_ms = 500\n[storage]\nlog_retain_entries = %s\n' "$2" >"$sd/pdsyncd.conf"
    "$pdsyncd" --data "$sd" --listen 127.0.0.1:0 2>"$sd.log" &
    pids+=($!)
    "$pdsyncd" --data "$cd" 2>"$cd.log" &
    pids+=($!)
    poll 10 "$pdsync" --data "$sd" status
    poll 10 "$pdsync" --data "$cd" status
    "$pdsync" --data "$sd" server start --join-secret-file "$work/secret" >/dev/null
    "$load" --socket "$sd/pdsyncd.sock" --writers 64 --count $((cold_users * 50)) --users "$cold_users" \
        --value-size 1024 --prefix cold >/dev/null
    last=$("$pdsync" --data "$sd" --json status | sed -E 's/.*"last_index":([0-9]+).*/\1/')
    t0=$(date +%s%N)
    "$pdsync" --data "$cd" client start "$(cat "$sd/listen.addr")" \
        --join-secret-file "$work/secret" --name cold >/dev/null
    cold_done() {
        [ "$("$pdsync" --data "$cd" --json status | sed -E 's/.*"last_index":([0-9]+).*/\1/')" -ge "$last" ]
    }
    poll_fine 120 cold_done
    t1=$(date +%s%N)
    [ "$("$pdsync" --data "$cd" --json status | sed -E 's/.*"records":([0-9]+).*/\1/')" = $((cold_users * 50)) ] ||
        { echo "repl_run.sh: the cold client does not hold every record" >&2; exit 1; }
    cold_ms=$(( (t1 - t0) / 1000000 ))
}
cold cold-log 1000000
cold_log_ms=$cold_ms
cold cold-snap 1000
cold_snap_ms=$cold_ms
echo "{\"bench\":\"cold_client\",\"users\":$cold_users,\"items\":50,\"value_bytes\":1024,\"from_log_ms\":$cold_log_ms,\"from_snapshot_ms\":$cold_snap_ms,\"target_ms\":3000}"

field() { sed -E "s/.*\"$2\":([0-9.]+).*/\1/" "$1"; }
rn=$(field "$work/redis_n.json" ops_per_s)
pn=$(field "$work/pds_n.json" ops_per_s)
ratio=$(awk -v a="$pn" -v b="$rn" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
# What the raw pair itself does against Redis: the most any server and
# standby that write each change's record in the acknowledging transaction
# (DESIGN.md's rule) can reach on this disk, before any network.
raw_ratio=$(awk -v a="$raw_pair" -v b="$rn" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
echo "{\"bench\":\"repl_summary\",\"writers\":$writers,\"pdsync_standby_ops_per_s\":$pn,\"redis_set_wait_ops_per_s\":$rn,\"ratio\":$ratio,\"target_ratio\":3,\"lmdb_raw_pair_puts_per_s_each\":$raw_pair,\"lmdb_raw_pair_vs_redis\":$raw_ratio,\"lmdb_raw_pair_log_shaped_puts_per_s_each\":$raw_pair_seq,\"pdsync_single_p50_us\":$(field "$work/pds_1.json" p50_us),\"redis_single_p50_us\":$(field "$work/redis_1.json" p50_us),\"target_single_p50_us\":1000,\"catchup_entries\":$last,\"catchup_ms\":$catch_ms,\"target_catchup_ms_per_100k\":500,\"cold_client_log_ms\":$cold_log_ms,\"cold_client_snapshot_ms\":$cold_snap_ms,\"target_cold_client_ms\":3000}"
[ "$(field "$work/pds_n.json" errors)" = 0 ] || { echo "repl_run.sh: pdsync writes failed" >&2; exit 1; }
