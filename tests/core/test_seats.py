"""Seat licenses: leases, their TTL, heartbeats, idempotent checkout, checkin and revocation."""

from __future__ import annotations

import msgspec
import pytest

from licentia.core.commands import Checkin, Checkout, Heartbeat, PrintCheck, ReclaimExpired, RevokeLease
from licentia.core.model import ClientInfo, PrinterIdentity
from licentia.core.state import LicenseState, Outcome
from licentia.core.views import license_status

T0 = 1_700_000_000.0
TTL = 120.0  # Settings.lease_ttl_s default
PRODUCT = "Designer"


def checkout(state: LicenseState, lease_id: str, now: float, *, request_id: str | None = None,
             feature: str | None = None, ttl_s: float | None = None, product: str = PRODUCT) -> Outcome:
    command = Checkout(
        request_id=request_id or f"req-{lease_id}",
        lease_id=lease_id,
        product=product,
        client=ClientInfo(host="ws-01", user="bob", application="Designer", version="2.1"),
        feature=feature,
        source_ip="10.0.0.9",
        ttl_s=ttl_s,
    )
    return state.apply(command, now)


@pytest.fixture
def seats(install) -> str:
    return install(license_id="LIC-SEATS", product=PRODUCT, unit="seats", count=2, features=["rfid"])


def test_checkout_grants_lease_expiring_after_ttl(state, seats):
    outcome = checkout(state, "L1", T0 + 5)

    assert outcome.ok and outcome.changed
    assert outcome.result.lease_id == "L1"
    assert outcome.result.license_id == seats
    assert outcome.result.expires_at == T0 + 5 + TTL
    assert outcome.result.repeated is False
    assert state.leases["L1"].expires_at == T0 + 5 + TTL
    assert state.used(seats, T0 + 5) == 1
    assert [(u.kind, u.granted, u.lease_id) for u in outcome.usage] == [("checkout", True, "L1")]


def test_checkout_uses_shorter_requested_ttl_but_caps_longer_one(state, seats):
    assert checkout(state, "L1", T0, ttl_s=30).result.expires_at == T0 + 30
    assert checkout(state, "L2", T0, ttl_s=10_000).result.expires_at == T0 + TTL


def test_checkout_over_count_is_denied(state, seats):
    assert checkout(state, "L1", T0).ok
    assert checkout(state, "L2", T0).ok
    before = state.leases.copy()

    outcome = checkout(state, "L3", T0 + 1)

    assert outcome.code == "limit_exceeded"
    assert "L3" not in state.leases and state.leases == before
    assert [(u.granted, u.reason, u.lease_id) for u in outcome.usage] == [(False, "limit_exceeded", "")]
    assert license_status(state, state.licenses[seats], T0 + 1)["status"] == "full"


def test_retried_request_returns_same_lease_and_takes_one_seat(state, seats):
    first = checkout(state, "L1", T0, request_id="req-42")
    retry = checkout(state, "L1-retry", T0 + 2, request_id="req-42")  # the edge mints a new lease id per call

    assert retry.ok
    assert retry.result.lease_id == first.result.lease_id == "L1"
    assert retry.result.expires_at == first.result.expires_at
    assert retry.result.repeated is True
    assert retry.usage == []
    assert list(state.leases) == ["L1"]
    assert state.used(seats, T0 + 2) == 1


def test_retried_request_after_lease_expired_gets_a_new_lease(state, seats):
    checkout(state, "L1", T0, request_id="req-42")
    retry = checkout(state, "L2", T0 + TTL + 1, request_id="req-42")
    assert retry.ok and retry.result.repeated is False
    assert list(state.leases) == ["L2"]
    assert state.used(seats, T0 + TTL + 1) == 1


def test_checkout_with_lease_id_already_held_is_refused(state, seats):
    checkout(state, "L1", T0, request_id="a")
    assert checkout(state, "L1", T0, request_id="b").code == "lease_exists"
    assert state.leases["L1"].request_id == "a"


