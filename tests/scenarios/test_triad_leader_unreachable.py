"""An active primary whose own etcd member cannot hear etcd's leader keeps serving through another member's etcd.

Random fault seed 3004 found it: the primary dropped everything it received from the tertiary,
which held etcd's leadership, while the secondary's server was stalled (its clocks had been put
back by 120 s). etcd itself kept its quorum (the tertiary and the secondary's etcd heard each
other, and pre-vote kept the leader in place), but the primary's own etcd member had no leader,
so the primary lost its lease and nobody served until the drop ended: 4.6 s, against the 3.5 s a
triad with a connected majority may go without an active member. The primary still reached the
secondary's etcd both ways, so it reached a majority of the triad.

Here the secondary's server process is stopped (SIGSTOP; its etcd member keeps running), and the
primary then loses etcd's leader one way or the other: it drops what the tertiary sends, or the
tertiary drops what it sends. Checkouts sent to the primary must keep being granted, with no
stretch of 3.5 s or more without a grant.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import Issuer, NetnsLab, TriadCluster
from triad_support import admin_get, checkout, install_licenses, wait_for

NO_ACTIVE_LIMIT_S = 3.5  # as in test_triad_network_clock_faults
FAULT_S = 7.0
LOAD = "LoadStudio"


@pytest.fixture
def netns_triad(lab: NetnsLab, tmp_path: Path, issuer: Issuer) -> Iterator[TriadCluster]:
    if subprocess.run(["sh", "-c", "command -v iptables"], capture_output=True).returncode != 0:
        pytest.skip("iptables is needed; scripts/test.sh installs it")
    cluster = TriadCluster(tmp_path / "triad", issuer, netns=lab)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def etcd_leader(cluster: TriadCluster) -> str | None:
    members = admin_get(cluster.servers["primary"], "/api/v1/admin/relationship", timeout=2)["members"]
    return next((m["name"] for m in members if m["raft_leader"]), None)


def drop(lab: NetnsLab, at: str, source: str, action: str) -> None:
    """`at` drops (action -A) or stops dropping (-D) every packet it receives from `source`."""
    subprocess.run([*lab.wrapper(at), "iptables", action, "INPUT", "-s", lab.ip(source), "-j", "DROP"],
                   check=True, capture_output=True)


def grant_times(cluster: TriadCluster, seconds: float) -> list[float]:
    """Send checkouts to the primary for `seconds`; when each grant was answered (monotonic)."""
    granted = []
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
        try:
            answer = checkout(cluster.servers["primary"], LOAD, request_id=f"fault-{time.monotonic_ns()}-{n}",
                              timeout=1.0)
        except httpx.HTTPError:  # no answer: what is measured here
            time.sleep(0.05)
            continue
        if answer.status_code == 201:
            granted.append(time.monotonic())
        else:
            time.sleep(0.05)
    return granted


def longest_gap(start: float, granted: list[float], end: float) -> float:
    times = [start, *granted, end]
    return max(later - earlier for earlier, later in itertools.pairwise(times))


@pytest.mark.parametrize("direction", ["primary-drops-leader", "leader-drops-primary"])
def test_primary_cut_off_from_the_etcd_leader_keeps_serving_through_the_secondarys_etcd(
        lab: NetnsLab, netns_triad: TriadCluster, issuer: Issuer, direction: str) -> None:
    cluster = netns_triad
    install_licenses(cluster, issuer, seats=5, **{LOAD: 100_000})
    # The tertiary takes etcd's leadership while things are calm (see triad.py).
    wait_for(lambda: etcd_leader(cluster) == "tertiary", 20, 0.2, "the tertiary leading etcd")
    assert checkout(cluster.servers["primary"], LOAD).status_code == 201
    secondary = cluster.servers["secondary"].process
    assert secondary is not None
    at, source = ("primary", "tertiary") if direction == "primary-drops-leader" else ("tertiary", "primary")
    os.kill(secondary.pid, signal.SIGSTOP)  # the server only: its etcd member (a child) keeps running
    try:
        drop(lab, at, source, "-A")
        try:
            began = time.monotonic()
            granted = grant_times(cluster, FAULT_S)
            ended = time.monotonic()
        finally:
            drop(lab, at, source, "-D")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(secondary.pid, signal.SIGCONT)
    gap = longest_gap(began, granted, ended)
    assert gap < NO_ACTIVE_LIMIT_S, (
        f"the primary granted nothing for {gap:.1f}s while it reached the secondary's etcd "
        f"({len(granted)} grants in {ended - began:.1f}s)")
    assert cluster.wait_active("primary", timeout=15) == "primary"
