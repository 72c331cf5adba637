"""When a triad member lets its etcd lease lapse on purpose: keep-alives went unanswered for a whole TTL.

A member whose keep-alives reach etcd's leader but whose answers do not come back (a one-way
drop) stops renewing, so that its lease, and its claim, lapse and another member can serve. A
monotonic clock that jumps forward (random fault seed 3005: the active primary's clocks set +120 s)
makes a TTL seem to pass with no keep-alive missed: that member's lease is fine and must be kept,
or it claims again with a clock two minutes ahead and every lease it grants then lasts two
minutes too long.
"""

from __future__ import annotations

import asyncio

import pytest

from licentia.cluster.etcd_client import EtcdUnavailable
from licentia.cluster.triad_election import LEASE_TTL_S, TriadElection
from licentia.core.model import TriadMember

MEMBERS = [
    TriadMember(name=name, role=role, api_url=f"http://10.0.0.{n}:8470", raft_address=f"10.0.0.{n}:9470")
    for n, (name, role) in enumerate((("p", "primary"), ("s", "secondary"), ("t", "tertiary")), start=1)
]


class FakeEtcd:
    def __init__(self) -> None:
        self.answering = True
        self.granted = 0

    async def keep_alive(self, lease_id: int, timeout: float | None = None) -> int:
        if not self.answering:
            raise EtcdUnavailable("no answer")
        return LEASE_TTL_S

    async def grant_lease(self, ttl_s: int) -> tuple[int, int]:
        self.granted += 1
        return 100 + self.granted, ttl_s

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        return 1


def holding_election(now: float) -> TriadElection:
    election = TriadElection(MEMBERS[0], MEMBERS, "T")
    election.lease_id = 100
    election.claim_revision = 7
    election._acknowledged_at = now - 0.2
    return election


def test_a_monotonic_clock_jump_keeps_the_lease_and_the_claim() -> None:
    async def scenario() -> tuple[int, int | None, int]:
        etcd = FakeEtcd()
        now = asyncio.get_running_loop().time()
        election = holding_election(now)
        election._acknowledged_at = now - 120.0  # the clock jumped 120 s since the last keep-alive
        await election.keep_lease(etcd)  # type: ignore[arg-type]
        return election.lease_id, election.claim_revision, etcd.granted

    lease_id, claim, granted = asyncio.run(scenario())
    assert (lease_id, claim, granted) == (100, 7, 0)


def test_keep_alives_unanswered_for_a_ttl_let_the_lease_lapse() -> None:
    async def scenario() -> tuple[int, int | None, int]:
        etcd = FakeEtcd()
        now = asyncio.get_running_loop().time()
        election = holding_election(now)
        etcd.answering = False
        for _ in range(2):
            with pytest.raises(EtcdUnavailable):
                await election.keep_lease(etcd)  # type: ignore[arg-type]
        election._acknowledged_at = asyncio.get_running_loop().time() - LEASE_TTL_S - 0.1
        etcd.answering = True
        await election.keep_lease(etcd)  # type: ignore[arg-type]
        return election.lease_id, election.claim_revision, etcd.granted

    lease_id, claim, granted = asyncio.run(scenario())
    assert (lease_id, claim, granted) == (101, None, 1)  # a new lease, and the claim is given up