def test_heartbeat_renews_lease_and_reports_expired_ones(state, seats):
    checkout(state, "L1", T0)
    checkout(state, "L2", T0, ttl_s=30)

    outcome = state.apply(Heartbeat(lease_ids=["L1", "L2", "unknown"]), T0 + 60)

    assert outcome.ok
    assert outcome.result.renewed == {"L1": T0 + 60 + TTL}
    assert outcome.result.expired == ["L2", "unknown"]
    assert state.leases["L1"].expires_at == T0 + 60 + TTL
    # One record for the request, naming the first lease it lost, not one per lease.
    assert [(u.kind, u.reason, u.lease_id) for u in outcome.usage] == [("heartbeat", "lease_expired", "L2")]


def test_renewed_lease_keeps_its_seat_past_original_expiry(state, seats):
    checkout(state, "L1", T0)
    checkout(state, "L2", T0)
    state.apply(Heartbeat(lease_ids=["L1", "L2"]), T0 + 100)
    assert state.used(seats, T0 + TTL + 10) == 2
    assert checkout(state, "L3", T0 + TTL + 10).code == "limit_exceeded"


def test_lease_not_renewed_within_ttl_no_longer_counts(state, seats):
    checkout(state, "L1", T0)
    checkout(state, "L2", T0 + 60)
    assert checkout(state, "L3", T0 + TTL - 1).code == "limit_exceeded"

    outcome = checkout(state, "L3", T0 + TTL)  # L1 expired at exactly T0 + TTL

    assert outcome.ok
    assert state.used(seats, T0 + TTL) == 2


def test_reclaim_expired_removes_stale_leases_and_records_usage(state, seats):
    checkout(state, "L1", T0)
    checkout(state, "L2", T0 + 100)

    outcome = state.apply(ReclaimExpired(), T0 + TTL + 1)

    assert outcome.ok and outcome.changed
    assert outcome.result.reclaimed == ["L1"]
    assert list(state.leases) == ["L2"]
    assert [(u.kind, u.granted, u.reason, u.lease_id, u.license_id) for u in outcome.usage] == [
        ("checkin", False, "lease_expired", "L1", seats)
    ]
    assert state.apply(Heartbeat(lease_ids=["L1"]), T0 + TTL + 2).result.expired == ["L1"]


def test_reclaim_with_nothing_expired_changes_nothing(state, seats):
    checkout(state, "L1", T0)
    before = state.snapshot_bytes()
    outcome = state.apply(ReclaimExpired(), T0 + 1)
    assert outcome.ok and not outcome.changed and outcome.result.reclaimed == []
    assert state.snapshot_bytes() == before


class CountedLeases(dict):
    """The state's leases, counting the passes over them."""

    passes = 0

    def values(self):
        CountedLeases.passes += 1
        return super().values()


def test_whether_a_lease_is_up_is_answered_without_a_pass_over_the_leases_until_one_may_be(state, seats):
    checkout(state, "L1", T0)
    checkout(state, "L2", T0 + 100)
    state.leases = CountedLeases(state.leases)

    assert not state.leases_expire_by(T0 + 1)  # one pass: the earliest expiry is T0 + TTL
    CountedLeases.passes = 0
    for second in range(2, 100):
        assert not state.leases_expire_by(T0 + second)
        state.apply(Heartbeat(lease_ids=["L2"]), T0 + second)  # renewals only push the earliest later
    state.apply(ReclaimExpired(), T0 + 101)
    assert CountedLeases.passes == 0

    assert state.leases_expire_by(T0 + TTL)  # L1's time is up
    assert state.apply(ReclaimExpired(), T0 + TTL).result.reclaimed == ["L1"]
    assert not state.leases_expire_by(T0 + TTL + 1)  # L2 was renewed at T0 + 99


def test_a_lease_granted_with_a_shorter_time_is_found_expired_before_the_earlier_ones(state, seats):
    checkout(state, "L1", T0)
    assert not state.leases_expire_by(T0 + 1)  # the earliest expiry: T0 + TTL
    checkout(state, "L2", T0 + 2, ttl_s=20)
    assert not state.leases_expire_by(T0 + 21)
    assert state.leases_expire_by(T0 + 22)
    assert state.apply(ReclaimExpired(), T0 + 22).result.reclaimed == ["L2"]


