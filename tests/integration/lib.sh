# lib.sh - the harness of the integration tests (sourced, bash).
#
# Every node runs in its own directory under one temporary root; every
# process a test starts is recorded by PID and stopped by the EXIT trap;
# waits are polls with deadlines; node logs are printed when a test fails.
set -uo pipefail

: "${PDSYNCD:?PDSYNCD must point at the pdsyncd binary}"
: "${PDSYNC:?PDSYNC must point at the pdsync binary}"

# PDS_SLOW (set per build by tests/CMakeLists.txt: 1, 2 under ASan, 5 under
# ThreadSanitizer) scales what a slow build cannot keep to: the heartbeat
# and dead times the tests configure (T_HB_MS, T_DEAD_MS, T_RETRY_MS) and the
# deadline of wait_for.
T_SLOW=${PDS_SLOW:-1}
T_HB_MS=$((100 * T_SLOW))
T_DEAD_MS=$((600 * T_SLOW))
T_RETRY_MS=$((300 * T_SLOW))

T_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/pds-it.XXXXXX")
T_FAILED=0
declare -A T_PIDS=()
OUT=""
ERR=""
RC=0

t_cleanup() {
    local dir pid
    for dir in "${!T_PIDS[@]}"; do
        pid=${T_PIDS[$dir]}
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$T_FAILED" -ne 0 ]; then
        for dir in "$T_ROOT"/*/; do
            [ -f "$dir/stderr" ] && { echo "--- $dir stderr"; tail -n 40 "$dir/stderr"; }
            [ -f "$dir/comm.log" ] && { echo "--- $dir comm.log"; tail -n 20 "$dir/comm.log"; }
        done
    fi
    chmod -R u+w "$T_ROOT" 2>/dev/null
    rm -rf "$T_ROOT"
}
trap t_cleanup EXIT

fail() {
    T_FAILED=1
    echo "FAIL: $*" >&2
    [ -n "$OUT" ] && echo "  stdout: $OUT" >&2
    [ -n "$ERR" ] && echo "  stderr: $ERR" >&2
    exit 1
}

pass() {
    echo "ok: $*"
}

# node_dir NAME: the data directory of a node (created).
node_dir() {
    mkdir -p "$T_ROOT/$1"
    echo "$T_ROOT/$1"
}

# wait_ready DIR [SECONDS]: poll 'pdsync status' until it answers.
wait_ready() {
    local dir=$1 deadline=$((SECONDS + ${2:-20}))
    while [ $SECONDS -lt $deadline ]; do
        "$PDSYNC" --data "$dir" status >/dev/null 2>&1 && return 0
        if [ -n "${T_PIDS[$dir]:-}" ] && ! kill -0 "${T_PIDS[$dir]}" 2>/dev/null; then
            fail "pdsyncd on $dir exited during start: $(tail -n 5 "$dir/stderr")"
        fi
        sleep 0.05
    done
    fail "pdsyncd on $dir not ready after ${2:-20} s"
}

# start_node DIR [pdsyncd args...]: start pdsyncd and wait until it serves.
start_node() {
    local dir=$1
    shift
    "$PDSYNCD" --data "$dir" "$@" >>"$dir/stderr" 2>&1 &
    T_PIDS[$dir]=$!
    wait_ready "$dir"
}

node_pid() {
    echo "${T_PIDS[$1]}"
}

# stop_node DIR: SIGTERM, wait (bounded) for a clean exit with status 0.
stop_node() {
    local dir=$1 pid=${T_PIDS[$1]} deadline=$((SECONDS + 20)) rc
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "pdsyncd on $dir did not stop within 20 s of SIGTERM"
    fi
    wait "$pid"
    rc=$?
    unset "T_PIDS[$dir]"
    [ "$rc" -eq 0 ] || fail "pdsyncd on $dir exited with $rc after SIGTERM"
}

# crash_node DIR: kill -9, no clean-up of any kind.
crash_node() {
    local dir=$1 pid=${T_PIDS[$1]}
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    unset "T_PIDS[$dir]"
}

# run CMD...: run a command, keeping its stdout, stderr and exit code.
run() {
    local o e
    o=$(mktemp "$T_ROOT/out.XXXXXX")
    e=$(mktemp "$T_ROOT/err.XXXXXX")
    "$@" >"$o" 2>"$e"
    RC=$?
    OUT=$(cat "$o")
    ERR=$(cat "$e")
    rm -f "$o" "$e"
    return 0
}

# expect RC CMD...: run and check the exit code.
expect() {
    local want=$1
    shift
    run "$@"
    [ "$RC" -eq "$want" ] || fail "'$*' exited $RC, expected $want"
}

# expect_out PATTERN / expect_err PATTERN: grep -E on the last output.
expect_out() {
    grep -qE -- "$1" <<<"$OUT" || fail "stdout does not match /$1/"
}
expect_err() {
    grep -qE -- "$1" <<<"$ERR" || fail "stderr does not match /$1/"
}

# pds DIR ARGS...: pdsync on a node.
pds() {
    local dir=$1
    shift
    "$PDSYNC" --data "$dir" "$@"
}

# wait_for DIR "CMD ARGS" PATTERN: poll a pdsync command on a node until its
# output matches (a deadline of PDS_WAIT_S seconds, 30 by default, times
# PDS_SLOW).
wait_for() {
    local dir=$1 pattern=$3 deadline=$((SECONDS + ${PDS_WAIT_S:-30} * T_SLOW))
    local -a cmd
    read -r -a cmd <<<"$2"
    while [ $SECONDS -lt $deadline ]; do
        run pds "$dir" "${cmd[@]}"
        grep -qE -- "$pattern" <<<"$OUT" && return 0
        sleep 0.05
    done
    fail "'pdsync ${cmd[*]}' on $dir never matched /$pattern/"
}
