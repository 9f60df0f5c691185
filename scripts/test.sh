#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-browser   skip the browser tests (for quick local runs)
#
# Needs the Rust toolchain, Node.js with npm, and python3 (to find a free port; and for
# gtfs-guru, the GTFS validator the export test runs, and the Python side of the
# producer benchmark, kafka-python, both from PyPI into ~/.cache/streamcity/python).
# Installs what else the tests use: the tansu Kafka broker (cargo install, cached in
# ~/.cargo/bin), Debian's chromium and the DejaVu fonts for the benchmark charts (apt-get,
# as root), and playwright-core (npm, cached in tests/browser/node_modules). A missing
# requirement is an error, never a skip.
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

# Installs a Debian package when missing (as root), or stops with what to do.
apt_install() {
    local package=$1 what=$2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing Debian's $package ($what)..."
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    else
        echo "error: $what is missing; install it (apt-get install $package)" >&2
        exit 1
    fi
}

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
start=$(date +%s)

# A real Kafka-protocol broker for the Kafka tests: tansu, built once into ~/.cargo/bin
# (about 15 minutes on 2 cores the first time), started on a free loopback port.
TANSU_VERSION=0.6.0
if ! command -v tansu >/dev/null 2>&1 || ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    echo "== installing tansu $TANSU_VERSION (once; cached in ~/.cargo/bin)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
fi
broker_dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$broker_dir" && exec tansu broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ > "$broker_dir/tansu.log" 2>&1) &
broker_pid=$!
trap 'kill $broker_pid 2>/dev/null; wait $broker_pid 2>/dev/null; rm -rf "$broker_dir"' EXIT
for _ in $(seq 100); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
(echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "error: tansu did not start:" >&2; cat "$broker_dir/tansu.log" >&2; exit 1; }
export STREAMCITY_TEST_BROKERS="127.0.0.1:$port"
export STREAMCITY_TANSU="$(command -v tansu)"  # the restart test runs a broker of its own
echo "== tansu broker on $STREAMCITY_TEST_BROKERS"

# A real GTFS feed: Cairns (TransLink Queensland), shipped inside the source
# distribution of gtfs-kit 13.0.1 on PyPI; downloaded once into ~/.cache/streamcity.
gtfs_cache="$HOME/.cache/streamcity/gtfs"
export STREAMCITY_TEST_CAIRNS="$gtfs_cache/cairns_gtfs.zip"
if [ ! -s "$STREAMCITY_TEST_CAIRNS" ]; then
    echo "== fetching the Cairns GTFS feed (gtfs-kit 13.0.1 from PyPI; once)"
    mkdir -p "$gtfs_cache"
    sdist=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$sdist" gtfs-kit==13.0.1
    tar -xzf "$sdist"/gtfs_kit-13.0.1.tar.gz -C "$sdist" gtfs_kit-13.0.1/data/cairns_gtfs.zip
    mv "$sdist"/gtfs_kit-13.0.1/data/cairns_gtfs.zip "$STREAMCITY_TEST_CAIRNS"
    rm -rf "$sdist"
fi

# The tests' Python (gtfs-guru checks the exported feed) and the benchmarks' (kafka-python).
STREAMCITY_PYTHON="$(benchmarks/python-env.sh)"
export STREAMCITY_PYTHON

# Edge cases (frequencies, stations, a loop, a trip past 24:00 across a DST change):
# the GTFS zip of the npm package sample-gtfs-feed 0.13.0; downloaded once.
export STREAMCITY_TEST_SAMPLE_GTFS="$gtfs_cache/sample-gtfs-feed-0.13.0.zip"
if [ ! -s "$STREAMCITY_TEST_SAMPLE_GTFS" ]; then
    echo "== fetching the sample GTFS feed (npm sample-gtfs-feed 0.13.0; once)"
    mkdir -p "$gtfs_cache"
    pack=$(mktemp -d)
    (cd "$pack" && npm pack --silent sample-gtfs-feed@0.13.0 >/dev/null)
    tar -xzf "$pack"/sample-gtfs-feed-0.13.0.tgz -C "$pack" package/gtfs.zip
    mv "$pack"/package/gtfs.zip "$STREAMCITY_TEST_SAMPLE_GTFS"
    rm -rf "$pack"
fi

echo "== cargo test (unit, golden, property, end-to-end, Kafka)"
# Each test binary runs within a deadline (TEST_BINARY_TIMEOUT seconds, 15 minutes by
# default), from its package's directory as `cargo test` runs it: a hang fails that
# binary with a message instead of holding CI for 90 minutes.
per_binary=${TEST_BINARY_TIMEOUT:-900}
cargo test --workspace --locked --no-run
failed=()
while IFS=$'\t' read -r dir exe name; do
    echo "-- $name"
    status=0
    (cd "$dir" && timeout -k 10 "$per_binary" "$exe") || status=$?
    if [ "$status" -ne 0 ]; then
        if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
            echo "error: $name did not finish within $per_binary s" >&2
        fi
        failed+=("$name")
    fi
done < <(cargo test --workspace --locked --no-run --message-format=json 2>/dev/null | python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["profile"]["test"] and m.get("executable"):
        kind = m["target"]["kind"][0]
        name = m["target"]["name"] + ("" if kind == "lib" else " (" + kind + ")")
        print(os.path.dirname(m["manifest_path"]), m["executable"], name, sep="\t")
')
if [ "${#failed[@]}" -gt 0 ]; then
    echo "error: failed: ${failed[*]}" >&2
    exit 1
fi
timeout -k 10 "$per_binary" cargo test --workspace --locked --doc

# The benchmarks' short modes, as smoke tests: they run end to end and leave
# well-formed results; their timings are not judged (BENCHMARKS.md has the full runs).
echo "== benchmark smoke runs"
rm -rf "${CARGO_TARGET_DIR:-target}/benchmarks"  # a stale result must not pass the check
cargo bench --locked --bench kafka_produce -- --quick
cargo bench --locked -p streamcity-processor --bench pipeline -- --quick --warm-up-time 1
cargo bench --locked --bench ws_load -- --quick
cargo bench --locked --bench latency -- --quick
cargo bench --locked -p streamcity-producers --bench gtfs_scale -- --quick
cargo bench --locked -p streamcity-dashboard --bench gtfs_rt -- --quick
cargo bench --locked -p streamcity-realtime --bench predictions -- --quick
# The scaling charts' text is drawn with DejaVu Sans.
if [ -z "${STREAMCITY_FONT:-}" ] && [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
    apt_install fonts-dejavu-core "the DejaVu Sans font for the benchmark charts"
fi
cargo bench --locked --bench scaling -- --quick
python3 benchmarks/check_results.py kafka_produce pipeline ws_load latency gtfs_scale gtfs_rt predictions scaling

if [ "$browser" = 1 ]; then
    echo "== browser tests"
    if [ ! -x /usr/bin/chromium ]; then
        apt_install chromium "/usr/bin/chromium (or pass --no-browser)"
    fi
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
    cargo build --release --locked --bin streamcity
    node --test tests/browser/
fi

echo "scripts/test.sh: all tests passed in $(( $(date +%s) - start )) s"
