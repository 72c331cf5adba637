"""What a backup pair's link says about the pair (connected, synchronized, what waits), on a fake host with
no network: the status is computed from what the link last learned, and reading it changes nothing."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest

from licentia.cluster.backup_pair import PEER_TIMEOUT_S, BackupLink
from licentia.cluster.relationship_status import BackupPairStatus
from licentia.cluster.role_events import RoleEvents
from licentia.config import Config
from licentia.core.commands import Command, CreatePrinterGroup, FormBackupPair
from licentia.core.model import PairMember, PairRole, PeerCursor
from licentia.core.state import LicenseState, Outcome

T0 = 1_700_000_000.0
INTERVAL = 5.0
MAIN = PairMember(name="srv1", api_url="http://127.0.0.1:1")
BACKUP = PairMember(name="srv2", api_url="http://127.0.0.1:2")


class FakeJournal:
    def __init__(self) -> None:
        self.own_usage_id = 0
        self.failure: Exception | None = None


class FakeHost:
    """What a backup link needs of its server (`cluster.relationship.Host`), with no I/O."""

    def __init__(self, data_dir: Path, me: PairRole) -> None:
        self.config = Config(data_dir=data_dir)
        self.journal = FakeJournal()
        self.state = LicenseState()
        form = FormBackupPair(name="B1", main=MAIN, backup=BACKUP, me=me, interval_s=INTERVAL)
        assert self.state.apply(form, T0).ok
        self.at = T0
        self.role_events = RoleEvents()

    def now(self) -> float:
        return self.at

    def clock(self) -> float:
        return self.at

    async def execute(self, command: Command) -> Outcome:
        return self.state.apply(command, self.at)

    def install_state(self, state: LicenseState) -> None:
        self.state = state

    async def leave_triad(self, license_owners: dict[str, str] | None = None) -> None:
        raise AssertionError("a backup pair is not a triad")


@pytest.fixture
def main(tmp_path: Path) -> tuple[BackupLink, FakeHost]:
    host = FakeHost(tmp_path, "main")
    return BackupLink(host, "s3cret"), host  # type: ignore[arg-type]


def answered(link: BackupLink, host: FakeHost, *, partner_seq: int, partner_usage: int, took: PeerCursor) -> None:
    """The partner answered a pull now: how far its own changes go, and how far it has taken ours."""
    link.partner.last_ok_at = host.at
    link.partner.last_error = None
    link.partner.own_seq, link.partner.usage_id = partner_seq, partner_usage
    link._partner_took(took)


def test_before_any_contact_the_pair_is_neither_connected_nor_synchronized(main):
    link, _ = main
    status = link.status()
    assert isinstance(status, BackupPairStatus)
    assert (status.connected, status.synchronized, status.state) == (False, False, "not_connected_not_synchronized")
    assert (status.pending.to_partner.changes, status.pending.from_partner.changes) == (None, None)
    assert status.as_json()["type"] == "backup" and status.as_json()["pending"]["to_partner"]["changes"] is None
    assert [(m.name, m.role, m.me) for m in status.members] == [("srv1", "main", True), ("srv2", "backup", False)]


def test_each_side_holding_everything_of_the_other_is_connected_and_synchronized(main):
    link, host = main
    host.at += 3 * INTERVAL  # every change here is older than one round of pulls
    answered(link, host, partner_seq=0, partner_usage=0, took=PeerCursor(host.state.own_change_seq, 0))
    status = link.status()
    assert status.state == "connected_synchronized"
    assert status.last_synchronized_at == host.at
    assert (status.pending.to_partner.changes, status.pending.from_partner.changes) == (0, 0)


def test_reading_the_status_changes_nothing(main):
    link, host = main
    host.at += 3 * INTERVAL
    answered(link, host, partner_seq=0, partner_usage=0, took=PeerCursor(host.state.own_change_seq, 0))
    before = copy.deepcopy(link.partner)
    assert link.status().synchronized
    assert link.partner == before and link.partner.last_synchronized_at is None
    link.note_synchronized()  # what the link's watch does every second
    assert link.partner.last_synchronized_at == host.at


def test_a_partner_that_stops_answering_is_not_connected_after_two_intervals_and_the_timeout(main):
    link, host = main
    host.at += 3 * INTERVAL
    answered(link, host, partner_seq=0, partner_usage=0, took=PeerCursor(host.state.own_change_seq, 0))
    host.at += 2 * INTERVAL + PEER_TIMEOUT_S
    assert link.status().connected
    host.at += 0.1
    status = link.status()
    # Nothing waits on either side: not connected, still synchronized.
    assert status.state == "not_connected_synchronized"
    assert link.is_active()  # the main always serves its clients


def test_a_change_the_silent_partner_has_not_taken_makes_the_pair_unsynchronized_since_it_was_last_seen(main):
    link, host = main
    host.at += 3 * INTERVAL
    answered(link, host, partner_seq=0, partner_usage=0, took=PeerCursor(host.state.own_change_seq, 0))
    link.note_synchronized()
    synchronized_at = host.at
    host.at += 3 * INTERVAL  # the partner went silent
    assert asyncio.run(host.execute(CreatePrinterGroup(name="Dock"))).changed
    status = link.status()
    assert status.state == "not_connected_not_synchronized"
    assert status.last_synchronized_at == synchronized_at
    assert status.pending.to_partner.changes == 1


def test_a_change_younger_than_a_round_of_pulls_is_on_its_way_while_the_partner_answers(main):
    link, host = main
    host.at += 3 * INTERVAL
    answered(link, host, partner_seq=0, partner_usage=0, took=PeerCursor(host.state.own_change_seq, 0))
    link._checkpoint()
    assert asyncio.run(host.execute(CreatePrinterGroup(name="Dock"))).changed
    link._checkpoint()
    status = link.status()
    assert status.synchronized and status.pending.to_partner.changes == 1
    host.at += 2 * INTERVAL + PEER_TIMEOUT_S + 1  # the partner answers but never takes it
    answered(link, host, partner_seq=0, partner_usage=0, took=PeerCursor(host.state.own_change_seq - 1, 0))
    assert not link.status().synchronized


def test_what_the_partner_has_that_this_server_has_not_taken_is_pending_from_it(main):
    link, host = main
    answered(link, host, partner_seq=7, partner_usage=40, took=PeerCursor(0, 0))
    status = link.status()
    assert (status.pending.from_partner.changes, status.pending.from_partner.usage_rows) == (7, 40)
    assert not status.synchronized


def test_the_backup_serves_only_while_it_cannot_reach_the_main(tmp_path: Path):
    host = FakeHost(tmp_path, "backup")
    link = BackupLink(host, "s3cret")  # type: ignore[arg-type]
    assert link.is_active()  # no contact yet: it has taken over
    answered(link, host, partner_seq=0, partner_usage=0, took=PeerCursor(0, 0))
    assert not link.is_active()
    host.at += 2 * INTERVAL + PEER_TIMEOUT_S + 1
    assert link.is_active()
    assert link.status().serving  # the Redundancy page shows both servers of a pair as serving their clients
