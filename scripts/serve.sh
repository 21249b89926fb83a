#!/usr/bin/env bash
# serve.sh [serve flags]: set up (packages, DuckDB), build the release binary and start the
# server on the embedded default: data in ./data, listening on 127.0.0.1:8470.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh" release
# FAISS's OpenMP threads spin while they wait unless told otherwise; beside DuckDB and the
# HTTP workers that slows index builds several times (docs/VECTORS.md). Keep a caller's
# own choice.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
exec "$ROOT/build/lakehouse" serve "$@"
