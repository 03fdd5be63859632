#!/usr/bin/env bash
# Every bad input gets a clear error and a non-zero exit, and loses nothing.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"
: "${PDS_TESTTOOL:?}"

n=$(node_dir n1)

# No node running at the data directory.
expect 1 pds "$n" get alice ui.language
expect_err 'no pdsyncd is running at .*/n1/pdsyncd.sock'
pass "no node running"

start_node "$n"
expect 0 pds "$n" put alice ui.language en-GB

# Usage errors: exit 2 and a message.
expect 2 "$PDSYNC" --data "$n" frobnicate
expect_err "unknown command 'frobnicate'"
expect 2 "$PDSYNC" --data "$n" --bogus status
expect_err "unknown option '--bogus'"
expect 2 "$PDSYNC" --data "$n" get --bogus alice x
expect_err "unknown option"
expect 2 "$PDSYNC" --data "$n" get alice
expect_err 'get: missing arguments'
expect_err 'usage: pdsync get'
expect 2 "$PDSYNC" --data "$n" put alice ui.language
expect_err 'put: missing arguments'
expect 2 "$PDSYNC" --data "$n" put alice a b c
expect_err 'too many arguments'
expect 2 "$PDSYNC" --data "$n"
expect_err 'missing command'
expect 2 "$PDSYNC" --data
expect_err "needs a value"
expect 2 "$PDSYNCD" --bogus
expect 2 "$PDSYNCD" --data "$n" extra
pass "usage errors exit 2"

# Invalid names.
expect 1 pds "$n" put 'al ice' ui.language x
expect_err 'invalid name: owner name has character 0x20'
expect 1 pds "$n" put alice 'ui..language' x
expect_err 'empty segment'
expect 1 pds "$n" put "$(printf 'a%.0s' $(seq 1 65))" ui.language x
expect_err 'limit is 64 \(setting max_owner_len\)'
expect 1 pds "$n" put alice "$(printf 'a%.0s' $(seq 1 129))" x
expect_err 'setting max_item_len'
pass "invalid owner and item names"

# A value over the limit (1 MiB by default).
head -c $((1024 * 1024 + 1)) /dev/zero >"$T_ROOT/big"
expect 1 pds "$n" put --file "$T_ROOT/big" alice photo
expect_err 'value too large: value is 1048577 bytes; the limit is 1048576 bytes \(setting max_value_size\)'
head -c $((1024 * 1024)) /dev/urandom >"$T_ROOT/max"
expect 0 pds "$n" put --file "$T_ROOT/max" alice photo
expect 0 pds "$n" get --output "$T_ROOT/max.back" alice photo
cmp -s "$T_ROOT/max" "$T_ROOT/max.back" || fail "1 MiB value changed"
pass "value size limit (exactly 1 MiB passes, one byte more is refused)"

# A second pdsyncd on the same data directory.
expect 1 "$PDSYNCD" --data "$n"
expect_err "another pdsyncd \(pid $(node_pid "$n")\) is already running on"
expect 0 pds "$n" get alice ui.language
pass "second pdsyncd refused, first keeps serving"

# Malformed requests: the connection is dropped, the node keeps serving.
sock="$n/pdsyncd.sock"
expect 0 "$PDS_TESTTOOL" raw "$sock" 00000003c1c1c1
[ "$OUT" = closed ] || fail "garbage frame: $OUT"
expect 0 "$PDS_TESTTOOL" raw "$sock" 7fffffff00
[ "$OUT" = closed ] || fail "oversized frame: $OUT"
expect 0 "$PDS_TESTTOOL" raw "$sock" 00000000
[ "$OUT" = closed ] || fail "empty frame: $OUT"
expect 0 "$PDS_TESTTOOL" raw "$sock" 0000000591a3666f6f
[ "$OUT" = closed ] || fail "not-a-map request: $OUT"
expect 0 pds "$n" get alice ui.language
[ "$OUT" = en-GB ] || fail "data changed after malformed requests"
expect 0 pds "$n" log
expect_out 'WARNING local API: malformed request: request is not valid msgpack'
expect_out 'WARNING local API: frame of 2147483647 bytes'
pass "malformed frames close only their connection and are logged"

stop_node "$n"

