#!/usr/bin/env bash
# fuzz.sh [seconds]: build the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang in
# build-fuzz/ (LH_FUZZ=ON: libFuzzer + ASan + UBSan) and run each for `seconds` (default
# 60), one after the other.
#
#   scripts/fuzz.sh            60 s per harness
#   scripts/fuzz.sh 600        ten minutes each
#   LH_FUZZ_ONLY=fuzz_firewall scripts/fuzz.sh 30     one harness
#
# Seeds come from tests/fuzz/corpus/<harness>/ and are copied into build-fuzz/corpus/
# <harness>/, which grows across runs (the checked-in seeds stay small). Anything found
# (crash, leak, timeout, out-of-memory, sanitizer report) is written to build-fuzz/crashes/
# and makes the script exit non-zero; reproduce with build-fuzz/<harness> <file>.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_EACH=${1:-60}
DIR="$ROOT/build-fuzz"
CRASHES="$DIR/crashes"

say() { printf 'fuzz: %s\n' "$*" >&2; }
case "$SECONDS_EACH" in '' | *[!0-9]*) say "usage: fuzz.sh [seconds]"; exit 2 ;; esac
command -v clang >/dev/null || { say "clang is needed (scripts/setup.sh installs it)"; exit 1; }

"$ROOT/scripts/setup.sh" || exit 1

harnesses=()
for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
    h=$(basename "$src" .c)
    if [ -n "${LH_FUZZ_ONLY:-}" ] && [ "$h" != "$LH_FUZZ_ONLY" ]; then continue; fi
    harnesses+=("$h")
done
[ "${#harnesses[@]}" -gt 0 ] || { say "no harness to run"; exit 2; }

# Configured every time (quick when the tree exists): a harness added since the last run
# is only a target once CMake has globbed tests/fuzz/ again.
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$DIR" -DLH_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build "$DIR" -j "$(nproc)" --target "${harnesses[@]}" -- --no-print-directory -s || exit 1

# Leaks count as findings. The quarantine is kept small: DuckDB's allocation pattern
# under ASan otherwise grows the RSS by a few hundred MB over a long run.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=32:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$CRASHES"

dict_for() {
    case "$1" in
    fuzz_firewall_sql) echo "$ROOT/tests/fuzz/sql.dict" ;;
    fuzz_request_path) echo "$ROOT/tests/fuzz/http.dict" ;;
    *) echo "$ROOT/tests/fuzz/json.dict" ;;
    esac
}

failed=0
summary=()
for h in "${harnesses[@]}"; do
    corpus="$DIR/corpus/$h"
    mkdir -p "$corpus"
    cp -n "$ROOT/tests/fuzz/corpus/$h/"* "$corpus/" 2>/dev/null || true
    log="$DIR/$h.log"
    before=$(find "$CRASHES" -name "$h-*" | wc -l)
    say "$h: ${SECONDS_EACH}s (log: ${log#"$ROOT"/})"
    "$DIR/$h" "$corpus" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=4096 \
        -max_len=8192 -dict="$(dict_for "$h")" -artifact_prefix="$CRASHES/$h-" \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    after=$(find "$CRASHES" -name "$h-*" | wc -l)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    size=$(find "$corpus" -type f | wc -l)
    if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
        failed=1
        result="FOUND SOMETHING (exit $rc; see $CRASHES and ${log#"$ROOT"/})"
        grep -E 'ERROR: |SUMMARY: |runtime error|oracle' "$log" | head -n 5 >&2
    else
        result="nothing found"
    fi
    summary+=("$(printf '%-20s %9s runs %7s exec/s %6s corpus  %s' "$h" "${runs:-?}" "${rate:-?}" "$size" "$result")")
done

printf '%s\n' "${summary[@]}"
exit "$failed"
