#!/usr/bin/env bash
# The server's log reaches every client: catch-up from the log, live
# shipping, writes on a client through the server, a client that slept,
# a client killed while catching up, and the refusals.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"
: "${PDS_LOAD:?}"

conf() {  # a small catch-up memory: windows of a few big values
    printf '[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 300\n[replication]\ncatchup_memory = 4M\n' >"$1/pdsyncd.conf"
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
# (Epoch 2: a new store is in epoch 1, and 'server start' began the
# server's first term.)
expect_out '^committed bob/ui.theme at 2/3$'
expect 0 pds "$a" get bob ui.theme
[ "$OUT" = dark ] || fail "client A does not read its own write: $OUT"
wait_for "$b" "get bob ui.theme" '^dark$'
expect 0 pds "$s" get bob ui.theme
expect 0 pds "$b" del bob ui.theme
wait_for "$a" "list bob" '^$'
expect 1 pds "$s" get bob ui.theme
pass "write on client A, read on client B (and a delete back)"

# A client that sleeps while 10,000 changes are made catches up from the log.
stop_node "$b"
expect 0 "$PDS_LOAD" --socket "$s/pdsyncd.sock" --writers 8 --count 10000 --value-size 64 --users 50
start_node "$b"
same_data "$s" "$b"
expect 0 pds "$b" --json status
pos_b=$(sed -E 's/.*"last_index":([0-9]+).*/\1/' <<<"$OUT")
expect 0 pds "$s" --json status
pos_s=$(sed -E 's/.*"last_index":([0-9]+).*/\1/' <<<"$OUT")
[ "$pos_b" = "$pos_s" ] || fail "client B at $pos_b, server at $pos_s"
wait_for "$s" "--json clients" "\"name\":\"b\".*\"position\":$pos_s"
wait_for "$s" clients "^[0-9a-f]{16}  connected +b .* $pos_s +following +-"
wait_for "$b" status "^lag: +0 entries \\(the server was at $pos_s"
pass "a client away for 10,000 changes catches up from the log (position $pos_b)"

# Big values: the server keeps about catchup_memory (here 4 MiB) in flight
# to a follower, four of these entries; the follower holds at most half of
# it for one commit; the catch-up goes through windows that close and open
# again.
stop_node "$b"
expect 0 "$PDS_LOAD" --socket "$s/pdsyncd.sock" --writers 4 --count 64 --value-size 1000000 --users 4 --prefix mega --acked "$T_ROOT/mega.acked"
expect 0 pds "$s" --json status
pos_s=$(sed -E 's/.*"last_index":([0-9]+).*/\1/' <<<"$OUT")
start_node "$b"
wait_for "$b" "--json status" "\"last_index\":$pos_s[,}]"
[ "$(wc -l <"$T_ROOT/mega.acked")" = 64 ] || fail "$(wc -l <"$T_ROOT/mega.acked") of 64 writes acknowledged"
while read -r owner item _; do
    expect 0 pds "$b" get "$owner" "$item"
    [ "${#OUT}" = 1000000 ] || fail "$owner/$item on client B has ${#OUT} bytes"
done < <(sed -n '1p;$p' "$T_ROOT/mega.acked")
pass "a client away for 64 writes of 1 MB catches up (position $pos_s)"
for u in $(cut -d' ' -f1 "$T_ROOT/mega.acked" | sort -u); do expect 0 pds "$s" delete-user "$u"; done
same_data "$s" "$b"

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

# Writes on a client while its server is down wait in a durable outbox:
# "queued", readable there at once, kept across a restart of the client,
# replayed in order when the server is back; a refused one is reported and
# does not block the ones after it.
stop_node "$s"
wait_for "$a" status 'unreachable, retrying|connecting'
expect 0 pds "$a" put carol ui.language de
expect_out '^queued carol/ui.language: the server is unreachable'
expect 0 pds "$a" --json put carol ui.theme dark
expect_out '"status":"queued"'
expect 0 pds "$a" get carol ui.language
[ "$OUT" = de ] || fail "client A does not show its queued write: $OUT"
expect 0 pds "$a" put carol ui.language fr
expect 0 pds "$a" get carol ui.language
[ "$OUT" = fr ] || fail "the newest queued write does not rule: $OUT"
expect 0 pds "$a" list carol
expect_out $'^user\tcarol\tui.language\tfr$'
expect_out $'^user\tcarol\tui.theme\tdark$'
expect 0 pds "$a" del alice ui.language
expect_out '^queued alice/ui.language'
expect 1 pds "$a" get alice ui.language
# Over the server's value limit (the client's own limit is the default).
head -c 2000 /dev/zero | tr '\0' x >"$T_ROOT/big"
expect 0 pds "$a" put --file "$T_ROOT/big" carol ui.wallpaper
expect 0 pds "$a" put carol ui.font big
expect 0 pds "$a" status
expect_out '^outbox: +6 writes queued for the server'
stop_node "$a"
start_node "$a"
expect 0 pds "$a" get carol ui.language
[ "$OUT" = fr ] || fail "the outbox did not survive a restart: $OUT"
printf '[limits]\nmax_value_size = 1K\n[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 300\n' >"$s/pdsyncd.conf"
start_node "$s" --listen "$addr"
wait_for "$a" status 'connected\)'
wait_for "$a" status '^outbox: +0 writes queued for the server \(1 refused'
wait_for "$b" "get carol ui.language" '^fr$'
wait_for "$b" "get carol ui.font" '^big$'
expect 0 pds "$b" get carol ui.theme
[ "$OUT" = dark ] || fail "queued write lost: $OUT"
expect 1 pds "$s" get alice ui.language
expect 1 pds "$s" get carol ui.wallpaper
expect 0 pds "$a" status
expect_out '^last refusal: put carol/ui.wallpaper refused by the server: value is 2000 bytes; the limit is 1024 bytes'
expect 0 pds "$a" log
expect_out 'ERROR a write queued while offline was put carol/ui.wallpaper refused'
conf "$s"
pass "offline writes on a client: queued, served, kept, replayed in order; a refused one reported and skipped"

# Last writer wins on the server, by the time each write was made: a write
# queued earlier on one offline client loses to a later one from another.
stop_node "$s"
wait_for "$a" status 'unreachable, retrying|connecting'
wait_for "$b" status 'unreachable, retrying|connecting'
expect 0 pds "$a" put carol ui.language old
sleep 0.01
expect 0 pds "$b" put carol ui.language new
stop_node "$a"
start_node "$s" --listen "$addr"
wait_for "$b" status '^outbox: +0 writes'
wait_for "$s" "get carol ui.language" '^new$'
start_node "$a"
wait_for "$a" status '^outbox: +0 writes queued for the server \(0 refused by it, 1 lost to newer versions\)'
wait_for "$a" "get carol ui.language" '^new$'
expect 0 pds "$s" status
expect_out '^conflicts: +1 client writes lost to newer versions'
expect 0 pds "$a" log
expect_out 'WARNING a write queued while offline \(carol/ui.language\) lost to a newer version'
pass "last writer wins by the write's own time: an older queued write loses, counted on both sides"

# A client whose clock is hours ahead does not win forever: its version is
# restamped with the server's clock, and the server logs it.
stop_node "$a"
PDSYNC_DEBUG_CLOCK_SKEW_MS=$((3 * 3600 * 1000)) start_node "$a"
wait_for "$a" status 'connected\)'
expect 0 pds "$a" put carol ui.language future
expect_out '^committed'
expect 0 pds "$s" log
expect_out 'WARNING a write from client .* carried a clock more than max_clock_skew_s = 60 s ahead'
expect 0 pds "$s" status
expect_out 'conflicts: .* 1 clocks restamped'
expect 0 pds "$b" put carol ui.language present
expect_out '^committed'
wait_for "$a" "get carol ui.language" '^present$'
stop_node "$a"
start_node "$a"
pass "a client clock 3 hours ahead: restamped and logged; a later write still wins"

# First join of a printer with data of its own: the server's copy wins for
# every owner the server holds; owners found only on the printer are
# uploaded to the group.
o=$(node_dir own); conf "$o"
start_node "$o"
expect 0 pds "$o" put carol ui.language mine
expect 0 pds "$o" put carol ui.extra x
expect 0 pds "$o" put dave ui.language fr
expect 0 pds "$o" client start "$addr" --join-secret-file "$T_ROOT/secret" --name own
wait_for "$o" "get carol ui.language" '^present$'
wait_for "$s" "get dave ui.language" '^fr$'
wait_for "$b" "get dave ui.language" '^fr$'
wait_for "$o" status '^outbox: +0 writes'
expect 1 pds "$o" get carol ui.extra
expect 1 pds "$s" get carol ui.extra
same_data "$s" "$o"
expect 0 pds "$s" log
expect_out 'client at .* gets a snapshot: data of its own \(first join\)'
expect 0 pds "$o" log
expect_out 'records found only here are queued for the server'
pass "first join: the server's copy wins for its owners, the printer's own owners are uploaded"

# --merge keeps the newer version of each record instead.
mg=$(node_dir merge); conf "$mg"
start_node "$mg"
expect 0 pds "$mg" put carol ui.language merged
expect 0 pds "$mg" put carol ui.extra2 y
expect 0 pds "$mg" client start "$addr" --join-secret-file "$T_ROOT/secret" --name merge --merge
wait_for "$s" "get carol ui.language" '^merged$'
wait_for "$s" "get carol ui.extra2" '^y$'
wait_for "$b" "get carol ui.extra2" '^y$'
same_data "$s" "$mg"
pass "first join with --merge: the newer version of each record wins"

# Behind the server's log retention: a snapshot, then the log; a crash in
# the middle of it leaves the old copy and converges after restart. The
# server stops first: it keeps the position client B confirmed, and while
# B is away, 'clients' and 'status' mark it "needs refresh" once the
# retained log no longer reaches back to it (also across a restart).
expect 0 pds "$b" --json status
pos_b=$(sed -E 's/.*"last_index":([0-9]+).*/\1/' <<<"$OUT")
wait_for "$s" "--json status" "\"name\":\"b\",\"sent\":[0-9]+,\"durable\":$pos_b,"
stop_node "$s"
stop_node "$b"
printf '[storage]\nlog_retain_entries = 100\n[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 300\n' >"$s/pdsyncd.conf"
start_node "$s" --listen "$addr"
expect 0 pds "$s" clients
expect_out "^[0-9a-f]{16}  disconnected +b .* $pos_b +- "
expect 0 "$PDS_LOAD" --socket "$s/pdsyncd.sock" --writers 8 --count 3000 --value-size 512 --users 50 --prefix snap
stop_node "$s"
start_node "$s" --listen "$addr"
expect 0 pds "$s" clients
expect_out "^[0-9a-f]{16}  disconnected +b .* $pos_b +needs refresh "
expect 0 pds "$s" --json clients
expect_out "\"name\":\"b\",[^}]*\"position\":$pos_b,\"sync\":\"needs refresh\"\}"
expect 0 pds "$s" status
expect_out "^needs refresh: [0-9a-f]{16} \(b\), away at $pos_b, behind the retained log"
expect 0 pds "$s" --json status
expect_out "\"needs_refresh\":\[[^]]*\{\"id\":\"[0-9a-f]{16}\",\"name\":\"b\",\"position\":$pos_b\}"
pass "a client away behind the log retention is marked 'needs refresh' in clients and status"
start_node "$b"
sleep 0.05
crash_node "$b"
start_node "$b"
same_data "$s" "$b"
expect 0 pds "$s" log
expect_out 'client at .* gets a snapshot: behind the log retention'
expect 0 pds "$b" log
expect_out 'took the server.s snapshot at'
expect 0 pds "$s" put snapcheck ui.language after
wait_for "$b" "get snapcheck ui.language" '^after$'
# The other clients may still be taking snapshots after the restart.
wait_for "$s" status ' following$'
expect_out '^followers: '
wait_for "$s" "--json status" '"followers":\[\{"id":"[0-9a-f]{16}","name":"[a-z]+","sent":[0-9]+,"durable":[0-9]+,"applied":[0-9]+,"lag_entries":[0-9]+,"lag_bytes":[0-9]+,"lag_ms":[0-9]+,"state":"following"'
grep -qE '"needs_refresh":\[[^]]*"name":"b"' <<<"$OUT" && fail "client B is still marked 'needs refresh' after its snapshot"
expect 0 pds "$s" clients
expect_out "^[0-9a-f]{16}  connected +b .* following "
pass "behind the log retention: a snapshot (kill -9 midway is harmless), then the log"

# A client that leaves, writes on its own, and comes back: its data is no
# longer the group's log alone, so it is refreshed and its own owner goes up.
expect 0 pds "$b" client stop
expect 0 pds "$b" put erin ui.language sv
wait_for "$s" clients 'stopped +b '
expect 0 pds "$s" clients start b
expect 0 pds "$b" client start "$addr" --join-secret-file "$T_ROOT/secret" --name b
wait_for "$s" "get erin ui.language" '^sv$'
same_data "$s" "$b"
pass "a client that wrote on its own after leaving is refreshed, its own owner uploaded"

# The server restored from an older backup: its clients hold positions it
# never had. They are refreshed to the restored data (nothing half-mixed),
# and the server says so.
stop_node "$s"
cp -a "$s/db" "$T_ROOT/backup-db"
start_node "$s" --listen "$addr"
expect 0 pds "$s" put restore ui.language newer
wait_for "$b" "get restore ui.language" '^newer$'
stop_node "$s"
rm -rf "$s/db"
cp -a "$T_ROOT/backup-db" "$s/db"
start_node "$s" --listen "$addr"
expect 1 pds "$s" get restore ui.language
wait_for "$s" log 'client at .* presented position .*, one this server never had'
wait_for "$b" status '^lag: +0 entries'
same_data "$s" "$b"
expect 1 pds "$b" get restore ui.language
pass "the server restored from a backup: clients ahead of it are refreshed to its data"

# A value over the client's own limit is refused there, not sent: over the
# group's frame limit it would end the link and the writes in flight on it.
head -c 5242880 /dev/zero | tr '\0' x >"$T_ROOT/big5m"
expect 1 pds "$b" put --file "$T_ROOT/big5m" zoe ui.photo
expect_err 'value is 5242880 bytes; the limit is 1048576 bytes \(setting max_value_size\); nothing was written'
expect 0 pds "$b" status
expect_out '^server: .*\(connected\)'
expect 0 pds "$b" put zoe ui.after big
wait_for "$s" "get zoe ui.after" '^big$'
pass "a value over the limit is refused on the client, and its link stays up"
