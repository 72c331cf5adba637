"""The triad's active-member decisions, without etcd or a network: the election's priority rules against an
in-memory stand-in for etcd's transactions, and a member's serving check against a fake host (the narrow
`cluster.relationship.Host` a `TriadNode` is given instead of the server)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from licentia.cluster import triad_election
from licentia.cluster.etcd_client import Compare, Op, TxnResult
from licentia.cluster.role_events import RoleEvents
from licentia.cluster.triad import NotActive, TriadConfig, TriadNode
from licentia.cluster.triad_election import ACTIVE_KEY, SECONDARY_DEFERS_LOOKS, ElectionView, TriadElection
from licentia.cluster.triad_log import LOG_KEY, LogBatch
from licentia.config import Config
from licentia.core.commands import Command, ElectedActive, FormTriad
from licentia.core.model import TriadMember
from licentia.core.state import LicenseState, Outcome

T0 = 1_700_000_000.0
MEMBERS = [
    TriadMember(name="p", role="primary", api_url="http://127.0.0.1:1", raft_address="127.0.0.1:11"),
    TriadMember(name="s", role="secondary", api_url="http://127.0.0.1:2", raft_address="127.0.0.1:12"),
    TriadMember(name="t", role="tertiary", api_url="http://127.0.0.1:3", raft_address="127.0.0.1:13"),
]
BY_NAME = {m.name: m for m in MEMBERS}
R = TypeVar("R")


def run(make: Callable[[], Awaitable[R]]) -> R:
    return asyncio.run(make())  # type: ignore[arg-type]


class FakeEtcd:
    """The election key and the log key as etcd keeps them: each put is a new revision; compares as etcd's."""

    def __init__(self) -> None:
        self.revision = 10
        self.active: tuple[bytes, int, int, int] | None = None  # value, lease, create revision, mod revision
        self.batches: list[LogBatch] = []
        self.revoked: list[int] = []

    def hold(self, member: str, lease: int) -> int:
        self.revision += 1
        self.active = (msgspec.json.encode({"member": member}), lease, self.revision, self.revision)
        return self.revision

    def _holds(self, compare: Compare) -> bool:
        assert compare.key == ACTIVE_KEY
        if compare.target == "create_revision":
            actual = self.active[2] if self.active else 0
        else:
            actual = self.active[3] if self.active else 0
        assert compare.op == "=="
        return actual == compare.operand

    async def txn(self, compare: list[Compare], success: list[Op], failure: list[Op] | None = None) -> TxnResult:
        if not all(self._holds(c) for c in compare):
            return TxnResult(succeeded=False, revision=self.revision, responses=[])
        self.revision += 1
        for op in success:
            if op.key == ACTIVE_KEY:
                created = self.active[2] if self.active else self.revision
                self.active = (op.value, op.lease, created, self.revision)
            elif op.key == LOG_KEY:
                self.batches.append(msgspec.msgpack.decode(op.value, type=LogBatch))
        return TxnResult(succeeded=True, revision=self.revision, responses=[None] * len(success))

    async def revoke_lease(self, lease: int) -> None:
        self.revoked.append(lease)
        if self.active is not None and self.active[1] == lease:
            self.active = None

    def holder(self) -> str | None:
        return msgspec.json.decode(self.active[0])["member"] if self.active else None


def election(name: str, lease: int = 7) -> TriadElection:
    chosen = TriadElection(BY_NAME[name], MEMBERS, "T")
    chosen.lease_id = lease
    return chosen


def view(etcd: FakeEtcd, alive: set[str], log_revision: int | None = None) -> ElectionView:
    holder = etcd.holder()
    return ElectionView(
        holder=holder,
        holder_lease=etcd.active[1] if etcd.active else 0,
        claim_revision=etcd.active[3] if etcd.active else 0,
        alive=frozenset(alive),
        log_revision=etcd.revision if log_revision is None else log_revision,
    )


def decide(member: TriadElection, etcd: FakeEtcd, alive: set[str], applied: int | None = None) -> int | None:
    async def go() -> int | None:
        look = view(etcd, alive)
        return await member.decide(etcd, look, etcd.revision if applied is None else applied, T0)  # type: ignore[arg-type]

    return run(go)


# -- the election's priority rules --------------------------------------------------------------------


def test_the_primary_claims_a_free_key_with_its_elected_active_in_the_same_transaction():
    etcd, primary = FakeEtcd(), election("p")
    claim = decide(primary, etcd, {"p", "s", "t"})
    assert claim is not None and primary.claim_revision == claim
    assert etcd.holder() == "p" and etcd.active is not None and etcd.active[1] == primary.lease_id
    assert [batch.commands for batch in etcd.batches] == [[ElectedActive(member="p")]]


def test_the_tertiary_never_claims_even_when_it_is_the_only_member_alive():
    etcd, tertiary = FakeEtcd(), election("t")
    for _ in range(SECONDARY_DEFERS_LOOKS + 3):
        assert decide(tertiary, etcd, {"t"}) is None
    assert etcd.holder() is None and etcd.batches == []


