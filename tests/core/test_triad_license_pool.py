"""A triad's license pool: the union of the members' licenses with one copy of each id, planned before the
triad forms, and every license given back to the member that brought it when the triad is dissolved."""

from __future__ import annotations

import msgspec

from licentia.cluster.license_pool import MemberHoldings, plan_pool
from licentia.core.commands import AddLicense, DissolveTriad, ElectedActive, FormTriad
from licentia.core.model import License, LicenseTerms, PooledLicense, TriadMember
from licentia.core.state import LicenseState, Snapshot

T0 = 1_700_000_000.0
MEMBERS = [
    TriadMember(name="lic-a", role="primary", api_url="http://127.0.0.1:1", raft_address="127.0.0.1:11"),
    TriadMember(name="lic-b", role="secondary", api_url="http://127.0.0.1:2", raft_address="127.0.0.1:12"),
    TriadMember(name="lic-c", role="tertiary", api_url="http://127.0.0.1:3", raft_address="127.0.0.1:13"),
]


def lic(license_id: str, count: int = 5, key_id: str = "k1", signature: str = "", bound_to: list[str] | None = None
        ) -> License:
    terms = LicenseTerms(license_id=license_id, product="Labels", edition="Pro", customer="C", unit="printers",
                         count=count, not_before=T0 - 100, expires=T0 + 86400, bound_to=bound_to or [])
    return License(terms=terms, key_id=key_id, signature=signature or f"sig-{license_id}-{count}",
                   installed_at=T0 - 50)


def holdings(name: str, *licenses: License, keys: tuple[str, ...] = ("k1",)) -> MemberHoldings:
    return MemberHoldings(name=name, server_id=f"id-{name}", issuer_key_ids=list(keys), licenses=list(licenses))


def test_the_plan_pools_every_members_licenses_once_and_says_why_the_others_cannot_join():
    plan = plan_pool("lic-a", [
        holdings("lic-b", lic("B"), lic("A", count=99), lic("U", key_id="k2"), lic("BOUND", bound_to=["id-lic-b"]),
                 keys=("k1", "k2")),
        holdings("lic-a", lic("A")),
        holdings("lic-c", lic("B")),
    ])
    by_server = {member.server: member for member in plan.members}
    assert [m.server for m in plan.members] == ["lic-a", "lic-b", "lic-c"]  # the seed first
    assert [line.license_id for line in by_server["lic-a"].joining] == ["A"]
    assert [line.license_id for line in by_server["lic-b"].joining] == ["B"]
    refused = {line.license_id: line.reason for line in by_server["lic-b"].not_joining}
    assert refused == {
        "A": "lic-a has a different license with the same id",
        "U": "its issuer key k2 is not trusted on lic-a, lic-c",
        "BOUND": "it is bound to other servers than lic-a, lic-c",
    }
    assert [(line.license_id, line.reason) for line in by_server["lic-c"].not_joining] == [
        ("B", "the same license comes from lic-b; the pool keeps one copy")
    ]
    assert [(p.member, p.license.id) for p in plan.pooled] == [("lic-b", "B")]


def formed(pooled: list[PooledLicense]) -> LicenseState:
    state = LicenseState()
    seed_license = lic("A")
    assert state.apply(AddLicense(terms=seed_license.terms, key_id="k1", signature=seed_license.signature), T0).ok
    assert state.apply(FormTriad(name="Labels", members=MEMBERS, seed="lic-a", pooled=pooled), T0 + 1).ok
    return state


def test_forming_a_triad_pools_the_other_members_licenses_and_never_copies_one_twice():
    brought = lic("B", count=25)
    state = formed([PooledLicense("lic-b", brought), PooledLicense("lic-c", lic("A", count=7))])
    assert sorted(state.licenses) == ["A", "B"]
    assert state.licenses["A"].terms.count == 5  # the seed's copy; the other one with this id did not join
    assert state.licenses["B"] == brought  # as installed on lic-b, grace and install time included
    assert state.triad is not None and state.triad.brought == {"A": "lic-a", "B": "lic-b"}


def test_dissolving_names_who_gets_each_license_back_and_the_rest_stay_with_the_primary():
    state = formed([PooledLicense("lic-b", lic("B"))])
    added = lic("LATER")
    assert state.apply(ElectedActive(member="lic-a"), T0 + 1.5).ok
    assert state.apply(AddLicense(terms=added.terms, key_id="k1", signature=added.signature, epoch=1), T0 + 2).ok
    outcome = state.apply(DissolveTriad(), T0 + 3)
    assert outcome.ok
    assert outcome.result.license_owners == {"A": "lic-a", "B": "lic-b", "LATER": "lic-a"}


def test_the_pool_survives_a_snapshot_so_a_restarted_member_still_knows_who_brought_what():
    state = formed([PooledLicense("lic-b", lic("B"))])
    again = LicenseState.from_snapshot(msgspec.json.decode(state.snapshot_bytes(), type=Snapshot))
    assert again.triad is not None and again.triad.brought == {"A": "lic-a", "B": "lic-b"}
