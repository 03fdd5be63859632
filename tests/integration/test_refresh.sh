#!/usr/bin/env bash
# Refreshes under load. A snapshot is stamped at a position; the log after
# it must still be there when the last chunk has gone, or the follower is
# refreshed again and again for as long as writes go on (each time a whole
# copy). Confirmations of an earlier copy's chunks that arrive after a new
# copy began are not a protocol error. A client's own writes that a
# snapshot already holds are answered when it is taken, not when some
# later entry happens to come.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"
: "${PDS_LOAD:?}"

printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"
s=$(node_dir server)
printf '[storage]\nlog_retain_entries = 5\n[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 300\n' >"$s/pdsyncd.conf"
start_node "$s" --listen 127.0.0.1:0
addr=$(cat "$s/listen.addr")
pds "$s" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"
expect 0 "$PDS_LOAD" --socket "$s/pdsyncd.sock" --writers 4 --count 2000 --value-size 10000 --users 500 --prefix bulk

c=$(node_dir client)
printf '[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 300\n' >"$c/pdsyncd.conf"
start_node "$c"
"$PDS_LOAD" --socket "$s/pdsyncd.sock" --writers 2 --seconds 8 --value-size 64 --users 100 --prefix live >"$T_ROOT/load.out" 2>&1 &
writer=$!
T_PIDS[writer]=$writer
expect 0 pds "$c" client start "$addr" --join-secret-file "$T_ROOT/secret" --name c
wait "$writer"
rc=$?
unset "T_PIDS[writer]"
[ "$rc" -eq 0 ] || fail "the load on the server failed: $(cat "$T_ROOT/load.out")"
# Right after a snapshot the client reads lag 0 against the snapshot's
# stamp: it has caught up only once it is at the server's last entry.
last=$(pds "$s" --json status | sed -E 's/.*"last_index":([0-9]+).*/\1/')
wait_for "$c" status "^lag: +0 entries \\(the server was at $last "
# The hold: on one link, the log after the snapshot's stamp is still there
# when the last chunk has gone, so no link is refreshed twice. (A link that
# drops while the client applies a copy - its snapshot finish still runs on
# the loop, issue 12 item 3 - is refreshed again on the next one: counted,
# not a failure of the hold.)
n=$(grep -c 'gets a snapshot' "$s/comm.log")
twice=$(grep -oE 'client at [^ ]+ gets a snapshot' "$s/comm.log" | sort | uniq -d)
[ -z "$twice" ] || fail "a link was refreshed more than once while writes went on: $twice"
grep -q 'snapshot chunk out of range' "$s/comm.log" "$c/comm.log" &&
    fail "a late snapshot confirmation closed the link"
deadline=$((SECONDS + 30))
until [ "$(pds "$s" list | sort | md5sum)" = "$(pds "$c" list | sort | md5sum)" ]; do
    [ $SECONDS -lt $deadline ] || fail "the client's records differ from the server's"
    sleep 0.2
done
pass "a snapshot taken while 2 writers go on: $n refresh(es), then the log, and the same records"

# Writes on the client while every commit of the server trims the log
# past it (retention 1): the client is refreshed, and its writers are
# answered without any other write coming.
stop_node "$s"
printf '[storage]\nlog_retain_entries = 1\n[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 300\n' >"$s/pdsyncd.conf"
start_node "$s" --listen "$addr"
wait_for "$c" status 'connected\)'
for round in 1 2 3 4 5 6; do
    pids=()
    for k in 1 2 3 4; do
        timeout $((60 * T_SLOW)) "$PDSYNC" --data "$c" put "u$k" ui.x "r$round" >"$T_ROOT/o.$k" 2>&1 &
        pids+=($!)
    done
    # No other write comes during a round: a writer that is not answered
    # by the refresh itself waits until its timeout (exit 124).
    for k in 1 2 3 4; do
        wait "${pids[$((k - 1))]}"
        rc=$?
        [ "$rc" -eq 0 ] || fail "round $round: 'put u$k' on the client exited $rc: $(cat "$T_ROOT/o.$k")"
    done
done
expect 0 pds "$s" get u4 ui.x
[ "$OUT" = r6 ] || fail "the server has '$OUT' for u4/ui.x"
pass "writes on a client refreshed under them are answered at once (6 rounds of 4)"

# Queued writes of one item, replayed to a server whose log no longer
# reaches the client: the snapshot it takes holds some of them; those are
# done, not sent again and counted as lost to themselves.
stop_node "$s"
wait_for "$c" status 'unreachable, retrying|connecting'
for i in $(seq 1 30); do
    pds "$c" put u ui.x "v$i" >/dev/null || fail "queued put $i"
done
start_node "$s" --listen "$addr"
for i in 1 2 3 4 5; do
    pds "$s" put other ui.x "$i" >/dev/null || fail "put on the server"
done
wait_for "$c" status '^outbox: +0 writes queued for the server$'
expect 0 pds "$s" get u ui.x
[ "$OUT" = v30 ] || fail "the server has '$OUT' for u/ui.x"
expect 0 pds "$s" status
expect_out '^conflicts: +0 client writes lost'
if grep -q 'lost to a newer version' "$c/comm.log"; then
    fail "queued writes a snapshot held were counted lost: $(grep -c 'lost to a newer version' "$c/comm.log")"
fi
pass "queued writes replayed across a refresh: none counted as lost"

stop_node "$c"
stop_node "$s"
