"""Commands: the only way license state changes.

A command is plain data. The edge that receives a request builds one, the
journal (SQLite locally, Raft in a triad) makes it durable, and
`LicenseState.apply(command, now)` turns it into a new state and an outcome.
"""

from __future__ import annotations

from typing import Any

import msgspec

from licentia.core.alert_settings import AlertSettings
from licentia.core.model import (
    AccessRule,
    AdminUser,
    ClientInfo,
    LicenseTerms,
    MappingRule,
    PrinterIdentity,
    TriadMember,
)


class Command(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """`epoch` is the active record's epoch the proposing server believed in (0 when standalone).

    In a triad the state machine refuses a command whose epoch is not the current
    one, so a deposed or partitioned server can never change license state.
    """

    epoch: int = 0


class AddLicense(Command, tag="add_license"):
    """A license whose signature the edge has already verified against a trusted issuer."""

    terms: LicenseTerms
    key_id: str
    signature: str


class RemoveLicense(Command, tag="remove_license"):
    license_id: str


class PrintCheck(Command, tag="print_check"):
    product: str
    printer: PrinterIdentity
    client: ClientInfo
    source_ip: str = ""


class Checkout(Command, tag="checkout"):
    request_id: str
    lease_id: str
    product: str
    client: ClientInfo
    feature: str | None = None
    source_ip: str = ""
    ttl_s: float | None = None


class Heartbeat(Command, tag="heartbeat"):
    lease_ids: list[str]


class Checkin(Command, tag="checkin"):
    lease_id: str


class RevokeLease(Command, tag="revoke_lease"):
    lease_id: str


class ReclaimExpired(Command, tag="reclaim_expired"):
    pass


class CreatePrinterGroup(Command, tag="create_printer_group"):
    name: str


class RenamePrinterGroup(Command, tag="rename_printer_group"):
    name: str
    new_name: str


class DeletePrinterGroup(Command, tag="delete_printer_group"):
    name: str


class SetMappingRules(Command, tag="set_mapping_rules"):
    rules: list[MappingRule]


class SetPrinterGroup(Command, tag="set_printer_group"):
    printer_id: str
    group: str


class UpdateSettings(Command, tag="update_settings"):
    changes: dict[str, Any]
    expected_version: int | None = None


class SetAccessRules(Command, tag="set_access_rules"):
    rules: list[AccessRule]
    default_policy: str | None = None


class SetAlertSettings(Command, tag="set_alert_settings"):
    """Replace the alert recipients and thresholds (validated; `expected_version` guards lost updates)."""

    settings: AlertSettings
    expected_version: int | None = None


class PutAdminUser(Command, tag="put_admin_user"):
    """Create a console/admin user or change its password or role (hash made at the edge)."""

    user: AdminUser


class DeleteAdminUser(Command, tag="delete_admin_user"):
    username: str


class FormTriad(Command, tag="form_triad"):
    """Turn this state into the state of a triad with these members (seeded from this state)."""

    name: str
    members: list[TriadMember]
    active_ttl_s: float = 0.8


class DissolveTriad(Command, tag="dissolve_triad"):
    pass


class ReportAlive(Command, tag="report_alive"):
    """A triad member says it can commit to the log; the record expires after `ttl_s`."""

    member: str
    ttl_s: float


class ClaimActive(Command, tag="claim_active"):
    """Claim (or renew) the time-limited active record by the triad's priority rules."""

    member: str
    ttl_s: float


AnyCommand = (
    AddLicense
    | RemoveLicense
    | PrintCheck
    | Checkout
    | Heartbeat
    | Checkin
    | RevokeLease
    | ReclaimExpired
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
    | FormTriad
    | DissolveTriad
    | ReportAlive
    | ClaimActive
)

UNFENCED = (FormTriad, DissolveTriad, ReportAlive, ClaimActive)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyCommand)


def encode_command(command: Command) -> bytes:
    return _encoder.encode(command)


def decode_command(data: bytes | str) -> Command:
    return _decoder.decode(data)
