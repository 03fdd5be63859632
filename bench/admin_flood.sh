#!/usr/bin/env bash
# admin_flood.sh - local put latency while wrong administrator passwords
# are checked. The password hash (crypto_pwhash, memory-hard) runs on a
# worker thread: a local put must not wait for it. Runs N local puts
# quiet, then N while a flood of wrong-password attempts goes on, and
# prints the medians and the worst of each and their ratio.
#
#   bench/admin_flood.sh [--puts N] [--attempts N] [--build DIR]
#
# Shared machines are noisy: quote the ratio of the two medians of one run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

puts=20
attempts=24
build=""
while [ $# -gt 0 ]; do
    case $1 in
    --puts) puts=$2; shift 2 ;;
    --attempts) attempts=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "admin_flood.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$build" ]; then
    "$root/tools/deps.sh"
    (cd "$root" && cmake --preset release >/dev/null &&
        cmake --build --preset release -j"$(nproc)" >/dev/null)
    build="$root/build/release"
fi
pdsyncd="$build/pdsyncd"
pdsync="$build/pdsync"

dir=$(mktemp -d "${TMPDIR:-/tmp}/pds-flood.XXXXXX")
pid=""
flood=()
cleanup() {
    for p in "${flood[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
    rm -rf "$dir"
}
trap cleanup EXIT

"$pdsyncd" --data "$dir" --listen 127.0.0.1:0 >"$dir/stderr" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
    "$pdsync" --data "$dir" status >/dev/null 2>&1 && break
    sleep 0.05
done
addr=$(cat "$dir/listen.addr")
printf 'hunter2-but-longer\n' >"$dir/pw"
printf 'not-the-password\n' >"$dir/bad"
"$pdsync" --data "$dir" admin-password set --password-file "$dir/pw" >/dev/null

# put_ms: one local put's wall time in ms.
put_ms() {
    local t0 t1
    t0=$(date +%s%N)
    "$pdsync" --data "$dir" put "$1" ui.language en >/dev/null
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
worst() { sort -n | tail -n 1; }

quiet=$(for i in $(seq 1 "$puts"); do put_ms "quiet$i"; done)
for i in $(seq 1 "$attempts"); do
    "$pdsync" --node "$addr" --password-file "$dir/bad" status >/dev/null 2>&1 &
    flood+=($!)
done
loud=$(for i in $(seq 1 "$puts"); do put_ms "flood$i"; done)
for p in "${flood[@]}"; do wait "$p" 2>/dev/null || true; done
flood=()

qm=$(median <<<"$quiet")
lm=$(median <<<"$loud")
printf '{"bench":"admin_flood","puts":%d,"attempts":%d,"quiet_p50_ms":%d,"quiet_max_ms":%d,"flood_p50_ms":%d,"flood_max_ms":%d,"ratio_p50":%s}\n' \
    "$puts" "$attempts" "$qm" "$(worst <<<"$quiet")" "$lm" "$(worst <<<"$loud")" \
    "$(awk -v a="$lm" -v b="$qm" 'BEGIN { if (b < 1) b = 1; printf "%.2f", a / b }')"
