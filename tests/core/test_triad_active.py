"""The triad's active record: elections recorded as epochs, fencing, and leases honoured across failover."""

from __future__ import annotations

import msgspec
import pytest

from licentia.core.commands import (
    AddLicense,
    Checkout,
    DissolveTriad,
    ElectedActive,
    FormTriad,
    Heartbeat,
    ReclaimExpired,
)
from licentia.core.model import ClientInfo, LicenseTerms, TriadMember
from licentia.core.state import LicenseState

T0 = 1_700_000_000.0
MEMBERS = [
    TriadMember(name="p", role="primary", api_url="http://127.0.0.1:1", raft_address="127.0.0.1:11"),
    TriadMember(name="s", role="secondary", api_url="http://127.0.0.1:2", raft_address="127.0.0.1:12"),
    TriadMember(name="t", role="tertiary", api_url="http://127.0.0.1:3", raft_address="127.0.0.1:13"),
]


@pytest.fixture
def triad() -> LicenseState:
    state = LicenseState()
    terms = LicenseTerms(license_id="S", product="CAD", edition="Pro", customer="C", unit="seats", count=2,
                         not_before=T0 - 100, expires=T0 + 86400)
    assert state.apply(AddLicense(terms=terms, key_id="k", signature="sig"), T0 - 10).ok
    assert state.apply(FormTriad(name="T", members=MEMBERS), T0 - 5).ok
    return state


def elect(state: LicenseState, member: str, now: float):
    return state.apply(ElectedActive(member=member), now)


def checkout(state: LicenseState, lease: str, now: float, epoch: int):
    return state.apply(Checkout(request_id=f"r-{lease}", lease_id=lease, product="CAD", client=ClientInfo(),
                                epoch=epoch), now)


def test_form_triad_needs_one_member_of_each_role():
    state = LicenseState()
    two_primaries = [MEMBERS[0], msgspec.structs.replace(MEMBERS[1], role="primary"), MEMBERS[2]]
    assert state.apply(FormTriad(name="T", members=two_primaries), T0).code == "invalid_relationship"
    assert state.triad is None


def test_nothing_is_granted_before_the_first_election(triad):
    assert checkout(triad, "L1", T0, epoch=0).code == "not_active"
    assert triad.leases == {}


def test_each_election_starts_a_new_epoch_naming_the_winner(triad):
    first = elect(triad, "p", T0)
    second = elect(triad, "s", T0 + 3)
    third = elect(triad, "p", T0 + 9)
    assert [first.result.epoch, second.result.epoch, third.result.epoch] == [1, 2, 3]
    assert second.result.previous == "p" and third.result.previous == "s"
    assert triad.active.member == "p" and triad.active.epoch == 3 and triad.active.since == T0 + 9


def test_the_tertiary_and_strangers_are_never_elected_and_change_nothing(triad):
    elect(triad, "p", T0)
    before = triad.snapshot_bytes()
    assert elect(triad, "t", T0 + 1).code == "tertiary_never_active"
    assert elect(triad, "x", T0 + 1).code == "not_a_member"
    assert triad.snapshot_bytes() == before


def test_a_command_of_an_earlier_epoch_is_fenced_off_and_changes_nothing(triad):
    epoch = elect(triad, "p", T0).result.epoch
    assert checkout(triad, "L1", T0 + 0.1, epoch=epoch).ok
    elect(triad, "s", T0 + 2)
    before = triad.snapshot_bytes()
    stale = checkout(triad, "L2", T0 + 2.1, epoch=epoch)
    assert stale.code == "not_active" and "stale" in stale.message
    assert triad.snapshot_bytes() == before
    assert checkout(triad, "L2", T0 + 2.2, epoch=epoch + 1).ok


def test_the_record_does_not_expire_by_the_clock(triad):
    epoch = elect(triad, "p", T0).result.epoch
    assert checkout(triad, "L1", T0 + 3600, epoch=epoch).ok


def test_an_election_extends_no_lease(triad):
    epoch = elect(triad, "p", T0).result.epoch
    granted = checkout(triad, "L1", T0, epoch=epoch)
    expires = granted.result.expires_at
    elect(triad, "s", expires + 5)
    assert triad.leases["L1"].expires_at == expires


def test_a_new_active_member_honours_a_lease_that_ran_out_during_the_failover(triad):
    epoch = elect(triad, "p", T0).result.epoch
    expires = checkout(triad, "L1", T0, epoch=epoch).result.expires_at
    epoch = elect(triad, "s", expires + 1).result.epoch
    plain = triad.apply(Heartbeat(lease_ids=["L1"], epoch=epoch), expires + 2)
    assert plain.result.expired == ["L1"]
    ttl = triad.leases["L1"].ttl_s
    kept = triad.apply(ReclaimExpired(honour_from=expires + 1, epoch=epoch), expires + 2)
    assert kept.result.reclaimed == [] and "L1" in triad.leases
    honoured = triad.apply(Heartbeat(lease_ids=["L1"], honour_from=expires + 1, epoch=epoch), expires + 2)
    assert honoured.result.renewed == {"L1": expires + 2 + ttl}


def test_the_honour_lasts_one_lease_ttl_from_the_takeover(triad):
    epoch = elect(triad, "p", T0).result.epoch
    expires = checkout(triad, "L1", T0, epoch=epoch).result.expires_at
    ttl = triad.leases["L1"].ttl_s
    epoch = elect(triad, "s", expires + 1).result.epoch
    late = expires + 1 + ttl
    assert triad.apply(Heartbeat(lease_ids=["L1"], honour_from=expires + 1, epoch=epoch), late).result.expired == [
        "L1"
    ]
    gone = triad.apply(ReclaimExpired(honour_from=expires + 1, epoch=epoch), late)
    assert gone.result.reclaimed == ["L1"]


def test_dissolving_ends_fencing(triad):
    elect(triad, "p", T0)
    assert triad.apply(DissolveTriad(), T0 + 0.2).ok
    assert triad.triad is None and triad.active is None
    assert checkout(triad, "L1", T0 + 5, epoch=0).ok


def test_the_active_record_survives_a_snapshot(triad):
    elect(triad, "s", T0)
    restored = LicenseState.from_snapshot(triad.snapshot())
    assert restored.active == triad.active and restored.last_epoch == 1


def test_while_leases_are_honoured_their_seats_are_not_given_away(triad):
    epoch = elect(triad, "p", T0).result.epoch
    first = checkout(triad, "L1", T0, epoch=epoch).result.expires_at
    checkout(triad, "L2", T0, epoch=epoch)
    epoch = elect(triad, "s", first + 1).result.epoch
    honoured = Checkout(request_id="r-L3", lease_id="L3", product="CAD", client=ClientInfo(), epoch=epoch,
                        honour_from=first + 1)
    refused = triad.apply(honoured, first + 2)
    assert refused.code == "limit_exceeded" and "L3" not in triad.leases
    # Without the honour (or once it is over) the two expired leases no longer take their seats.
    assert checkout(triad, "L3", first + 2, epoch=epoch).ok
