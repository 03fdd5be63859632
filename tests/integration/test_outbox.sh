#!/usr/bin/env bash
# A client's outbox against a server that cannot take a write now, a
# standby that is away, and a clock set back. Only a refusal of the write
# itself removes it from the outbox; a write sent again that the server
# already holds is answered, not written again (nor reported refused); a
# queued write's version survives a restart with the wall clock set back.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

base='[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 200\n[replication]\nstandby_timeout_ms = 1500\n'
printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"
last_index() {
    pds "$1" --json status | sed -E 's/.*"last_index":([0-9]+).*/\1/'
}

# 1. The server's storage budget is full when a queued write comes: kept,
#    said so, and taken once there is space.
s=$(node_dir server)
printf "${base}[storage]\nmap_initial = 64K\nstorage_budget = 1M\n" >"$s/pdsyncd.conf"
start_node "$s" --listen 127.0.0.1:0
addr=$(cat "$s/listen.addr")
pds "$s" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"
a=$(node_dir a)
printf "$base" >"$a/pdsyncd.conf"
start_node "$a"
expect 0 pds "$a" client start "$addr" --join-secret-file "$T_ROOT/secret" --name a
wait_for "$s" clients '^[0-9a-f]{16}  connected +a '
stop_node "$s"
wait_for "$a" status 'unreachable, retrying|connecting'
head -c 300000 /dev/urandom | base64 -w0 >"$T_ROOT/photo"
expect 0 pds "$a" put --file "$T_ROOT/photo" carol ui.photo
expect_out '^queued carol/ui.photo'
stop_node "$a"
start_node "$s" --listen "$addr"
head -c 30000 /dev/urandom | base64 -w0 >"$T_ROOT/v"
full=0
for i in $(seq 1 200); do
    run pds "$s" put --file "$T_ROOT/v" "filler$i" blob
    [ "$RC" -ne 0 ] && { full=1; break; }
done
[ "$full" = 1 ] || fail "the server's budget never filled"
start_node "$a"
wait_for "$a" status 'not taken by the server for now \(kept, sent again in 5 s\): storage budget exhausted'
expect 0 pds "$a" status
expect_out '^outbox: +1 writes queued for the server'
stop_node "$s"
printf "${base}[storage]\nmap_initial = 64K\nstorage_budget = 64M\n" >"$s/pdsyncd.conf"
start_node "$s" --listen "$addr"
deadline=$((SECONDS + 20))
until pds "$s" get --output /dev/null carol ui.photo >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "the kept write never reached the server"
    sleep 0.2
done
wait_for "$a" status '^outbox: +0 writes queued for the server$'
expect 0 pds "$a" status
grep -q 'not taken by the server for now' <<<"$OUT" && fail "status still says the write was not taken: $OUT"
pass "a server out of budget: the queued write is kept, said so, and taken once space returns"

# 2. The standby is away: queued writes time out and go again, answered
#    from what the server holds, without a new log entry each time; a
#    replayed delete is not reported as refused.
stop_node "$s"
printf "$base" >"$s/pdsyncd.conf"
start_node "$s" --listen "$addr"
sb=$(node_dir standby)
printf "$base" >"$sb/pdsyncd.conf"
start_node "$sb"
expect 0 pds "$sb" client start "$addr" --join-secret-file "$T_ROOT/secret" --name standby
wait_for "$s" clients '^[0-9a-f]{16}  connected +standby '
expect 0 pds "$s" replication start standby
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
wait_for "$a" status 'connected\)'
expect 0 pds "$a" put alice ui.language en
wait_for "$sb" "get alice ui.language" '^en$'
stop_node "$s"
wait_for "$a" status 'unreachable, retrying|connecting'
expect 0 pds "$a" del alice ui.language
for i in $(seq 1 30); do
    pds "$a" put "user$((i % 5))" "item.$i" v >/dev/null || fail "queued put $i"
done
stop_node "$sb"
start_node "$s" --listen "$addr"
wait_for "$a" status 'connected\)'
wait_for "$s" "get user0 item.30" '^v$'
n1=$(last_index "$s")
# Each replay times out after 1.5 s and goes again 1 s later: 4 s sees one.
sleep 4
n2=$(last_index "$s")
[ "$n2" = "$n1" ] || fail "the replays of 31 queued writes grew the server's log from $n1 to $n2 in 4 s"
expect 0 pds "$a" status
expect_out '^outbox: +31 writes queued for the server$'
start_node "$sb"
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
wait_for "$a" status '^outbox: +0 writes queued for the server$'
expect 1 pds "$sb" get alice ui.language
expect 0 pds "$sb" get user3 item.28
expect 0 pds "$a" log
grep -q 'refused by the server' <<<"$OUT" && fail "a replayed write was reported refused: $(grep 'refused by the server' <<<"$OUT" | head -n 2)"
pass "the standby away: replays answered from what the server holds (log stays at $n1), the delete not reported refused"

# 3. A queued write, then a restart with the wall clock 60 s back, then a
#    second write of the same item: the second one wins everywhere.
stop_node "$s"
wait_for "$a" status 'unreachable, retrying|connecting'
expect 0 pds "$a" put carol ui.language first
stop_node "$a"
PDSYNC_DEBUG_CLOCK_SKEW_MS=-60000 start_node "$a"
expect 0 pds "$a" log
expect_out 'WARNING test setting PDSYNC_DEBUG_CLOCK_SKEW_MS=-60000 is in force: unset it outside tests'
expect 0 pds "$a" put carol ui.language second
start_node "$s" --listen "$addr"
wait_for "$a" status '^outbox: +0 writes queued for the server$'
expect 0 pds "$s" get carol ui.language
[ "$OUT" = second ] || fail "the server has '$OUT': a write made after a restart with the clock set back lost to an older one"
pass "the clock mark covers queued writes: after a restart with the clock 60 s back, the newer write wins"

