#!/usr/bin/env bash
# The group: a server and clients on loopback, enrollment with the join
# secret, the server's client accounting, stop/start from the server, the
# group limit, restarts on both sides, and the refusals.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

conf() {  # DIR [extra lines]: fast heartbeats and retries for the tests
    printf '[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 300\nmax_machines = %s\n' \
        "${MAX_MACHINES:-3}" >"$1/pdsyncd.conf"
}

printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"
printf 'wrong-horse-battery-staple\n' >"$T_ROOT/wrong"

s=$(node_dir server); conf "$s"
c1=$(node_dir c1); conf "$c1"
c2=$(node_dir c2); conf "$c2"
c3=$(node_dir c3); conf "$c3"

# A client started before its server keeps retrying and says so.
start_node "$c1"
expect 0 pds "$c1" client start 127.0.0.1:1 --join-secret-file "$T_ROOT/secret" --name printer-1
wait_for "$c1" status 'unreachable, retrying'
expect_out 'last error: +.*connect'
expect 0 pds "$c1" log
expect_out 'WARNING server 127.0.0.1:1: connect: connection refused'
pass "unreachable server: the client retries, logs a Warning, status says so"

start_node "$s" --listen 127.0.0.1:0
addr=$(cat "$s/listen.addr")
expect 0 pds "$s" server start --join-secret-file "$T_ROOT/secret"
expect_out '^server of group [0-9a-f]{32}$'
expect_out "^group port: $addr$"
pass "server start"

expect 0 pds "$c1" client start "$addr" --join-secret-file "$T_ROOT/secret" --name printer-1
wait_for "$c1" status "server: +$addr \(connected\)"
wait_for "$s" clients '^[0-9a-f]{16}  connected +printer-1'
expect 0 pds "$s" --json clients
expect_out '"state":"connected","name":"printer-1"'
expect_out '"address":"127\.0\.0\.1:[0-9]+"'
expect_out '"version":"pdsync [0-9.]+/p5"'
id1=$(sed -E 's/.*"id":"([0-9a-f]{16})".*/\1/' <<<"$OUT")
expect 0 pds "$s" status
expect_out '^machines: +2 of 3'
pass "client enrolls and is listed with id, state, name, address, version"

# Wrong secret: refused, clear error on both ends.
start_node "$c2"
expect 0 pds "$c2" client start "$addr" --join-secret-file "$T_ROOT/wrong" --name printer-2
wait_for "$c2" status 'last error: +refused by .*wrong join secret'
expect 0 pds "$s" log
expect_out 'WARNING refused node .*wrong join secret'
expect 0 pds "$s" clients
grep -q printer-2 <<<"$OUT" && fail "a node with the wrong secret was listed"
pass "wrong join secret refused on both ends"

# With the right secret it joins; the group is then full (3 machines).
expect 0 pds "$c2" client start "$addr" --join-secret-file "$T_ROOT/secret" --name printer-2
wait_for "$s" clients '^[0-9a-f]{16}  connected +printer-2'
start_node "$c3"
expect 0 pds "$c3" client start "$addr" --join-secret-file "$T_ROOT/secret" --name printer-3
wait_for "$c3" status 'last error: +refused by .*group limit reached: the group has 3 machines \(setting max_machines = 3'
expect 0 pds "$s" log
expect_out 'WARNING refused node .*group limit reached'
pass "the 4th machine is refused by the group limit, on both ends"

# Stop a client from the server: disconnected, refused, not counted.
expect 0 pds "$s" clients stop printer-2
expect_out 'client printer-2 stopped'
wait_for "$s" clients 'stopped +printer-2'
wait_for "$c2" status 'stopped by the administrator'
# The freed slot goes to printer-3, which keeps retrying: the stopped
# printer-2 no longer counts (server + printer-1 + printer-3).
wait_for "$s" clients '^[0-9a-f]{16}  connected +printer-3'
expect 0 pds "$s" status
expect_out '^machines: +3 of 3'
expect 1 pds "$s" clients start printer-2
expect_err 'group limit reached'
expect 1 pds "$s" clients stop nosuchclient
expect_err 'no client "nosuchclient"'
pass "clients stop: disconnected, refused, slot freed; start refused when full"

# A client stops itself: the server stops counting it.
expect 0 pds "$c3" client stop
wait_for "$s" clients 'stopped +printer-3'
expect 0 pds "$s" clients start printer-2
wait_for "$s" clients '^[0-9a-f]{16}  connected +printer-2'
pass "client stop is seen by the server; clients start lets a client back"

