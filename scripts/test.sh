#!/usr/bin/env bash
# Installs everything the test suite needs, then runs lint, the full suite and the benchmark smoke runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages: chromium (the console's browser tests drive it through Playwright; no browser download
# here), etcd-server (each triad member runs its own etcd), fuse3 (the power-loss file system of the
# durability tests), faketime and iptables (the triad's clock and partition faults), prometheus (its
# promtool checks the /metrics names).
NEED=""
[ -x /usr/bin/chromium ] || NEED="$NEED chromium"
[ -x /usr/bin/etcd ] || NEED="$NEED etcd-server"
[ -x /usr/bin/fusermount3 ] || NEED="$NEED fuse3"
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || [ -x /usr/bin/faketime ] || NEED="$NEED faketime"
command -v iptables >/dev/null || NEED="$NEED iptables"
command -v promtool >/dev/null || NEED="$NEED prometheus"
if [ -n "$NEED" ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $NEED >/dev/null
fi
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
# An editable install is not compiled, and with PYTHONDONTWRITEBYTECODE set every server a test starts would
# compile every module again (~0.1-0.35 s of CPU a start); compiled once here, as pip does for an installed server.
python3 -m compileall -q src >/dev/null
python3 -m ruff check src tests bench
python3 -m mypy  # the [tool.mypy] settings in pyproject.toml: src/licentia, every function typed
python3 -m pytest -q --durations=25  # the slowest 25, so the next change to suite time starts from facts
for bench in bench/*.py; do
    case "$bench" in */echo_app.py|*/_*.py) continue ;; esac
    echo "smoke: $bench --quick"
    python3 "$bench" --quick | tail -n 1
done
