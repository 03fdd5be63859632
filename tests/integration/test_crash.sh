#!/usr/bin/env bash
# kill -9 during a stream of concurrent writes loses no acknowledged write.
source "${PDS_TEST_LIB:-$(dirname "$0")/lib.sh}"
: "${PDS_LOAD:?}"

n=$(node_dir n1)
rounds=${PDS_CRASH_ROUNDS:-3}
total=0
for round in $(seq 1 "$rounds"); do
    start_node "$n"
    acked="$T_ROOT/acked.$round"
    : >"$acked"
    "$PDS_LOAD" --socket "$n/pdsyncd.sock" --writers 16 --seconds 30 \
        --value-size 64 --users 20 --prefix "r$round" --acked "$acked" \
        >"$T_ROOT/load.$round" 2>&1 &
    load=$!
    # Let writes flow, then kill the node in the middle of them.
    deadline=$((SECONDS + 20))
    while [ "$(wc -l <"$acked")" -lt 300 ] && [ $SECONDS -lt $deadline ]; do
        sleep 0.05
    done
    crash_node "$n"
    wait "$load"
    n_acked=$(wc -l <"$acked")
    [ "$n_acked" -ge 300 ] || fail "round $round: only $n_acked writes acknowledged before the crash"

    start_node "$n"
    missing=0
    while read -r owner item value; do
        if ! got=$(pds "$n" get "$owner" "$item" 2>/dev/null) ||
                [ "${got:0:${#value}}" != "$value" ]; then
            echo "missing after crash: $owner $item" >&2
            missing=$((missing + 1))
        fi
    done <"$acked"
    [ "$missing" -eq 0 ] || fail "round $round: $missing of $n_acked acknowledged writes lost"
    total=$((total + n_acked))
    stop_node "$n"
done
pass "$rounds crashes under 16 writers: all $total acknowledged writes present"
