"""The triad's active record: priority claims, epochs, fencing, and leases honoured across failover."""

from __future__ import annotations

import msgspec
import pytest

from licentia.core.commands import (
    AddLicense,
    Checkout,
    ClaimActive,
    DissolveTriad,
    FormTriad,
    ReportAlive,
)
from licentia.core.model import ClientInfo, LicenseTerms, TriadMember
from licentia.core.state import LicenseState

T0 = 1_700_000_000.0
TTL = 1.0
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
    assert state.apply(FormTriad(name="T", members=MEMBERS, active_ttl_s=TTL), T0 - 5).ok
    return state


def claim(state: LicenseState, member: str, now: float):
    return state.apply(ClaimActive(member=member, ttl_s=TTL), now)


def checkout(state: LicenseState, lease: str, now: float, epoch: int):
    return state.apply(Checkout(request_id=f"r-{lease}", lease_id=lease, product="CAD", client=ClientInfo(),
                                epoch=epoch), now)


def test_form_triad_needs_one_member_of_each_role():
    state = LicenseState()
    two_primaries = [MEMBERS[0], msgspec.structs.replace(MEMBERS[1], role="primary"), MEMBERS[2]]
    assert state.apply(FormTriad(name="T", members=two_primaries), T0).code == "invalid_relationship"
    assert state.triad is None


def test_primary_claims_and_renews_in_the_same_epoch(triad):
    first = claim(triad, "p", T0)
    again = claim(triad, "p", T0 + 0.5)
    assert first.ok and first.data["epoch"] == 1 and first.data["renewed"] is False
    assert again.ok and again.data["epoch"] == 1 and again.data["renewed"] is True
    assert triad.active.until == T0 + 0.5 + TTL


def test_tertiary_never_becomes_active(triad):
    outcome = claim(triad, "t", T0)
    assert outcome.code == "tertiary_never_active"
    assert triad.active is None


def test_secondary_waits_for_the_active_record_and_primary_liveness_to_expire(triad):
    claim(triad, "p", T0)
    assert claim(triad, "s", T0 + 0.5).code == "active_elsewhere"
    triad.apply(ReportAlive(member="p", ttl_s=3.0), T0 + 0.9)
    assert claim(triad, "s", T0 + 1.5).code == "primary_alive"
    took_over = claim(triad, "s", T0 + 4.0)
    assert took_over.ok and took_over.data["epoch"] == 2 and took_over.data["previous"] == "p"
    assert triad.active.member == "s"


def test_primary_takes_back_over_from_the_secondary_with_a_new_epoch(triad):
    claim(triad, "p", T0)
    claim(triad, "s", T0 + 2)
    back = claim(triad, "p", T0 + 2.1)
    assert back.ok and triad.active.member == "p" and triad.active.epoch == 3


def test_stale_epoch_cannot_grant_and_changes_nothing(triad):
    claim(triad, "p", T0)
    claim(triad, "s", T0 + 2)
    before = triad.snapshot_bytes()
    stale = checkout(triad, "L1", T0 + 2.1, epoch=1)
    assert stale.code == "not_active"
    assert triad.snapshot_bytes() == before
    assert checkout(triad, "L1", T0 + 2.1, epoch=2).ok


def test_nothing_is_granted_once_the_active_record_expired(triad):
    claim(triad, "p", T0)
    assert checkout(triad, "L1", T0 + TTL + 0.01, epoch=1).code == "not_active"
    assert "L1" not in triad.leases


def test_new_epoch_honours_existing_leases_for_one_ttl(triad):
    claim(triad, "p", T0)
    assert checkout(triad, "L1", T0 + 0.1, epoch=1).ok
    lease_ttl = triad.leases["L1"].ttl_s
    claim(triad, "s", T0 + lease_ttl - 1)
    assert triad.leases["L1"].expires_at == T0 + lease_ttl - 1 + lease_ttl
    assert triad.used("S", T0 + lease_ttl + 5) == 1


def test_snapshot_keeps_triad_active_record_and_epoch(triad):
    claim(triad, "p", T0)
    claim(triad, "s", T0 + 3)
    restored = LicenseState.from_snapshot(triad.snapshot())
    assert restored.snapshot_bytes() == triad.snapshot_bytes()
    assert restored.triad.name == "T" and restored.active.member == "s" and restored.last_epoch == 2
    assert checkout(restored, "L9", T0 + 3.1, epoch=2).ok


def test_dissolve_returns_to_unfenced_standalone(triad):
    claim(triad, "p", T0)
    assert triad.apply(DissolveTriad(), T0 + 0.2).ok
    assert triad.triad is None and triad.active is None
    assert checkout(triad, "L1", T0 + 5, epoch=0).ok


def test_secondary_does_not_take_over_from_a_primary_that_had_no_chance_to_claim_yet():
    state = LicenseState()
    assert state.apply(FormTriad(name="T", members=MEMBERS, active_ttl_s=TTL), T0).ok
    assert claim(state, "s", T0 + 0.5).code == "primary_alive"
    assert claim(state, "p", T0 + 0.6).ok


def test_active_record_keeps_whom_its_holder_reached_at_each_claim(triad):
    assert triad.apply(ClaimActive(member="p", ttl_s=TTL, reaches=["t", "s", "t"]), T0).ok
    assert triad.active.reaches == ["s", "t"]
    renewed = triad.apply(ClaimActive(member="p", ttl_s=TTL, reaches=["t"]), T0 + 0.5)
    assert renewed.data["renewed"] is True and triad.active.reaches == ["t"]
    restored = LicenseState.from_snapshot(triad.snapshot())
    assert restored.active.reaches == ["t"]


def test_claim_naming_a_stranger_or_itself_as_reached_is_refused_and_changes_nothing(triad):
    claim(triad, "p", T0)
    before = triad.snapshot_bytes()
    for reaches in (["x"], ["p"]):
        outcome = triad.apply(ClaimActive(member="p", ttl_s=TTL, reaches=reaches), T0 + 0.5)
        assert outcome.code == "not_a_member"
    assert triad.snapshot_bytes() == before
