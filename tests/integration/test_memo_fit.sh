#!/usr/bin/env bash
# Restamp memos travel with their entries and must fit one frame with them.
# A client whose clock is hours ahead writes tens of thousands of small
# values: every one is restamped by the server, so every entry has a memo.
# A fresh client then catches up from the log: a range cut for the entries
# alone (3 MiB, about 45,000 of these) would, with their memos, pass the
# 4 MiB frame limit (5.2 MB when the fit is taken out) and be refused
# by the follower on every try. It must get every record and every memo,
# and no node may log a refused or oversized frame.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"
: "${PDS_LOAD:?}"

n=${PDS_MEMO_FIT_WRITES:-60000}
conf() {
    printf '[group]\nheartbeat_ms = 200\nretry_max_ms = 300\n[storage]\nlog_retain_entries = 1000000\n' >"$1/pdsyncd.conf"
}
printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"

s=$(node_dir server); conf "$s"
start_node "$s" --listen 127.0.0.1:0
addr=$(cat "$s/listen.addr")
pds "$s" server start --join-secret-file "$T_ROOT/secret" >/dev/null || fail "server start"

a=$(node_dir ahead); conf "$a"
PDSYNC_DEBUG_CLOCK_SKEW_MS=$((3 * 3600 * 1000)) start_node "$a"
expect 0 pds "$a" client start "$addr" --join-secret-file "$T_ROOT/secret" --name ahead
wait_for "$a" status 'connected\)'
expect 0 "$PDS_LOAD" --socket "$a/pdsyncd.sock" --writers 64 --count "$n" \
    --value-size 8 --users 100 --prefix skew
expect 0 pds "$s" --json status
expect_out "\"restamp_memos\":$n,"
pass "$n writes from a clock 3 hours ahead: each restamped, each with its memo"

c=$(node_dir fresh); conf "$c"
start_node "$c"
expect 0 pds "$c" client start "$addr" --join-secret-file "$T_ROOT/secret" --name fresh
deadline=$((SECONDS + 60))
until pds "$c" --json status 2>/dev/null | grep -qE "\"restamp_memos\":$n,"; do
    [ $SECONDS -lt $deadline ] || {
        run pds "$c" --json status
        fail "the fresh client never held all $n memos"
    }
    sleep 0.1
done
expect 0 pds "$c" --json status
expect_out "\"records\":$n,"
expect 0 pds "$s" --json status
last=$(sed -E 's/.*"last_index":([0-9]+).*/\1/' <<<"$OUT")
expect 0 pds "$c" --json status
expect_out "\"last_index\":$last,"
for d in "$s" "$c"; do
    expect 0 pds "$d" log
    if grep -qiE 'over the limit|too large|malformed' <<<"$OUT"; then
        fail "$d logged a refused frame: $(grep -iE 'over the limit|too large|malformed' <<<"$OUT" | head -n 3)"
    fi
done
pass "a fresh client catches up $n restamped entries from the log, memos and all, in frames that fit"

stop_node "$c"
stop_node "$a"
stop_node "$s"
