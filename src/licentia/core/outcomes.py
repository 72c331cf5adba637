"""What applying a command decided: `Applied` with the command's typed result, or `Refused` with a reason.

Each command declares the type of its result (`Heartbeat(Command[Renewals])`), so
`state.apply(Heartbeat(...), now)` is an `Outcome[Renewals]`; once `outcome.ok` is checked the type checker
knows `outcome.result` is a `Renewals` and checks every field read from it. The results are msgspec structs
whose fields are, in order, what the API has always answered for the command, so an answer is encoded from
the result itself.
"""

from __future__ import annotations

from typing import Generic, Literal, TypeAlias, TypeVar

import msgspec

from licentia.core.model import PairRole, PeerCursor, Role, UsageRecord

R = TypeVar("R")


class Applied(msgspec.Struct, Generic[R]):
    """The command was applied; `result` says what it did. `usage` is what the usage log records of it."""

    result: R
    usage: list[UsageRecord] = []
    changed: bool = False

    @property
    def ok(self) -> Literal[True]:
        return True

    @property
    def code(self) -> str:
        return "ok"

    @property
    def message(self) -> str:
        return ""


class Refused(msgspec.Struct):
    """The command changed nothing but its usage records; `code` is the machine-readable reason."""

    code: str
    message: str
    usage: list[UsageRecord] = []
    changed: bool = False

    @property
    def ok(self) -> Literal[False]:
        return False


Outcome: TypeAlias = Applied[R] | Refused


def refused(code: str, message: str, usage: list[UsageRecord] | None = None) -> Refused:
    return Refused(code=code, message=message, usage=usage or [], changed=bool(usage))


# -- what each kind of command results in (field names and order are the API's answers) -------------------


class Result(msgspec.Struct):
    pass


class LicenseChanged(Result):
    """A license was installed or removed."""

    license_id: str


class PrintGranted(Result):
    granted: bool
    printer_id: str
    group: str
    license_id: str
    status: str  # "ok" or "grace"
    grace_days_left: float


class LeaseGranted(Result):
    """A seat's lease, new or (`repeated`) the one a retry of the same request was granted before."""

    lease_id: str
    license_id: str
    product: str
    feature: str | None
    expires_at: float
    ttl_s: float
    repeated: bool


class Renewals(Result):
    renewed: dict[str, float]  # lease id: its new expiry
    expired: list[str]
    denied: dict[str, str]  # lease id: why the access rules deny it


class LeaseReleased(Result):
    lease_id: str
    released: bool = True


class LeaseRevoked(Result):
    lease_id: str
    revoked: bool = True


class Reclaimed(Result):
    reclaimed: list[str]  # lease ids


class Pruned(Result):
    printers: list[str]
    clients: list[str]


class GroupNamed(Result):
    """A printer group created, renamed (its new name) or deleted."""

    name: str


class MappingRulesSet(Result):
    rules: int


class PrinterMoved(Result):
    printer_id: str
    group: str


class Versioned(Result):
    """Settings, access rules or alert settings changed; their new version."""

    version: int


class UserPut(Result):
    username: str
    role: Role


class UserNamed(Result):
    """A user deleted, or its password hash renewed."""

    username: str


class TriadFormed(Result):
    triad: str


class TriadDissolved(Result):
    dissolved: str
    license_owners: dict[str, str]  # license id: the member that keeps it


class Elected(Result):
    epoch: int
    previous: str | None


class PairFormed(Result):
    pair: str
    me: PairRole


class PairLeft(Result):
    left: str


class RolesSwapped(Result):
    me: PairRole
    main: str


class PeerChangesMerged(Result):
    cursor: PeerCursor
    usage: int
