#!/usr/bin/env bash
# build.sh [release|san]: configure and build one of the two trees.
#   release → build/      (build/lakehouse, what users run and benchmarks measure)
#   san     → build-san/  (ASan + UBSan; what the test command runs)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:-release}
case "$kind" in
release) dir="$ROOT/build"; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
san) dir="$ROOT/build-san"; flags=(-DCMAKE_BUILD_TYPE=Debug -DLH_SANITIZE=ON) ;;
*) echo "usage: build.sh [release|san]" >&2; exit 2 ;;
esac
[ -f "$dir/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" -- --no-print-directory -s
