"""Checks that benchmarks left well-formed results: the CI smoke check.

    python3 benchmarks/check_results.py kafka_produce [more names...]

Each target/benchmarks/NAME.json must name its benchmark, and every number in it must
be finite and not negative, with at least one rate above zero; the charts it lists
under "charts" must be PNG files. Timings are never judged here: CI machines are
shared and noisy.
"""

import json
import math
import os
import sys


def numbers(value, path="$"):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from numbers(v, f"{path}[{i}]")


def check(directory, name):
    path = os.path.join(directory, f"{name}.json")
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        return [f"{path}: {e}"]
    problems = []
    if results.get("benchmark") != name:
        problems.append(f"{path}: \"benchmark\" is {results.get('benchmark')!r}, not {name!r}")
    for where, n in numbers(results):
        if not math.isfinite(n) or n < 0:
            problems.append(f"{path}: {where} is {n}")
    rates = [n for _, n in numbers(results.get("rates", {}))]
    if not rates or not any(n > 0 for n in rates):
        problems.append(f"{path}: no rate above zero in \"rates\"")
    for chart in results.get("charts", []):
        try:
            with open(chart, "rb") as f:
                if f.read(8) != b"\x89PNG\r\n\x1a\n":
                    problems.append(f"{path}: chart {chart} is not a PNG")
        except OSError as e:
            problems.append(f"{path}: chart {chart}: {e}")
    return problems


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    directory = os.path.join(target, "benchmarks")
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = [p for name in sys.argv[1:] for p in check(directory, name)]
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if not problems:
        print(f"benchmark results well-formed: {', '.join(sys.argv[1:])}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
