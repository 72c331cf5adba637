"""A relationship as this server sees it: the typed answer of `TriadNode.status()` and `BackupLink.status()`.

The alerts, the metrics, the console and the relationship API read these by attribute; `as_json()` is the
document `GET /api/v1/admin/relationship` answers (and the Redundancy page draws), the same keys as ever.
They are msgspec structs tagged by `type` ("triad", "backup"), so the same types are the OpenAPI document's
schemas of that answer (`licentia.api.contract`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

import msgspec

from licentia.core.model import PeerCursor


class TriadMemberStatus(msgspec.Struct, frozen=True):
    name: str
    role: str
    api_url: str
    raft_address: str
    active: bool  # the member this one sees as active, once it has applied the election
    reachable: bool  # this member: it reaches a majority; another: a TCP connection to its API opens
    etcd_lease_alive: bool
    raft_leader: bool  # its etcd is the etcd (Raft) leader
    log_behind: int | None  # etcd revisions it has not applied yet, as last reported; None when unknown


class TriadStatus(msgspec.Struct, frozen=True, tag_field="type", tag="triad"):
    type: ClassVar[Literal["triad"]] = "triad"
    name: str
    me: str
    my_role: str
    serving: bool
    active: str | None
    epoch: int
    active_until: None
    has_quorum: bool
    commit_index: int | None
    applied_index: int
    in_sync_at: float | None
    failovers_seen: int
    etcd_restarts: int
    watchdog_events: Mapping[str, int]
    healthy: bool
    members: tuple[TriadMemberStatus, ...]
    # Times this member started talking to etcd through another member's etcd ("another_member") or through
    # its own again ("own"); see `cluster.etcd_route`.
    etcd_route_switches: Mapping[str, int]

    def as_json(self) -> dict[str, object]:
        return msgspec.to_builtins(self)  # the tag first: {"type": "...", ...}


class PairMemberStatus(msgspec.Struct, frozen=True):
    name: str
    role: Literal["main", "backup"]
    api_url: str
    me: bool
    online: bool
    reachable: bool


class PendingCounts(msgspec.Struct, frozen=True):
    """Changes and usage rows one side has not confirmed taking yet (None while unknown)."""

    changes: int | None
    usage_rows: int | None


class BackupPending(msgspec.Struct, frozen=True):
    to_partner: PendingCounts
    from_partner: PendingCounts


class BackupPairStatus(msgspec.Struct, frozen=True, tag_field="type", tag="backup"):
    type: ClassVar[Literal["backup"]] = "backup"
    name: str
    me: str
    my_role: Literal["main", "backup"]
    partner: str
    interval_s: float
    members: tuple[PairMemberStatus, ...]
    connected: bool
    synchronized: bool
    state: str  # connected_synchronized, not_connected_not_synchronized, ...
    last_sync_at: float | None
    last_synchronized_at: float | None
    last_error: str | None
    since: float
    pending: BackupPending
    cursor: PeerCursor
    contact_losses: int
    active: str
    serving: bool
    checked_at: float

    def as_json(self) -> dict[str, object]:
        return msgspec.to_builtins(self)  # the tag first: {"type": "...", ...}


RelationshipStatus = TriadStatus | BackupPairStatus
