"""The alert rules as pure functions: which incidents open and close, and which member tells."""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from licentia.alerts.rules import (
    AlertView,
    Incident,
    Notice,
    backup_conditions,
    conditions,
    step,
    track_down_since,
    track_no_active_since,
    who_tells,
)
from licentia.cluster.relationship_status import (
    BackupPairStatus,
    BackupPending,
    PairMemberStatus,
    PendingCounts,
    RelationshipStatus,
    TriadMemberStatus,
    TriadStatus,
)
from licentia.core.alert_settings import AlertSettings
from licentia.core.model import PeerCursor

T0 = 1_700_000_000.0
DAY = 86400.0
SETTINGS = AlertSettings(recipients=["ops@example.com"], member_down_after_s=5, denials_threshold=10)


def lic(license_id: str = "LIC-1", status: str = "ok", used: int = 2, count: int = 5,
        expires: float = T0 + 365 * DAY, grace_days_left: float = 30.0) -> dict[str, Any]:
    return {"license_id": license_id, "product": "LabelStudio", "customer": "ACME", "unit": "printers",
            "status": status, "used": used, "count": count, "expires": expires, "grace_days_left": grace_days_left}


def triad(me: str, active: str | None, reachable: dict[str, bool] | None = None, epoch: int = 1,
          serving: bool | None = None) -> TriadStatus:
    reachable = reachable or {}
    roles = {"a": "primary", "b": "secondary", "c": "tertiary"}
    return TriadStatus(
        name="T1", me=me, my_role=roles[me], active=active, epoch=epoch,
        serving=active == me if serving is None else serving, applied_index=10, commit_index=10,
        members=tuple(TriadMemberStatus(name=n, role=r, api_url=f"http://{n}:8470", raft_address=f"{n}:7000",
                                        active=n == active, reachable=n == me or reachable.get(n, True),
                                        etcd_lease_alive=True, raft_leader=False, log_behind=0)
                      for n, r in roles.items()),
        active_until=None, has_quorum=True, in_sync_at=None, failovers_seen=0, etcd_restarts=0,
        watchdog_events={}, healthy=True, etcd_route_switches={},
    )


def backup_pair(last_synchronized_at: float) -> BackupPairStatus:
    members = tuple(PairMemberStatus(name=n, role=r, api_url=f"http://{n}:8470", me=n == "srv1", online=True,
                                     reachable=True) for n, r in (("srv1", "main"), ("srv2", "backup")))
    return BackupPairStatus(
        name="B1", me="srv1", my_role="main", partner="srv2", interval_s=60.0, members=members, connected=True,
        synchronized=False, state="connected_not_synchronized", last_sync_at=None,
        last_synchronized_at=last_synchronized_at, last_error=None, since=T0,
        pending=BackupPending(PendingCounts(None, None), PendingCounts(None, None)), cursor=PeerCursor(),
        contact_losses=0, active="srv1", serving=True, checked_at=T0,
    )


class Member:
    """One member's alert memory, stepped through time like the service does."""

    def __init__(self, settings: AlertSettings = SETTINGS) -> None:
        self.settings = settings
        self.incidents: dict[str, Incident] = {}
        self.down_since: dict[str, float] = {}
        self.no_active_since: float | None = None
        self.sent: list[Notice] = []

    def tick(self, now: float, licenses: list[dict[str, Any]] | None = None,
             relationship: RelationshipStatus | None = None, refusals: dict[str, int] | None = None) -> list[Notice]:
        self.down_since = track_down_since(self.down_since, relationship, now)
        self.no_active_since = track_no_active_since(self.no_active_since, relationship, now)
        view = AlertView(licenses=licenses or [], relationship=relationship, refusals=refusals or {},
                         down_since=self.down_since, no_active_since=self.no_active_since)
        current = conditions(view, self.settings, now, set(self.incidents))
        self.incidents, notices = step(self.incidents, current, view, self.settings, now)
        self.sent += notices
        return notices

    def events(self) -> list[tuple[str, str]]:
        return [(n.event, n.key) for n in self.sent]


def test_grace_opens_once_whatever_changes_and_resolves_once():
    member = Member()
    assert member.tick(T0, [lic()]) == []
    opened = member.tick(T0 + 1, [lic(status="grace", used=6, grace_days_left=30)])
    assert [(n.event, n.key, n.severity) for n in opened] == [("opened", "license_grace:LIC-1", "warning")]
    assert "30 day(s) left" in opened[0].summary and "6 of 5 printers" in opened[0].summary
    for step_ in range(2, 10):  # days left and use change, the incident stays the same
        assert member.tick(T0 + step_, [lic(status="grace", used=6 + step_, grace_days_left=30 - step_)]) == []
    resolved = member.tick(T0 + 10, [lic()])
    assert [(n.event, n.severity) for n in resolved] == [("resolved", "info")]
    assert "back within its count" in resolved[0].summary
    assert member.tick(T0 + 11, [lic()]) == []


