"""The triad member's watchdog: a dead or hung etcd is seen, said, counted, restarted, and the member stops
serving meanwhile rather than answer for a state it cannot keep up to date."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import httpx
from harness import TriadCluster
from triad_support import admin_get, install_licenses, wait_for


def etcd_pid(cluster: TriadCluster, role: str) -> int | None:
    """The etcd member run by a member's server (found by its data directory), if one runs."""
    marker = f"--data-dir={cluster.servers[role].data_dir / 'etcd'}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split(") ", 1)[1].split()[0]
        except OSError:
            continue
        if args and args[0].endswith(b"etcd") and marker in args and state != "Z":
            return int(entry.name)
    return None


def metric(cluster: TriadCluster, role: str, name: str) -> float:
    text = httpx.get(f"{cluster.servers[role].url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def health(cluster: TriadCluster, role: str, what: str) -> int:
    return httpx.get(f"{cluster.servers[role].url}/health/{what}", timeout=5).status_code


def test_a_killed_etcd_is_restarted_by_its_member_and_counted(start_triad, issuer):
    cluster = start_triad()
    install_licenses(cluster, issuer)
    first = etcd_pid(cluster, "secondary")
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: etcd_pid(cluster, "secondary") not in (None, first), 10, what="a new etcd for the secondary")
    wait_for(lambda: metric(cluster, "secondary", "licentia_triad_etcd_restarts_total") >= 1, 20,
             what="the restart counted")
    wait_for(lambda: health(cluster, "secondary", "ready") == 200, 15, what="the secondary ready again")
    log = cluster.servers["secondary"].log_path.read_text()
    assert "The triad's etcd member secondary" in log and "restarting it" in log


def test_a_hung_etcd_makes_the_active_member_stop_serving_say_so_and_recover(start_triad, issuer):
    cluster = start_triad()
    install_licenses(cluster, issuer)
    assert health(cluster, "primary", "active") == 200
    hung = etcd_pid(cluster, "primary")
    assert hung is not None
    os.kill(hung, signal.SIGSTOP)
    try:
        # Its keep-alives stop: it stops serving within a second and says so. Then the triad serves again:
        # the secondary takes over, or the primary itself claims again through another member's etcd
        # (cluster.etcd_route), whichever comes first.
        wait_for(lambda: health(cluster, "primary", "active") == 503, 5, what="the primary no longer active")
        wait_for(lambda: health(cluster, "primary", "ready") == 503, 6, what="the primary not ready")
        assert cluster.wait_active(timeout=10) in ("primary", "secondary")
        # After 8 s of silence the watchdog kills the hung etcd; the supervisor starts a new one.
        wait_for(lambda: etcd_pid(cluster, "primary") not in (None, hung), 20, what="the hung etcd replaced")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)
    assert metric(cluster, "primary", 'licentia_triad_watchdog_events_total{event="etcd_silent"}') >= 1
    assert metric(cluster, "primary", 'licentia_triad_watchdog_events_total{event="etcd_killed"}') == 1
    # The primary comes back, catches up and takes the election back.
    assert cluster.wait_active("primary", timeout=30) == "primary"
    assert health(cluster, "primary", "ready") == 200
    log = cluster.servers["primary"].log_path.read_text()
    assert "has not answered for" in log and "killing it so that it restarts" in log
    assert admin_get(cluster.servers["primary"], "/api/v1/admin/relationship")["serving"] is True
