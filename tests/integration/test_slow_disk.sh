#!/usr/bin/env bash
# The event loop never waits on the disk: with a node's fdatasync slowed
# to 2 s (tests/integration/slow_sync.c, preloaded into every node), no
# sync is ever made on its loop thread, its heartbeats and
# acknowledgements keep flowing, so no peer takes it for dead after
# dead_ms = 1000, no link drops, and the writes made during the stall
# complete. A: the server slowed (commits with a standby, a settings
# write, 'replication stop' and commits without a standby); B: a client
# slowed (its follower commits, a write of its own); C: the standby
# slowed (the server's writes wait for its durable confirmation).
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"
: "${PDS_SLOW_SYNC:?the slow_sync fixture (tests/CMakeLists.txt sets PDS_SLOW_SYNC)}"
[ -f "$PDS_SLOW_SYNC" ] || fail "the slow_sync fixture $PDS_SLOW_SYNC is not built"

conf() {
    printf '[group]\nheartbeat_ms = 250\ndead_ms = 1000\nretry_max_ms = 200\n[replication]\nstandby_timeout_ms = 60000\nack_mode = standby\n' >"$1/pdsyncd.conf"
}
# start_slowable DIR ARGS...: start the node with the fixture preloaded;
# its syncs are slowed while DIR/slow.flag exists (ASan must allow a
# library before its own runtime).
start_slowable() {
    local dir=$1
    shift
    LD_PRELOAD=$PDS_SLOW_SYNC PDS_SLOW_SYNC_FLAG="$dir/slow.flag" \
        PDS_SLOW_SYNC_LOG="$dir/slow_sync.log" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
        start_node "$dir" "$@"
}

# slow_disk DIR: every fdatasync, fsync and msync of the node (on every
# thread) takes 2 s more, until fast_disk.
slow_disk() {
    : >"$1/slow_sync.log"
    touch "$1/slow.flag"
}
# fast_disk WHAT DIR: the syncs are fast again. The stall did happen (a
# write of the node went through a slowed sync, or the test means
# nothing), and never on the node's event loop (its first thread).
fast_disk() {
    rm -f "$2/slow.flag"
    grep -q '^DELAYED ' "$2/slow_sync.log" ||
        fail "$1: no sync of the node was slowed"
    if grep -q 'thread=main' "$2/slow_sync.log"; then
        fail "$1: the event loop waited on a slowed sync: $(grep 'thread=main' "$2/slow_sync.log" | head -n 3)"
    fi
    echo "$1: $(grep -c '^DELAYED ' "$2/slow_sync.log") syncs slowed, all on pool threads"
}

