#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test.
#
#   scripts/test.sh            everything
#   scripts/test.sh -p NAME    extra arguments go to `cargo test`
#
# Needs: the Rust toolchain, and Node.js with npm (the map page's library comes from
# the npm registry; the dashboard's build script installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm is required (the map page's Leaflet library comes from the npm registry)." >&2
    echo "       On Debian/Ubuntu: apt-get install -y nodejs npm" >&2
    exit 1
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
start=$(date +%s)
cargo test --workspace --locked "$@"
echo "scripts/test.sh: all tests passed in $(( $(date +%s) - start )) s"
