"""Commands: the only way license state changes.

A command is plain data. The edge that receives a request builds one, the
journal (SQLite locally, Raft in a triad) makes it durable, and
`LicenseState.apply(command, now)` turns it into a new state and an outcome.
"""

from __future__ import annotations

from typing import Any, Generic

import msgspec

from licentia.core import outcomes as o
from licentia.core.alert_settings import AlertSettings
from licentia.core.model import (
    AccessRule,
    AdminUser,
    Client,
    ClientInfo,
    LicenseTerms,
    MappingRule,
    PairMember,
    PairRole,
    PooledLicense,
    Printer,
    PrinterIdentity,
    TriadMember,
    UsageRecord,
)
from licentia.core.settings import Settings


class Command(msgspec.Struct, Generic[o.R], tag_field="type", forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A command whose applying results in an `o.R` (see `licentia.core.outcomes`).

    `epoch` is the active record's epoch the proposing server believed in (0 when standalone).

    In a triad the state machine refuses a command whose epoch is not the current
    one, so a deposed or partitioned server can never change license state.
    Commands are frozen: a triad member stamps its epoch on a copy (`msgspec.structs.replace`).
    """

    epoch: int = 0


class AddLicense(Command[o.LicenseChanged], tag="add_license", frozen=True):
    """A license whose signature the edge has already verified against a trusted issuer."""

    terms: LicenseTerms
    key_id: str
    signature: str


class RemoveLicense(Command[o.LicenseChanged], tag="remove_license", frozen=True):
    license_id: str


class PrintCheck(Command[o.PrintGranted], tag="print_check", frozen=True):
    """`source_ip` is where the request came from; `source_host` its verified host name (see `Checkout`)."""

    product: str
    printer: PrinterIdentity
    client: ClientInfo
    source_ip: str = ""
    source_host: str | None = None


class Checkout(Command[o.LeaseGranted], tag="checkout", frozen=True):
    """Take a seat. With `honour_from` (see `ReclaimExpired`), for one lease TTL from then every lease still
    held counts as a taken seat, expired or not: those leases may still be renewed.

    `request_id` makes a retry idempotent for the same client only: the client's declared identity and
    `source_ip` together with it name the lease. `source_host` is the host name the edge verified for
    `source_ip` (reverse DNS, forward-confirmed; "" when there is none); hostname access rules match it.
    None marks an entry journaled before host names were verified: it replays as it was decided then.
    """

    request_id: str
    lease_id: str
    product: str
    client: ClientInfo
    feature: str | None = None
    source_ip: str = ""
    ttl_s: float | None = None
    honour_from: float = 0.0
    source_host: str | None = None


class Renewal(msgspec.Struct, array_like=True):
    """The leases one heartbeat request names, and where it came from (checked against the access rules)."""

    lease_ids: list[str]
    source_ip: str
    source_host: str


class Heartbeat(Command[o.Renewals], tag="heartbeat", frozen=True):
    """Renew leases. With `honour_from` (see `ReclaimExpired`) a lease that ran out is still renewed
    until one of its own TTL has passed since then; a failover never extends a stored expiry.

    `renewals` are the requests coalesced into this command, each checked against the access rules;
    `lease_ids` (no origin, no check) is how entries journaled before that named their leases."""

    lease_ids: list[str] = []
    renewals: list[Renewal] = []
    honour_from: float = 0.0


class Checkin(Command[o.LeaseReleased], tag="checkin", frozen=True):
    """End a lease. With `source_host` set (see `Checkout`) the access rules must allow the request."""

    lease_id: str
    source_ip: str = ""
    source_host: str | None = None


class PruneRegistries(Command[o.Pruned], tag="prune_registries", frozen=True):
    """Forget these printers and clients if, at the command's time, none was seen within the usage
    retention (a printer also not within its in-use window). The edge picks a bounded slice of
    candidates; the core decides, so every member forgets the same ones."""

    printer_ids: list[str] = []
    client_ids: list[str] = []


class RevokeLease(Command[o.LeaseRevoked], tag="revoke_lease", frozen=True):
    lease_id: str


class ReclaimExpired(Command[o.Reclaimed], tag="reclaim_expired", frozen=True):
    """Drop the leases that ran out. With `honour_from` (set by a triad member that took over, or whose
    clock jumped, at that moment's command time) a lease is dropped only once one more of its own TTL
    has passed since then: a lease that ran out during the failover is not lost."""

    honour_from: float = 0.0


class CreatePrinterGroup(Command[o.GroupNamed], tag="create_printer_group", frozen=True):
    name: str


class RenamePrinterGroup(Command[o.GroupNamed], tag="rename_printer_group", frozen=True):
    name: str
    new_name: str


class DeletePrinterGroup(Command[o.GroupNamed], tag="delete_printer_group", frozen=True):
    name: str


class SetMappingRules(Command[o.MappingRulesSet], tag="set_mapping_rules", frozen=True):
    rules: list[MappingRule]


class SetPrinterGroup(Command[o.PrinterMoved], tag="set_printer_group", frozen=True):
    printer_id: str
    group: str


class UpdateSettings(Command[o.Versioned], tag="update_settings", frozen=True):
    changes: dict[str, Any]
    expected_version: int | None = None


class SetAccessRules(Command[o.Versioned], tag="set_access_rules", frozen=True):
    rules: list[AccessRule]
    default_policy: str | None = None


class SetAlertSettings(Command[o.Versioned], tag="set_alert_settings", frozen=True):
    """Replace the alert recipients and thresholds (validated; `expected_version` guards lost updates)."""

    settings: AlertSettings
    expected_version: int | None = None


class PutAdminUser(Command[o.UserPut], tag="put_admin_user", frozen=True):
    """Create a console/admin user or change its password or role (hash made at the edge)."""

    user: AdminUser


class DeleteAdminUser(Command[o.UserNamed], tag="delete_admin_user", frozen=True):
    username: str


class RehashAdminPassword(Command[o.UserNamed], tag="rehash_admin_password", frozen=True):
    """Replace a user's password hash by one of the same password with current parameters (made at the edge,
    after a successful login). Applies only while the user still has `old_hash`; keeps the password version."""

    username: str
    old_hash: str
    new_hash: str


class FormTriad(Command[o.TriadFormed], tag="form_triad", frozen=True):
    """Turn this state into the state of a triad with these members (seeded from this state)."""

    name: str
    members: list[TriadMember]
    active_ttl_s: float = 0.8
    seed: str = ""  # the member whose state seeded the triad: its licenses are its own when dissolving
    pooled: list[PooledLicense] = []  # the other members' licenses that join the pool (one copy of each id)


class DissolveTriad(Command[o.TriadDissolved], tag="dissolve_triad", frozen=True):
    pass


class ElectedActive(Command[o.Elected], tag="elected_active", frozen=True):
    """The triad's election made `member` the active member: the next epoch begins.

    It is committed in the same etcd transaction that gives `member` the election key, so
    the log holds it exactly when the election happened; who may win (the primary, the
    secondary once the primary's etcd lease is gone, never the tertiary) is decided there.
    The record it makes is not time-limited: it lasts until the next election.
    """

    member: str


class SharedConfig(msgspec.Struct):
    """What a main owns and its backup copies: settings, access rules, printer groups and mapping, alerts."""

    settings: Settings
    access_rules: list[AccessRule]
    groups: list[str]
    mapping_rules: list[MappingRule]
    alert_settings: AlertSettings


class FormBackupPair(Command[o.PairFormed], tag="form_backup_pair", frozen=True):
    """This server joins a backup relationship as `me`; a main given `config` makes it its own (the
    administrator chose to seed the pair with the backup's settings)."""

    name: str
    main: PairMember
    backup: PairMember
    me: PairRole
    interval_s: float = 5.0
    config: SharedConfig | None = None


class LeaveBackupPair(Command[o.PairLeft], tag="leave_backup_pair", frozen=True):
    """Work alone again; everything synchronized so far is kept."""


class SwapPairRoles(Command[o.RolesSwapped], tag="swap_pair_roles", frozen=True):
    pass


class PeerUsage(msgspec.Struct, array_like=True):
    """A usage record as the partner stored it, with its row id there (the usage cursor)."""

    row_id: int
    record: UsageRecord


class MergePeerChanges(Command[o.PeerChangesMerged], tag="merge_peer_changes", frozen=True):
    """What the partner changed since our cursor; merged idempotently and the cursor advanced atomically.

    `up_to`/`usage_up_to` are the partner's change sequence and usage row id this batch
    brings us to. A backup takes the main's configuration; a main ignores a backup's.
    """

    peer: str
    up_to: int
    usage_up_to: int
    config: SharedConfig | None = None
    printers: list[Printer] = []
    clients: list[Client] = []
    usage: list[PeerUsage] = []


AnyCommand = (
    AddLicense
    | RemoveLicense
    | PrintCheck
    | Checkout
    | Heartbeat
    | Checkin
    | RevokeLease
    | ReclaimExpired
    | PruneRegistries
    | CreatePrinterGroup
    | RenamePrinterGroup
    | DeletePrinterGroup
    | SetMappingRules
    | SetPrinterGroup
    | UpdateSettings
    | SetAccessRules
    | SetAlertSettings
    | PutAdminUser
    | DeleteAdminUser
    | RehashAdminPassword
    | FormTriad
    | DissolveTriad
    | ElectedActive
    | FormBackupPair
    | LeaveBackupPair
    | SwapPairRoles
    | MergePeerChanges
)

# Settings and rules a backup takes from its main; a backup refuses them from anyone else.
MAIN_OWNED = (
    UpdateSettings,
    SetAccessRules,
    SetAlertSettings,
    CreatePrinterGroup,
    RenamePrinterGroup,
    DeletePrinterGroup,
    SetMappingRules,
    SetPrinterGroup,
)

UNFENCED = (FormTriad, DissolveTriad, ElectedActive)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyCommand)


def encode_command(command: Command) -> bytes:
    return _encoder.encode(command)


def decode_command(data: bytes | str) -> Command:
    return _decoder.decode(data)
