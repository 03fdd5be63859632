#!/usr/bin/env bash
# Group links over IPv6 and by host name, and a frozen peer noticed within
# dead_ms.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

conf() {
    printf '[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 300\n' >"$1/pdsyncd.conf"
}
printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"

# IPv6 loopback, when the machine has it.
if ip -6 addr show lo 2>/dev/null | grep -q '::1'; then
    s6=$(node_dir s6); conf "$s6"
    start_node "$s6" --listen '[::1]:0'
    addr6=$(cat "$s6/listen.addr")
    [[ "$addr6" =~ ^\[::1\]:[0-9]+$ ]] || fail "listen.addr is '$addr6'"
    pds "$s6" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"
    c6=$(node_dir c6); conf "$c6"
    start_node "$c6"
    expect 0 pds "$c6" client start "$addr6" --join-secret-file "$T_ROOT/secret" --name v6
    wait_for "$s6" clients '^[0-9a-f]{16}  connected +v6 .*\[::1\]:[0-9]+'
    pass "IPv6: listen on [::1]:0, a client joins over IPv6"
else
    echo "skip: no IPv6 loopback on this machine"
fi

# A host name, resolved with uv_getaddrinfo: listen where 'localhost'
# resolves first.
first=$(getent ahosts localhost | awk 'NR == 1 { print $1 }')
case $first in
*:*) listen="[$first]:0" ;;
*) listen="$first:0" ;;
esac
s=$(node_dir s); conf "$s"
start_node "$s" --listen "$listen"
port=$(sed -E 's/.*:([0-9]+)$/\1/' "$s/listen.addr")
pds "$s" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"
c=$(node_dir c); conf "$c"
start_node "$c"
expect 0 pds "$c" client start "localhost:$port" --join-secret-file "$T_ROOT/secret" --name by-name
wait_for "$s" clients '^[0-9a-f]{16}  connected +by-name'
wait_for "$c" status "server: +localhost:$port \(connected\)"
pass "a server given by host name (localhost -> $first)"

# A frozen client (SIGSTOP): the server notices it by the silence, after
# the configured dead_ms (the daemon's message says how long it waited).
kill -STOP "$(node_pid "$c")"
wait_for "$s" clients 'disconnected +by-name .*presumed dead'
kill -CONT "$(node_pid "$c")"
ms=$(grep -oE "peer silent for [0-9]+ ms" <<<"$OUT" | tail -n 1 | grep -oE "[0-9]+")
[ -n "$ms" ] || fail "the client list does not say how long the peer was silent"
[ "$ms" -ge "$T_DEAD_MS" ] || fail "the client was presumed dead after $ms ms of silence, before dead_ms ($T_DEAD_MS)"
wait_for "$s" clients '^[0-9a-f]{16}  connected +by-name'
pass "a frozen client is presumed dead after $ms ms of silence (dead_ms $T_DEAD_MS) and comes back by itself"
