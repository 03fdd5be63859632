#!/usr/bin/env bash
# run.sh - the pdsync benchmark: in one run, on one disk, the raw LMDB
# ceiling (100 puts per durable transaction) and a real pdsyncd under N
# concurrent writers and under one writer. One JSON line per result and a
# summary line with the ratio against the ceiling.
#
#   bench/run.sh [--seconds S] [--writers N] [--build DIR] [--check-target]
#
# --check-target makes the exit code 1 when a target is missed (64 writers:
# >= 50% of the raw ceiling, p99 <= 10 ms). Without it the run only has to
# work: shared machines are noisy, so CI runs it short and reports.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

seconds=5
writers=64
build=""
check=0
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --writers) writers=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --check-target) check=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
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
load="$build/bench/pds_load"
raw="$build/bench/pds_lmdb_raw"
for b in "$pdsyncd" "$pdsync" "$load" "$raw"; do
    [ -x "$b" ] || { echo "run.sh: $b is not built" >&2; exit 1; }
done

# Data on the same disk as the build, for both pdsyncd and raw LMDB.
work=$(mktemp -d "$build/bench-run.XXXXXX")
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The ceiling with keys shaped like pdsync's records (random inserts), and
# the sequential-append best case of LMDB for reference.
"$raw" --dir "$work/raw" --seconds "$seconds" --batch 100 --value-size 256 \
    --keys random | tee "$work/raw.json"
"$raw" --dir "$work/rawseq" --seconds "$seconds" --batch 100 --value-size 256 \
    --keys seq | tee "$work/rawseq.json"
rm -rf "$work/raw" "$work/rawseq"

mkdir -p "$work/node"
"$pdsyncd" --data "$work/node" 2>"$work/node.stderr" &
pid=$!
deadline=$((SECONDS + 10))
until "$pdsync" --data "$work/node" status >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "run.sh: pdsyncd did not start" >&2
        cat "$work/node.stderr" >&2
        exit 1
    fi
    sleep 0.05
done

"$load" --socket "$work/node/pdsyncd.sock" --writers "$writers" \
    --seconds "$seconds" --value-size 256 | tee "$work/many.json"
"$load" --socket "$work/node/pdsyncd.sock" --writers 1 \
    --seconds "$seconds" --value-size 256 --prefix single | tee "$work/one.json"

field() {  # file key
    sed -E "s/.*\"$2\":([0-9.]+).*/\1/" "$1"
}
raw_rate=$(field "$work/raw.json" puts_per_s)
seq_rate=$(field "$work/rawseq.json" puts_per_s)
rate=$(field "$work/many.json" ops_per_s)
p99=$(field "$work/many.json" p99_us)
errors=$(field "$work/many.json" errors)
ops=$(field "$work/many.json" ops)
one_p50=$(field "$work/one.json" p50_us)
ratio=$(awk -v a="$rate" -v b="$raw_rate" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
seq_ratio=$(awk -v a="$rate" -v b="$seq_rate" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
pass=$(awk -v r="$ratio" -v p="$p99" 'BEGIN { print (r >= 0.5 && p <= 10000) ? "true" : "false" }')
echo "{\"bench\":\"summary\",\"writers\":$writers,\"ops_per_s\":$rate,\"lmdb_raw_puts_per_s\":$raw_rate,\"ratio_vs_lmdb_raw\":$ratio,\"lmdb_raw_seq_puts_per_s\":$seq_rate,\"ratio_vs_lmdb_raw_seq\":$seq_ratio,\"p99_us\":$p99,\"single_writer_p50_us\":$one_p50,\"target_ratio\":0.5,\"target_p99_us\":10000,\"pass\":$pass}"

[ "$ops" -gt 0 ] || { echo "run.sh: no writes completed" >&2; exit 1; }
[ "$errors" -eq 0 ] || { echo "run.sh: $errors writes failed" >&2; exit 1; }
if [ "$check" -eq 1 ] && [ "$pass" != true ]; then
    echo "run.sh: target missed" >&2
    exit 1
fi
exit 0
