"""Acknowledged means durable, proven with power cuts: every server's data directory sits on the power-loss
file system (tests/powerloss), which drops whatever was not synced when the power goes.

A cut here is what a site-wide outage does: SIGKILL every server process (a triad member's etcd dies
with it), drop the unsynced data of every data directory, start again on the same directories.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import ROLES, Issuer, ServerProcess, TriadCluster
from powerloss.lazyfs import LazyMount
from triad_support import SEATS, admin_get, held_leases, install_licenses, wait_same_state

CHECKOUTS = 40


class Disks:
    """One power-loss mount per data directory; `cut_all` is the outage."""

    def __init__(self, stack: contextlib.ExitStack, scratch: Path) -> None:
        self.stack, self.scratch = stack, scratch
        self.mounts: dict[str, LazyMount] = {}

    def mount(self, name: str, where: Path) -> LazyMount:
        backing = self.scratch / f"{name}-backing"
        backing.mkdir()
        where.mkdir(parents=True)
        self.mounts[name] = self.stack.enter_context(LazyMount(backing, where))
        return self.mounts[name]

    def cut_all(self) -> None:
        for mount in self.mounts.values():
            mount.cut()


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[Disks]:
    if not Path("/dev/fuse").exists():
        pytest.skip("/dev/fuse is missing: the power-loss file system cannot be mounted here")
    with contextlib.ExitStack() as stack:
        yield Disks(stack, tmp_path)


def grant(url: str, n: int, product: str = SEATS) -> str:
    answer = httpx.post(f"{url}/api/v1/leases", json={"product": product, "request_id": f"cut-{n}",
                                                      "client": {"host": f"ws-{n}", "user": "ana"}}, timeout=10)
    assert answer.status_code == 201, answer.text
    return answer.json()["lease_id"]


def test_a_standalone_server_starts_after_a_power_cut_right_after_its_first_start(disks, tmp_path, issuer):
    data = tmp_path / "standalone"
    mount = disks.mount("standalone", data)
    issuer.trust_in(data)
    server = ServerProcess(data).start()
    identity = httpx.get(f"{server.url}/api/v1/server", timeout=5).json()
    server.kill()
    mount.cut()
    # Its keys, written at first start, survived whole: an empty key file would stop it here, a lost one
    # would give it another identity (clients' grace tokens and its relationships would no longer match).
    server.start()
    again = httpx.get(f"{server.url}/api/v1/server", timeout=5).json()
    server.kill()
    for key in ("server_id", "peer_public_key", "grant_key_id", "grant_public_key"):
        assert again[key] == identity[key], key


def test_a_standalone_server_keeps_every_acknowledged_checkout_through_a_power_cut(disks, tmp_path, issuer):
    data = tmp_path / "standalone"
    mount = disks.mount("standalone", data)
    issuer.trust_in(data)
    server = ServerProcess(data).start()
    try:
        with server.admin() as admin:
            lic = issuer.license_bytes(product=SEATS, unit="seats", count=100)
            assert admin.post("/api/v1/admin/licenses", content=lic,
                              headers={"Content-Type": "application/json"}).status_code == 201
        granted = [grant(server.url, n) for n in range(CHECKOUTS)]
        server.kill()
        mount.cut()
        server.start()
        held = {lease["lease_id"] for lease in admin_get(server, "/api/v1/admin/leases")["leases"]}
        assert set(granted) <= held, f"{len(set(granted) - held)} acknowledged checkouts were lost"
    finally:
        server.kill()


def test_a_whole_triad_keeps_every_acknowledged_checkout_through_a_power_cut(disks, tmp_path, issuer: Issuer):
    base = tmp_path / "triad"
    for role in ROLES:
        disks.mount(role, base / role)
    cluster = TriadCluster(base, issuer)
    try:
        cluster.start(timeout=60)
        install_licenses(cluster, issuer, seats=CHECKOUTS + 10)
        primary = cluster.servers["primary"]
        granted = [grant(primary.url, n) for n in range(CHECKOUTS)]
        for role in ROLES:
            cluster.servers[role].kill()
        disks.cut_all()
        for role in ROLES:
            cluster.servers[role].start(timeout=60)
        cluster.wait_active(timeout=60)
        state = wait_same_state(cluster, timeout=30)
        held = set(state["leases"])
        assert set(granted) <= held, f"{len(set(granted) - held)} of {len(granted)} acknowledged checkouts were lost"
        assert set(held_leases(cluster.servers["secondary"])) == held
    finally:
        cluster.stop()