# 4. delete-user is a write like any other: last writer wins. Queued
#    offline, then a write of the same user made after it on A: the delete
#    goes first, the newer write stays. Queued offline while B changes
#    the user online after it: the delete loses to that change (nothing of
#    the user is deleted) and A counts it as lost to a newer version.
stop_node "$sb"
expect 0 pds "$s" replication stop
b=$(node_dir b)
printf "$base" >"$b/pdsyncd.conf"
start_node "$b"
expect 0 pds "$b" client start "$addr" --join-secret-file "$T_ROOT/secret" --name b
wait_for "$a" status 'connected\)'
expect 0 pds "$a" put dora ui.language de
expect 0 pds "$a" put dora ui.theme old
expect 0 pds "$a" put erik ui.language sv
expect 0 pds "$a" put erik ui.theme old
wait_for "$b" "get erik ui.theme" '^old$'
stop_node "$s"
wait_for "$a" status 'unreachable, retrying|connecting'
expect 0 pds "$a" delete-user dora
expect_out '^queued user dora'
expect 0 pds "$a" put dora ui.theme new
expect 0 pds "$a" delete-user erik
# A is stopped before the server comes back, so that its queued delete
# reaches the server only after B's later change of erik.
stop_node "$a"
start_node "$s" --listen "$addr"
wait_for "$b" status 'connected\)'
expect 0 pds "$b" put erik ui.font large
start_node "$a"
wait_for "$a" status '^outbox: +0 writes queued for the server( \(|$)'
for node in "$s" "$b" "$a"; do
    wait_for "$node" "list dora" '^user	dora	ui.theme	new$'
    expect 0 pds "$node" list dora
    [ "$(wc -l <<<"$OUT")" = 1 ] || fail "$node holds for dora: $OUT"
    wait_for "$node" "list erik" '^user	erik	ui.font	large$'
    expect 0 pds "$node" list erik
    [ "$(wc -l <<<"$OUT")" = 3 ] || fail "$node holds for erik: $OUT"
done
expect 0 pds "$a" status
expect_out '\(0 refused by it, 1 lost to newer versions\)'
expect 0 pds "$a" log
expect_out 'WARNING a delete-user erik queued while offline lost to a later change of that user on the server'
pass "a queued delete-user: applied before the user's later write on A; lost to B's later change of the user (nothing deleted)"

# 5. A write queued offline, then the user deleted on B after it: the
#    queued write, older than the delete, loses to it when it comes (the
#    deleted user does not come back with it).
expect 0 pds "$b" put fred ui.y 1
wait_for "$a" "get fred ui.y" '^1$'
stop_node "$s"
wait_for "$a" status 'unreachable, retrying|connecting'
expect 0 pds "$a" put fred ui.x queued
stop_node "$a"
start_node "$s" --listen "$addr"
wait_for "$b" status 'connected\)'
expect 0 pds "$b" delete-user fred
expect_out '^deleted user fred'
start_node "$a"
wait_for "$a" status '^outbox: +0 writes queued for the server \(0 refused by it, 1 lost'
for node in "$s" "$b" "$a"; do
    wait_for "$node" "list fred" '^$'
done
expect 0 pds "$a" log
expect_out 'WARNING a write queued while offline \(fred/ui.x\) lost to a newer version on the server'
pass "a write queued before a delete-user made elsewhere loses to it: the user stays deleted"

# 6. A delete-user queued offline for a user the server deleted before it,
#    and a write of that user made between the two, queued on another
#    printer: the later delete wins also when it reaches the server first
#    (the server moves the user's delete mark on; the write loses to it).
expect 0 pds "$a" put hank ui.a 1
wait_for "$b" "get hank ui.a" '^1$'
stop_node "$a"
expect 0 pds "$b" delete-user hank
wait_for "$s" "list hank" '^$'
stop_node "$s"
wait_for "$b" status 'unreachable, retrying|connecting'
expect 0 pds "$b" put hank ui.b between
expect_out '^queued hank/ui.b'
stop_node "$b"
start_node "$a"
expect 0 pds "$a" get hank ui.a
expect 0 pds "$a" delete-user hank
expect_out '^queued user hank'
start_node "$s" --listen "$addr"
wait_for "$a" status '^outbox: +0 writes queued for the server$'
start_node "$b"
wait_for "$b" status '^outbox: +0 writes queued for the server \(0 refused by it, 1 lost'
for node in "$s" "$b" "$a"; do
    wait_for "$node" "list hank" '^$'
done
pass "a delete-user newer than the server's delete of that user wins over an older write that comes after it"

# 7. First join: a printer's own owners the group does not hold go up,
#    also one the group deleted (the group's delete does not decide them).
expect 0 pds "$s" put gina ui.language en
solo=$(node_dir solo)
printf "$base" >"$solo/pdsyncd.conf"
start_node "$solo"
expect 0 pds "$solo" put gina buttons.personal mine
expect 0 pds "$s" delete-user gina
expect 0 pds "$solo" client start "$addr" --join-secret-file "$T_ROOT/secret" --name solo
wait_for "$s" "get gina buttons.personal" '^mine$'
wait_for "$solo" status '^outbox: +0 writes queued for the server$'
expect 0 pds "$solo" get gina buttons.personal
[ "$OUT" = mine ] || fail "the joining printer lost its own record: '$OUT'"
pass "first join: the printer's own user goes up although the group once deleted that user"
stop_node "$solo"

stop_node "$b"
stop_node "$a"
stop_node "$s"
