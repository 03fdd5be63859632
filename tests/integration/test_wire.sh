#!/usr/bin/env bash
# What crosses the wire: nothing in clear, and every tampered, replayed,
# garbage, oversized or truncated frame ends only its own connection.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"
: "${PDS_TESTTOOL:?}"

conf() {
    printf '[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 300\n[node]\nproduct = MFP-9000-Secret-Model\nlocation = Building-7-Floor-3\n' >"$1/pdsyncd.conf"
}
proxy_pid=""
start_proxy() {  # TARGET CAPDIR [FLIP_AFTER]
    mkdir -p "$2"
    rm -f "$T_ROOT/proxy.addr"
    "$PDS_TESTTOOL" proxy "$T_ROOT/proxy.addr" "$1" "$2" 60 ${3:+"$3"} &
    proxy_pid=$!
    T_PIDS[proxy$proxy_pid]=$proxy_pid
    for _ in $(seq 1 100); do
        [ -s "$T_ROOT/proxy.addr" ] && break
        sleep 0.02
    done
    [ -s "$T_ROOT/proxy.addr" ] || fail "proxy did not start"
}
stop_proxy() {
    kill "$proxy_pid" 2>/dev/null
    wait "$proxy_pid" 2>/dev/null
    unset "T_PIDS[proxy$proxy_pid]"
}

printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"
s=$(node_dir server); conf "$s"
c=$(node_dir client); conf "$c"
start_node "$s" --listen 127.0.0.1:0
addr=$(cat "$s/listen.addr")
pds "$s" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"