def test_exhausted_grace_is_the_same_incident_and_critical_when_it_opens_so():
    member = Member()
    notices = member.tick(T0, [lic(status="exhausted", used=7, grace_days_left=0)])
    assert notices[0].severity == "critical" and "grace is spent" in notices[0].summary


def test_expiring_within_n_days_and_removal():
    member = Member(AlertSettings(recipients=["x@example.com"], expiring_within_days=30))
    far = lic("LIC-FAR")
    assert member.tick(T0, [far, lic("LIC-NEAR", expires=T0 + 31 * DAY)]) == []
    notices = member.tick(T0 + 2 * DAY, [far, lic("LIC-NEAR", expires=T0 + 31 * DAY)])
    assert [(n.event, n.key) for n in notices] == [("opened", "license_expiring:LIC-NEAR")]
    assert "29.0 day(s) left" in notices[0].summary
    assert member.tick(T0 + 40 * DAY, [far, lic("LIC-NEAR", expires=T0 + 31 * DAY)]) == []  # expired: still open
    assert [n.summary for n in member.tick(T0 + 41 * DAY, [far])] == ["License LIC-NEAR (LabelStudio) was removed."]


def test_expiring_alert_can_be_switched_off():
    member = Member(AlertSettings(recipients=["x@example.com"], expiring_within_days=0))
    assert member.tick(T0, [lic(expires=T0 + DAY)]) == []


def test_denials_above_threshold_open_once_and_close_at_half():
    member = Member()
    assert member.tick(T0, refusals={"no_license": 10}) == []  # the threshold is not above it
    opened = member.tick(T0 + 1, refusals={"no_license": 8, "access_denied": 5})
    assert [n.key for n in opened] == ["denials"]
    assert "13 license requests were refused" in opened[0].summary
    assert "no_license 8, access_denied 5" in opened[0].summary
    assert member.tick(T0 + 2, refusals={"no_license": 9}) == []  # below the threshold, above half: still open
    assert member.tick(T0 + 3, refusals={"no_license": 6}) == []
    assert [n.event for n in member.tick(T0 + 4, refusals={"no_license": 5})] == ["resolved"]
    assert member.tick(T0 + 5, refusals={"no_license": 9}) == []  # below the threshold again: no new incident


def test_muted_kinds_are_not_alerted_and_muting_an_open_incident_closes_it_silently():
    member = Member()
    member.tick(T0, refusals={"no_license": 20})
    member.settings = AlertSettings(recipients=["x@example.com"], denials_threshold=10, muted_kinds=["denials"])
    assert member.tick(T0 + 1, refusals={"no_license": 20}) == []
    assert member.incidents == {}


def test_alone_a_server_always_tells():
    assert who_tells(AlertView(), SETTINGS, T0) == "me"


def test_in_a_triad_the_active_member_tells_and_the_others_do_not():
    assert who_tells(AlertView(relationship=triad("a", "a")), SETTINGS, T0) == "me"
    assert who_tells(AlertView(relationship=triad("b", "a")), SETTINGS, T0) == "other"
    assert who_tells(AlertView(relationship=triad("c", "a")), SETTINGS, T0) == "other"


def test_with_nobody_active_the_best_reachable_member_tells_after_the_threshold():
    alone = triad("b", None, {"a": False, "c": False})
    assert who_tells(AlertView(relationship=alone, no_active_since=T0), SETTINGS, T0 + 4) == "nobody"
    assert who_tells(AlertView(relationship=alone, no_active_since=T0), SETTINGS, T0 + 5) == "me"
    with_primary = triad("c", None, {"a": True, "b": True})
    assert who_tells(AlertView(relationship=with_primary, no_active_since=T0), SETTINGS, T0 + 9) == "other"
    behind = replace(alone, applied_index=3, commit_index=10)  # still catching up: its view is stale
    assert who_tells(AlertView(relationship=behind, no_active_since=T0), SETTINGS, T0 + 9) == "nobody"