# A corrupt data directory is refused, never touched.
c=$(node_dir corrupt)
start_node "$c"
expect 0 pds "$c" put alice ui.language en
stop_node "$c"
dd if=/dev/urandom of="$c/db/data.mdb" bs=4096 count=2 conv=notrunc status=none
sum=$(md5sum <"$c/db/data.mdb")
expect 1 "$PDSYNCD" --data "$c"
expect_err 'damaged'
[ "$(md5sum <"$c/db/data.mdb")" = "$sum" ] || fail "corrupt data file was modified"
pass "corrupt data directory refused and left as it was"

# A damaged stored setting (the role, 2 bytes instead of 1): refused with
# its name, not taken for "no role" (a server would start standalone).
command -v mdb_load >/dev/null || fail "mdb_load is missing (tools/deps.sh lmdb-utils)"
r=$(node_dir damagedrole)
start_node "$r" --listen 127.0.0.1:0
printf 'correct-horse-battery-staple\n' >"$T_ROOT/rsecret"
expect 0 pds "$r" server start --join-secret-file "$T_ROOT/rsecret"
stop_node "$r"
printf 'VERSION=3\nformat=print\ndatabase=meta\ntype=btree\nHEADER=END\n blob.role\n \\01\\01\nDATA=END\n' |
    mdb_load -s meta "$r/db" || fail "mdb_load"
expect 1 "$PDSYNCD" --data "$r"
expect_err 'the stored setting "role" is damaged \(role: stored value too large\): the node was not started; restore the data directory from a backup'
pass "a damaged stored setting is refused by name"

# A data directory of a newer format is refused, never touched.
v=$(node_dir newer)
start_node "$v"
expect 0 pds "$v" put alice ui.language en
stop_node "$v"
expect 0 "$PDS_TESTTOOL" set-format "$v/db" 99
sum=$(md5sum <"$v/db/data.mdb")
expect 1 "$PDSYNCD" --data "$v"
expect_err 'format 99.*upgrade'
[ "$(md5sum <"$v/db/data.mdb")" = "$sum" ] || fail "newer-format data file was modified"
pass "newer format refused and left as it was"

# A data directory that is not writable.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    ro=$(node_dir readonly)
    chmod 0755 "$ro"
    chmod o+rx "$T_ROOT"
    expect 1 setpriv --reuid=65534 --regid=65534 --clear-groups "$PDSYNCD" --data "$ro"
    expect_err 'not writable'
    pass "unwritable data directory (as uid 65534)"
else
    ro=$(node_dir readonly)
    chmod 0555 "$ro"
    expect 1 "$PDSYNCD" --data "$ro"
    expect_err 'not writable'
    pass "unwritable data directory"
fi
expect 1 "$PDSYNCD" --data "$T_ROOT/value-is-a-file/x"
expect_err "can't be used"
pass "data directory that can't be created"

