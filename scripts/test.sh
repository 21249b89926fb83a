#!/usr/bin/env bash
# test.sh: set up (packages, DuckDB), build with ASan + UBSan, run every test: the unit
# tests (cmocka, through ctest), the end-to-end tests against the real server (the attack
# corpus included) and the libFuzzer harnesses for LH_FUZZ_SECONDS each (default 60). Ends
# with one line "N passed, M failed" and exits non-zero if anything failed.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/setup.sh" || exit 1
"$ROOT/scripts/build.sh" san || exit 1
# issue 15: the official MCP TypeScript SDK for tests/e2e/test_mcp.py, pinned by
# tests/mcp/package-lock.json; installed once (npm ci only when the lock changed).
if [ ! -f tests/mcp/node_modules/.lakehouse-lock ] ||
    ! cmp -s tests/mcp/package-lock.json tests/mcp/node_modules/.lakehouse-lock; then
    (cd tests/mcp && npm ci --no-audit --no-fund --loglevel=error &&
        cp package-lock.json node_modules/.lakehouse-lock) || exit 1
fi

# Sanitizers: any report fails the run (halt_on_error), leaks included.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0

echo "== unit tests (ctest, ASan + UBSan)"
ctest --test-dir build-san --output-on-failure 2>&1 | tee build-san/ctest.log
u_total=$(sed -nE 's/.*tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\2/p' build-san/ctest.log)
u_failed=$(sed -nE 's/.*tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\1/p' build-san/ctest.log)
if [ -z "$u_total" ]; then u_total=1; u_failed=1; fi
passed=$((passed + u_total - u_failed))
failed=$((failed + u_failed))

echo "== end-to-end tests (real server, ASan + UBSan)"
python3 tests/e2e/run_e2e.py --bin build-san/lakehouse --mkparquet build-san/lh_mkparquet \
    2>&1 | tee build-san/e2e.log
e_line=$(grep -E '^e2e: [0-9]+ passed, [0-9]+ failed' build-san/e2e.log | tail -n 1)
if [ -n "$e_line" ]; then
    passed=$((passed + $(echo "$e_line" | sed -E 's/^e2e: ([0-9]+) passed.*/\1/')))
    failed=$((failed + $(echo "$e_line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
else
    failed=$((failed + 1))
fi

echo "== fuzzers (libFuzzer + ASan + UBSan, ${LH_FUZZ_SECONDS:-60} s each)"
# Each harness counts as one test: it passes when it ran its time and found nothing.
"$ROOT/scripts/fuzz.sh" "${LH_FUZZ_SECONDS:-60}" 2>&1 | tee build-san/fuzz.log
f_ok=$(grep -c ' nothing found$' build-san/fuzz.log)
f_bad=$(grep -c 'FOUND SOMETHING' build-san/fuzz.log)
[ "$f_ok" -gt 0 ] || [ "$f_bad" -gt 0 ] || f_bad=1 # the fuzz build itself failed
passed=$((passed + f_ok))
failed=$((failed + f_bad))

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
