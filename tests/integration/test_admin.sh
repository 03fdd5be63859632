#!/usr/bin/env bash
# Remote administration over the group port: only with the administrator
# password (stored as a memory-hard hash), wrong passwords refused with a
# delay and logged.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

s=$(node_dir server)
start_node "$s" --listen 127.0.0.1:0
addr=$(cat "$s/listen.addr")
printf 'hunter2-but-longer\n' >"$T_ROOT/pw"
printf 'not-the-password\n' >"$T_ROOT/bad"
printf 'correct-horse-battery-staple\n' >"$T_ROOT/secret"

# Not enabled yet.
expect 1 "$PDSYNC" --node "$addr" --password-file "$T_ROOT/pw" status
expect_err 'remote administration is disabled on this node'
pass "remote administration is off until a password is set"

expect 2 "$PDSYNC" --node "$addr" status
expect_err '--node needs --password-file'
printf 'short\n' >"$T_ROOT/short"
expect 1 pds "$s" admin-password set --password-file "$T_ROOT/short"
expect_err 'must be 8 to 128 bytes'
expect 0 pds "$s" admin-password set --password-file "$T_ROOT/pw"
grep -qaF hunter2 "$s/db/data.mdb" && fail "the password is stored in clear"
pass "password set locally; only its hash is stored"

expect 0 "$PDSYNC" --node "$addr" --password-file "$T_ROOT/pw" status
expect_out '^role: +standalone'
expect 0 "$PDSYNC" --node "$addr" --password-file "$T_ROOT/pw" server start --join-secret-file "$T_ROOT/secret"
expect_out '^server of group'
expect 0 "$PDSYNC" --node "$addr" --password-file "$T_ROOT/pw" --json status
expect_out '"role":"server"'
expect 0 "$PDSYNC" --node "$addr" --password-file "$T_ROOT/pw" put alice ui.language en
expect 0 pds "$s" get alice ui.language
[ "$OUT" = en ] || fail "remote put did not land: $OUT"
head -c 5242880 /dev/zero | tr '\0' x >"$T_ROOT/big5m"
expect 1 "$PDSYNC" --node "$addr" --password-file "$T_ROOT/pw" put --file "$T_ROOT/big5m" alice ui.photo
expect_err 'the request is [0-9]+ bytes, over the 4194304-byte frame of the group port that --node uses \(nothing was sent\)'
expect 0 "$PDSYNC" --node "$addr" --password-file "$T_ROOT/pw" get alice ui.language
pass "remote status, server start and put with the password; a request over the frame is refused before it is sent"

start=$SECONDS
t0=$(date +%s%N)
expect 1 "$PDSYNC" --node "$addr" --password-file "$T_ROOT/bad" server stop
t1=$(date +%s%N)
expect_err 'authentication failed: wrong administrator password'
[ $(( (t1 - t0) / 1000000 )) -ge 900 ] || fail "a wrong password was answered without delay"
expect 0 pds "$s" status
expect_out '^role: +server'
expect 0 pds "$s" log
expect_out 'WARNING wrong administrator password from 127\.0\.0\.1:[0-9]+ \(server-stop refused\)'
pass "wrong password: refused after a delay, logged, nothing changed"

# Many wrong passwords at once (anyone who reaches the group port can try):
# the node goes on answering its own requests at once; the attempts made
# while a password is being checked are refused as busy.
pids=()
for i in $(seq 1 24); do
    "$PDSYNC" --node "$addr" --password-file "$T_ROOT/bad" status >/dev/null 2>"$T_ROOT/att.$i" &
    pids+=($!)
done
# Local puts go on during the flood (how long they take then is measured
# by bench/admin_flood.sh, not here: a duration depends on the machine).
for i in $(seq 1 8); do
    pds "$s" put "flood$i" ui.language en >/dev/null || fail "put $i during the flood"
    sleep 0.1
done
alive=0
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
for p in "${pids[@]}"; do wait "$p"; done
cat "$T_ROOT"/att.* >"$T_ROOT/att"
grep -q 'being checked on this node: try again' "$T_ROOT/att" || fail "no attempt was refused as busy: $(head -c 300 "$T_ROOT/att")"
grep -q 'wrong administrator password' "$T_ROOT/att" || fail "no attempt was checked: $(head -c 300 "$T_ROOT/att")"
expect 0 pds "$s" log
expect_out 'WARNING administration attempts while a password was being checked: [0-9]+ refused \(busy\) since the last such Warning, the latest from 127\.0\.0\.1:[0-9]+'
pass "24 wrong passwords at once: local puts answered ($alive attempts still open after them), the extra attempts refused as busy"

expect 1 "$PDSYNC" --node 127.0.0.1:1 --password-file "$T_ROOT/pw" status
expect_err 'no node answers at 127.0.0.1:1'
expect 1 "$PDSYNC" --node nocolon --password-file "$T_ROOT/pw" status
expect_err 'is not HOST:PORT'
pass "unreachable node and bad address"
stop_node "$s"
