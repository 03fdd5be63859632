#!/usr/bin/env bash
# The users limit (refuse-new and evict-lru) and the storage budget.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

# The 1,001st user is refused with the default limit of 1,000.
n=$(node_dir users)
start_node "$n"
for i in $(seq 1 1000); do
    pds "$n" put "u$i" ui.language en >/dev/null || fail "user $i refused"
done
expect 1 pds "$n" put u1001 ui.language en
expect_err 'limit reached: user limit reached: the group holds 1000 users \(setting max_users = 1000, policy refuse-new\)'
expect 1 pds "$n" get u1001 ui.language
expect 0 pds "$n" put u1 ui.theme dark
expect 0 pds "$n" status
expect_out '^users: +1000 of 1000'
expect 0 pds "$n" log
expect_out 'refused'
expect 0 pds "$n" delete-user u500
expect 0 pds "$n" put u1001 ui.language en
pass "1,001st user refused, existing users write, room after delete-user"
stop_node "$n"

# evict-lru: the least recently used user makes room.
e=$(node_dir evict)
printf '[limits]\nmax_users = 3\nuser_limit_policy = evict-lru\n' >"$e/pdsyncd.conf"
start_node "$e"
pds "$e" put a x 1 >/dev/null && sleep 0.01
pds "$e" put b x 1 >/dev/null && sleep 0.01
pds "$e" put c x 1 >/dev/null && sleep 0.01
pds "$e" get a x >/dev/null && sleep 0.01   # a is used again: b is the LRU
expect 0 pds "$e" put d x 1
expect 1 pds "$e" get b x
expect 0 pds "$e" get a x
expect 0 pds "$e" get c x
expect 0 pds "$e" get d x
pass "evict-lru evicts the least recently used user"
stop_node "$e"

# The storage budget: writes fail clearly, reads keep working.
s=$(node_dir budget)
printf '[storage]\nmap_initial = 256K\nstorage_budget = 1M\n' >"$s/pdsyncd.conf"
start_node "$s"
head -c 20000 /dev/urandom | base64 -w0 >"$T_ROOT/v"
full=0
for i in $(seq 1 200); do
    run pds "$s" put --file "$T_ROOT/v" "user$i" blob
    if [ "$RC" -ne 0 ]; then full=$i; break; fi
done
[ "$full" -gt 1 ] || fail "budget never reached or first write failed: $ERR"
expect_err '^pdsync: storage budget exhausted: the data needs more than storage_budget'
grep -q 'exhausted: storage budget exhausted' <<<"$ERR" && fail "the kind of error is said twice: $ERR"
expect 0 pds "$s" get --output "$T_ROOT/v1" user1 blob
cmp -s "$T_ROOT/v" "$T_ROOT/v1" || fail "data written before the budget was hit changed"
expect 1 pds "$s" get "user$full" blob
expect 0 pds "$s" status
expect 0 pds "$s" log
expect_out 'ERROR .*storage budget exhausted'
pass "storage budget exhausted after $((full - 1)) writes; reads still work"
stop_node "$s"
start_node "$s"
expect 0 pds "$s" get --output "$T_ROOT/v1" user1 blob
cmp -s "$T_ROOT/v" "$T_ROOT/v1" || fail "data changed across restart at budget"
stop_node "$s"
pass "restart at budget keeps data"
