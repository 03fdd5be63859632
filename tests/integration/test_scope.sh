#!/usr/bin/env bash
# Sharing scope: a device-specific item never enters the log and is kept per
# printer; switching shared -> device first gives every printer the group's
# value; switching back makes the group's value rule again.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

conf() {
    printf '[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 200\n' >"$1/pdsyncd.conf"
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
pds "$a" client start "$addr" --join-secret-file "$T_ROOT/secret" --name a >/dev/null || fail "a"
pds "$b" client start "$addr" --join-secret-file "$T_ROOT/secret" --name b >/dev/null || fail "b"
pds "$s" put alice ui.tray A4 >/dev/null || fail "put"
wait_for "$b" "get alice ui.tray" '^A4$'

expect 1 pds "$a" scope set ui.tray device
expect_err 'set on the group.s server'
expect 2 pds "$s" scope set ui.tray sometimes
expect 0 pds "$s" scope set ui.tray device
expect_out 'ui.tray is device-specific'
wait_for "$a" "scope list" $'^ui.tray\tdevice$'
wait_for "$b" "scope list" $'^ui.tray\tdevice$'
# Every printer starts from the group's value...
expect 0 pds "$a" get alice ui.tray
[ "$OUT" = A4 ] || fail "printer a lost the group's value: $OUT"
# ...and from now on keeps its own.
expect 0 pds "$a" put alice ui.tray Letter
expect_out 'stored alice/ui.tray on this device only'
expect 0 pds "$b" put alice ui.tray A3
expect 0 pds "$a" get alice ui.tray
[ "$OUT" = Letter ] || fail "printer a has '$OUT'"
expect 0 pds "$b" get alice ui.tray
[ "$OUT" = A3 ] || fail "printer b has '$OUT'"
expect 0 pds "$s" get alice ui.tray
[ "$OUT" = A4 ] || fail "the server has '$OUT'"
expect 0 pds "$a" list alice
expect_out $'alice\tui.tray\tLetter'
# A device-specific write makes no log entry.
expect 0 pds "$a" --json status
pos_a=$(sed -E 's/.*"last_index":([0-9]+).*/\1/' <<<"$OUT")
expect 0 pds "$s" --json status
pos_s=$(sed -E 's/.*"last_index":([0-9]+).*/\1/' <<<"$OUT")
[ "$pos_a" = "$pos_s" ] || fail "a device write moved the log ($pos_a vs $pos_s)"
# It survives a restart.
stop_node "$a"
start_node "$a"
expect 0 pds "$a" get alice ui.tray
[ "$OUT" = Letter ] || fail "printer a lost its device value on restart: $OUT"
pass "device-specific item: each printer keeps its own value, outside the log"

# Back to shared: the group's value rules everywhere again.
expect 0 pds "$s" scope set ui.tray shared
wait_for "$a" "get alice ui.tray" '^A4$'
wait_for "$b" "get alice ui.tray" '^A4$'
expect 0 pds "$a" put alice ui.tray B5
wait_for "$b" "get alice ui.tray" '^B5$'
expect 0 pds "$s" scope list
expect_out 'every item is shared'
pass "back to shared: the group's value everywhere, writes synchronized again"
