"""The seam between the server and how a command is made durable.

A standalone server and both servers of a backup pair make a command durable in their own SQLite
journal (`JournalReplication`); a triad member commits it through the triad's etcd log
(`cluster.triad.TriadNode`). The server drives either the same way: `commit` a command and answer
its outcome, `barrier` before a read that must reflect everything answered, `may_reclaim` before it
reclaims expired leases, `start` and `stop`.
"""

from __future__ import annotations

from typing import Protocol

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


class JournalHost(Protocol):
    """What the journal replication needs of the server."""

    state: LicenseState
    journal: SqliteJournal

    def now(self) -> float: ...


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
