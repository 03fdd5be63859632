#!/usr/bin/env bash
# The replication destination: with a standby, a write is acknowledged only
# once the standby has it durably; kill -9 of the server loses no
# acknowledged write on the standby; a standby that is gone gives a timeout
# error (or, with standby-optional, a logged degradation to local acks).
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"
: "${PDS_LOAD:?}"

conf() {  # DIR [ack_mode]; a small first map: it grows under the writers
    printf '[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 200\n[replication]\nstandby_timeout_ms = 2000\nack_mode = %s\n[storage]\nmap_initial = 256K\n' \
        "${2:-auto}" >"$1/pdsyncd.conf"
}
printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"
s=$(node_dir server); conf "$s"
start_node "$s" --listen 127.0.0.1:0
addr=$(cat "$s/listen.addr")
pds "$s" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"
sb=$(node_dir standby); conf "$sb"
start_node "$sb"
expect 0 pds "$sb" client start "$addr" --join-secret-file "$T_ROOT/secret" --name standby
wait_for "$s" clients '^[0-9a-f]{16}  connected +standby'

expect 1 pds "$s" replication start nosuchnode
expect_err 'no client "nosuchnode" in this group'
expect 1 pds "$sb" replication start standby
expect_err 'not a server'
expect 0 pds "$s" status
expect_out '^acks: +local'
expect 0 pds "$s" replication start standby
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
expect_out '^acks: +standby$'
pass "replication start: the standby is named in status, acks wait for it"

# Every acknowledged write is on the standby the moment it is answered.
for i in $(seq 1 20); do
    pds "$s" put "user$i" ui.language "lang-$i" >/dev/null || fail "put $i"
    got=$(pds "$sb" get "user$i" ui.language) || fail "write $i acknowledged but not on the standby"
    [ "$got" = "lang-$i" ] || fail "standby has '$got' for write $i"
done
pass "an acknowledged write is already durable and applied on the standby"

# kill -9 of the server during a stream of writes: every acknowledged
# write is on the standby.
: >"$T_ROOT/acked"
"$PDS_LOAD" --socket "$s/pdsyncd.sock" --writers 16 --seconds 20 --value-size 64 \
    --users 20 --prefix crash --acked "$T_ROOT/acked" >"$T_ROOT/load.out" 2>&1 &
load=$!
deadline=$((SECONDS + 15))
while [ "$(wc -l <"$T_ROOT/acked")" -lt 300 ] && [ $SECONDS -lt $deadline ]; do
    sleep 0.05
done
crash_node "$s"
wait "$load"
n=$(wc -l <"$T_ROOT/acked")
[ "$n" -ge 300 ] || fail "only $n writes acknowledged before the crash"
missing=0
while read -r owner item value; do
    got=$(pds "$sb" get "$owner" "$item" 2>/dev/null) && [ "${got:0:${#value}}" = "$value" ] ||
        missing=$((missing + 1))
done <"$T_ROOT/acked"
[ "$missing" -eq 0 ] || fail "$missing of $n acknowledged writes are missing on the standby"
pass "kill -9 of the server under 16 writers: all $n acknowledged writes are on the standby"

# The standby is gone: a write is durable on the server but its writer
# gets a timeout error, never a silent success.
start_node "$s" --listen "$addr"
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
stop_node "$sb"
wait_for "$s" status '^standby: +[0-9a-f]{16}, not connected'
expect 1 pds "$s" put frank ui.language nl
expect_err 'timed out: the write is durable on the server, but the replication destination did not confirm it within 2000 ms'
expect 0 pds "$s" get frank ui.language
expect 0 pds "$s" log
expect_out 'ERROR the replication destination did not confirm'
pass "standby gone: the writer gets a timeout error"

