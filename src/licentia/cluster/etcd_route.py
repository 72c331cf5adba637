"""Which etcd member a triad member talks to: its own, or another one while its own cannot reach etcd's leader.

A triad member talks to its own etcd member. A network fault can leave that etcd member unable
to hear etcd's leader, or to be heard by it (a one-way drop, or the link between the two cut),
while etcd keeps its quorum: the two other members still hear each other, and pre-vote keeps
the leader in place. The member's own etcd then answers nothing that needs the leader, and the
member would lose its lease although it still reaches a majority of the triad through another
member's etcd (random fault seed 3004: no member served for 4.6 s).

So when a request through the route fails (a lease keep-alive that was not answered) or the own
etcd member reports no leader, the route reads through its own etcd and through each other
member's at once (a linearizable read: answered only through a working leader), and while its own
cannot answer it talks to the first other member's etcd that did. Once a read through its own
etcd answers again, it goes back. Each switch is logged as a sentence and counted in /metrics
(`licentia_triad_etcd_route_switches_total`, by where requests go since). Nothing about safety
changes: every batch is still a transaction compared against the election key's revision, whichever
etcd member forwards it to the leader, and leases are measured by the leader as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from licentia.cluster.etcd_client import EtcdClient, EtcdUnavailable

log = logging.getLogger("licentia.triad")

PROBE_KEY = b"licentia/route"
PROBE_TIMEOUT_S = 0.3
CHECK_EVERY_S = 0.1  # how often the own etcd member is asked whether it has a leader (a local answer)
REPICK_EVERY_S = 0.3  # at most this often a new route is looked for
BACK_EVERY_S = 1.0  # while away, how often the own etcd member is tried again


class EtcdRoute:
    """The etcd client this member's requests go through now; `check` and `failed` move it."""

    def __init__(self, triad_name: str, own: EtcdClient, others: dict[str, EtcdClient],
                 on_change: Callable[[], None]) -> None:
        self.triad_name = triad_name
        self.own = own
        self.others = others
        self.current = own
        self.via: str | None = None  # the other member whose etcd is used, None while it is the own one
        self.changes = 0
        self.switches = {"another_member": 0, "own": 0}  # switches by where requests go since (for /metrics)
        self._on_change = on_change
        self._leaderless_checks = 0
        self._picked_at = -REPICK_EVERY_S
        self._back_tried_at = 0.0
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        for client in self.others.values():
            await client.close()

    async def _answers(self, client: EtcdClient) -> bool:
        try:
            await client.get(PROBE_KEY, timeout=PROBE_TIMEOUT_S)
        except EtcdUnavailable:
            return False
        return True

    async def failed(self) -> None:
        """A request through the current route was not answered: look for one that works, if it is time to."""
        loop = asyncio.get_running_loop()
        if self._lock.locked() or loop.time() - self._picked_at < REPICK_EVERY_S:
            return
        async with self._lock:
            self._picked_at = loop.time()
            names = list(self.others)
            answers = await asyncio.gather(self._answers(self.own),
                                           *(self._answers(self.others[name]) for name in names))
            if answers[0]:
                self._use(None)
                return
            working = [name for name, ok in zip(names, answers[1:], strict=True) if ok]
            if working and self.via not in working:
                self._use(working[0])

    async def check(self) -> None:
        """Called every CHECK_EVERY_S: away from its own etcd, try it again now and then; on it, look for
        another route once it has reported no leader twice in a row."""
        loop = asyncio.get_running_loop()
        if self.via is not None:
            if loop.time() - self._back_tried_at >= BACK_EVERY_S and not self._lock.locked():
                self._back_tried_at = loop.time()
                if await self._answers(self.own):
                    async with self._lock:
                        self._use(None)
            return
        try:
            leaderless = (await self.own.status(timeout=PROBE_TIMEOUT_S)).leader_id == 0
        except EtcdUnavailable:
            leaderless = True
        self._leaderless_checks = self._leaderless_checks + 1 if leaderless else 0
        if self._leaderless_checks >= 2:
            await self.failed()

    def _use(self, via: str | None) -> None:
        if via == self.via:
            return
        previous, self.via = self.via, via
        self.current = self.own if via is None else self.others[via]
        self.changes += 1
        self.switches["own" if via is None else "another_member"] += 1
        self._leaderless_checks = 0
        self._back_tried_at = asyncio.get_running_loop().time()
        if via is None:
            log.warning("Triad %s: this member's etcd member reaches etcd's leader again; it talks to etcd through "
                        "it again instead of through %s's.", self.triad_name, previous)
        else:
            log.warning("Triad %s: this member's etcd member cannot reach etcd's leader, but %s's can; this member "
                        "talks to etcd through %s's etcd member until its own reaches the leader again.",
                        self.triad_name, via, via)
        self._on_change()
