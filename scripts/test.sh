#!/usr/bin/env bash
# Installs everything the test suite needs, then runs lint, the full suite and the benchmark smoke runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
    # The console's browser tests drive Debian's chromium through Playwright (no browser download here).
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
python3 -m ruff check src tests bench
python3 -m pytest -q
for bench in bench/*.py; do
    case "$bench" in */echo_app.py|*/_*.py) continue ;; esac
    echo "smoke: $bench --quick"
    python3 "$bench" --quick | tail -n 1
done