# Restart the server under its clients: they reconnect by themselves.
stop_node "$s"
wait_for "$c1" status 'unreachable, retrying|connecting'
start_node "$s" --listen "$addr"
wait_for "$s" clients '^[0-9a-f]{16}  connected +printer-1'
wait_for "$s" clients '^[0-9a-f]{16}  connected +printer-2'
wait_for "$c1" status "server: +$addr \(connected\)"
pass "server restarted under its clients: they reconnect"

# Restart a client: it reconnects with its key, no secret needed.
stop_node "$c1"
wait_for "$s" clients "$id1  disconnected"
rm -f "$T_ROOT/secret.copy"
start_node "$c1"
wait_for "$s" clients "$id1  connected"
pass "client restarted: reconnects by its key"

# A client pointed at a node that is not a server.
n=$(node_dir plain); conf "$n"
start_node "$n" --listen 127.0.0.1:0
c4=$(node_dir c4); conf "$c4"
start_node "$c4"
expect 0 pds "$c4" client start "$(cat "$n/listen.addr")" --join-secret-file "$T_ROOT/secret"
wait_for "$c4" status 'last error: +refused by .*not a server'
pass "client pointed at a node that is not a server"

# Protocol version mismatch: clear message on both sides.
c5=$(node_dir c5); conf "$c5"
PDSYNC_DEBUG_PROTOCOL=6 start_node "$c5"
expect 0 pds "$c5" client start "$addr" --join-secret-file "$T_ROOT/secret"
wait_for "$c5" status 'client speaks protocol 6, server speaks 5: upgrade the server'
expect 0 pds "$s" log
expect_out 'client speaks protocol 6, server speaks 5: upgrade the server'
# A client of the release before (protocol 4: its messages carry no
# sender's epoch).
c6=$(node_dir c6); conf "$c6"
PDSYNC_DEBUG_PROTOCOL=4 start_node "$c6"
expect 0 pds "$c6" client start "$addr" --join-secret-file "$T_ROOT/secret"
wait_for "$c6" status 'client speaks protocol 4, server speaks 5: upgrade the client'
expect 0 pds "$s" log
expect_out 'client speaks protocol 4, server speaks 5: upgrade the client'
pass "protocol version mismatch refused with a clear message, either way"

# A port already in use.
expect 1 "$PDSYNCD" --data "$(node_dir busy)" --listen "$addr"
expect_err 'address already in use'
pass "port already in use"

# Bad arguments.
expect 2 pds "$c4" client start "$addr"
expect_err 'join-secret-file F is required'
expect 1 pds "$c4" client start nocolon --join-secret-file "$T_ROOT/secret"
expect_err 'not HOST:PORT'
printf 'short\n' >"$T_ROOT/short"
expect 1 pds "$s" server start --join-secret-file "$T_ROOT/short"
expect_err 'must be 16 to 128 bytes'
expect 1 pds "$s" client start "$addr" --join-secret-file "$T_ROOT/secret"
expect_err 'this node is the server'
expect 1 pds "$c1" server start
expect_err 'this node is a client'
expect 2 pds "$s" server restart
c7=$(node_dir c7); conf "$c7"
start_node "$c7"
expect 1 pds "$c7" client start "$addr" --join-secret-file "$T_ROOT/secret" --name $'x)\n2026-01-01T00:00:00.000Z INFO forged line'
expect_err 'the name holds a control character'
expect 0 pds "$c7" status
expect_out '^role: +standalone'
stop_node "$c7"
# Whatever text reaches the communication log, one entry stays one line.
run pds "$s" clients stop $'ghost\n2026-01-01T00:00:00.000Z WARNING forged line'
expect 0 pds "$s" log
grep -q '^2026-01-01T00:00:00.000Z WARNING forged line' "$s/comm.log" && fail "a forged line reached the communication log"
grep -q 'client ghost.* stopped by the administrator' "$s/comm.log" && fail "a client that does not exist was logged as stopped"
pass "bad arguments and role conflicts"

# The role survives a restart; server stop ends it.
stop_node "$s"
start_node "$s" --listen "$addr"
expect 0 pds "$s" status
expect_out '^role: +server'
expect 0 pds "$s" server stop
wait_for "$c1" status 'unreachable, retrying'
expect 0 pds "$s" status
expect_out '^role: +standalone'
pass "roles survive restarts; server stop disconnects the clients"
