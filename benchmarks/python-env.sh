#!/usr/bin/env bash
# Prints the path of a Python with benchmarks/requirements.txt installed, creating the
# virtual environment once (cached in ~/.cache/streamcity/python; pip, from PyPI).
#
#   export STREAMCITY_PYTHON="$(benchmarks/python-env.sh)"
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${STREAMCITY_PYTHON_VENV:-$HOME/.cache/streamcity/python}"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
    command -v python3 >/dev/null || { echo "error: python3 is required for the Python benchmark" >&2; exit 1; }
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
    cp "$here/requirements.txt" "$stamp"
fi
echo "$venv/bin/python"