# 1. Capture a whole enrollment through a proxy: nothing readable.
start_proxy "$addr" "$T_ROOT/cap"
# This client acts as a CPU without AES instructions: the pair agrees on
# ChaCha20-Poly1305 (the server would pick AES-256-GCM with its own kind).
PDSYNC_DEBUG_NO_AES=1 start_node "$c"
expect 0 pds "$c" client start "$(cat "$T_ROOT/proxy.addr")" --join-secret-file "$T_ROOT/secret" --name Secret-Printer-Name
wait_for "$s" clients '^[0-9a-f]{16}  connected +Secret-Printer-Name'
expect 0 pds "$c" status
expect_out 'link cipher: ChaCha20-Poly1305'
# Data both ways through the link: a value written on the server reaches
# the client, a value written on the client goes through the server.
pds "$s" put Secret-User-Name addressbook.personal Secret-Value-From-Server >/dev/null || fail "put"
wait_for "$c" "get Secret-User-Name addressbook.personal" '^Secret-Value-From-Server$'
expect 0 pds "$c" put Other-Secret-User ui.language Secret-Value-From-Client
wait_for "$s" "get Other-Secret-User ui.language" '^Secret-Value-From-Client$'
sleep 0.5   # a few heartbeats
stop_proxy
cat "$T_ROOT"/cap/*.c2s "$T_ROOT"/cap/*.s2c >"$T_ROOT/wire.bin"
[ "$(wc -c <"$T_ROOT/wire.bin")" -gt 300 ] || fail "capture is too small"
for secret in Secret-Printer-Name correct-horse-battery-staple \
        Secret-User-Name Secret-Value-From-Server Other-Secret-User \
        Secret-Value-From-Client addressbook.personal \
        MFP-9000-Secret-Model Building-7-Floor-3 "pdsync $(${PDSYNCD} --version | cut -d' ' -f2)"; do
    if grep -qaF -- "$secret" "$T_ROOT/wire.bin"; then
        fail "'$secret' appears in clear on the wire"
    fi
done
pass "captured enrollment and data: no user, item, value, name, product, location, version or secret in clear"

# 2. Replay the client's recorded bytes on a new connection: refused.
expect 0 "$PDS_TESTTOOL" tcp "$addr" "@$T_ROOT/cap/1.c2s"
[ "$OUT" = closed ] || fail "replayed handshake: the server did not close ($OUT)"
expect 0 pds "$s" log
expect_out 'WARNING connection from .*failed authentication'
pass "replayed handshake and frames fail authentication and are dropped"

# 3. Garbage, oversized, truncated frames: connection closed, logged,
#    the enrolled client stays connected.
expect 0 "$PDS_TESTTOOL" tcp "$addr" 00000004deadbeef
[ "$OUT" = closed ] || fail "garbage frame: $OUT"
expect 0 "$PDS_TESTTOOL" tcp "$addr" 7fffffff00
[ "$OUT" = closed ] || fail "oversized frame: $OUT"
expect 0 "$PDS_TESTTOOL" tcp "$addr" 00000000
[ "$OUT" = closed ] || fail "empty frame: $OUT"
head -c 120 "$T_ROOT/cap/1.c2s" >"$T_ROOT/trunc"
expect 0 "$PDS_TESTTOOL" tcp "$addr" "@$T_ROOT/trunc"
expect 0 pds "$s" log
expect_out 'WARNING connection from .*message is not a msgpack map'
expect_out 'WARNING connection from .*frame of 2147483647 bytes is over the limit'
# The server goes on: the client stays enrolled, and writes are taken.
expect 0 pds "$s" clients
expect_out '^[0-9a-f]{16}  (dis)?connected +Secret-Printer-Name '
expect 0 pds "$s" put After-Garbage ui.language en
expect 0 pds "$s" get After-Garbage ui.language
[ "$OUT" = en ] || fail "the server has '$OUT' after the bad frames"
pass "garbage, oversized, empty and truncated frames end only their connection"

# 4. A modified frame: one bit flipped in the server's encrypted stream,
#    first in its stream header (the sealed label that confirms the keys),
#    then in the first message after it. The offsets come from the
#    server's bytes captured above: its hello frame, then the header.
stop_node "$c"
hello_len=$((16#$(head -c 4 "$T_ROOT/cap/1.s2c" | od -An -tx1 | tr -d ' \n')))
header_at=$((4 + hello_len))
t=$(node_dir tamper); conf "$t"
start_proxy "$addr" "$T_ROOT/cap2" $((header_at + 4 + 5))
start_node "$t"
expect 0 pds "$t" client start "$(cat "$T_ROOT/proxy.addr")" --join-secret-file "$T_ROOT/secret" --name Tampered
wait_for "$t" log 'stream header failed authentication \(modified, replayed or encrypted with another key\)'
stop_proxy
stop_node "$t"
t=$(node_dir tamper2); conf "$t"
start_proxy "$addr" "$T_ROOT/cap3" $((header_at + 36 + 4 + 5))
start_node "$t"
expect 0 pds "$t" client start "$(cat "$T_ROOT/proxy.addr")" --join-secret-file "$T_ROOT/secret" --name Tampered2
wait_for "$t" log 'a frame failed authentication \(modified, replayed, reordered or encrypted with another key\)'
stop_proxy
pass "a modified stream header or frame ends the connection with a logged error"

# 5. An unknown node key: a client whose key changed is refused.
start_node "$c"
expect 0 pds "$c" client start "$addr" --join-secret-file "$T_ROOT/secret" --name Secret-Printer-Name
wait_for "$c" status "server: +$addr \(connected\)"
# Both ends as they are: AES-256-GCM when the CPU has AES and carry-less
# multiply instructions.
if grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo; then
    expect_out 'link cipher: AES-256-GCM'
else
    expect_out 'link cipher: ChaCha20-Poly1305'
fi
stop_node "$c"
rm -f "$c/node.key"
start_node "$c"
wait_for "$c" status 'last error: +refused by .*unknown node [0-9a-f]{16}'
expect 0 pds "$s" log
expect_out 'WARNING refused node .*unknown node'
pass "an unknown node key is refused on both ends"

# 6. The node key file: kept 0600, a damaged one refuses the start.
[ "$(stat -c %a "$s/node.key")" = 600 ] || fail "node.key is not mode 0600"
stop_node "$c"
head -c 10 /dev/zero >"$c/node.key"
chmod 600 "$c/node.key"
expect 1 "$PDSYNCD" --data "$c"
expect_err 'node.key is damaged'
chmod 644 "$c/node.key"
expect 1 "$PDSYNCD" --data "$c"
expect_err 'must be mode 0600'
pass "damaged or exposed node key refuses the start"

# 7. A node.key with one bit changed (here in its private half): the start
#    is refused with what to do, instead of every handshake failing.
k=$(node_dir damaged)
cp "$s/node.key" "$k/node.key"
chmod 600 "$k/node.key"
byte=$(od -An -tu1 -j40 -N1 "$k/node.key" | tr -d ' ')
printf "\\$(printf %03o $((byte ^ 1)))" | dd of="$k/node.key" bs=1 seek=40 conv=notrunc 2>/dev/null
# Bounded: a node that took the key would run on.
expect 1 timeout 10 "$PDSYNCD" --data "$k"
expect_err 'node.key is damaged \(its public key does not match its private key\): restore it from a backup, or remove it to make a new identity'
pass "a node.key whose public key is not its private key's refuses the start"

# 8. Connections that never complete the handshake: a deadline (2 s here,
#    10 s by default), small frames only before it completes, and at most
#    64 of them at once. A node of its own, for the deadline knob.
g=$(node_dir gate); conf "$g"
PDSYNC_DEBUG_HANDSHAKE_MS=2000 start_node "$g" --listen 127.0.0.1:0
gaddr=$(cat "$g/listen.addr")
# A frame of max_frame (4 MiB) announced in place of a hello, then
# trickled: refused at once.
expect 0 "$PDS_TESTTOOL" trickle "$gaddr" 1 600 0x400000 1024
[ "$OUT" = "open 0 closed 1" ] || fail "a 4 MiB frame before the handshake was taken: $OUT"
# 80 connections, each announcing a small frame and sending a byte of it
# every 200 ms (never silent): 64 are held, the 16 beyond are closed at
# once, with one Warning for them all.
expect 0 "$PDS_TESTTOOL" trickle "$gaddr" 80 600 1000 1
[ "$OUT" = "open 64 closed 16" ] || fail "connections not joined yet are not capped at 64: $OUT"
# The same trickle past the deadline: every connection is closed.
expect 0 "$PDS_TESTTOOL" trickle "$gaddr" 20 2600 1000 1
[ "$OUT" = "open 0 closed 20" ] || fail "connections outlived the handshake deadline: $OUT"
expect 0 pds "$g" log --lines 1000
expect_out 'WARNING connection from 127\.0\.0\.1:[0-9]+: handshake: malformed frame of 4194304 bytes \(at most 16384 before the handshake completes\)'
expect_out 'WARNING connection from 127\.0\.0\.1:[0-9]+: closed at once: 64 connections have not joined yet \(the limit\)$'
[ "$(grep -c 'closed at once' <<<"$OUT")" -eq 1 ] || fail "the connections closed at once were not reported once"
expect_out 'WARNING connection from 127\.0\.0\.1:[0-9]+: handshake not completed within 2 s'
# A real client enrolls after all that.
pds "$g" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "gate server start"
e=$(node_dir after-flood); conf "$e"
start_node "$e"
expect 0 pds "$e" client start "$gaddr" --join-secret-file "$T_ROOT/secret" --name After-Flood
wait_for "$g" clients '^[0-9a-f]{16}  connected +After-Flood'
stop_node "$e"
stop_node "$g"
pass "handshake deadline, small frames before it and a cap of 64 connections in it; a client enrolls after the flood"
