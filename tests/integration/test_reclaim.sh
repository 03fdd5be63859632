#!/usr/bin/env bash
# Optional slot reclaim: off by default; when on, a client silent for longer
# than reclaim_after_s stops counting, and the server says so.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"
fast='[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 300\n'

# Off by default: a silent client keeps its slot.
s=$(node_dir off)
printf "$fast" >"$s/pdsyncd.conf"
start_node "$s" --listen 127.0.0.1:0
pds "$s" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"
c=$(node_dir c1)
printf "$fast" >"$c/pdsyncd.conf"
start_node "$c"
expect 0 pds "$c" client start "$(cat "$s/listen.addr")" --join-secret-file "$T_ROOT/secret" --name quiet
wait_for "$s" clients '^[0-9a-f]{16}  connected +quiet'
stop_node "$c"
wait_for "$s" clients 'disconnected +quiet'
sleep 2.5
expect 0 pds "$s" clients
expect_out 'disconnected +quiet'
expect_out '^2 of 10 machines \(the server included\)$'
pass "off by default: a silent client keeps its slot"
stop_node "$s"

# On: reclaimed after reclaim_after_s, said in clients and status.
r=$(node_dir on)
printf "$fast"'reclaim_after_s = 1\n' >"$r/pdsyncd.conf"
start_node "$r" --listen 127.0.0.1:0
pds "$r" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"
start_node "$c"
expect 0 pds "$c" client start "$(cat "$r/listen.addr")" --join-secret-file "$T_ROOT/secret" --name quiet
wait_for "$r" clients '^[0-9a-f]{16}  connected +quiet'
expect 0 pds "$r" clients
expect_out 'silent for more than 1 s is reclaimed'
expect 0 pds "$r" status
expect_out '^reclaim: +slots of clients silent for 1 s'
stop_node "$c"
wait_for "$r" clients 'stopped +quiet .*slot reclaimed after 1 s without contact'
expect 0 pds "$r" status
expect_out '^machines: +1 of 10'
start_node "$c"
wait_for "$c" status 'last error: +refused by .*its slot was reclaimed'
expect 0 pds "$r" clients start quiet
wait_for "$r" clients '^[0-9a-f]{16}  connected +quiet'
pass "on: a silent client's slot is reclaimed, refused until started again"