def test_checkin_releases_seat(state, seats):
    checkout(state, "L1", T0)
    checkout(state, "L2", T0)

    outcome = state.apply(Checkin(lease_id="L1"), T0 + 5)

    assert outcome.ok and msgspec.to_builtins(outcome.result) == {"lease_id": "L1", "released": True}
    assert "L1" not in state.leases
    assert state.used(seats, T0 + 5) == 1
    assert [(u.kind, u.granted, u.reason) for u in outcome.usage] == [("checkin", True, "ok")]
    assert checkout(state, "L3", T0 + 6).ok


def test_checkin_frees_request_id_for_a_new_lease(state, seats):
    checkout(state, "L1", T0, request_id="req-1")
    state.apply(Checkin(lease_id="L1"), T0 + 1)
    again = checkout(state, "L2", T0 + 2, request_id="req-1")
    assert again.ok and again.result.lease_id == "L2" and again.result.repeated is False


def test_checkin_of_unknown_lease_is_refused(state, seats):
    before = state.snapshot_bytes()
    outcome = state.apply(Checkin(lease_id="ghost"), T0)
    assert outcome.code == "lease_not_found"
    assert not outcome.changed
    assert state.snapshot_bytes() == before


def test_feature_the_license_lacks_is_refused(state, seats):
    assert checkout(state, "L1", T0, feature="rfid").ok

    outcome = checkout(state, "L2", T0, feature="cloud")

    assert outcome.code == "no_license"
    assert "cloud" in outcome.message
    assert "L2" not in state.leases


def test_checkout_for_unlicensed_product_is_refused(state, seats):
    assert checkout(state, "L1", T0, product="Other").code == "no_license"


def test_printer_license_does_not_grant_seats(state, install):
    install(product=PRODUCT, unit="printers", count=5)
    assert checkout(state, "L1", T0).code == "no_license"


def test_seat_license_does_not_grant_printers(state, seats):
    outcome = state.apply(PrintCheck(product=PRODUCT, printer=PrinterIdentity(name="P"), client=ClientInfo()), T0)
    assert outcome.code == "no_license"


def test_revoke_lease_removes_it_and_frees_seat(state, seats):
    checkout(state, "L1", T0)
    checkout(state, "L2", T0)

    outcome = state.apply(RevokeLease(lease_id="L1"), T0 + 1)

    assert outcome.ok and outcome.result.revoked is True
    assert "L1" not in state.leases
    assert state.used(seats, T0 + 1) == 1
    assert [(u.granted, u.reason) for u in outcome.usage] == [(False, "revoked")]
    assert state.apply(Heartbeat(lease_ids=["L1"]), T0 + 2).result.expired == ["L1"]
    assert state.apply(RevokeLease(lease_id="L1"), T0 + 3).code == "lease_not_found"


def test_removing_license_drops_its_leases(state, seats):
    from licentia.core.commands import RemoveLicense

    checkout(state, "L1", T0)
    outcome = state.apply(RemoveLicense(seats), T0 + 1)
    assert state.leases == {}
    assert [(u.lease_id, u.reason) for u in outcome.usage] == [("L1", "license_removed")]


def test_request_id_reused_for_another_product_is_refused(state, seats):
    assert checkout(state, "L1", T0, request_id="r-1").ok

    other = checkout(state, "L2", T0 + 1, request_id="r-1", product="Other")

    assert other.code == "request_conflict"
    assert "L2" not in state.leases



class WatchedLeases(dict):
    """The state's leases, failing any pass over all of them."""

    def values(self):
        raise AssertionError("a pass over every lease")

    def items(self):
        raise AssertionError("a pass over every lease")

    def __iter__(self):
        raise AssertionError("a pass over every lease")


