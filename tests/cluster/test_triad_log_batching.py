"""How the triad's log groups commands into etcd transactions (one transaction per batch).

A fake etcd client stands in for etcd: each transaction commits at the next revision after a short
delay, as etcd would, and the proposer applies its own batch at once (the put's previous value says
it is next), so no watch is needed here.
"""

from __future__ import annotations

import asyncio

from licentia.cluster.etcd_client import KeyValue, TxnResult
from licentia.cluster.triad_log import LOG_KEY, AppliedEntry, TriadLog
from licentia.core.commands import Command, ElectedActive
from licentia.core.outcomes import Applied, Reclaimed
from licentia.core.state import Outcome

TXN_S = 0.02


class FakeEtcd:
    """Commits every transaction, TXN_S after it was sent, at the next revision."""

    def __init__(self) -> None:
        self.revision = 1
        self.log_revision = 0
        self.sent = 0

    async def grant_lease(self, ttl_s: int) -> tuple[int, int]:
        return 7, ttl_s

    async def txn(self, compare: object, success: list, failure: object = ()) -> TxnResult:
        self.sent += 1
        await asyncio.sleep(TXN_S)
        self.revision += 1
        previous = [KeyValue(LOG_KEY, b"", 1, self.log_revision, 1, 0)] if self.log_revision else []
        self.log_revision = self.revision
        return TxnResult(succeeded=True, revision=self.revision, responses=[previous, None])


def make_log(etcd: FakeEtcd, applied: list[int]) -> TriadLog:
    def apply(command: Command, at: float, entry: AppliedEntry) -> Outcome:
        applied.append(entry.revision)
        return Applied(Reclaimed([]))

    async def nothing() -> None:
        return None

    async def no_checkpoint() -> int:
        raise AssertionError("not expected")

    log = TriadLog("primary", 0, lambda: 1000.0, apply, nothing, no_checkpoint)
    log.client = etcd  # type: ignore[assignment]
    return log


def test_clients_answered_by_a_batch_share_the_next_transaction_with_those_that_waited() -> None:
    async def scenario() -> list[int]:
        etcd = FakeEtcd()
        applied: list[int] = []
        log = make_log(etcd, applied)

        async def client(n: int, first_delay: float) -> None:
            # A closed-loop client: send, wait for the answer, think ~1 ms (the HTTP round trip), send again.
            await asyncio.sleep(first_delay)
            for _ in range(3):
                outcome = await log.submit(ElectedActive(member=f"m{n}"), None)
                assert outcome.ok
                await asyncio.sleep(0.001)

        # Four clients start together, four more while their batch is in flight.
        await asyncio.gather(*(client(n, 0.0) for n in range(4)), *(client(n, TXN_S / 2) for n in range(4, 8)))
        return _sizes(applied)

    sizes = asyncio.run(scenario())
    assert sum(sizes) == 24
    # Without gathering the clients stay in two groups of four that alternate (six transactions of four);
    # with it, the first group's next commands join the second group's after its first batch.
    assert len(sizes) <= 4, sizes
    assert max(sizes) == 8, sizes


def test_a_lone_client_is_not_kept_waiting() -> None:
    async def scenario() -> list[int]:
        etcd = FakeEtcd()
        log = make_log(etcd, [])
        sent_at_once = []
        for n in range(5):
            answer = log.submit(ElectedActive(member="m"), None)
            for _ in range(3):  # the flush, the commit task, its transaction: no timer in between
                await asyncio.sleep(0)
            sent_at_once.append(etcd.sent - n)
            assert (await answer).ok
        return sent_at_once

    assert asyncio.run(scenario()) == [1, 1, 1, 1, 1]  # each command's transaction went out at once


def _sizes(applied_revisions: list[int]) -> list[int]:
    sizes: dict[int, int] = {}
    for revision in applied_revisions:
        sizes[revision] = sizes.get(revision, 0) + 1
    return [sizes[r] for r in sorted(sizes)]


def test_a_checkpoint_turn_that_wrote_nothing_is_asked_for_again_only_checkpoint_every_batches_later() -> None:
    """The member serving the clients may have no checkpoint to take at its turn (the member that reported the
    newest is stopped): the log then asked for a turn again at every batch, each sending that member a request."""
    from licentia.cluster.triad_log import CHECKPOINT_EVERY

    turns: list[int] = []

    async def scenario() -> int:
        async def checkpoint_turn() -> None:
            turns.append(log._since_checkpoint)  # writes nothing: the log's checkpointed revision stays

        async def no_fetch() -> int:
            raise AssertionError("not expected")

        log = TriadLog("primary", 0, lambda: 1000.0, lambda *_: Applied(Reclaimed([])), checkpoint_turn, no_fetch)
        log._since_checkpoint = CHECKPOINT_EVERY
        for _ in range(5):  # five more batches applied, each checking whether a checkpoint is due
            if log._since_checkpoint >= CHECKPOINT_EVERY:
                log._start_checkpoint()
            await asyncio.sleep(0)
            log._since_checkpoint += 1
        return log._since_checkpoint

    assert asyncio.run(scenario()) == 5
    assert len(turns) == 1
