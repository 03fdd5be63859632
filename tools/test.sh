#!/usr/bin/env bash
# test.sh - the whole test suite, as CI runs it: install what is missing,
# check formatting, build the dev and asan presets, run ctest on both, the
# multi-threaded parts under the tsan preset, a
# short benchmark smoke run, and the release build. Ends with "N passed, N
# failed".
#
#   tools/test.sh            everything but the 'slow' label
#   PDS_TEST_SLOW=1 tools/test.sh   also the long soak/fault runs
set -uo pipefail
cd "$(dirname "$0")/.."

# strace: a test slows the server's fsync with its fault injection;
# lmdb-utils: a test damages a stored setting with mdb_load.
tools/deps.sh strace lmdb-utils || exit 1
jobs=$(nproc 2>/dev/null || echo 2)

tools/format.sh --check || { echo "formatting: run tools/format.sh"; echo "0 passed, 1 failed"; exit 1; }
tools/layers.sh || { echo "tools/: a cycle between its files (tools/layers.sh)"; echo "0 passed, 1 failed"; exit 1; }

exclude='bench|slow'
[ "${PDS_TEST_SLOW:-0}" = 1 ] && exclude='bench'

passed=0
failed=0
run_ctest() {  # preset, extra ctest args...
    local preset=$1
    shift
    local out
    out=$(mktemp)
    ctest --preset "$preset" -j"$jobs" "$@" 2>&1 | tee "$out"
    local line
    line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -1)
    if [ -z "$line" ]; then
        failed=$((failed + 1))
    else
        local total nfail
        total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
        nfail=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
        passed=$((passed + total - nfail))
        failed=$((failed + nfail))
    fi
    rm -f "$out"
}

for preset in dev asan; do
    if ! { cmake --preset "$preset" >/dev/null && cmake --build --preset "$preset" -j"$jobs"; }; then
        echo "build of preset $preset failed"
        failed=$((failed + 1))
        continue
    fi
    # Sanitizer runtime settings for the asan build's children as well.
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_ctest "$preset" -LE "$exclude"
done
# ThreadSanitizer over what runs on more than one thread: the standby's
# commit on a pool thread, with map growth (a report stops the daemon,
# and the test fails).
if cmake --preset tsan >/dev/null && cmake --build --preset tsan -j"$jobs" >/dev/null; then
    TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
        run_ctest tsan -R 'unit.test_storage|integration.test_standby|integration.test_replicate'
else
    echo "build of preset tsan failed"
    failed=$((failed + 1))
fi
# The benchmark's short smoke run (the figures themselves: bench/run.sh).
run_ctest dev -L bench
# The optimized build the demo and the benchmarks use: it must compile
# warning-free too (the optimizer sees more).
if cmake --preset release -DPDS_WERROR=ON >/dev/null &&
    cmake --build --preset release -j"$jobs" >/dev/null; then
    passed=$((passed + 1))
    echo "release build: ok"
else
    failed=$((failed + 1))
    echo "release build failed"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
