"""Which licenses join a triad's pool when it forms: the union of the members' licenses, one copy of each id.

The seed's licenses come with its state. Every other member's license joins unless it cannot be served by
every member (its issuer is not trusted by all of them, or it is bound to other servers), or another member
brings a different license under the same id. The plan is shown to the administrator before the triad is
formed (the wizard's Summary) and is what the members are told to pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from licentia.core.model import License, PooledLicense


class MemberHoldings(msgspec.Struct):
    """What a member has to bring: its licenses as installed, and what it trusts and is."""

    name: str
    server_id: str
    issuer_key_ids: list[str]
    licenses: list[License]


class PoolLine(msgspec.Struct):
    """One license of one member in the plan, as the wizard lists it."""

    license_id: str
    product: str
    count: int
    unit: str
    reason: str = ""  # why it cannot join (empty: it joins)


class MemberPlan(msgspec.Struct):
    server: str
    joining: list[PoolLine]
    not_joining: list[PoolLine]


@dataclass
class PoolPlan:
    members: list[MemberPlan] = field(default_factory=list)
    pooled: list[PooledLicense] = field(default_factory=list)  # the non-seed licenses that join


def _line(lic: License, reason: str = "") -> PoolLine:
    terms = lic.terms
    return PoolLine(terms.license_id, terms.product, terms.count, str(terms.unit), reason)


def _why_not(lic: License, holdings: list[MemberHoldings]) -> str:
    distrusting = [h.name for h in holdings if lic.key_id not in h.issuer_key_ids]
    if distrusting:
        return f"its issuer key {lic.key_id} is not trusted on {', '.join(distrusting)}"
    bound = lic.terms.bound_to
    elsewhere = [h.name for h in holdings if bound and h.server_id not in bound]
    if elsewhere:
        return f"it is bound to other servers than {', '.join(elsewhere)}"
    return ""


def plan_pool(seed: str, holdings: list[MemberHoldings]) -> PoolPlan:
    """The pool: the seed's licenses first, then each other member's, in the order given."""
    plan = PoolPlan()
    taken: dict[str, tuple[str, License]] = {}
    ordered = sorted(holdings, key=lambda h: h.name != seed)
    for member in ordered:
        joining, not_joining = [], []
        for lic in sorted(member.licenses, key=lambda item: item.id):
            earlier = taken.get(lic.id)
            if earlier is not None:
                same = earlier[1].signature == lic.signature
                reason = (f"the same license comes from {earlier[0]}; the pool keeps one copy" if same
                          else f"{earlier[0]} has a different license with the same id")
                not_joining.append(_line(lic, reason))
                continue
            reason = "" if member.name == seed else _why_not(lic, holdings)
            if reason:
                not_joining.append(_line(lic, reason))
                continue
            taken[lic.id] = (member.name, lic)
            joining.append(_line(lic))
            if member.name != seed:
                plan.pooled.append(PooledLicense(member=member.name, license=lic))
        plan.members.append(MemberPlan(member.name, joining, not_joining))
    return plan
