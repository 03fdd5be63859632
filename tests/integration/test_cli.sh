#!/usr/bin/env bash
# CLI round trips against a real pdsyncd: every command, text and JSON.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"

n=$(node_dir n1)
start_node "$n"

expect 0 pds "$n" put alice ui.language en-GB
expect_out 'committed alice/ui.language at 1/1'
expect 0 pds "$n" get alice ui.language
[ "$OUT" = "en-GB" ] || fail "get returned '$OUT'"
pass "put then get"

expect 0 pds "$n" put alice ui.language fr-FR
expect 0 pds "$n" get alice ui.language
[ "$OUT" = "fr-FR" ] || fail "overwrite: get returned '$OUT'"
pass "overwrite"

printf 'line1\nline2\0binary' >"$T_ROOT/value.bin"
expect 0 pds "$n" put --file "$T_ROOT/value.bin" alice addressbook.personal
expect 0 pds "$n" get --output "$T_ROOT/back.bin" alice addressbook.personal
cmp -s "$T_ROOT/value.bin" "$T_ROOT/back.bin" || fail "--file value changed in the round trip"
expect 0 pds "$n" --json get alice addressbook.personal
expect_out '"value_base64":"bGluZTEKbGluZTIAYmluYXJ5"'
pass "binary value through --file and --output, base64 in JSON"

expect 0 pds "$n" put --group sales buttons.shared scan-to-share
expect 0 pds "$n" get --group sales buttons.shared
[ "$OUT" = "scan-to-share" ] || fail "group get returned '$OUT'"
expect 1 pds "$n" get sales buttons.shared
expect_err 'not found'
pass "group scope is separate from user scope"

expect 0 pds "$n" put bob ui.theme dark
expect 0 pds "$n" list alice
expect_out $'^user\talice\taddressbook.personal\t<[0-9]+ bytes>'
expect_out $'^user\talice\tui.language\tfr-FR$'
grep -q bob <<<"$OUT" && fail "list alice shows bob's items"
expect 0 pds "$n" list
expect_out $'bob\tui.theme\tdark'
expect 0 pds "$n" --json list bob
expect_out '^\[\{"scope":"user","owner":"bob","item":"ui.theme","value":"dark","size":4'
pass "list one owner and all"

expect 0 pds "$n" users
expect_out $'^user\talice\t'
expect_out $'^user\tbob\t'
expect_out $'^group\tsales\t'
pass "users"

expect 0 pds "$n" del bob ui.theme
expect 1 pds "$n" get bob ui.theme
expect_err 'not found: user "bob" has no item "ui.theme"'
expect 1 pds "$n" del bob ui.theme
expect_err 'not found'
pass "del, and del of a missing item"

expect 0 pds "$n" delete-user alice
expect 1 pds "$n" get alice ui.language
expect_err 'not found'
expect 0 pds "$n" list alice
[ -z "$OUT" ] || fail "alice still has items: $OUT"
expect 1 pds "$n" delete-user alice
expect_err 'not found: no user "alice"'
pass "delete-user"

expect 0 pds "$n" status
expect_out '^role: +standalone'
expect_out '^users: +1 of 1000'
expect_out '^groups: +1'
expect_out '^records: +1$'
expect_out '^storage: .* used of 512.0 MiB budget'
expect 0 pds "$n" --json status
expect_out '"role":"standalone"'
expect_out '"users":1,"max_users":1000'
pass "status"

expect 0 pds "$n" log
expect_out 'INFO pdsyncd .* started'
pass "log"

expect 0 pds "$n" --help
expect_out 'usage: pdsync'
for c in put get del list users delete-user status log help; do
    expect 0 pds "$n" "$c" --help
    expect_out "usage: pdsync $c"
done
expect 0 "$PDSYNCD" --help
expect_out 'usage: pdsyncd'
pass "--help for every command"

stop_node "$n"
pass "clean stop on SIGTERM"