# A client's queued write that loses to a version the standby has not
# confirmed is not told it lost (a failover could still undo the winner):
# it stays queued, goes again every second, and is decided once the
# standby has the winner.
a=$(node_dir a); conf "$a"
start_node "$a"
expect 0 pds "$a" client start "$addr" --join-secret-file "$T_ROOT/secret" --name a
wait_for "$s" clients '^[0-9a-f]{16}  connected +a'
stop_node "$s"
wait_for "$a" status 'unreachable, retrying|connecting'
expect 0 pds "$a" put ivan ui.theme light
expect_out '^queued ivan/ui.theme'
stop_node "$a"
start_node "$s" --listen "$addr"
expect 1 pds "$s" put ivan ui.theme dark
expect_err 'timed out: the write is durable on the server'
start_node "$a"
wait_for "$s" clients '^[0-9a-f]{16}  connected +a'
sleep 2.5
expect 0 pds "$a" --json status
expect_out '"outbox":1,'
expect_out '"outbox_lost":0,'
expect 0 pds "$s" get ivan ui.theme
[ "$OUT" = dark ] || fail "the server has '$OUT' for ivan/ui.theme"
start_node "$sb"
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
wait_for "$a" "--json status" '"outbox":0,.*"outbox_lost":1,'
wait_for "$a" "get ivan ui.theme" '^dark$'
pass "a queued write that loses to an unconfirmed version waits until the standby has the winner"

# A queued write from a clock hours ahead is restamped with the server's
# clock once. Its answer is lost (here: the standby is away, so it is "not
# decided" and goes again every second); a write made on the server after
# the restamp is newer and stays: the replays are that first write again,
# not new ones stamped over it.
stop_node "$sb"
wait_for "$s" status '^standby: +[0-9a-f]{16}, not connected'
stop_node "$a"
stop_node "$s"
PDSYNC_DEBUG_CLOCK_SKEW_MS=$((3 * 3600 * 1000)) start_node "$a"
wait_for "$a" status 'unreachable, retrying|connecting'
expect 0 pds "$a" put judy ui.theme from-a
expect_out '^queued judy/ui.theme'
start_node "$s" --listen "$addr"
wait_for "$s" "get judy ui.theme" '^from-a$'
expect 1 pds "$s" put judy ui.theme from-server
expect_err 'timed out: the write is durable on the server'
sleep 2.5
expect 0 pds "$s" get judy ui.theme
[ "$OUT" = from-server ] || fail "a replayed restamped write overwrote a newer one: the server has '$OUT'"
expect 0 pds "$a" --json status
expect_out '"outbox":1,'
start_node "$sb"
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
wait_for "$a" "--json status" '"outbox":0,'
wait_for "$a" "get judy ui.theme" '^from-server$'
expect 0 pds "$s" get judy ui.theme
[ "$OUT" = from-server ] || fail "the server has '$OUT' for judy/ui.theme"
expect 0 pds "$s" status
expect_out 'conflicts: .* 1 clocks restamped'
# The memo travels with its entry: the standby, which caught up from the
# log, and the client hold it too (a promoted standby must know the
# replay). A second write from the clock ahead, with the standby here, goes
# to it before the server's commit, with its memo.
expect 0 pds "$s" --json status
expect_out '"restamp_memos":1,'
wait_for "$sb" "--json status" '"restamp_memos":1,'
wait_for "$a" "--json status" '"restamp_memos":1,'
expect 0 pds "$a" put judy ui.font large
expect_out '^committed judy/ui.font'
wait_for "$sb" "--json status" '"restamp_memos":2,'
expect 0 pds "$s" status
expect_out 'conflicts: .* 2 clocks restamped'
pass "a restamped queued write sent again is the same write: a newer one made meanwhile stays"
stop_node "$a"
stop_node "$sb"

# standby-optional: the server degrades to local acks, says so, and
# returns to standby acks when the standby is back.
stop_node "$s"
conf "$s" standby-optional
start_node "$s" --listen "$addr"
expect 0 pds "$s" put grace ui.language it
expect 0 pds "$s" log
expect_out 'WARNING the replication destination did not confirm within 2000 ms: acknowledging after the server.s fsync alone'
expect 0 pds "$s" status
expect_out '^acks: +standby-optional \(degraded to local'
start_node "$sb"
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
expect 0 pds "$s" put heidi ui.language fi
wait_for "$sb" "get heidi ui.language" '^fi$'
wait_for "$s" status '^acks: +standby-optional$'
pass "standby-optional: degrades to local with a Warning, back to standby acks when it returns"

expect 0 pds "$s" replication stop
expect 0 pds "$s" status
expect_out '^standby: +none'
expect 1 pds "$s" replication stop
expect_err 'no replication destination is set'
pass "replication stop"