# A bad configuration file.
b=$(node_dir badconf)
printf '[limits]\nmax_users = lots\n' >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'pdsyncd.conf line 2: \[limits\] max_users: not a number'
printf '[limits]\ncolour = blue\n' >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'unknown setting'
expect 1 "$PDSYNCD" --data "$b" --config "$T_ROOT/nonexistent.conf"
expect_err 'nonexistent.conf: No such file'
printf '[limits]\nmax_value_size = 8M\n' >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'max_value_size: not a size in 1..3M \(a change must fit one replication frame\)'
printf '[replication]\ncatchup_memory = 512K\n' >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'catchup_memory: not a size in 1M..1G'
printf '[replication]\nmax_clock_skew_s = 0\n' >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'max_clock_skew_s: not a number in 1..86400'
# The line named is the one at fault, whichever kind of error comes first.
printf '[limits]\nmax_users = 5\n\nmax_owner_len = many\nthis is not ini\n' >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'pdsyncd.conf line 4: \[limits\] max_owner_len: not a number'
printf '[limits]\nthis is not ini\nmax_users = lots\n' >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'pdsyncd.conf line 2: not an INI line'
{ printf '[limits]\n; %s\nmax_users = lots\n' "$(head -c 450 /dev/zero | tr '\0' x)"; } >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'pdsyncd.conf line 2: longer than the 199 bytes a line may have'
# 199 bytes is the most a line may have, with LF or CR LF after it.
{ printf '[limits]\n; %s\nmax_users = lots\n' "$(head -c 197 /dev/zero | tr '\0' x)"; } >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'pdsyncd.conf line 3: \[limits\] max_users: not a number'
{ printf '[limits]\r\n; %s\r\nmax_users = lots\r\n' "$(head -c 197 /dev/zero | tr '\0' x)"; } >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'pdsyncd.conf line 3: \[limits\] max_users: not a number'
{ printf '[limits]\nmax_users = 5\n; %s' "$(head -c 197 /dev/zero | tr '\0' x)"; } >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b" --listen bad
expect_err "--listen 'bad' is not HOST:PORT"
printf '[group]\nheartbeat_ms = 1000\ndead_ms = 300\n' >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'dead_ms \(300\) must be larger than heartbeat_ms \(1000\)'
printf '[group]\nmax_machines = 1000\n' >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'max_machines: not a number in 1..257'
printf '[storage]\nmap_initial = 64M\nstorage_budget = 1M\n' >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'map_initial \([0-9]+\) is larger than storage_budget'
printf '[node]\nlocation = floor 3\tdesk\n' >"$b/pdsyncd.conf"
expect 1 "$PDSYNCD" --data "$b"
expect_err 'location: holds a control character'
mkdir -p "$T_ROOT/conf.d"
expect 1 "$PDSYNCD" --data "$b" --config "$T_ROOT/conf.d"
expect_err 'conf.d: not a regular file'
pass "bad configuration files"

# Files, listen addresses and operands that are wrong: each named.
f=$(node_dir files)
expect 1 "$PDSYNCD" --data "$f" --listen localhost
expect_err "--listen 'localhost' is not HOST:PORT"
expect 1 "$PDSYNCD" --data "$f" --listen 7411
expect_err "--listen '7411' is not HOST:PORT"
start_node "$f"
expect 1 pds "$f" put --file "$T_ROOT" alice ui.photo
expect_err "put: $T_ROOT: is a directory \(a file is expected\)"
expect 1 pds "$f" put --file "$T_ROOT/nonexistent" alice ui.photo
expect_err 'nonexistent: No such file or directory'
expect 0 pds "$f" put alice ui.language en
expect 1 pds "$f" get --output "$T_ROOT/nonexistent/x" alice ui.language
expect_err 'get: write .*nonexistent/x: No such file or directory'
expect 1 pds "$f" admin-password set --password-file "$T_ROOT/nonexistent"
expect_err '^pdsync: password: .*nonexistent: No such file'
expect 2 pds "$f" log -n 0
expect_err 'log: --lines must be 1..100000'
expect 2 pds "$f" scope set ui.x sometimes
expect_err 'the scope is shared or device'
expect 0 pds "$f" get alice ui.language
[ "$OUT" = en ] || fail "the node lost alice/ui.language: '$OUT'"
stop_node "$f"
pass "wrong files, listen addresses and operands: each refused by name, nothing lost"

# Out of memory for a write's entry (the test knob makes the 2nd batch
# append fail): that write is refused with the reason, the node goes on,
# the index is used again, and what was acknowledged stays.
o=$(node_dir oom)
PDSYNC_DEBUG_OOM_BATCH=2 start_node "$o"
expect 0 pds "$o" put alice ui.language en
expect 1 pds "$o" put alice ui.theme dark
expect_err 'out of memory: the write was not stored \(nothing was changed\)'
expect 0 pds "$o" put alice ui.theme light
expect 0 pds "$o" get alice ui.theme
[ "$OUT" = light ] || fail "after the refused write, ui.theme is '$OUT'"
expect 0 pds "$o" --json status
expect_out '"last_index":2,'
grep -q 'ERROR out of memory queuing 1 writes: they were refused' "$o/comm.log" ||
    fail "the refused write is not in the communication log"
stop_node "$o"
start_node "$o"
expect 0 pds "$o" get alice ui.language
[ "$OUT" = en ] || fail "after a restart ui.language is '$OUT'"
expect 0 pds "$o" get alice ui.theme
[ "$OUT" = light ] || fail "after a restart ui.theme is '$OUT'"
stop_node "$o"
pass "out of memory for a write: refused with the reason, nothing acknowledged is lost, the index is used again"
