"""The set whose members expire (`core.expiring.ExpiringSet`): renewals cost no heap entry, counts stay exact."""

from __future__ import annotations

import random

import pytest

from licentia.core.commands import Checkout, Heartbeat, Renewal
from licentia.core.expiring import ExpiringSet
from licentia.core.model import ClientInfo

T0 = 1_700_000_000.0


def test_renewing_every_member_again_and_again_files_no_new_heap_entry():
    members = ExpiringSet()
    members.fill([100.0 + i for i in range(1000)], [f"lease-{i}" for i in range(1000)])
    for round_ in range(1, 11):
        for i in range(1000):
            members.put(f"lease-{i}", 100.0 + 50 * round_ + i)
    # One entry per member, as after the fill: before, each renewal pushed one and the heap was rebuilt from
    # every member each time it reached twice their number (~50 ms at 300,000 leases).
    assert len(members.entries()) == 1000
    # Each member's time is now 600 + i: at 1000, those with i > 400 are live.
    assert members.count_live(1000.0) == 599
    assert members.live_count(1000.0) == 599
    assert "lease-400" not in members and "lease-401" in members
    assert members.count_live(1599.0) == 0 and members.count_live(1598.5) == 1


@pytest.mark.parametrize("offset", [0.0, 30.0])
@pytest.mark.parametrize("seed", range(6))
def test_counts_and_membership_match_a_plain_dictionary_whatever_the_order_of_puts(offset, seed):
    rng = random.Random(seed)
    members = ExpiringSet(offset)
    model: dict[str, float] = {}
    now = 0.0
    for _ in range(4000):
        key = f"k{rng.randrange(60)}"
        roll = rng.random()
        if roll < 0.55:  # mostly later (a renewal), sometimes earlier
            at = now + rng.uniform(-5.0, 40.0)
            members.put(key, at)
            model[key] = at
        elif roll < 0.65:
            members.discard(key)
            model.pop(key, None)
        elif roll < 0.8:
            now += rng.uniform(0.0, 6.0)
            model = {k: at for k, at in model.items() if at + offset > now}
            assert members.live_count(now) == len(model)
        else:
            asked = now + rng.uniform(-10.0, 60.0)
            assert members.count_live(asked) == sum(1 for at in model.values() if at + offset > asked)
        assert all(key in members for key in model)
        assert sum(1 for i in range(60) if f"k{i}" in members) == len(model)


def test_leases_kept_by_heartbeats_alone_leave_no_entry_due_in_their_licenses_in_use_set(state, install):
    """Renewals leave entries where they were; the heartbeat files those come due again, so the count the console
    reads (`counted_at`) takes its one-look path instead of looking at every entry due."""
    license_id = install(license_id="LIC-SEAT", product="Designer", unit="seats", count=100)
    client = ClientInfo(host="ws-01", user="alice")
    for n in range(20):
        outcome = state.apply(Checkout(request_id=f"r{n}", lease_id=f"L{n}", product="Designer", client=client,
                                       source_ip="10.0.0.2"), T0 + 1)
        assert outcome.ok, outcome
    now = T0 + 1
    for _ in range(12):  # every 60 s, six TTLs of 120 s
        now += 60
        renewed = state.apply(Heartbeat(renewals=[Renewal([f"L{n}" for n in range(20)], "10.0.0.2", "")]), now)
        assert len(renewed.result.renewed) == 20
    in_use = state._in_use[license_id]
    assert in_use.entries()[0][0] > now
    assert state.counted_at(license_id, now + 119) == 20
    assert state.counted_at(license_id, now + 120) == 0


def test_a_count_after_most_members_went_looks_at_the_members_left_not_at_every_entry_due():
    members = ExpiringSet()
    members.fill([100.0 + i * 0.001 for i in range(50_000)], [f"lease-{i}" for i in range(50_000)])
    for i in range(49_990):  # checked in: their entries stay in the heap until something applied drops them
        members.discard(f"lease-{i}")
    looked: list[str] = []

    class Watched(dict[str, float]):
        def items(self):  # type: ignore[override]
            looked.append("every member")
            return super().items()

    members._expiry = Watched(members._expiry)
    assert members.count_live(200.0) == 0
    assert members.count_live(149.9945) == 5
    assert looked == ["every member", "every member"]  # ten members read, not 50,000 entries due
