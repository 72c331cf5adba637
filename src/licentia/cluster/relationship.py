"""The seam between the server and how it stands with other servers: alone, in a backup pair, or in a triad.

The server (`licentia.server`, the composition root) holds one `Relationship` and drives every kind the
same way: `start` and `stop` it, `commit` a command through it and answer the outcome, `barrier` before a
read that must reflect everything answered, ask `may_reclaim` before it reclaims expired leases,
`is_ready` and `is_active` for the health checks, and `status` for the console, the API, the alerts and
the metrics (a typed `TriadStatus` or `BackupPairStatus`, None when alone).

- `Standalone`: apply, then group-commit to this server's SQLite journal (`JournalReplication`).
- `cluster.backup_pair.BackupLink`: the same journal, plus the periodic synchronization with the partner.
- `cluster.triad.TriadNode`: committed through the triad's etcd log with the epoch of the claim it holds.

What a relationship may use of the server is the narrow `Host` protocol below; no module of `cluster`
imports `licentia.server`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from licentia.cluster.relationship_status import RelationshipStatus
from licentia.cluster.role_events import RoleEvents
from licentia.config import Config
from licentia.core.commands import Command
from licentia.core.state import LicenseState, Outcome
from licentia.store.journal import SqliteJournal


class Replication(Protocol):
    """How this server makes a command durable, and whether it may reclaim expired leases now."""

    snapshot_on_close: bool  # whether the server's journal takes a snapshot of the state when it closes

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def commit(self, command: Command) -> Outcome:
        """Apply `command` and return its outcome once the change is on stable storage."""
        ...

    async def barrier(self) -> None:
        """Return once everything answered so far is durable."""
        ...

    def may_reclaim(self) -> bool: ...


class Relationship(Replication, Protocol):
    """How this server stands with others; the server drives every kind through these alone."""

    @property
    def ended(self) -> bool:
        """The relationship is over (a dissolved triad, while this member waits to leave it)."""
        ...

    @property
    def kept_name(self) -> str:
        """This server's own name where the relationship's settings carry another's (a triad); else ""."""
        ...

    def describe(self) -> str:
        """The relationship in a few words ("triad 'T1'"), or "" when alone."""
        ...

    def status(self) -> RelationshipStatus | None:
        """The relationship as this server sees it now; reading it changes nothing."""
        ...

    def client_view(self) -> dict[str, object] | None:
        """What clients cache of it (`GET /api/v1/info`): the members, and which one serves."""
        ...

    def committed(self, command: Command, outcome: Outcome) -> None:
        """Called once `command` was answered with `outcome` (a backup's main tells its partner)."""
        ...

    def is_ready(self) -> bool:
        """`/health/ready`: durable storage works (in a triad also etcd, a majority, the apply loop)."""
        ...

    def is_active(self) -> bool:
        """`/health/active`: this is a server that serves licenses now."""
        ...


class JournalHost(Protocol):
    """What the journal replication needs of the server."""

    state: LicenseState
    journal: SqliteJournal

    def now(self) -> float: ...


class Host(JournalHost, Protocol):
    """What a backup link or a triad member needs of the server it belongs to."""

    config: Config
    role_events: RoleEvents  # the Redundancy page's timeline: role changes and members lost or regained

    clock: Callable[[], float]  # the wall clock as it reads now (may go backwards; `now()` never does)

    async def execute(self, command: Command) -> Outcome:
        """Commit a command through the server's relationship (counted, like a request's)."""
        ...

    def install_state(self, state: LicenseState) -> None:
        """Replace the server's state (a triad member installing another member's checkpoint)."""
        ...

    async def leave_triad(self, license_owners: dict[str, str] | None = None) -> None:
        """After the triad was dissolved: work alone again."""
        ...


class JournalReplication:
    """Standalone (and each server of a backup pair): apply, then group-commit to the SQLite journal."""

    snapshot_on_close = True

    def __init__(self, host: JournalHost) -> None:
        self.host = host

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def commit(self, command: Command) -> Outcome:
        host = self.host
        now = host.now()
        outcome = host.state.apply(command, now)
        if outcome.changed:
            await host.journal.append(command, now, outcome.usage)
            host.journal.offer_snapshot(host.state)
        else:
            await host.journal.barrier()
        return outcome

    async def barrier(self) -> None:
        await self.host.journal.barrier()

    def may_reclaim(self) -> bool:
        return True


class Standalone(JournalReplication):
    """A server that works alone."""

    ended = False
    kept_name = ""

    def describe(self) -> str:
        return ""

    def status(self) -> RelationshipStatus | None:
        return None

    def client_view(self) -> dict[str, object] | None:
        return None

    def committed(self, command: Command, outcome: Outcome) -> None:
        return None

    def is_ready(self) -> bool:
        return self.host.journal.failure is None

    def is_active(self) -> bool:
        return True
