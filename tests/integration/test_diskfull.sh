#!/usr/bin/env bash
# A full disk: writes fail with a clear "disk full" error, nothing is lost,
# reads keep working, and the node restarts with its data. The data
# directory is a 4 MiB tmpfs mounted in a mount namespace of this test's
# own (unshare -m); where that is not allowed the test says so and skips.
if [ -z "${PDS_IN_MOUNT_NS:-}" ]; then
    if unshare -m true 2>/dev/null; then
        PDS_IN_MOUNT_NS=1 exec unshare -m bash "$0" "$@"
    fi
    echo "skip: cannot make a mount namespace here (unshare -m)"
    exit 0
fi
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

n="$T_ROOT/small"
mkdir -p "$n"
mount -t tmpfs -o size=4m tmpfs "$n" || fail "mount tmpfs"
trap 'umount "$n" 2>/dev/null; t_cleanup' EXIT
printf '[storage]\nmap_initial = 256K\nstorage_budget = 64M\n' >"$n/pdsyncd.conf"
start_node "$n"
head -c 60000 /dev/urandom | base64 -w0 >"$T_ROOT/v"
full=0
for i in $(seq 1 200); do
    run pds "$n" put --file "$T_ROOT/v" "user$i" blob
    if [ "$RC" -ne 0 ]; then full=$i; break; fi
done
[ "$full" -gt 1 ] || fail "the disk never filled, or the first write failed: $ERR"
expect_err 'disk full: the file system of the data directory is full'
expect 0 pds "$n" get --output "$T_ROOT/v1" user1 blob
cmp -s "$T_ROOT/v" "$T_ROOT/v1" || fail "data written before the disk filled changed"
expect 1 pds "$n" get "user$full" blob
expect 0 pds "$n" log
expect_out 'ERROR .*disk full|ERROR .*file system of the data directory is full'
pass "disk full after $((full - 1)) writes: clear error, reads keep working"
stop_node "$n"
start_node "$n"
expect 0 pds "$n" get --output "$T_ROOT/v1" "user$((full - 1))" blob
cmp -s "$T_ROOT/v" "$T_ROOT/v1" || fail "the last acknowledged write changed across restart"
expect 0 pds "$n" delete-user user1
pass "restart on a full disk keeps every acknowledged write"
stop_node "$n"

# A follower whose disk fills stops applying the server's entries, says so
# (status, comm log), keeps what it had, and resumes by itself once space
# returns.
f="$T_ROOT/follower"
mkdir -p "$f"
mount -t tmpfs -o size=4m tmpfs "$f" || fail "mount tmpfs"
trap 'umount "$n" "$f" 2>/dev/null; t_cleanup' EXIT
s=$(node_dir server)
conf='[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 300\n'
printf "$conf" >"$s/pdsyncd.conf"
printf "[storage]\nmap_initial = 256K\nstorage_budget = 64M\n$conf" >"$f/pdsyncd.conf"
start_node "$s" --listen 127.0.0.1:0
start_node "$f"
printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"
expect 0 pds "$s" server start --join-secret-file "$T_ROOT/secret"
expect 0 pds "$s" put alice ui.language en
expect 0 pds "$f" client start "$(cat "$s/listen.addr")" --join-secret-file "$T_ROOT/secret" --name f
wait_for "$f" "get alice ui.language" '^en$'
for i in $(seq 1 120); do
    pds "$s" put --file "$T_ROOT/v" "big$i" blob >/dev/null || fail "server put $i"
done
wait_for "$f" status 'last error: +cannot apply the server.s entries: .*full'
expect 0 pds "$f" get alice ui.language
expect 0 pds "$f" log
expect_out 'ERROR cannot apply the server.s entries: .*full'
pass "a follower's disk fills: it stops applying, says so, and keeps its data"
mount -o remount,size=64m "$f" || fail "remount"
deadline=$((SECONDS + 20))
until pds "$f" get --output /dev/null big120 blob >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "the follower did not resume"
    sleep 0.1
