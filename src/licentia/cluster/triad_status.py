"""A triad member's status view: what its watchdog last saw, and the `TriadStatus` the console, the API,
the alerts and the metrics read (computed from the election, the watchdog and the applied state; no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from licentia.cluster.relationship_status import TriadMemberStatus, TriadStatus
from licentia.cluster.triad_election import TriadElection
from licentia.core.model import ActiveRecord, TriadMember


@dataclass
class Watchdog:
    """What the watchdog last saw, and what it did about it (counted for /metrics)."""

    etcd_ok_at: float = 0.0
    etcd_healthy: bool = False
    apply_healthy: bool = True
    events: dict[str, int] = field(default_factory=dict)
    leader_name: str | None = None
    progress: dict[str, int | None] = field(default_factory=dict)
    reaches: dict[str, bool] = field(default_factory=dict)  # whether a TCP connection to each peer's API opens
    in_sync_at: float = 0.0  # Unix time this member was last seen caught up with the log
    behind_since: float = 0.0  # monotonic: since when the log has been ahead of this member

    def count(self, what: str) -> None:
        self.events[what] = self.events.get(what, 0) + 1


def triad_status(
    *,
    name: str,
    me: str,
    members: list[TriadMember],
    active: ActiveRecord | None,
    election: TriadElection,
    watchdog: Watchdog,
    applied_revision: int,
    serving: bool,
    failovers: int,
    etcd_restarts: int,
    now_mono: float,
    etcd_route_switches: Mapping[str, int] | None = None,
) -> TriadStatus:
    view = election.fresh_view(now_mono)
    holder = view.holder if view is not None else None
    alive = view.alive if view is not None else frozenset()
    log_revision = view.log_revision if view is not None else None
    dog = watchdog
    # Who is active, as of the epoch reported with it: the election's holder once this member has
    # applied the election (a change still being applied here shows as nobody, never as a pair of a
    # new holder and an old epoch).
    applied_holder = holder if active is not None and active.member == holder else None
    seen = []
    for member in members:
        is_me = member.name == me
        if is_me:
            behind: int | None = max(0, log_revision - applied_revision) if isinstance(log_revision, int) else None
        else:
            behind = dog.progress.get(member.name)
        seen.append(
            TriadMemberStatus(
                name=member.name,
                role=member.role,
                api_url=member.api_url,
                raft_address=member.raft_address,
                active=applied_holder == member.name,
                reachable=election.lease_valid(now_mono) if is_me else dog.reaches.get(member.name, False),
                etcd_lease_alive=member.name in alive,
                raft_leader=dog.leader_name == member.name,
                log_behind=behind,
            )
        )
    my_role = next(m.role for m in members if m.name == me)
    return TriadStatus(
        name=name,
        me=me,
        my_role=my_role,
        serving=serving,
        active=applied_holder,
        epoch=active.epoch if active is not None else 0,
        active_until=None,
        has_quorum=election.lease_valid(now_mono),
        commit_index=log_revision,
        applied_index=applied_revision,
        in_sync_at=dog.in_sync_at or None,
        failovers_seen=failovers,
        etcd_restarts=etcd_restarts,
        watchdog_events=dict(dog.events),
        healthy=dog.etcd_healthy and dog.apply_healthy,
        members=tuple(seen),
        etcd_route_switches=dict(etcd_route_switches or {}),
    )
