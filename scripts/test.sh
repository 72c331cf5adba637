#!/usr/bin/env bash
# Installs everything the test suite needs, then runs lint, the full suite and the benchmark smoke runs.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
python3 -m ruff check src tests bench
python3 -m pytest -q
for bench in bench/*.py; do
    case "$bench" in */echo_app.py|*/_*.py) continue ;; esac
    echo "smoke: $bench --quick"
    python3 "$bench" --quick | tail -n 1
done