def test_reclaiming_while_leases_run_out_looks_at_those_leases_not_at_every_lease(state, install):
    """Each reclaim after a lease ran out scanned every lease (10-16 ms at 300,000, on every replica, every few
    seconds at a site where applications stop without checking in); the seats sets note the ones they expire."""
    install(license_id="LIC-MANY", product="Many", unit="seats", count=2000)
    for n in range(2000):
        assert checkout(state, f"M{n:04d}", T0 + n * 0.01, product="Many").ok
    for n in range(0, 2000, 2):  # half are kept alive
        state.apply(Heartbeat(lease_ids=[f"M{n:04d}"]), T0 + 60)
    state.leases = WatchedLeases(state.leases)

    assert not state.leases_expire_by(T0 + TTL - 1)
    now = T0 + TTL + 0.095  # M0000-M0009 ran out; the even ones were renewed
    assert state.leases_expire_by(now)
    assert [lease.lease_id for lease in sorted(state.expired_leases(now), key=lambda lease: lease.lease_id)] == [
        "M0001", "M0003", "M0005", "M0007", "M0009"]
    outcome = state.apply(ReclaimExpired(), now)
    assert outcome.result.reclaimed == ["M0001", "M0003", "M0005", "M0007", "M0009"]  # in the order they ran out
    assert [u.lease_id for u in outcome.usage] == outcome.result.reclaimed
    assert not state.leases_expire_by(now)
    assert len(state.leases) == 1995
    later = T0 + TTL + 20.5  # every odd one has run out by now
    assert len(state.apply(ReclaimExpired(), later).result.reclaimed) == 995
    assert not state.leases_expire_by(later) and len(state.leases) == 1000


def test_a_lease_honoured_after_it_ran_out_is_reclaimed_only_once_its_renewed_time_is_up(state, seats):
    checkout(state, "L1", T0)
    assert checkout(state, "L2", T0 + TTL + 1).ok  # counting L2 in, the seats set expires L1
    honour_from = T0 + TTL  # a triad member took over then: leases held then are honoured for a TTL
    renewed = state.apply(Heartbeat(lease_ids=["L1"], honour_from=honour_from), T0 + TTL + 2)
    assert renewed.result.renewed == {"L1": T0 + 2 * TTL + 2}
    assert state.apply(ReclaimExpired(honour_from=honour_from), T0 + TTL + 3).result.reclaimed == []
    assert not state.leases_expire_by(T0 + 2 * TTL)
    assert state.leases_expire_by(T0 + 2 * TTL + 1)  # L2's time (granted at T0 + TTL + 1)
    reclaimed = state.apply(ReclaimExpired(honour_from=honour_from), T0 + 2 * TTL + 2).result.reclaimed
    assert reclaimed == ["L2", "L1"]  # in the order they ran out


def test_a_state_loaded_from_its_snapshot_reclaims_the_same_leases_in_the_same_order(state, install):
    install(license_id="LIC-MANY", product="Many", unit="seats", count=500)
    for n in range(500):
        checkout(state, f"R{(n * 7919) % 500:03d}", T0 + (n % 50), product="Many")
    state.apply(Heartbeat(lease_ids=[f"R{n:03d}" for n in range(0, 500, 3)]), T0 + 50)
    checkout(state, "R-late", T0 + TTL + 10, product="Many")  # expires some in the one that ran
    loaded = LicenseState.from_snapshot(msgspec.json.decode(state.snapshot_bytes(), type=type(state.snapshot())))
    now = T0 + TTL + 30
    run_out = sorted((lease.expires_at, lease.lease_id) for lease in state.leases.values() if lease.expires_at <= now)
    ran, reloaded = state.apply(ReclaimExpired(), now), loaded.apply(ReclaimExpired(), now)
    assert len(run_out) > 20 and ran.result.reclaimed == [lease_id for _, lease_id in run_out]
    assert ran.result.reclaimed == reloaded.result.reclaimed
    assert ran.usage == reloaded.usage
    assert state.snapshot_bytes() == loaded.snapshot_bytes()
