#!/usr/bin/env bash
# Standby acknowledgements and their timeout: each waiting write times out
# standby_timeout_ms after its own commit, never sooner (a later write does
# not inherit an earlier one's deadline) and never later (a standby that
# keeps reconnecting without progress does not hold a writer forever);
# status tells the acknowledgement mode actually in force; a standby
# already in step counts at once when it is designated; replication stop
# answers what waited without claiming the standby came back.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

conf() {  # DIR ACK_MODE BUDGET [STANDBY_TIMEOUT_MS]
    printf '[group]\nheartbeat_ms = 100\ndead_ms = 60000\nretry_max_ms = 200\n[replication]\nstandby_timeout_ms = %s\nack_mode = %s\n[storage]\nmap_initial = 256K\nstorage_budget = %s\n' "${4:-1000}" "$2" "$3" >"$1/pdsyncd.conf"
}
last_index() {
    pds "$1" --json status | sed -E 's/.*"last_index":([0-9]+).*/\1/'
}
# The standby (a, whose dead_ms keeps it listed while frozen) has confirmed
# all the server holds.
standby_in_step() {
    local n
    n=$(last_index "$s")
    wait_for "$s" status "^standby: +[0-9a-f]{16}, following, durable at $n\$"
}
STOPPED=()
cleanup() {
    local p
    for p in "${STOPPED[@]}"; do kill -CONT "$p" 2>/dev/null; done
    t_cleanup
}
trap cleanup EXIT
ms_since() {  # START_NS
    echo $((($(date +%s%N) - $1) / 1000000))
}
printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"

s=$(node_dir server); conf "$s" standby 64M
start_node "$s" --listen 127.0.0.1:0
addr=$(cat "$s/listen.addr")
pds "$s" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"
expect 0 pds "$s" status
expect_out '^acks: +local \(ack_mode = standby, but no replication destination is set\)$'
expect 0 pds "$s" put first ui.language en
pass "ack_mode = standby without a standby: status says the writes are acknowledged locally"

a=$(node_dir a); conf "$a" standby 64M
start_node "$a"
expect 0 pds "$a" client start "$addr" --join-secret-file "$T_ROOT/secret" --name a
b=$(node_dir b); conf "$b" standby 64M
start_node "$b"
expect 0 pds "$b" client start "$addr" --join-secret-file "$T_ROOT/secret" --name b
wait_for "$s" clients '^[0-9a-f]{16}  connected +a '
wait_for "$s" clients '^[0-9a-f]{16}  connected +b '
# The destination by its address as 'clients' lists it (HOST:PORT); by
# host alone only when one client connects from there.
expect 0 pds "$s" --json clients
addr_a=$(grep -oE '"name":"a",("[a-z_]+":"[^"]*",)*"address":"[^"]+"' <<<"$OUT" | sed -E 's/.*"address":"([^"]+)"/\1/')
[ -n "$addr_a" ] || fail "no address for client a in: $OUT"
expect 1 pds "$s" replication start 127.0.0.1:9
expect_err 'more than one client connects from 127.0.0.1: use its id or name'
expect 1 pds "$s" replication start 10.9.9.9:7450
expect_err 'no client "10.9.9.9:7450" in this group'
expect 0 pds "$s" replication start "$addr_a"
expect 0 pds "$s" log
expect_out 'INFO replication destination: a \('
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
expect 0 pds "$s" status
expect_out '^acks: +standby$'

# A frozen standby: write A waits; write B, made 600 ms later, gets its
# own full second.
apid=$(node_pid "$a")
kill -STOP "$apid"
STOPPED+=("$apid")
t0=$(date +%s%N)
(pds "$s" put alice ui.language en >/dev/null 2>"$T_ROOT/ea"; echo "$? $(ms_since "$t0")" >"$T_ROOT/ra") &
wpid=$!
sleep 0.6
t1=$(date +%s%N)
expect 1 pds "$s" put bob ui.language de
tb=$(ms_since "$t1")
expect_err 'timed out: the write is durable on the server, but the replication destination did not confirm it within 1000 ms'
wait "$wpid"
read -r ra ta <"$T_ROOT/ra"
[ "$ra" = 1 ] || fail "write A exited $ra: $(cat "$T_ROOT/ea")"
[ "$ta" -ge 950 ] && [ "$ta" -lt 5000 ] || fail "write A timed out after $ta ms (1000 expected)"
[ "$tb" -ge 950 ] && [ "$tb" -lt 5000 ] || fail "write B timed out after $tb ms, not 1000 after its own commit"
kill -CONT "$apid"
standby_in_step
expect 0 pds "$s" put carol ui.language fr
pass "each write waiting for a frozen standby times out 1 s after its own commit (A after $ta ms, B after $tb ms)"

