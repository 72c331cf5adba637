"""Lease renewals coalesced: heartbeats arriving while one renewal is being made durable go in the next one.

In a triad this keeps heartbeats from each becoming a Raft write; standalone it
saves journal rows. The first heartbeat after a quiet spell is not delayed.

A lease id this server does not hold is never renewed (ids are minted here, at
random, and never reused), so a request's unknown ids stay out of the command
but the first, which the core records as the request's one lost-lease usage row:
a heartbeat naming a thousand made-up ids journals one of them, not a thousand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Container

from licentia.core.commands import Heartbeat, Renewal
from licentia.core.outcomes import Applied, Outcome, Renewals

MAX_BATCH = 5000


class HeartbeatCoalescer:
    def __init__(
        self, execute: Callable[[Heartbeat], Awaitable[Outcome[Renewals]]], held: Callable[[], Container[str]]
    ) -> None:
        """`held` gives the ids of the leases this server holds now (its state's leases)."""
        self._execute = execute
        self._held = held
        self._pending: list[tuple[Renewal, asyncio.Future[Outcome[Renewals]]]] = []
        self._running = False

    async def renew(self, lease_ids: list[str], source_ip: str, source_host: str) -> Outcome[Renewals]:
        """Renew one request's leases; the access rules judge them by where the request came from."""
        future: asyncio.Future[Outcome[Renewals]] = asyncio.get_running_loop().create_future()
        self._pending.append((Renewal(list(dict.fromkeys(lease_ids)), source_ip, source_host), future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch: list[tuple[Renewal, asyncio.Future[Outcome[Renewals]]]] = []
                count = 0
                while self._pending and count < MAX_BATCH:
                    item = self._pending.pop(0)
                    batch.append(item)
                    count += len(item[0].lease_ids)
                renewals = [self._without_unknown(renewal) for renewal, _ in batch]
                try:
                    outcome = await self._execute(Heartbeat(renewals=renewals))
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for renewal, future in batch:
                    ids = renewal.lease_ids
                    if future.done():
                        continue
                    if not outcome.ok:
                        future.set_result(outcome)
                        continue
                    renewed, denied = outcome.result.renewed, outcome.result.denied
                    future.set_result(
                        Applied(
                            Renewals(
                                renewed={i: renewed[i] for i in ids if i in renewed},
                                expired=[i for i in ids if i not in renewed and i not in denied],
                                denied={i: denied[i] for i in ids if i in denied},
                            )
                        )
                    )
        finally:
            self._running = False

    def _without_unknown(self, renewal: Renewal) -> Renewal:
        leases = self._held()
        held = [lease_id for lease_id in renewal.lease_ids if lease_id in leases]
        if len(held) == len(renewal.lease_ids):
            return renewal
        unknown = next(lease_id for lease_id in renewal.lease_ids if lease_id not in leases)
        return Renewal([unknown, *held], renewal.source_ip, renewal.source_host)