def test_a_member_without_an_etcd_lease_never_claims():
    etcd, primary = FakeEtcd(), election("p", lease=0)
    assert decide(primary, etcd, {"p", "s", "t"}) is None
    assert etcd.holder() is None


def test_the_secondary_leaves_a_free_key_to_a_live_primary_for_a_few_looks_then_claims_it():
    etcd, secondary = FakeEtcd(), election("s")
    for _ in range(SECONDARY_DEFERS_LOOKS):
        assert decide(secondary, etcd, {"p", "s", "t"}) is None
    assert etcd.holder() is None
    assert decide(secondary, etcd, {"p", "s", "t"}) is not None
    assert etcd.holder() == "s"


def test_the_secondary_claims_at_once_when_the_primarys_lease_is_gone():
    etcd, secondary = FakeEtcd(), election("s")
    assert decide(secondary, etcd, {"s", "t"}) is not None
    assert etcd.holder() == "s"


def test_a_claim_loses_to_a_member_that_claimed_first():
    etcd, secondary = FakeEtcd(), election("s")
    look = view(etcd, {"s", "t"})  # the key was free when it looked ...
    etcd.hold("p", lease=3)  # ... and the primary took it meanwhile

    async def go() -> int | None:
        return await secondary.decide(etcd, look, etcd.revision, T0)  # type: ignore[arg-type]

    assert run(go) is None
    assert etcd.holder() == "p" and secondary.claim_revision is None


def test_the_primary_takes_over_from_the_secondary_only_once_it_has_caught_up():
    etcd, primary = FakeEtcd(), election("p")
    etcd.hold("s", lease=3)
    primary._previous_log_revision = etcd.revision  # as after an earlier look at the log
    behind = etcd.revision - 5
    assert decide(primary, etcd, {"p", "s", "t"}, applied=behind) is None
    assert decide(primary, etcd, {"p", "s", "t"}, applied=behind) is None
    assert etcd.holder() == "s"
    assert decide(primary, etcd, {"p", "s", "t"}, applied=etcd.revision) is not None
    assert etcd.holder() == "p" and primary.claim_revision == etcd.active[3]  # type: ignore[index]


def test_the_secondary_revokes_the_lease_of_a_primary_whose_process_is_gone(monkeypatch: pytest.MonkeyPatch):
    etcd, secondary = FakeEtcd(), election("s")
    etcd.hold("p", lease=3)
    answers: dict[str, bool] = {"gone": False}

    async def nothing_listens_at(url: str, timeout: float = 0.2) -> bool:
        assert url == BY_NAME["p"].api_url
        return answers["gone"]

    monkeypatch.setattr(triad_election, "nothing_listens_at", nothing_listens_at)
    assert decide(secondary, etcd, {"p", "s", "t"}) is None  # its port still answers: it keeps the election
    assert etcd.holder() == "p" and etcd.revoked == []
    answers["gone"] = True
    assert decide(secondary, etcd, {"p", "s", "t"}) is not None
    assert etcd.revoked == [3] and etcd.holder() == "s"


def test_a_member_that_sees_another_holder_gives_up_its_claim():
    etcd, primary = FakeEtcd(), election("p")
    decide(primary, etcd, {"p", "s", "t"})
    assert primary.claim_revision is not None
    etcd.hold("s", lease=3)

    class Looks:
        async def txn(self, compare: list[Compare], success: list[Op]) -> TxnResult:
            from licentia.cluster.etcd_client import KeyValue

            assert etcd.active is not None
            value, lease, created, modified = etcd.active
            active = [KeyValue(key=ACTIVE_KEY, value=value, create_revision=created, mod_revision=modified,
                               version=1, lease=lease)]
            return TxnResult(succeeded=True, revision=etcd.revision, responses=[active, [], []])

    run(lambda: primary.look(Looks()))  # type: ignore[arg-type]
    assert primary.claim_revision is None


# -- a member's serving check, on a fake host ----------------------------------------------------------


class FakeJournal:
    def __init__(self) -> None:
        self.usage: list[Any] = []
        self.failure = None

    def record_usage(self, rows: Any) -> None:
        self.usage.append(rows)


class FakeHost:
    """What a triad member needs of its server (`cluster.relationship.Host`), with no I/O."""

    def __init__(self, data_dir: Path) -> None:
        self.config = Config(data_dir=data_dir)
        self.journal = FakeJournal()
        self.state = LicenseState()
        assert self.state.apply(FormTriad(name="T", members=MEMBERS), T0).ok
        self.at = T0
        self.role_events = RoleEvents()
        self.left: list[dict[str, str] | None] = []

    def now(self) -> float:
        return self.at

    def clock(self) -> float:
        return self.at

    async def execute(self, command: Command) -> Outcome:
        raise AssertionError("a triad member commits through its log, not through the host")

    def install_state(self, state: LicenseState) -> None:
        self.state = state

    async def leave_triad(self, license_owners: dict[str, str] | None = None) -> None:
        self.left.append(license_owners)


