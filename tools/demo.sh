#!/usr/bin/env bash
# demo.sh - the main job: build pdsync, start one node on a data directory
# (default ./demo-data), write and read a user's personalized data through
# the pdsync command line, show the node's status, and stop the node.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
bin=build/release
data=${PDSYNC_DEMO_DATA:-demo-data}
mkdir -p "$data"

"$bin/pdsyncd" --data "$data" 2>"$data/pdsyncd.stderr" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    "$bin/pdsync" --data "$data" status >/dev/null 2>&1 && break
    kill -0 $pid 2>/dev/null || { cat "$data/pdsyncd.stderr"; exit 1; }
    sleep 0.1
done

run() { echo "\$ pdsync $*"; "$bin/pdsync" --data "$data" "$@"; }
run put alice ui.language en-GB
run put alice accessibility.large-text on
run put alice addressbook.personal 'Bob <bob@example.com>; Carol <carol@example.com>'
run put --group sales buttons.shared 'scan-to-sales-share'
run get alice ui.language
run list alice
run users
run get alice ui.theme || echo "(exit $?: as expected, alice has no ui.theme)"
run status
echo "\$ kill -TERM $pid   # the node stops cleanly; its data stays in $data"
