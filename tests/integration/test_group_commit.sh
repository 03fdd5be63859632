#!/usr/bin/env bash
# Writes from many connections that arrive in one loop turn share one
# transaction: with 32 concurrent writers the node makes far fewer commits
# than it commits entries, and every writer was answered.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"
: "${PDS_LOAD:?}"

n=$(node_dir n1)
start_node "$n"
expect 0 "$PDS_LOAD" --socket "$n/pdsyncd.sock" --writers 32 --count 3200 --value-size 256
expect_out '"ops":3200,"errors":0'
expect 0 pds "$n" --json status
commits=$(sed -E 's/.*"commits":([0-9]+).*/\1/' <<<"$OUT")
entries=$(sed -E 's/.*"committed_entries":([0-9]+).*/\1/' <<<"$OUT")
[ "$entries" -eq 3200 ] || fail "committed entries $entries, expected 3200"
# One fsync per write would make commits == entries.
[ "$commits" -le $((entries / 4)) ] || fail "$commits commits for $entries entries: no group commit"
pass "group commit: $entries entries in $commits transactions"
expect 0 pds "$n" --json status
expect_out '"last_index":3200'
stop_node "$n"
