#!/usr/bin/env bash
# The server's log reaches every client: catch-up from the log, live
# shipping, writes on a client through the server, a client that slept,
# a client killed while catching up, and the refusals.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"
: "${PDS_LOAD:?}"

conf() {
    printf '[group]\nheartbeat_ms = 100\ndead_ms = 600\nretry_max_ms = 300\n' >"$1/pdsyncd.conf"
}
# same_data A B: both nodes list exactly the same records.
same_data() {
    local deadline=$((SECONDS + 20)) a b
    while [ $SECONDS -lt $deadline ]; do
        a=$(pds "$1" list | sort)
        b=$(pds "$2" list | sort)
        [ -n "$a" ] && [ "$a" = "$b" ] && return 0
        sleep 0.1
    done
    fail "the records of $1 and $2 differ ($(wc -l <<<"$a") vs $(wc -l <<<"$b") lines)"
}
printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"

s=$(node_dir server); conf "$s"
start_node "$s" --listen 127.0.0.1:0
addr=$(cat "$s/listen.addr")
pds "$s" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"
pds "$s" put alice ui.language en-GB >/dev/null || fail "put"
pds "$s" put --group sales buttons.shared scan >/dev/null || fail "put"

a=$(node_dir a); conf "$a"
b=$(node_dir b); conf "$b"
start_node "$a"
start_node "$b"
expect 0 pds "$a" client start "$addr" --join-secret-file "$T_ROOT/secret" --name a
expect 0 pds "$b" client start "$addr" --join-secret-file "$T_ROOT/secret" --name b
wait_for "$a" "get alice ui.language" '^en-GB$'
wait_for "$b" "get --group sales buttons.shared" '^scan$'
pass "clients that join get the server's log from the start"

# A write on client A is committed by the server, readable on A at once,
# and reaches client B.
expect 0 pds "$a" put bob ui.theme dark
expect_out '^committed bob/ui.theme at 1/3$'
expect 0 pds "$a" get bob ui.theme
[ "$OUT" = dark ] || fail "client A does not read its own write: $OUT"
wait_for "$b" "get bob ui.theme" '^dark$'
expect 0 pds "$s" get bob ui.theme
expect 0 pds "$b" del bob ui.theme
wait_for "$a" "list bob" '^$'
expect 1 pds "$s" get bob ui.theme
pass "write on client A, read on client B (and a delete back)"

# A client that sleeps while 1,000 changes are made catches up from the log.
stop_node "$b"
expect 0 "$PDS_LOAD" --socket "$s/pdsyncd.sock" --writers 8 --count 1000 --value-size 64 --users 50
start_node "$b"
same_data "$s" "$b"
expect 0 pds "$b" --json status
pos_b=$(sed -E 's/.*"last_index":([0-9]+).*/\1/' <<<"$OUT")
expect 0 pds "$s" --json status
pos_s=$(sed -E 's/.*"last_index":([0-9]+).*/\1/' <<<"$OUT")
[ "$pos_b" = "$pos_s" ] || fail "client B at $pos_b, server at $pos_s"
wait_for "$s" "--json clients" "\"name\":\"b\".*\"position\":$pos_s"
wait_for "$s" clients "connected +b .* $pos_s +-"
wait_for "$b" status "^lag: +0 entries \\(the server was at $pos_s"
pass "a client away for 1,000 changes catches up from the log (position $pos_b)"

# Killed in the middle of a catch-up: after restart its position never ran
# ahead of its data, and it converges.
stop_node "$b"
expect 0 "$PDS_LOAD" --socket "$s/pdsyncd.sock" --writers 8 --count 5000 --value-size 512 --users 50 --prefix big
start_node "$b"
sleep 0.05
crash_node "$b"
start_node "$b"
same_data "$s" "$b"
pass "kill -9 during a catch-up: the client resumes and converges"

# Writes on a client while its server is down are refused clearly.
stop_node "$s"
wait_for "$a" status 'unreachable, retrying|connecting'
expect 1 pds "$a" put carol ui.language de
expect_err 'the server is unreachable: the write was not accepted'
start_node "$s" --listen "$addr"
wait_for "$a" status 'connected\)'
expect 0 pds "$a" put carol ui.language de
wait_for "$b" "get carol ui.language" '^de$'
pass "a client write while the server is down: refused, then works again"

# A node with data of its own is not mixed into the group's data.
o=$(node_dir own); conf "$o"
start_node "$o"
pds "$o" put dave ui.language fr >/dev/null || fail "put"
expect 0 pds "$o" client start "$addr" --join-secret-file "$T_ROOT/secret" --name own
wait_for "$o" status 'last error: +not synchronized: it holds data of its own'
expect 0 pds "$s" log
expect_out 'WARNING client at .* not synchronized: it holds data of its own'
expect 1 pds "$s" get dave ui.language
pass "a client with data of its own is refused synchronization, clearly"

# A client that leaves, writes on its own, and comes back is not mixed in
# either: its data is no longer the group's log alone.
expect 0 pds "$b" client stop
expect 0 pds "$b" put erin ui.language sv
wait_for "$s" clients 'stopped +b '
expect 0 pds "$s" clients start b
expect 0 pds "$b" client start "$addr" --join-secret-file "$T_ROOT/secret" --name b
wait_for "$b" status 'last error: +not synchronized: it holds data of its own'
expect 1 pds "$s" get erin ui.language
pass "a client that wrote on its own after leaving is refused synchronization"
