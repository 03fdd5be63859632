#!/usr/bin/env bash
# A restart keeps every record, the position, the node id and the users.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

n=$(node_dir n1)
start_node "$n"
for i in $(seq 1 20); do
    pds "$n" put "user$i" ui.language "lang-$i" >/dev/null || fail "put $i"
done
pds "$n" del user3 ui.language >/dev/null || fail "del"
expect 0 pds "$n" --json status
before=$OUT
id=$(sed -E 's/.*"node_id":"([0-9a-f]+)".*/\1/' <<<"$before")
stop_node "$n"

start_node "$n"
expect 0 pds "$n" --json status
grep -q "\"node_id\":\"$id\"" <<<"$OUT" || fail "node id changed: $OUT"
grep -q '"last_index":21' <<<"$OUT" || fail "position lost: $OUT"
grep -q '"users":20' <<<"$OUT" || fail "users lost: $OUT"
for i in $(seq 1 20); do
    [ "$i" = 3 ] && continue
    expect 0 pds "$n" get "user$i" ui.language
    [ "$OUT" = "lang-$i" ] || fail "user$i: '$OUT' after restart"
done
expect 1 pds "$n" get user3 ui.language
pass "restart keeps data, deletes, position and node id"

# A write after restart continues the log where it was.
expect 0 pds "$n" put user1 ui.theme dark
expect_out 'at 1/22$'
stop_node "$n"
pass "log continues after restart"