def member(tmp_path: Path, name: str = "p") -> tuple[TriadNode, FakeHost]:
    host = FakeHost(tmp_path)
    config = TriadConfig(name="T", me=name, members=MEMBERS, secret="s3cret", origin="p")
    return TriadNode(host, config, applied_revision=0), host  # type: ignore[arg-type]


def elected(node: TriadNode, host: FakeHost, holder: str, claim: int, mine: bool = True) -> None:
    """The member's view after `holder` won at revision `claim` and every member applied it."""
    loop = asyncio.get_running_loop()
    assert host.state.apply(ElectedActive(member=holder), host.at).ok
    node.election.lease_id = 7
    node.election.lease_valid_until = loop.time() + 10
    node.election.claim_revision = claim if mine else None
    node.election.view = ElectionView(holder=holder, holder_lease=7, claim_revision=claim, alive=frozenset("pst"),
                                      log_revision=claim)
    node.election.view_at = loop.time()
    node.watchdog.etcd_healthy = True
    node.log.applied_revision = claim


def test_the_member_holding_the_claim_serves_in_the_epoch_of_its_election(tmp_path: Path):
    async def go() -> None:
        node, host = member(tmp_path)
        elected(node, host, "p", claim=20)
        assert node.serving_epoch() == host.state.active.epoch == 1  # type: ignore[union-attr]
        assert node.is_active() and node.may_reclaim()
        status = node.status()
        assert (status.active, status.serving, status.epoch, status.my_role) == ("p", True, 1, "primary")
        assert [m.name for m in status.members if m.active] == ["p"]

    run(go)


def test_a_member_that_has_not_applied_its_own_claim_yet_does_not_serve(tmp_path: Path):
    async def go() -> None:
        node, host = member(tmp_path)
        elected(node, host, "p", claim=20)
        node.log.applied_revision = 19
        with pytest.raises(NotActive):
            node.serving_epoch()
        assert not node.is_active()

    run(go)


def test_a_member_whose_etcd_or_apply_loop_is_unhealthy_stops_serving(tmp_path: Path):
    async def go() -> None:
        node, host = member(tmp_path)
        elected(node, host, "p", claim=20)
        node.watchdog.etcd_healthy = False
        assert not node.is_serving()
        node.watchdog.etcd_healthy, node.watchdog.apply_healthy = True, False
        assert not node.is_serving()
        node.watchdog.apply_healthy = True
        assert node.is_serving()

    run(go)


def test_a_standby_names_the_active_member_so_that_clients_are_sent_there(tmp_path: Path):
    async def go() -> None:
        node, host = member(tmp_path, "s")
        elected(node, host, "p", claim=20, mine=False)
        with pytest.raises(NotActive) as refused:
            node.serving_epoch()
        assert refused.value.active_url == BY_NAME["p"].api_url
        assert "p is the active server of triad T" in str(refused.value)
        status = node.status()
        assert (status.active, status.serving, status.me) == ("p", False, "s")

    run(go)


def test_a_member_cut_off_from_the_majority_says_so_and_names_nobody(tmp_path: Path):
    async def go() -> None:
        node, host = member(tmp_path)
        elected(node, host, "p", claim=20)
        node.election.lease_valid_until = 0.0  # no keep-alive acknowledged lately
        node.election.view_at = -100.0  # and no recent look at the election
        with pytest.raises(NotActive) as refused:
            node.serving_epoch()
        assert refused.value.active_url is None and "reaches no majority" in str(refused.value)
        status = node.status()
        assert status.active is None and not status.has_quorum

    run(go)


def test_a_new_holder_not_yet_applied_here_shows_as_nobody_never_with_the_old_epoch(tmp_path: Path):
    async def go() -> None:
        node, host = member(tmp_path, "t")
        elected(node, host, "p", claim=20, mine=False)
        # The secondary won at revision 30; this member has not applied that election yet.
        node.election.view = ElectionView(holder="s", holder_lease=8, claim_revision=30, alive=frozenset("st"),
                                          log_revision=30)
        status = node.status()
        assert status.active is None and status.epoch == 1
        assert next(m for m in status.members if m.name == "t").log_behind == 10

    run(go)


def test_a_committed_dissolve_ends_the_relationship_and_the_member_leaves_through_its_host(tmp_path: Path):
    from licentia.cluster.triad_log import AppliedEntry
    from licentia.core.commands import DissolveTriad

    async def go() -> None:
        node, host = member(tmp_path)
        elected(node, host, "p", claim=20)
        node.leave_delay = lambda: 0.0  # type: ignore[method-assign]
        outcome = node._apply_committed(DissolveTriad(), host.at, AppliedEntry(revision=21, position=0))
        assert outcome.ok and node.ended
        await asyncio.sleep(0.05)
        assert host.left == [{}]

    run(go)
