#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-browser   skip the browser tests (for quick local runs)
#
# Needs the Rust toolchain and Node.js with npm. Installs what else the tests use:
# Debian's chromium (with apt-get, as root) and playwright-core (npm, cached in
# tests/browser/node_modules). A missing requirement is an error, never a silent skip.
set -euo pipefail
cd "$(dirname "$0")/.."

browser=1
for arg in "$@"; do
    case "$arg" in
        --no-browser) browser=0 ;;
        *) echo "usage: scripts/test.sh [--no-browser]" >&2; exit 2 ;;
    esac
done

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is required. $2" >&2; exit 1; }
}
need cargo "Install Rust from your distribution or rustup."
need npm "The map page's Leaflet comes from the npm registry. On Debian: apt-get install -y nodejs npm"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
start=$(date +%s)

echo "== cargo test (unit, golden, property, end-to-end)"
cargo test --workspace --locked

if [ "$browser" = 1 ]; then
    echo "== browser tests"
    if [ ! -x /usr/bin/chromium ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "Installing Debian's chromium..."
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        else
            echo "error: /usr/bin/chromium is missing; install it (apt-get install chromium) or pass --no-browser" >&2
            exit 1
        fi
    fi
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
    cargo build --release --locked --bin streamcity
    node --test tests/browser/
fi

echo "scripts/test.sh: all tests passed in $(( $(date +%s) - start )) s"