def test_primary_killed_one_member_down_alert_and_one_failover_then_recovery_and_failback():
    """Members b (secondary) and c (tertiary) watch a die and come back: every alert is sent exactly once."""
    b, c = Member(), Member()
    for member, me in ((b, "b"), (c, "c")):
        assert member.tick(T0, relationship=triad(me, "a")) == []
    # a dies; for a moment nobody is active, then b takes over.
    for member, me in ((b, "b"), (c, "c")):
        member.tick(T0 + 1, relationship=triad(me, None, {"a": False}))
    for now in (T0 + 2, T0 + 4, T0 + 6, T0 + 8):
        for member, me in ((b, "b"), (c, "c")):
            member.tick(now, relationship=triad(me, "b", {"a": False}, epoch=2))
    assert b.events() == [("opened", "failover:T1"), ("opened", "member_down:T1:a")]
    assert c.events() == []
    assert "took over serving licenses from the primary a" in b.sent[0].summary
    # a is back and catches up (b still active), then claims the record again.
    for member, me in ((b, "b"), (c, "c")):
        member.tick(T0 + 9, relationship=triad(me, "b", epoch=2))
        member.tick(T0 + 10, relationship=triad(me, "a", epoch=3))
        member.tick(T0 + 11, relationship=triad(me, "a", epoch=3))
    assert b.events()[2:] == [("resolved", "member_down:T1:a"), ("resolved", "failover:T1")]
    assert "failback" in b.sent[3].summary
    assert c.events() == []


def test_a_failover_gets_the_member_down_alert_even_when_the_threshold_passes_before_the_takeover():
    """Opened while nobody could tell (pending), it is told by the member that takes over."""
    b = Member(AlertSettings(recipients=["x@example.com"], member_down_after_s=1))
    b.tick(T0, relationship=triad("b", "a"))
    b.tick(T0 + 0.5, relationship=triad("b", "a", {"a": False}))  # gone, its active record not expired yet
    b.tick(T0 + 1.3, relationship=triad("b", None, {"a": False}))
    assert b.tick(T0 + 1.6, relationship=triad("b", None, {"a": False})) == []
    assert b.incidents["member_down:T1:a"].pending
    assert [n.key for n in b.tick(T0 + 1.8, relationship=triad("b", "b", {"a": False}))] == [
        "member_down:T1:a", "failover:T1"]


def test_the_restarted_primary_announces_no_failback_of_its_own():
    """It may see the failover before it claims the record again; the secondary announces the failback."""
    a = Member()
    a.tick(T0, relationship=triad("a", "b", epoch=2))
    assert a.incidents["failover:T1"].told is False
    assert a.tick(T0 + 1, relationship=triad("a", "a", epoch=3)) == []


def test_license_incidents_follow_the_member_that_tells():
    """Told by the active primary; after a failover the secondary announces the recovery, the primary does not."""
    a, b = Member(), Member()
    grace = [lic(status="grace", used=6)]
    assert [n.event for n in a.tick(T0, grace, triad("a", "a"))] == ["opened"]
    assert b.tick(T0, grace, triad("b", "a")) == []
    b.tick(T0 + 1, grace, triad("b", "b", epoch=2))  # failover: b takes the incident over
    assert [n.event for n in b.tick(T0 + 2, [lic()], triad("b", "b", epoch=2))] == ["resolved"]
    assert a.tick(T0 + 2, [lic()], triad("a", "b", epoch=2)) == []


def test_a_member_down_seen_only_by_the_active_member_is_resolved_by_it():
    a = Member()
    a.tick(T0, relationship=triad("a", "a", {"c": False}))
    assert [n.key for n in a.tick(T0 + 5, relationship=triad("a", "a", {"c": False}))] == ["member_down:T1:c"]
    assert a.tick(T0 + 6, relationship=triad("a", "a", {"c": False})) == []
    assert [n.event for n in a.tick(T0 + 7, relationship=triad("a", "a"))] == ["resolved"]


def test_leaving_the_relationship_closes_its_incidents_silently():
    a = Member()
    a.tick(T0, relationship=triad("a", "a", {"c": False}))
    a.tick(T0 + 5, relationship=triad("a", "a", {"c": False}))
    assert a.tick(T0 + 6, relationship=None) == [] and a.incidents == {}


def test_down_since_is_kept_while_unreachable_and_forgotten_on_return():
    since = track_down_since({}, triad("a", "a", {"b": False}), T0)
    assert since == {"b": T0}
    assert track_down_since(since, triad("a", "a", {"b": False, "c": False}), T0 + 3) == {"b": T0, "c": T0 + 3}
    assert track_down_since(since, triad("a", "a"), T0 + 4) == {}
    assert track_no_active_since(None, triad("a", None), T0) == T0
    assert track_no_active_since(T0, triad("a", None), T0 + 2) == T0
    assert track_no_active_since(T0, triad("a", "a"), T0 + 3) is None


def test_backup_pair_hook():
    settings = AlertSettings(backup_unsynchronized_after_s=600)
    pair = backup_pair(last_synchronized_at=T0)
    assert backup_conditions(pair, settings, T0 + 599) == []
    (condition,) = backup_conditions(pair, settings, T0 + 601)
    assert condition.key == "backup_unsynchronized:B1" and "srv2" in condition.summary
    assert backup_conditions(triad("a", "a"), settings, T0 + 10_000) == []
