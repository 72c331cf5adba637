"""What is wrong right now, and which alerts that means: pure functions, no I/O, no clock.

The service (`licentia.alerts.service`) gathers an `AlertView` every few
seconds; `conditions` turns it into the set of things wrong now, and `step`
compares that with the incidents already open to decide what to announce:

- an incident is announced once when it opens and once when it is resolved;
  while it stays open nothing more is sent, whatever its details do;
- in a triad every member evaluates its own view, but only one member tells
  (`who_tells`): the member that serves; while nobody serves, the member of
  highest priority among those this one can reach (primary, secondary,
  tertiary), once nobody has been active for `member_down_after_s`;
- relationship incidents (a member down, failover, nobody active) are seen
  differently by each member, so their recovery is told by the member that
  told the opening; incidents about the license state (the same on every
  member) are told by whoever tells now, so they survive a failover: the new
  active member takes them over silently and announces their recovery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from licentia.cluster.relationship_status import BackupPairStatus, RelationshipStatus, TriadStatus
from licentia.core.alert_settings import AlertSettings

DAY = 86400.0
ROLE_ORDER = {"primary": 0, "secondary": 1, "tertiary": 2}

# Incidents each member sees from where it stands: whoever told the opening tells the recovery.
VIEW_KINDS = frozenset({"member_down", "no_active_member", "failover", "backup_unsynchronized"})
RELATIONSHIP_KINDS = VIEW_KINDS


class Condition(msgspec.Struct):
    """Something wrong right now."""

    key: str
    kind: str
    severity: Literal["warning", "critical"]
    summary: str
    details: dict[str, Any] = {}


class Incident(msgspec.Struct):
    """A condition that was (or still is) open, as this member keeps it.

    `told`: this member announced the opening (or, for license-state incidents,
    took over the duty to announce the recovery). `pending`: it opened while no
    member could tell; the first member that can tells it then.
    """

    key: str
    kind: str
    severity: str
    summary: str
    opened_at: float
    details: dict[str, Any] = {}
    told: bool = False
    pending: bool = False


class Notice(msgspec.Struct):
    """One alert to deliver: an incident `opened` or `resolved`."""

    event: Literal["opened", "resolved"]
    key: str
    kind: str
    severity: str
    summary: str
    opened_at: float
    at: float
    details: dict[str, Any] = {}


class AlertView(msgspec.Struct):
    """Everything the rules look at, gathered by the service.

    `licenses` are `licentia.core.views.license_status` answers; `relationship` is
    `LicenseServer.relationship()` (a `TriadStatus` or `BackupPairStatus`, or None when alone);
    `refusals` counts refused print checks and checkouts within the denial
    window, by reason; `down_since` says since when this member has seen each
    other member unreachable, and `no_active_since` since when it has seen no
    member active (see `track_down_since` and `track_no_active_since`).
    """

    licenses: list[dict[str, Any]] = []
    relationship: RelationshipStatus | None = None
    refusals: dict[str, int] = {}
    down_since: dict[str, float] = {}
    no_active_since: float | None = None


Teller = Literal["me", "other", "nobody"]


# -- remembering since when -------------------------------------------------------------------------


def track_down_since(previous: dict[str, float], relationship: RelationshipStatus | None,
                     now: float) -> dict[str, float]:
    """Members this one cannot reach, with the time it first saw each unreachable (kept while it stays so)."""
    if relationship is None:
        return {}
    return {
        member.name: previous.get(member.name, now)
        for member in relationship.members
        if member.name != relationship.me and not member.reachable
    }


def track_no_active_since(previous: float | None, relationship: RelationshipStatus | None,
                          now: float) -> float | None:
    if not isinstance(relationship, TriadStatus) or relationship.active:
        return None
    return previous if previous is not None else now


# -- who tells --------------------------------------------------------------------------------------


def who_tells(view: AlertView, settings: AlertSettings, now: float) -> Teller:
    """'me' when this member announces alerts now, 'other' when another member does, 'nobody' while none can."""
    rel = view.relationship
    if isinstance(rel, BackupPairStatus):
        # One of the pair tells: the main, or the backup while it cannot reach the main.
        return "me" if rel.my_role == "main" or not rel.connected else "other"
    if rel is None:
        return "me"
    if rel.serving:
        return "me"
    if rel.active:
        return "me" if rel.active == rel.me else "other"
    if view.no_active_since is None or now - view.no_active_since < settings.member_down_after_s:
        return "nobody"
    if rel.commit_index is not None and rel.applied_index < rel.commit_index:
        return "nobody"  # still catching up: what it sees of the triad is not current yet
    candidates = [m for m in rel.members if m.name == rel.me or m.reachable]
    best = min(candidates, key=lambda m: ROLE_ORDER.get(m.role, 9))
    return "me" if best.name == rel.me else "other"


# -- conditions -------------------------------------------------------------------------------------


def _date(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def license_conditions(licenses: list[dict[str, Any]], settings: AlertSettings, now: float) -> list[Condition]:
    found = []
    for lic in licenses:
        lid, product = lic["license_id"], lic["product"]
        what = f"License {lid} ({product}, {lic['customer']})"
        if lic["status"] in ("grace", "exhausted"):
            days = float(lic.get("grace_days_left", 0.0))
            if lic["status"] == "grace":
                summary = (
                    f"{what} is over its count ({lic['used']} of {lic['count']} {lic['unit']}) "
                    f"and in limited-use grace: {days:g} day(s) left."
                )
            else:
                summary = (
                    f"{what} is over its count ({lic['used']} of {lic['count']} {lic['unit']}) "
                    "and its limited-use grace is spent: new ones are refused."
                )
            found.append(
                Condition(
                    key=f"license_grace:{lid}",
                    kind="license_grace",
                    severity="warning" if lic["status"] == "grace" else "critical",
                    summary=summary,
                    details={
                        "license_id": lid,
                        "product": product,
                        "used": lic["used"],
                        "count": lic["count"],
                        "grace_days_left": days,
                    },
                )
            )
        within = settings.expiring_within_days * DAY
        if within > 0 and lic["expires"] - now <= within:
            left = (lic["expires"] - now) / DAY
            summary = (
                f"{what} expires on {_date(lic['expires'])} ({left:.1f} day(s) left)."
                if left > 0
                else f"{what} expired on {_date(lic['expires'])}."
            )
            found.append(
                Condition(
                    key=f"license_expiring:{lid}",
                    kind="license_expiring",
                    severity="warning" if left > 0 else "critical",
                    summary=summary,
                    details={"license_id": lid, "product": product, "expires": lic["expires"]},
                )
            )
    return found


def pair_conditions(view: AlertView, settings: AlertSettings, now: float) -> list[Condition]:
    """A backup pair: the partner down; on the backup, also the takeover (clients that cannot reach the
    main are served here) as a failover, recovered as a failback when the main is reachable again."""
    rel = view.relationship
    if not isinstance(rel, BackupPairStatus):
        return []
    name, me = rel.name, rel.me
    found = []
    for member in rel.members:
        since = view.down_since.get(member.name)
        if since is None or now - since < settings.member_down_after_s:
            continue
        details = {"relationship": name, "member": member.name, "role": member.role, "seen_by": me}
        found.append(
            Condition(
                key=f"member_down:{name}:{member.name}",
                kind="member_down",
                severity="critical",
                summary=f"Backup pair {name}: the {member.role} {member.name} ({member.api_url}) is down: "
                f"{me} has not reached it for {now - since:.0f} s.",
                details={**details, "label": "Backup pair"},
            )
        )
        if member.role == "main":
            found.append(
                Condition(
                    key=f"failover:{name}",
                    kind="failover",
                    severity="warning",
                    summary=f"Backup pair {name}: failover: clients that cannot reach the main {member.name} "
                    f"are served by the backup {me} with its own licenses.",
                    details={"relationship": name, "active": me, "primary": member.name, "label": "Backup pair"},
                )
            )
    return found


def relationship_conditions(view: AlertView, settings: AlertSettings, now: float) -> list[Condition]:
    rel = view.relationship
    if not isinstance(rel, TriadStatus):
        return []
    name, me = rel.name, rel.me
    by_name = {m.name: m for m in rel.members}
    found = []
    for member, since in sorted(view.down_since.items()):
        if now - since < settings.member_down_after_s or member not in by_name:
            continue
        spec = by_name[member]
        found.append(
            Condition(
                key=f"member_down:{name}:{member}",
                kind="member_down",
                severity="critical",
                summary=f"Triad {name}: member {member} ({spec.role}, {spec.api_url}) is down: "
                f"{me} has not reached it for {now - since:.0f} s.",
                details={"relationship": name, "member": member, "role": spec.role, "seen_by": me},
            )
        )
    if view.no_active_since is not None and now - view.no_active_since >= settings.member_down_after_s:
        found.append(
            Condition(
                key=f"no_active_member:{name}",
                kind="no_active_member",
                severity="critical",
                summary=f"Triad {name} has no active member: license requests are not answered "
                "(clients live on their grace tokens).",
                details={"relationship": name, "seen_by": me},
            )
        )
    active = rel.active
    if active and (active not in by_name or by_name[active].role != "primary"):
        primary = next((m.name for m in rel.members if m.role == "primary"), "?")
        found.append(
            Condition(
                key=f"failover:{name}",
                kind="failover",
                severity="warning",
                summary=f"Triad {name}: failover: the {by_name[active].role} {active} took over serving "
                f"licenses from the primary {primary} (epoch {rel.epoch}).",
                details={"relationship": name, "active": active, "primary": primary, "epoch": rel.epoch},
            )
        )
    return found


def backup_conditions(relationship: RelationshipStatus | None, settings: AlertSettings,
                      now: float) -> list[Condition]:
    """A backup pair not synchronized for `backup_unsynchronized_after_s` (counted from the last time it was,
    or from when this server started watching it)."""
    if not isinstance(relationship, BackupPairStatus):
        return []
    synced = relationship.last_synchronized_at or relationship.since or now
    if now - synced < settings.backup_unsynchronized_after_s:
        return []
    name = relationship.name
    return [
        Condition(
            key=f"backup_unsynchronized:{name}",
            kind="backup_unsynchronized",
            severity="critical",
            summary=f"Backup pair {name}: not synchronized with {relationship.partner} "
            f"for {(now - synced) / 60:.0f} min.",
            details={"relationship": name, "partner": relationship.partner},
        )
    ]


def denial_conditions(
    refusals: dict[str, int], settings: AlertSettings, open_keys: frozenset[str] | set[str]
) -> list[Condition]:
    """Refusals above the threshold in the window; once open, it stays open until they fall to half of it."""
    threshold = settings.denials_threshold
    if threshold <= 0:
        return []
    total = sum(refusals.values())
    limit = threshold // 2 if "denials" in open_keys else threshold
    if total <= limit:
        return []
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(refusals.items(), key=lambda kv: -kv[1]))
    return [
        Condition(
            key="denials",
            kind="denials",
            severity="warning",
            summary=f"{total} license requests were refused in the last {settings.denials_window_s:g} s "
            f"(threshold {threshold}): {reasons}.",
            details={"refused": total, "by_reason": dict(refusals), "window_s": settings.denials_window_s},
        )
    ]


def conditions(
    view: AlertView, settings: AlertSettings, now: float, open_keys: frozenset[str] | set[str] = frozenset()
) -> dict[str, Condition]:
    """Everything wrong now, by incident key, less the muted kinds."""
    found = [
        *license_conditions(view.licenses, settings, now),
        *relationship_conditions(view, settings, now),
        *pair_conditions(view, settings, now),
        *backup_conditions(view.relationship, settings, now),
        *denial_conditions(view.refusals, settings, open_keys),
    ]
    muted = set(settings.muted_kinds)
    return {c.key: c for c in found if c.kind not in muted}


# -- incidents --------------------------------------------------------------------------------------


def recovery_summary(incident: Incident, view: AlertView) -> str:
    details = incident.details
    active = view.relationship.active if view.relationship is not None else None
    label = details.get("label", "Triad")
    if incident.kind == "member_down":
        return f"{label} {details['relationship']}: member {details['member']} is reachable again."
    if incident.kind == "failover":
        return f"{label} {details['relationship']}: failback: {details['primary']} serves licenses again."
    if incident.kind == "no_active_member":
        return f"Triad {details['relationship']}: {active or 'a member'} is active again."
    if incident.kind == "backup_unsynchronized":
        return f"Backup pair {details['relationship']}: synchronized again."
    if incident.kind in ("license_grace", "license_expiring"):
        present = any(lic["license_id"] == details["license_id"] for lic in view.licenses)
        if not present:
            return f"License {details['license_id']} ({details['product']}) was removed."
        if incident.kind == "license_grace":
            return f"License {details['license_id']} ({details['product']}) is back within its count."
        return f"License {details['license_id']} ({details['product']}) no longer expires soon."
    if incident.kind == "denials":
        return f"Refused license requests are back to {sum(view.refusals.values())} in the window."
    return f"Resolved: {incident.summary}"


def _dropped_silently(incident: Incident, view: AlertView, settings: AlertSettings) -> bool:
    """Muted kinds, and relationship incidents of a relationship this server is no longer in, end unannounced."""
    if incident.kind in settings.muted_kinds:
        return True
    if incident.kind in RELATIONSHIP_KINDS:
        name = view.relationship.name if view.relationship is not None else None
        return name != incident.details.get("relationship")
    return False


def step(
    incidents: dict[str, Incident],
    current: dict[str, Condition],
    view: AlertView,
    settings: AlertSettings,
    now: float,
) -> tuple[dict[str, Incident], list[Notice]]:
    """The incidents open after this evaluation, and the alerts to send for it."""
    teller = who_tells(view, settings, now)
    notices: list[Notice] = []
    after: dict[str, Incident] = {}
    for key, incident in incidents.items():
        if key in current:
            kept = msgspec.structs.replace(incident)
            if kept.pending and teller == "me":
                kept.told, kept.pending = True, False
                notices.append(_notice("opened", kept, kept.summary, now))
            elif kept.pending and teller == "other":
                kept.pending = False
            elif teller == "me" and kept.kind not in VIEW_KINDS and not kept.told:
                kept.told = True  # the member that told it before is no longer the one that tells
            after[key] = kept
            continue
        if _dropped_silently(incident, view, settings):
            continue
        announce = incident.told if incident.kind in VIEW_KINDS else incident.told and teller == "me"
        if announce:
            notices.append(_notice("resolved", incident, recovery_summary(incident, view), now))
    for key, condition in current.items():
        if key in incidents:
            continue
        incident = Incident(
            key=key,
            kind=condition.kind,
            severity=condition.severity,
            summary=condition.summary,
            opened_at=now,
            details=dict(condition.details),
            told=teller == "me",
            pending=teller == "nobody",
        )
        after[key] = incident
        if incident.told:
            notices.append(_notice("opened", incident, incident.summary, now))
    return after, notices


def _notice(event: Literal["opened", "resolved"], incident: Incident, summary: str, now: float) -> Notice:
    return Notice(
        event=event,
        key=incident.key,
        kind=incident.kind,
        severity=incident.severity if event == "opened" else "info",
        summary=summary,
        opened_at=incident.opened_at,
        at=now,
        details=dict(incident.details),
    )