# Background commands, each with its own output file and exit code.
JOBS=()
spawn() {  # NAME CMD...: run CMD in the background
    local name=$1
    shift
    ( "$@" >"$T_ROOT/$name.out" 2>&1; echo $? >"$T_ROOT/$name.rc" ) &
    JOBS+=("$name:$!")
}
# dead_peer WHAT: fail when a node took a peer for dead (the text
# net/peer.c logs when a peer is silent for longer than dead_ms).
dead_peer() {
    local f
    for f in "$s" "$sb" "$c"; do
        if grep -h 'presumed dead' "$f/comm.log" "$f/stderr" 2>/dev/null | grep -q .; then
            fail "$1: $(basename "$f") took a peer for dead: $(grep -h 'presumed dead' "$f/comm.log" "$f/stderr" | head -n 3)"
        fi
    done
}
# wait_jobs WHAT: every background command ended (60 s at most), with exit
# 0, and no peer was taken for dead meanwhile.
wait_jobs() {
    local j name pid deadline=$((SECONDS + 60))
    for j in "${JOBS[@]}"; do
        name=${j%%:*}
        pid=${j#*:}
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
            dead_peer "$1"
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && fail "'$name' still runs after 60 s"
        wait "$pid" 2>/dev/null
        [ "$(cat "$T_ROOT/$name.rc")" = 0 ] ||
            fail "'$name' exited $(cat "$T_ROOT/$name.rc"): $(cat "$T_ROOT/$name.out")"
    done
    JOBS=()
}

# links: how many times each follower connected to the server so far.
links() {
    echo "$(grep -c 'connected to server' "$sb/comm.log") $(grep -c 'connected to server' "$c/comm.log")"
}
# no_silence WHAT: no node took a peer for dead, and no link was made again.
no_silence() {
    dead_peer "$1"
    expect 0 pds "$s" clients
    if grep -q 'presumed dead' <<<"$OUT"; then
        fail "$1: the server lost a client: $OUT"
    fi
    expect_out '^[0-9a-f]{16}  connected +sb'
    expect_out '^[0-9a-f]{16}  connected +c'
    [ "$(links)" = "$LINKS" ] || fail "$1: a follower connected again (connections: $LINKS -> $(links))"
}

printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"
printf 'an-administrator-password\n' >"$T_ROOT/pw"
s=$(node_dir server); conf "$s"
start_slowable "$s" --listen 127.0.0.1:0
addr=$(cat "$s/listen.addr")
pds "$s" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"
sb=$(node_dir sb); conf "$sb"; start_slowable "$sb"
expect 0 pds "$sb" client start "$addr" --join-secret-file "$T_ROOT/secret" --name sb
c=$(node_dir c); conf "$c"; start_slowable "$c"
expect 0 pds "$c" client start "$addr" --join-secret-file "$T_ROOT/secret" --name c
wait_for "$s" clients '^[0-9a-f]{16}  connected +sb'
wait_for "$s" clients '^[0-9a-f]{16}  connected +c'
expect 0 pds "$s" replication start sb
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
expect 0 pds "$s" put base ui.language en
wait_for "$c" "get base ui.language" '^en$'
LINKS=$(links)

# A. The server's disk is slow: its commits (with the standby to wait
#    for), a settings write, then 'replication stop' and commits with no
#    standby. The followers hear its heartbeats all along.
slow_disk "$s"
for i in 1 2 3; do spawn "a$i" pds "$s" put "a$i" ui.language "a-$i"; done
spawn ac pds "$c" put ac ui.language from-c
spawn apw pds "$s" admin-password set --password-file "$T_ROOT/pw"
wait_jobs "A (server slowed)"
expect 0 pds "$s" replication stop
for i in 4 5 6; do spawn "a$i" pds "$s" put "a$i" ui.language "a-$i"; done
wait_jobs "A (server slowed, no standby)"
fast_disk A "$s"
no_silence "A (server slowed)"
for i in 1 2 3 4 5 6; do wait_for "$c" "get a$i ui.language" "^a-$i\$"; done
wait_for "$c" "get ac ui.language" '^from-c$'
expect 0 pds "$s" status
expect_out '^acks: +local'
pass "A: a server whose fsync takes 2 s keeps its links; the writes made meanwhile (with and without a standby, a setting, 'replication stop') complete"

# B. A client's disk is slow: it takes the server's entries (one slow
#    commit after another), acknowledges each once durable, and writes.
slow_disk "$c"
for i in 1 2 3; do spawn "b$i" pds "$s" put "b$i" ui.language "b-$i"; done
spawn bc pds "$c" put bc ui.language from-c
wait_jobs "B (client slowed)"
fast_disk B "$c"
no_silence "B (client slowed)"
for i in 1 2 3; do wait_for "$c" "get b$i ui.language" "^b-$i\$"; done
expect 0 pds "$c" get bc ui.language
[ "$OUT" = from-c ] || fail "the client's own write reads '$OUT' on it"
n=$(pds "$s" --json status | sed -E 's/.*"last_index":([0-9]+).*/\1/')
wait_for "$c" "--json status" "\"last_index\":$n,"
pass "B: a client whose fsync takes 2 s stays connected and catches up"

# C. The standby's disk is slow: the server's writes wait for its
#    durable confirmation, which comes, over a link that stays up.
expect 0 pds "$s" replication start sb
wait_for "$s" status '^standby: +[0-9a-f]{16}, following'
slow_disk "$sb"
for i in 1 2 3; do spawn "c$i" pds "$s" put "c$i" ui.language "c-$i"; done
wait_jobs "C (standby slowed)"
fast_disk C "$sb"
no_silence "C (standby slowed)"
for i in 1 2 3; do
    expect 0 pds "$sb" get "c$i" ui.language
    [ "$OUT" = "c-$i" ] || fail "acknowledged write c$i reads '$OUT' on the standby"
done
pass "C: a standby whose fsync takes 2 s stays connected; the writes it confirms are acknowledged"

stop_node "$c"
stop_node "$sb"
stop_node "$s"