done
expect 0 pds "$f" get --output "$T_ROOT/v2" big120 blob
cmp -s "$T_ROOT/v" "$T_ROOT/v2" || fail "the follower's copy differs"
expect 0 pds "$f" --json status
pf=$(sed -E 's/.*"last_index":([0-9]+).*/\1/' <<<"$OUT")
expect 0 pds "$s" --json status
ps=$(sed -E 's/.*"last_index":([0-9]+).*/\1/' <<<"$OUT")
[ "$pf" = "$ps" ] || fail "follower at $pf, server at $ps"
pass "space returns: the follower resumes by itself and converges"
stop_node "$f"
stop_node "$s"

# A server whose disk is full cannot make the snapshot a new client needs:
# it tells the client why (the client's status and log show it), keeps
# serving its other work, and serves the client once space returns.
sv="$T_ROOT/fullserver"
mkdir -p "$sv"
mount -t tmpfs -o size=8m tmpfs "$sv" || fail "mount tmpfs"
trap 'umount "$n" "$f" "$sv" 2>/dev/null; t_cleanup' EXIT
printf "[storage]\nmap_initial = 256K\nstorage_budget = 64M\nlog_retain_entries = 10\n$conf" >"$sv/pdsyncd.conf"
start_node "$sv" --listen 127.0.0.1:0
expect 0 pds "$sv" server start --join-secret-file "$T_ROOT/secret"
for i in $(seq 1 30); do
    pds "$sv" put "user$i" ui.language "lang-$i" >/dev/null || fail "server put $i"
done
dd if=/dev/zero of="$sv/filler" bs=64k >/dev/null 2>&1 || true
c=$(node_dir newclient)
printf "$conf" >"$c/pdsyncd.conf"
start_node "$c"
expect 0 pds "$c" client start "$(cat "$sv/listen.addr")" --join-secret-file "$T_ROOT/secret" --name c
wait_for "$c" status 'last error: +not synchronized: the server could not make a snapshot: .*(space|full)'
expect 0 pds "$c" log
expect_out 'WARNING server .*: not synchronized: the server could not make a snapshot'
expect 0 pds "$sv" log
expect_out 'ERROR snapshot for .*(space|full)'
wait_for "$sv" clients ' c .*the server could not make a snapshot'
expect 0 pds "$sv" get user30 ui.language
pass "a server's disk full: a client that needs a snapshot is told why"
rm -f "$sv/filler"
wait_for "$c" "get user30 ui.language" '^lang-30$'
wait_for "$c" status '^server: .*\(connected\)'
expect 0 pds "$c" status
if grep -q '^last error:' <<<"$OUT"; then fail "the client still shows an error: $OUT"; fi
pass "space returns: the client takes its snapshot"
stop_node "$c"
stop_node "$sv"

# A follower whose storage budget is exhausted stops applying and says so
# in full, and its own status gives its lag, in --json too.
sv=$(node_dir lagserver)
printf '[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 200\n[storage]\nmap_initial = 256K\nstorage_budget = 64M\n' >"$sv/pdsyncd.conf"
start_node "$sv" --listen 127.0.0.1:0
svaddr=$(cat "$sv/listen.addr")
expect 0 pds "$sv" server start --join-secret-file "$T_ROOT/secret"
lf=$(node_dir lagging)
printf '[group]\nheartbeat_ms = '"$T_HB_MS"'\ndead_ms = '"$T_DEAD_MS"'\nretry_max_ms = 200\n[storage]\nmap_initial = 256K\nstorage_budget = 1M\n' >"$lf/pdsyncd.conf"
start_node "$lf"
expect 0 pds "$lf" client start "$svaddr" --join-secret-file "$T_ROOT/secret" --name lagging
wait_for "$sv" clients '^[0-9a-f]{16}  connected +lagging '
head -c 45000 /dev/urandom | base64 -w0 >"$T_ROOT/v45"
for i in $(seq 1 20); do
    pds "$sv" put --file "$T_ROOT/v45" "lag$i" blob >/dev/null || fail "put lag$i"
done
wait_for "$lf" status '^last error: +cannot apply the server.s entries: storage budget exhausted: .*raise storage_budget \(nothing was written\)$'
# The error is cleared each time the follower reconnects (about every
# 100 ms) until the next commit fails: the --json status is polled too.
wait_for "$lf" "--json status" '"last_error":"cannot apply the server.s entries: storage budget exhausted: [^"]*\(nothing was written\)"'
expect_out '"lag_entries":[1-9][0-9]*,'
pass "a follower that cannot apply says why in full, and gives its lag in --json"
stop_node "$lf"
stop_node "$sv"
