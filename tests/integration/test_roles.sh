#!/usr/bin/env bash
# Roles as the node shows them: the replication destination says
# 'standby', the other clients 'client'; the role is stored and survives a
# restart; the server tells a follower when it is named or released. Every
# message carries the sender's epoch: a node that hears a higher one
# records it and shows it in status, with no entry shipped.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

conf() {
    printf '[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 200\n[replication]\nstandby_timeout_ms = 2000\n' >"$1/pdsyncd.conf"
}
epoch_of() {
    pds "$1" --json status | sed -E 's/.*"epoch":([0-9]+).*/\1/'
}
printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"
s=$(node_dir server); conf "$s"
start_node "$s" --listen 127.0.0.1:0
addr=$(cat "$s/listen.addr")
pds "$s" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"
a=$(node_dir a); conf "$a"
b=$(node_dir b); conf "$b"
start_node "$a"
start_node "$b"
expect 0 pds "$a" client start "$addr" --join-secret-file "$T_ROOT/secret" --name a
expect 0 pds "$b" client start "$addr" --join-secret-file "$T_ROOT/secret" --name b
wait_for "$s" clients '^[0-9a-f]{16}  connected +a '
wait_for "$s" clients '^[0-9a-f]{16}  connected +b '
expect 0 pds "$a" status
expect_out '^role: +client$'
pass "a client says client"

expect 0 pds "$s" replication start a
wait_for "$a" status '^role: +standby$'
expect 0 pds "$a" --json status
expect_out '"role":"standby"'
expect_out '"server":"127\.0\.0\.1:[0-9]+"'
expect 0 pds "$b" --json status
expect_out '"role":"client"'
expect 0 pds "$a" status
expect_out '^server: +127\.0\.0\.1:[0-9]+ \(connected\)'
expect_out '^outbox: +0 writes'
grep -q 'INFO role: client -> standby (named the replication destination by the server)' "$a/comm.log" ||
    fail "the move is not in the standby's log"
grep -q 'this node is the replication destination of server' "$a/comm.log" ||
    fail "the standby's log does not say it was named"
pass "replication start: the destination says standby (text and --json), the other client says client"

# Stored: a restart keeps it, before the server says anything.
stop_node "$a"
start_node "$a"
expect 0 pds "$a" status
expect_out '^role: +standby$'
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
pass "the standby role survives a restart"

# Another destination: the first is released, the second named.
expect 0 pds "$s" replication start b
wait_for "$b" status '^role: +standby$'
wait_for "$a" status '^role: +client$'
grep -q 'no longer the replication destination' "$a/comm.log" ||
    fail "the released node's log does not say so"
expect 0 pds "$s" replication stop
wait_for "$b" status '^role: +client$'
pass "another destination releases the first; replication stop releases the second"

# A standby leaves the group like any client.
expect 0 pds "$s" replication start b
wait_for "$b" status '^role: +standby$'
expect 0 pds "$b" client stop
expect 0 pds "$b" status
expect_out '^role: +standalone$'
grep -q 'role: standby -> standalone (client stop)' "$b/comm.log" ||
    fail "client stop of the standby is not in its log"
pass "client stop on the standby: standalone"

# Epochs on the wire: a server restart begins a new epoch; its clients
# hear it with the first messages, before any entry.
e0=$(epoch_of "$s")
[ "$(epoch_of "$a")" = "$e0" ] || fail "client a is at epoch $(epoch_of "$a"), the server at $e0"
stop_node "$s"
start_node "$s" --listen "$addr"
e1=$(epoch_of "$s")
[ "$e1" -gt "$e0" ] || fail "the restarted server is at epoch $e1, not above $e0"
wait_for "$a" "--json status" "\"epoch\":$e1,"
expect 0 pds "$a" status
expect_out "^epoch: +$e1$"
grep -q "epoch $e1 heard from" "$a/comm.log" || fail "the client's log does not record the epoch it heard"
stop_node "$a"
start_node "$a"
expect 0 pds "$a" status
expect_out "^epoch: +$e1$"
pass "a new epoch of the server is heard by its client without entries, recorded and kept ($e0 -> $e1)"

# A server that hears a higher epoch than its own says so and records it:
# client a (at e1) joins a new group whose server is at a lower epoch.
n=$(node_dir newserver); conf "$n"
start_node "$n" --listen 127.0.0.1:0
pds "$n" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start of the new group"
en=$(epoch_of "$n")
[ "$en" -lt "$e1" ] || fail "the new server is at epoch $en already (the test needs one below $e1)"
expect 0 pds "$a" client stop
expect 0 pds "$a" client start "$(cat "$n/listen.addr")" --join-secret-file "$T_ROOT/secret" --name a
wait_for "$n" log "WARNING .* is at epoch $e1, above this server's $en"
wait_for "$n" "--json status" "\"epoch\":$e1,"
pass "a server that hears a higher epoch warns and records it ($en -> $e1)"

stop_node "$a"
stop_node "$b"
stop_node "$n"
stop_node "$s"
