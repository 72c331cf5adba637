"""The records that make up license state.

They are msgspec structs so that snapshots, journal entries and API answers use
one encoding and one set of field names. The records a large site holds hundreds of
thousands of (printers, leases, clients and their identities) hold no containers and so can
never be part of a reference cycle: they are not tracked by Python's cycle collector
(`gc=False`), whose full collections would otherwise walk all of them and stall the server.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Text = Annotated[str, msgspec.Meta(max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]

Unit = Literal["printers", "seats"]
Role = Literal["viewer", "manager", "admin"]

DEFAULT_GROUP = "Default"
BLOCKED_GROUP = "Blocked"
BUILTIN_GROUPS = (DEFAULT_GROUP, BLOCKED_GROUP)


class LicenseTerms(msgspec.Struct, forbid_unknown_fields=True):
    """What a signed license grants; the signed payload of a license file.

    `bound_to` names the ids of the servers the license may be installed on (empty: any server).
    """

    license_id: str
    product: str
    edition: str
    customer: str
    unit: Unit
    count: int
    not_before: float
    expires: float
    features: list[str] = []
    grace_days: int = 30
    issued_at: float = 0.0
    bound_to: list[str] = []


class License(msgspec.Struct):
    terms: LicenseTerms
    key_id: str
    signature: str
    installed_at: float
    grace_started_at: float | None = None

    @property
    def id(self) -> str:
        return self.terms.license_id

    def is_valid_at(self, now: float) -> bool:
        return self.terms.not_before <= now < self.terms.expires

    def grace_seconds_left(self, now: float) -> float:
        total = self.terms.grace_days * 86400.0
        if self.grace_started_at is None:
            return total
        return max(0.0, total - (now - self.grace_started_at))


class RemovedLicense(msgspec.Struct):
    """What a removed license leaves behind, so that installing the same license id again resumes it.

    Removing and re-adding a license must not reset it: its grace period goes on from when it started,
    and the printers it counted (and that did not move to another license meanwhile) count again.
    """

    license_id: str
    product: str
    removed_at: float
    grace_started_at: float | None = None
    printer_ids: list[str] = []


class PrinterIdentity(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: Name
    driver: Text = ""
    port: Text = ""
    location: Text = ""


class ClientInfo(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    host: Text = ""
    user: Text = ""
    application: Text = ""
    version: Text = ""


class Printer(msgspec.Struct, gc=False):
    """`last_used` counts against this server's licenses; `peer_last_used` is what a backup partner saw.

    `seq`/`via` say when the record last changed and whether that change came from
    the partner, so a backup pair sends each other only what is new to the other.
    """

    printer_id: str
    identity: PrinterIdentity
    group: str
    first_seen: float
    last_used: float
    license_id: str | None = None
    uses: int = 0
    peer_last_used: float = 0.0
    seq: int = 0
    via: str = ""


class Lease(msgspec.Struct, gc=False):
    lease_id: str
    request_id: str
    license_id: str
    product: str
    feature: str | None
    client: ClientInfo
    source_ip: str
    granted_at: float
    expires_at: float
    ttl_s: float


class Client(msgspec.Struct, gc=False):
    client_id: str
    info: ClientInfo
    source_ip: str
    first_seen: float
    last_seen: float
    requests: int = 0
    seq: int = 0
    via: str = ""


class MappingRule(msgspec.Struct, forbid_unknown_fields=True):
    """Puts a new printer whose field matches `pattern` into `group`."""

    pattern: str
    group: str
    field: Literal["name", "driver", "port", "location", "any"] = "name"


class AccessRule(msgspec.Struct, forbid_unknown_fields=True):
    """One allow/deny line of the "This License Server" list; first match wins."""

    rule_id: str
    action: Literal["allow", "deny"]
    who_kind: Literal["any", "user", "host", "server"] = "any"
    who: str = "*"
    where_kind: Literal["any", "ip", "cidr", "hostname"] = "any"
    where: str = "*"
    description: str = ""


class AdminUser(msgspec.Struct):
    username: str
    password_hash: str
    role: Role
    password_version: int = 1


class UsageRecord(msgspec.Struct):
    """One line of the usage log: a request and what the server decided.

    `count` is how many requests the line stands for: the usage log coalesces a client's repeated
    refusals into one line (see `licentia.store.usage_rows.RefusalCoalescer`); every other line is one."""

    at: float
    kind: str
    granted: bool
    reason: str
    product: str = ""
    license_id: str = ""
    printer_id: str = ""
    printer_name: str = ""
    lease_id: str = ""
    client_host: str = ""
    client_user: str = ""
    application: str = ""
    source_ip: str = ""
    server: str = ""
    count: int = 1


TriadRole = Literal["primary", "secondary", "tertiary"]


class TriadMember(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: TriadRole
    api_url: str
    raft_address: str
    tls_fingerprint: str = ""  # the SHA-256 fingerprint of its HTTPS certificate, pinned at setup


class PooledLicense(msgspec.Struct, forbid_unknown_fields=True):
    """A license a member brings into a triad's pool when the triad forms (as installed there)."""

    member: str
    license: License


class Triad(msgspec.Struct):
    name: str
    members: list[TriadMember]
    active_ttl_s: float
    brought: dict[str, str] = {}  # license id -> the member that brought it into the pool (it gets it back)

    def license_owners(self, license_ids: list[str]) -> dict[str, str]:
        """Who keeps each license when the triad is dissolved: the member that brought it, else the primary."""
        names = {m.name for m in self.members}
        primary = self.by_role("primary").name
        return {i: self.brought[i] if self.brought.get(i) in names else primary for i in license_ids}

    def member(self, name: str) -> TriadMember | None:
        return next((m for m in self.members if m.name == name), None)

    def by_role(self, role: str) -> TriadMember:
        return next(m for m in self.members if m.role == role)


class ActiveRecord(msgspec.Struct):
    """Who serves licenses in a triad, since when, and in which epoch (until the next election).

    `until` and `reaches` are kept so that snapshots of earlier versions decode; the etcd election
    decides liveness now, and records it makes have `until` 0.
    """

    member: str
    epoch: int
    since: float
    until: float = 0.0
    reaches: list[str] = msgspec.field(default_factory=list)


PairRole = Literal["main", "backup"]


class PairMember(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    api_url: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    tls_fingerprint: str = ""  # the SHA-256 fingerprint of its HTTPS certificate, pinned at setup


class PeerCursor(msgspec.Struct):
    """How far this server has taken in its partner's changes and usage log."""

    changes: int = 0
    usage: int = 0


class BackupPair(msgspec.Struct):
    """A backup relationship as one of its two servers sees it (each server keeps its own state)."""

    name: str
    main: PairMember
    backup: PairMember
    me: PairRole
    interval_s: float
    cursor: PeerCursor = msgspec.field(default_factory=PeerCursor)

    @property
    def partner(self) -> PairMember:
        return self.backup if self.me == "main" else self.main

    @property
    def myself(self) -> PairMember:
        return self.main if self.me == "main" else self.backup
