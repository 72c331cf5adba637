"""Request bodies of the HTTP API. Unknown fields are refused; lengths and ranges are checked."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from licentia.core.model import AccessRule, ClientInfo, MappingRule, PrinterIdentity

Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:@-]+$")]
Product = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    pass


class PrintCheckRequest(Body):
    product: Product
    printer: PrinterIdentity
    client: ClientInfo = msgspec.field(default_factory=ClientInfo)


class CheckoutRequest(Body):
    product: Product
    client: ClientInfo = msgspec.field(default_factory=ClientInfo)
    request_id: Ident | None = None
    feature: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    ttl_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)] | None = None


class HeartbeatRequest(Body):
    lease_ids: Annotated[list[Ident], msgspec.Meta(min_length=1, max_length=1000)]


class LoginRequest(Body):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class GroupRequest(Body):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PrinterGroupRequest(Body):
    group: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class MappingRulesRequest(Body):
    rules: Annotated[list[MappingRule], msgspec.Meta(max_length=500)]


class SettingsRequest(Body):
    changes: dict[str, Any]
    expected_version: int | None = None


class TrustIssuerRequest(Body):
    public_key: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]  # PEM, the issuer's OUT.pub


class AccessRulesRequest(Body):
    rules: Annotated[list[AccessRule], msgspec.Meta(max_length=500)]
    default_policy: Literal["allow", "deny"] | None = None


class AccessTestRequest(Body):
    user: Annotated[str, msgspec.Meta(max_length=200)] = ""
    host: Annotated[str, msgspec.Meta(max_length=200)] = ""
    server: Annotated[str, msgspec.Meta(max_length=200)] = ""
    ip: Annotated[str, msgspec.Meta(max_length=64)] = ""
    # The verified host name of `ip` that "from where: host name" rules match; left out, DNS is asked.
    source_host: Annotated[str, msgspec.Meta(max_length=253)] | None = None


class UserRequest(Body):
    """A new user needs a password; for an existing one, leaving it out changes only the role."""

    password: Annotated[str, msgspec.Meta(min_length=8, max_length=256)] | None = None
    role: Literal["viewer", "manager", "admin"] = "viewer"


Url = Annotated[str, msgspec.Meta(min_length=8, max_length=200, pattern=r"^https?://[^\s/]+(:\d+)?/?$")]
RaftAddress = Annotated[str, msgspec.Meta(min_length=3, max_length=200, pattern=r"^[A-Za-z0-9_.-]+:\d{1,5}$")]
Fingerprint = Annotated[str, msgspec.Meta(max_length=120, pattern=r"^(sha256:)?[0-9A-Fa-f: ]*$")]
MemberName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class TriadMemberSpec(Body):
    name: MemberName
    role: Literal["primary", "secondary", "tertiary"]
    api_url: Url
    raft_address: RaftAddress
    tls_fingerprint: Fingerprint = ""


Username = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class MemberCredentials(Body):
    """The administrator account to log in to one member with, when it is not the shared one."""

    username: Username
    password: Password


# Per member name: its own administrator account. A member not named uses the shared `username`/`password`.
CredentialsByMember = Annotated[dict[MemberName, MemberCredentials], msgspec.Meta(max_length=3)]


class TriadSetupRequest(Body):
    name: MemberName
    members: Annotated[list[TriadMemberSpec], msgspec.Meta(min_length=3, max_length=3)]
    seed: MemberName
    username: Username | None = None
    password: Password | None = None
    credentials: CredentialsByMember = msgspec.field(default_factory=dict)
    active_ttl_s: Annotated[float, msgspec.Meta(ge=0.5, le=30)] = 0.8
    check_only: bool = False


class TriadJoinRequest(Body):
    name: MemberName
    me: MemberName
    members: Annotated[list[TriadMemberSpec], msgspec.Meta(min_length=3, max_length=3)]
    sealed_secret: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    seed_snapshot: str
    formed_at: float
    origin: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    active_ttl_s: Annotated[float, msgspec.Meta(ge=0.5, le=30)] = 0.8
    seed: str = ""  # the member whose state seeds the triad
    pooled_licenses: str = "[]"  # JSON list of PooledLicense: the other members' licenses joining the pool


class PairMemberSpec(Body):
    name: MemberName
    api_url: Url
    tls_fingerprint: Fingerprint = ""


class BackupSetupRequest(Body):
    """Set up a backup pair from either server; `settings_from` says whose settings and rules both will share."""

    name: MemberName
    main: PairMemberSpec
    backup: PairMemberSpec
    username: Username | None = None
    password: Password | None = None
    credentials: CredentialsByMember = msgspec.field(default_factory=dict)
    interval_s: Annotated[float, msgspec.Meta(ge=0.2, le=3600)] = 5.0
    settings_from: Literal["main", "backup"] = "main"
    check_only: bool = False


class BackupJoinRequest(Body):
    name: MemberName
    me: Literal["main", "backup"]
    main: PairMemberSpec
    backup: PairMemberSpec
    sealed_secret: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    interval_s: Annotated[float, msgspec.Meta(ge=0.2, le=3600)] = 5.0
    config: dict[str, Any] | None = None


class BackupReplaceRequest(Body):
    """Replace the backup of this (main) server's pair by another server."""

    backup: PairMemberSpec
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    interval_s: Annotated[float, msgspec.Meta(ge=0.2, le=3600)] | None = None
