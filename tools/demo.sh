#!/usr/bin/env bash
# demo.sh - the main job: build pdsync, start a group of three printers on
# loopback (printer-1 the server, printer-2 and printer-3 its clients) in
# ./demo-data (or $PDSYNC_DEMO_DATA), write a user's personalized data on
# one printer and read it on another, keep writing while the server is
# away (the outbox), show the group, and stop the nodes.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
bin=build/release
root=${PDSYNC_DEMO_DATA:-demo-data}
rm -rf "$root/printer-1" "$root/printer-2" "$root/printer-3" "$root/join-secret"
mkdir -p "$root"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

start() {  # NAME [pdsyncd args]
    local dir=$root/$1
    shift
    mkdir -p "$dir"
    printf '[group]\nheartbeat_ms = 200\nretry_max_ms = 1000\n[node]\nproduct = MFP demo\n' >"$dir/pdsyncd.conf"
    "$bin/pdsyncd" --data "$dir" "$@" 2>"$dir/pdsyncd.stderr" &
    pids+=($!)
    for _ in $(seq 1 100); do
        "$bin/pdsync" --data "$dir" status >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    cat "$dir/pdsyncd.stderr"
    exit 1
}
on() {  # NAME pdsync args: show and run
    local name=$1
    shift
    echo "[$name] \$ pdsync $*"
    "$bin/pdsync" --data "$root/$name" "$@"
}

start printer-1 --listen 127.0.0.1:0
start printer-2
start printer-3
addr=$(cat "$root/printer-1/listen.addr")
head -c 24 /dev/urandom | base64 >"$root/join-secret"

on printer-1 server start --join-secret-file "$root/join-secret"
on printer-2 client start "$addr" --join-secret-file "$root/join-secret" --name printer-2
on printer-3 client start "$addr" --join-secret-file "$root/join-secret" --name printer-3
for _ in $(seq 1 100); do
    "$bin/pdsync" --data "$root/printer-3" status | grep -q '(connected)' && break
    sleep 0.05
done

echo
echo "# Alice sets her preferences at printer-2..."
on printer-2 put alice ui.language en-GB
on printer-2 put alice accessibility.large-text on
on printer-2 put alice addressbook.personal 'Bob <bob@example.com>; Carol <carol@example.com>'
on printer-1 put --group sales buttons.shared scan-to-sales-share
sleep 0.3
echo
echo "# ...and finds them at printer-3."
on printer-3 get alice ui.language
on printer-3 list alice
on printer-3 get alice ui.theme || echo "(exit $?: as expected, alice has no ui.theme)"
echo
echo "# The server goes away; printer-2 keeps taking Alice's changes (queued)..."
kill -TERM "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
for _ in $(seq 1 100); do
    "$bin/pdsync" --data "$root/printer-2" status | grep -q '(connected)' || break
    sleep 0.05
done
on printer-2 put alice ui.language fr-FR
on printer-2 get alice ui.language
echo
echo "# ...and when the server is back, the change reaches printer-3."
start printer-1 --listen "$addr"
for _ in $(seq 1 200); do
    [ "$("$bin/pdsync" --data "$root/printer-3" get alice ui.language 2>/dev/null)" = fr-FR ] && break
    sleep 0.05
done
on printer-3 get alice ui.language
echo
on printer-1 clients
echo
on printer-1 status
echo
on printer-3 status
echo
echo "# The nodes stop cleanly on SIGTERM; their data stays in $root."
