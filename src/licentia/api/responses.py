"""Response bodies of the HTTP API, as msgspec structs: the OpenAPI document's response schemas.

The handlers still build their answers from the state's views; these types say what those answers hold,
and `tests/api/test_api_contract.py` checks real answers against the served document. A field a handler
adds or renames without changing its type here fails that test.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from licentia.alerts.delivery import DeliveryResult
from licentia.alerts.rules import Incident
from licentia.cluster.relationship_status import BackupPairStatus
from licentia.core.alert_settings import AlertSettings
from licentia.core.model import AccessRule, Client, Lease, LicenseTerms, MappingRule, Printer, Role, UsageRecord
from licentia.core.settings import Settings

LicenseStatus = Literal["ok", "full", "grace", "exhausted", "expired", "not_yet_valid"]


class Answer(msgspec.Struct):
    pass


# -- refusals ---------------------------------------------------------------------------------------


class ErrorDetail(Answer):
    code: str
    message: str
    # 307 not_active: the member that serves now (the Location header names the same request there).
    active_url: str | None = None
    # 502/503 on a triad member that does not serve: the active member's console, to make the change there.
    console_url: str | None = None
    # A relationship setup refused: what is missing on which server.
    problems: list[dict[str, Any]] | None = None


class ErrorAnswer(Answer):
    """Every refusal: `{"error": {"code": ..., "message": ...}}`."""

    error: ErrorDetail
    # A test alert that could not be delivered (502): how each delivery went.
    results: list[DeliveryResult] | None = None


# -- the client API ---------------------------------------------------------------------------------


class RelationshipMember(Answer):
    name: str
    role: str
    api_url: str
    tls_fingerprint: str | None


class ClientRelationship(Answer):
    """What clients cache of a relationship: its members, and which one serves."""

    type: Literal["triad", "backup"]
    name: str
    me: str
    active: str | None
    serving: bool
    members: list[RelationshipMember]
    prefer: str | None = None  # backup pair: the member clients go to first


class ServerInfo(Answer):
    server_id: str
    name: str
    version: str
    peer_public_key: str
    grant_key_id: str
    grant_public_key: str
    tls_fingerprint: str | None
    client_grace_hours: float
    relationship: ClientRelationship | None
    heartbeat_interval_s: float
    lease_ttl_s: float
    time: float


class Grant(Answer):
    """A signed statement that lets the client go on working offline until `expires_at`."""

    token: str
    expires_at: float


class PrintCheckAnswer(Answer):
    granted: bool
    printer_id: str
    group: str
    license_id: str
    status: LicenseStatus
    grace_days_left: float
    grant: Grant


class CheckoutAnswer(Answer):
    lease_id: str
    license_id: str
    product: str
    feature: str | None
    expires_at: float
    ttl_s: float
    repeated: bool  # a retry with the same request_id: the lease granted before (answered 200, not 201)
    grant: Grant


class HeartbeatAnswer(Answer):
    renewed: dict[str, float]  # lease id: its new expiry
    expired: list[str]
    denied: dict[str, str]  # lease id: why the access rules deny it
    grants: dict[str, Grant]  # product: a grant for it


class LeaseRenewal(Answer):
    lease_id: str
    expires_at: float


class Checkin(Answer):
    lease_id: str
    released: bool


# -- the admin API ----------------------------------------------------------------------------------


class LoginAnswer(Answer):
    token: str
    expires_at: float
    username: str
    role: Role


class LogoutAnswer(Answer):
    logged_out: bool


class UserView(Answer):
    username: str
    role: Role


class UserList(Answer):
    users: list[UserView]


class UserRemoved(Answer):
    username: str


class LicenseView(LicenseTerms, kw_only=True):
    key_id: str
    installed_at: float
    used: int
    status: LicenseStatus
    grace_started_at: float | None
    grace_days_left: float


class LicenseList(Answer):
    licenses: list[LicenseView]


class LicenseRemoved(Answer):
    license_id: str


class IssuerTrusted(Answer):
    key_id: str
    new: bool
    trusted_issuers: list[str]


class ServerStatus(ServerInfo, kw_only=True):
    started_at: float
    journal_index: int
    licenses: list[LicenseView]
    active_leases: int
    printers: int
    clients: int
    trusted_issuers: list[str]


class PrinterView(Printer, kw_only=True):
    in_window: bool  # used inside the printer window
    counted: bool  # holds a seat of its license now


class Page(Answer, kw_only=True):
    next: str | None  # the `after` of the next page; null on the last one
    total: int | None  # rows that match, where known without reading them all
    limit: int


class PrinterPage(Page, kw_only=True):
    printers: list[PrinterView]
    window_days: float


class LeaseView(Lease, kw_only=True):
    expires_in_s: float


class LeasePage(Page, kw_only=True):
    leases: list[LeaseView]


class ClientPage(Page, kw_only=True):
    clients: list[Client]


class PrinterGroupChange(Answer):
    printer_id: str
    group: str


class GroupView(Answer):
    name: str
    builtin: bool
    printers: int


class PrinterGroups(Answer):
    groups: list[GroupView]
    mapping_rules: list[MappingRule]


class GroupName(Answer):
    name: str


class MappingRulesSaved(Answer):
    rules: int


class LeaseRevoked(Answer):
    lease_id: str
    revoked: bool


class UsageRow(UsageRecord, kw_only=True):
    id: int


class UsagePage(Answer):
    records: list[UsageRow]
    next: str | None  # pass as `before` for the next (older) page


class SettingsChange(Answer):
    version: int
    at: float
    changes: dict[str, Any]


class SettingsView(Answer):
    settings: Settings
    version: int
    history: list[SettingsChange]


class AccessRulesView(Answer):
    rules: list[AccessRule]
    default_policy: Literal["allow", "deny"]
    version: int


class AccessDecision(Answer):
    allowed: bool
    decided_by: str
    rule_id: str | None


class SmtpView(Answer):
    configured: bool
    host: str
    port: int
    tls: str
    user: str
    password_set: bool
    from_: str | None = msgspec.field(name="from")


class AlertsView(Answer):
    settings: AlertSettings
    version: int
    kinds: list[str]
    smtp: SmtpView
    interval_s: float
    last_evaluated_at: float | None
    this_member_tells: bool
    incidents: list[Incident]
    recent_deliveries: list[DeliveryResult]


class AlertTestSent(Answer):
    sent: bool
    results: list[DeliveryResult]


# -- relationships ----------------------------------------------------------------------------------


class NoRelationship(Answer):
    """`GET /api/v1/admin/relationship` on a server in no relationship; in one, the answer is the triad's
    `TriadStatus` or the pair's `BackupPairStatus` (`licentia.cluster.relationship_status`), told apart by
    `type`."""

    type: None


class SetupChecked(Answer):
    """A setup with `check_only`: every member reached and its access rules allow the others."""

    checked: bool
    members: list[str]
    problems: list[dict[str, Any]]
    license_pool: list[dict[str, Any]] | None = None


class TriadFormed(Answer):
    triad: str
    members: list[str]
    seeded_from: str
    license_pool: list[dict[str, Any]]


class BackupPairFormed(Answer):
    backup_pair: str
    main: str
    backup: str
    settings_from: Literal["main", "backup"]


class BackupReplaced(BackupPairFormed, kw_only=True):
    replaced: str
    replaced_partner_left: bool


class Joined(Answer):
    joined: str
    me: str


class Dissolved(Answer):
    dissolved: str | None
    partner: str | None = None  # backup pair: the partner, and whether it was told
    partner_left: bool | None = None
    license_owners: dict[str, str] | None = None  # triad: which member keeps each license


class SeedSnapshot(Answer):
    snapshot: str
    server_id: str
    issuer_key_ids: list[str]


class SyncNow(BackupPairStatus, frozen=True, kw_only=True):
    """The pair's status after a synchronization was asked for; `reached`: the partner answered."""

    reached: bool


# -- between the servers of a relationship ----------------------------------------------------------


class PeerSyncing(Answer):
    syncing: bool


class PeerSwapped(Answer):
    me: str
    main: str


class PeerLeft(Answer):
    left: str

