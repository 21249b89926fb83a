#!/usr/bin/env bash
# setup.sh: install everything lakehouse needs to build, run and test, on Debian 12.
#
# Idempotent and quick when already done: Debian packages are installed only when one is
# missing (one dpkg-query), and DuckDB is fetched only when .deps/duckdb lacks the pinned
# version. DuckDB 1.4.4 comes from two npm packages (the shared library from the node
# bindings, the header from the duckdb source package), each verified against the sha256
# pinned in scripts/deps.sha256 before anything is unpacked. Nothing third-party enters
# the tree: .deps/ is ignored.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS="$ROOT/.deps"
DUCK="$DEPS/duckdb"
DUCK_STAMP="$DUCK/.version"
DUCK_VERSION="1.4.4 (node-bindings 1.4.4-r.4)"

PACKAGES=(
    build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
    ca-certificates curl python3 python3-nacl
    libmicrohttpd-dev libjansson-dev libsodium-dev libcurl4-openssl-dev libcmocka-dev
    libpcre2-dev libpq-dev libmariadb-dev
    libutf8proc-dev libfaiss-dev libopenblas-dev
    # the release server's allocator (CMakeLists.txt, LH_JEMALLOC)
    libjemalloc-dev
    # the fuzzers build with clang, whose OpenMP is LLVM's libomp (FAISS's GOMP calls
    # resolve through its compatibility layer)
    libomp-dev
    postgresql postgresql-client mariadb-server mariadb-client
    wrk
)

say() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_packages() {
    local p status
    # npm: any npm on PATH will do (a nodesource Node bundles its own and conflicts with
    # Debian's npm package); a bare Debian gets Debian's.
    command -v npm >/dev/null 2>&1 || printf '%s\n' npm
    for p in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$status" = "install ok installed" ] || printf '%s\n' "$p"
    done
}

install_packages() {
    local missing
    missing=$(missing_packages)
    [ -z "$missing" ] && return 0
    say "installing Debian packages: $(echo $missing)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

fetch_duckdb() {
    if [ -f "$DUCK_STAMP" ] && [ "$(cat "$DUCK_STAMP")" = "$DUCK_VERSION" ] &&
        [ -f "$DUCK/lib/libduckdb.so" ] && [ -f "$DUCK/include/duckdb.h" ]; then
        return 0
    fi
    say "fetching DuckDB $DUCK_VERSION from the npm registry"
    local work
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    (cd "$work" && npm pack --silent @duckdb/node-bindings-linux-x64@1.4.4-r.4 duckdb@1.4.4 >/dev/null)
    grep -v '^#' "$ROOT/scripts/deps.sha256" >"$work/sums"
    if ! (cd "$work" && sha256sum --quiet -c sums); then
        say "checksum mismatch for the DuckDB npm tarballs; refusing to install them"
        exit 1
    fi
    tar -C "$work" -xzf "$work/duckdb-node-bindings-linux-x64-1.4.4-r.4.tgz" package/libduckdb.so
    mkdir -p "$work/hdr"
    tar -C "$work/hdr" -xzf "$work/duckdb-1.4.4.tgz" package/src/duckdb/src/include/duckdb.h
    rm -rf "$DUCK.new"
    mkdir -p "$DUCK.new/lib" "$DUCK.new/include"
    mv "$work/package/libduckdb.so" "$DUCK.new/lib/libduckdb.so"
    mv "$work/hdr/package/src/duckdb/src/include/duckdb.h" "$DUCK.new/include/duckdb.h"
    echo "$DUCK_VERSION" >"$DUCK.new/.version"
    rm -rf "$DUCK"
    mv "$DUCK.new" "$DUCK"
}

install_packages
mkdir -p "$DEPS"
fetch_duckdb