# The standby freezes while a write waits for it; the administrator
# designates b, which follows and already holds that write: its confirmed
# position counts at once, and the write is acknowledged, not timed out.
# A timeout of 10 s here: b must take the write and the command run
# before it, on a machine that may be slow.
stop_node "$s"
conf "$s" standby 64M 10000
start_node "$s" --listen "$addr"
wait_for "$s" clients '^[0-9a-f]{16}  connected +b '
standby_in_step
kill -STOP "$apid"
t0=$(date +%s%N)
(pds "$s" put dave ui.language nl >/dev/null 2>"$T_ROOT/ed"; echo "$? $(ms_since "$t0")" >"$T_ROOT/rd") &
wpid=$!
wait_for "$b" "get dave ui.language" '^nl$'
expect 0 pds "$s" replication start b
wait "$wpid"
read -r rd td <"$T_ROOT/rd"
[ "$rd" = 0 ] || fail "the write waiting when b was designated exited $rd after $td ms: $(cat "$T_ROOT/ed")"
[ "$td" -lt 9000 ] || fail "the write waited $td ms although b held it"
kill -CONT "$apid"
pass "a standby designated while in step counts at once (the waiting write answered after $td ms)"

# A standby that keeps reconnecting without progress (its storage budget
# is exhausted: it drops the link and comes back every ~100 ms) must not
# hold a writer past the timeout.
expect 0 pds "$s" replication stop
stop_node "$s"
conf "$s" standby 64M
start_node "$s" --listen "$addr"
stop_node "$b"
conf "$b" standby 1M
start_node "$b"
expect 0 pds "$s" replication start b
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
head -c 45000 /dev/urandom | base64 -w0 >"$T_ROOT/v"
rc=0
for i in $(seq 1 60); do
    t0=$(date +%s%N)
    timeout 15 "$PDSYNC" --data "$s" put --file "$T_ROOT/v" "big$i" blob >/dev/null 2>"$T_ROOT/e"
    rc=$?
    t=$(ms_since "$t0")
    [ "$rc" -eq 0 ] || break
done
[ "$rc" -ne 124 ] || fail "a write got no answer in 15 s from a standby that reconnects without progress"
[ "$rc" -eq 1 ] || fail "write $i exited $rc: $(cat "$T_ROOT/e")"
grep -q 'did not confirm it within 1000 ms' "$T_ROOT/e" || fail "write $i: $(cat "$T_ROOT/e")"
[ "$t" -lt 5000 ] || fail "write $i timed out only after $t ms"
pass "a standby that reconnects without progress: the writer times out after $t ms"

# standby-optional degrades; replication stop then answers what waits and
# does not log that the standby is back.
stop_node "$s"
stop_node "$b"
conf "$s" standby-optional 64M
conf "$b" standby 64M
start_node "$s" --listen "$addr"
start_node "$b"
bpid=$(node_pid "$b")
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
kill -STOP "$bpid"
STOPPED+=("$bpid")
expect 0 pds "$s" put erin ui.language sv
wait_for "$s" status '^acks: +standby-optional \(degraded to local'
expect 0 pds "$s" replication stop
expect 0 pds "$s" log
expect_out 'INFO replication stopped'
grep -q 'the replication destination is back' <<<"$OUT" &&
    fail "replication stop logged that the standby is back"
expect 0 pds "$s" status
expect_out '^acks: +local \(ack_mode = standby-optional, but no replication destination is set\)$'
kill -CONT "$bpid"
pass "replication stop while degraded: writes answered, no claim that the standby came back"

# server stop while a write waits for the standby: that writer is answered
# at once that the write was not acknowledged (not at the timeout, nor as
# acknowledged).
stop_node "$s"
conf "$s" standby 64M 10000
start_node "$s" --listen "$addr"
expect 0 pds "$s" replication start b
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
kill -STOP "$bpid"
t0=$(date +%s%N)
(pds "$s" put frank ui.language da >/dev/null 2>"$T_ROOT/ef"; echo "$? $(ms_since "$t0")" >"$T_ROOT/rf") &
wpid=$!
wait_for "$s" "get frank ui.language" '^da$'
expect 0 pds "$s" server stop
wait "$wpid"
read -r rf tf <"$T_ROOT/rf"
[ "$rf" = 1 ] || fail "the write waiting at server stop exited $rf after $tf ms: $(cat "$T_ROOT/ef")"
grep -q 'stopped being the server before the replication destination confirmed it: not acknowledged' "$T_ROOT/ef" ||
    fail "the write waiting at server stop: $(cat "$T_ROOT/ef")"
[ "$tf" -lt 5000 ] || fail "the write waiting at server stop was answered only after $tf ms"
kill -CONT "$bpid"
pass "server stop answers a write waiting for the standby at once: not acknowledged ($tf ms)"

stop_node "$b"
stop_node "$a"
stop_node "$s"
