"""`promtool check metrics` (from Debian's prometheus package) on a server's /metrics."""

from __future__ import annotations

import shutil
import subprocess


def promtool_problems(exposition: str) -> str:
    """What promtool finds wrong with these metrics (names, units, help texts); empty when nothing."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/test.sh installs it with Debian's prometheus package"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30, check=False
    )
    found = (checked.stdout + checked.stderr).strip()
    return found or ("" if checked.returncode == 0 else f"promtool exited with {checked.returncode}")
