"""The triad's replicated log on etcd: batches of commands, committed under the active member's claim
and applied by every member in revision order.

One etcd key holds the log: each put of `LOG_KEY` is one batch, and its etcd revision is its place
in the log. The active member commits a batch in a transaction that compares the election key's
revision with the one its claim created, so a deposed member's batch cannot commit (etcd refuses
it, whatever the clocks say), and every command also carries the epoch the core fences on.

Every member watches the key from the revision after the one it has applied and hands each batch
to the same `LicenseState.apply`; the proposer answers its clients once its own batch has been
applied here, so an answer of success means the batch is on disk on a majority (etcd syncs its
write-ahead log before it acknowledges) and in this member's state.

Each member keeps its own checkpoint of the state (`triad_checkpoint`: a file written and synced
beside its database) with the revision it reflects, and tells etcd that revision under `APPLIED_PREFIX`;
the active member compacts the log below what every member has checkpointed, so a member
that restarts replays from its checkpoint. One that fell behind a compaction anyway (it was
away too long) gets a peer's checkpoint over the authenticated peer API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import msgspec

from licentia.cluster.etcd_client import Compare, EtcdClient, EtcdUnavailable, Op, WatchCompacted
from licentia.cluster.triad_seam import CommitFailed
from licentia.core.commands import AnyCommand, Command
from licentia.core.state import Outcome

log = logging.getLogger("licentia.triad")

LOG_KEY = b"licentia/log"
ACTIVE_KEY = b"licentia/active"  # the election key (see `triad_election`); batches are guarded by its revision
APPLIED_PREFIX = b"licentia/applied/"
MAX_BATCH = 256
MAX_IN_FLIGHT = int(os.environ.get("LICENTIA_TRIAD_MAX_IN_FLIGHT", "1"))
# After a batch is applied, the next one waits up to GATHER_MAX_S for the clients just answered to send their
# next command, so that they share one transaction with the commands that waited meanwhile (see `_flush`);
# it stops waiting as soon as no command has come for GATHER_IDLE_S (clients that do not come back at once).
GATHER_MAX_S = float(os.environ.get("LICENTIA_TRIAD_GATHER_MAX_S", "0.008"))
GATHER_IDLE_S = float(os.environ.get("LICENTIA_TRIAD_GATHER_IDLE_S", "0.002"))
# Checkpoints and compaction; the environment can shorten them (the compaction tests do).
CHECKPOINT_EVERY = int(os.environ.get("LICENTIA_TRIAD_CHECKPOINT_EVERY", "5000"))  # batches between checkpoints
CHECKPOINT_AFTER_S = float(os.environ.get("LICENTIA_TRIAD_CHECKPOINT_AFTER_S", "20"))  # ... or this long
COMPACT_MIN_STEP = int(os.environ.get("LICENTIA_TRIAD_COMPACT_MIN_STEP", "1000"))  # revisions per compaction
COMMIT_APPLY_TIMEOUT_S = 5.0
COMMIT_RETRY_S = 3.0  # how long a batch is sent again after etcd failed to answer (an etcd election)
RETRY_PAUSE_S = 0.03
MARKER_PREFIX = b"licentia/batch/"  # one short-lived key per batch: committed at most once
MARKER_LEASE_TTL_S = 30
MARKER_LEASE_EVERY_S = 10.0
# A member this far behind is not waited for: it will need a peer's checkpoint.
COMPACT_LAG_LIMIT = int(os.environ.get("LICENTIA_TRIAD_COMPACT_LAG_LIMIT", "200000"))


class LogBatch(msgspec.Struct, array_like=True):
    """One entry of the log: commands proposed together, stamped with one time by their proposer."""

    at: float
    origin: str  # the proposing member, so that it finds its own batch among those it applies
    seq: int
    commands: list[AnyCommand]


_encode_batch = msgspec.msgpack.Encoder().encode
_decode_batch = msgspec.msgpack.Decoder(LogBatch).decode


class ClaimLost(Exception):
    """The batch was refused by etcd because the claim it was sent under is no longer the election's."""


@dataclass(frozen=True, slots=True)
class AppliedEntry:
    """What the apply callback is told of one command: its revision and position give its usage-row key."""

    revision: int
    position: int


ApplyCommand = Callable[[Command, float, AppliedEntry], Outcome]


class TriadLog:
    """Proposes batches through this member's etcd and applies every committed batch in order."""

    def __init__(
        self,
        me: str,
        applied_revision: int,
        clock: Callable[[], float],
        apply: ApplyCommand,
        checkpoint: Callable[[], Coroutine[Any, Any, None]],
        fetch_peer_checkpoint: Callable[[], Awaitable[int]],
    ) -> None:
        self.me = me
        self.applied_revision = applied_revision
        self.checkpointed_revision = applied_revision
        self.last_applied_at = 0.0  # monotonic time of the last batch applied (the watchdog reads it)
        self.last_applied_wall = 0.0  # the same, as Unix time (shown in /metrics)
        self.compacted_revision = 0
        self.fetching_checkpoint = False  # a peer's checkpoint is on its way (a large one takes seconds)
        self.client: EtcdClient | None = None
        # This process's batches: the member's name and a nonce, since batch numbers restart with the process.
        self.origin = f"{me}:{os.urandom(4).hex()}"
        self._marker_lease_id = 0
        self._marker_lease_at = -MARKER_LEASE_EVERY_S
        self._clock = clock
        self._apply = apply
        self._checkpoint = checkpoint
        self._fetch_peer_checkpoint = fetch_peer_checkpoint
        self._seq = 0
        self._waiting: dict[int, asyncio.Future[list[Outcome | Exception]]] = {}
        self._outbox: list[tuple[Command, int | None, asyncio.Future[Outcome]]] = []
        self._flush_scheduled = False
        self._in_flight = 0
        self._gather_target = 0  # commands the next batch waits for (until _gather_until, monotonic)
        self._gather_until = 0.0
        self._gather_timer: asyncio.TimerHandle | None = None
        self._last_arrival = 0.0  # monotonic: the last command queued, or the start of the gathering
        self._since_checkpoint = 0
        self._applied_event = asyncio.Event()
        self._checkpoint_task: asyncio.Task[None] | None = None

    # -- proposing ------------------------------------------------------------------------------

    def submit(self, command: Command, guard: int | None) -> asyncio.Future[Outcome]:
        """Queue `command`; commands queued in one turn of the loop under the same guard share a batch.

        `guard` is the mod revision of the election key this member's claim created (None for the
        commands that need no claim: forming and dissolving). The future gets the command's outcome
        once its batch is applied here, or ClaimLost / CommitFailed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._outbox.append((command, guard, future))
        self._last_arrival = loop.time()
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        loop = asyncio.get_running_loop()
        wake = min(self._gather_until, self._last_arrival + GATHER_IDLE_S)
        if self._in_flight == 0 and 0 < len(self._outbox) < self._gather_target and loop.time() < wake:
            # The clients the last batch answered are sending their next commands: one transaction for all
            # of them and for those that waited is cheaper for etcd and every member than two.
            if self._gather_timer is not None:
                self._gather_timer.cancel()
            self._gather_timer = loop.call_at(wake, self._gather_over)
            return
        self._gather_target = 0
        if self._gather_timer is not None:
            self._gather_timer.cancel()
            self._gather_timer = None
        while self._outbox and self._in_flight < MAX_IN_FLIGHT:
            guard = self._outbox[0][1]
            batch: list[tuple[Command, asyncio.Future[Outcome]]] = []
            while self._outbox and len(batch) < MAX_BATCH and self._outbox[0][1] == guard:
                command, _, future = self._outbox.pop(0)
                if not future.done():
                    batch.append((command, future))
            if batch:
                self._in_flight += 1
                asyncio.get_running_loop().create_task(self._commit(batch, guard, self._clock()))
        # What is left waits for a commit in flight to finish (see `_commit`), joining a larger batch.

    async def _commit(self, batch: list[tuple[Command, asyncio.Future[Outcome]]], guard: int | None, at: float) -> None:
        self._seq += 1
        seq = self._seq
        loop = asyncio.get_running_loop()
        applied: asyncio.Future[list[Outcome | Exception]] = loop.create_future()
        self._waiting[seq] = applied
        futures = [future for _, future in batch]
        released = False

        def release() -> None:
            """The batch is applied (or failed): the next one may go. One batch at a time makes the most
            of each etcd transaction (etcd's work per transaction, not per command, bounds the triad)."""
            nonlocal released
            if released:
                return
            released = True
            self._in_flight -= 1
            if self._in_flight == 0 and GATHER_MAX_S > 0:
                self._gather_target = min(MAX_BATCH, len(self._outbox) + len(batch))
                self._gather_until = loop.time() + GATHER_MAX_S
                self._last_arrival = loop.time()
            if self._outbox and not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush)

        try:
            commands = cast("list[AnyCommand]", [command for command, _ in batch])
            entry = _encode_batch(LogBatch(at=at, origin=self.origin, seq=seq, commands=commands))
            client = self.client
            if client is None:
                raise CommitFailed("this member's etcd is not running")
            # The batch's marker makes a retry safe: whichever attempt commits first writes it, and every
            # other attempt (a retry, or the first one arriving late) finds it and commits nothing.
            marker = MARKER_PREFIX + f"{self.origin}/{seq}".encode()
            compare = [Compare.create_revision(marker, "==", 0)]
            if guard is not None:
                compare.append(Compare.mod_revision(ACTIVE_KEY, "==", guard))
            deadline = loop.time() + COMMIT_RETRY_S
            while True:
                client = self.client or client  # a retry goes through the route this member uses now
                try:
                    lease = await self._marker_lease(client)
                    result = await client.txn(
                        compare,
                        [Op.put(LOG_KEY, entry, prev_kv=True), Op.put(marker, b"", lease=lease)],
                        [Op.get(marker)],
                    )
                    break
                except EtcdUnavailable:
                    # An etcd election, or an answer lost with its leader: sending it again cannot commit
                    # the batch twice (see the marker), so try until the deadline.
                    if loop.time() + RETRY_PAUSE_S >= deadline:
                        raise
                    await asyncio.sleep(RETRY_PAUSE_S)
            if not result.succeeded and not result.responses[0]:
                raise ClaimLost("another member was elected while the batch was on its way")
            if result.succeeded:
                self._apply_own(result.revision, entry, result.responses[0])
            # Committed (now, or by an earlier attempt whose answer was lost): wait until it is applied here.
            outcomes = await asyncio.wait_for(applied, COMMIT_APPLY_TIMEOUT_S)
            for future, outcome in zip(futures, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        except (ClaimLost, CommitFailed) as exc:
            _fail(futures, exc)
        except EtcdUnavailable as exc:
            _fail(futures, CommitFailed(f"the triad could not commit the change: {exc}"))
        except TimeoutError:
            _fail(futures, CommitFailed("the triad committed the change but this member has not applied it in time"))
        finally:
            self._waiting.pop(seq, None)
            release()

    def _apply_own(self, revision: int, entry: bytes, previous: object) -> None:
        """Apply a batch this member just committed without waiting for the watch to bring it back, when
        every log entry before it is applied here already (the put's previous value says which entry that
        was); the watch then skips it. This saves the proposer a watch round trip per batch."""
        before = previous[0].mod_revision if isinstance(previous, list) and previous else 0
        if before == self.applied_revision and revision > self.applied_revision:
            self._apply_entry(revision, entry)

    def _gather_over(self) -> None:
        self._gather_timer = None
        self._gather_target = 0
        self._flush()

    async def _marker_lease(self, client: EtcdClient) -> int:
        """The lease the batch markers are put under: a new one every MARKER_LEASE_EVERY_S, so markers go
        away by themselves within MARKER_LEASE_TTL_S + MARKER_LEASE_EVERY_S."""
        now = asyncio.get_running_loop().time()
        if now - self._marker_lease_at >= MARKER_LEASE_EVERY_S or not self._marker_lease_id:
            self._marker_lease_id, _ = await client.grant_lease(MARKER_LEASE_TTL_S)
            self._marker_lease_at = now
        return self._marker_lease_id

    # -- applying -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Apply every committed batch, in revision order, from the one after `applied_revision`."""
        while True:
            client = self.client
            if client is None:
                await asyncio.sleep(0.1)
                continue
            try:
                async for _revision, events in client.watch(LOG_KEY, self.applied_revision + 1):
                    for event in events:
                        if event.kind == "put" and event.kv.mod_revision > self.applied_revision:
                            self._apply_entry(event.kv.mod_revision, event.kv.value)
                    if self._since_checkpoint >= CHECKPOINT_EVERY:
                        self._start_checkpoint()
            except WatchCompacted as exc:
                log.warning(
                    "This member has applied the triad's log up to revision %d, but etcd has compacted it up to %d: "
                    "fetching a checkpoint from another member.",
                    self.applied_revision,
                    exc.compact_revision,
                )
                self.fetching_checkpoint = True  # the watchdog does not count this as a stalled apply loop
                try:
                    with contextlib.suppress(CommitFailed):
                        await self._fetch_peer_checkpoint()
                finally:
                    self.fetching_checkpoint = False
                    self.last_applied_at = asyncio.get_running_loop().time()
                await asyncio.sleep(0.5)
            except EtcdUnavailable as exc:
                log.debug("The log watch stopped (%s); watching again.", exc)
                await asyncio.sleep(0.1)

    def _start_checkpoint(self) -> None:
        """Write a checkpoint in the background: applying goes on while a child process writes it. The next is
        asked for CHECKPOINT_EVERY batches later, whether or not this turn wrote one (the member serving the
        clients may have none to take: asking again at every batch sent a request to a stopped member each)."""
        self._since_checkpoint = 0
        if self._checkpoint_task is None or self._checkpoint_task.done():
            self._checkpoint_task = asyncio.get_running_loop().create_task(self._checkpoint_logged(),
                                                                           name="triad-checkpoint")

    async def _checkpoint_logged(self) -> None:
        try:
            await self._checkpoint()
        except Exception:
            log.exception("Writing this member's checkpoint failed; the next one will be tried later.")

    def _apply_entry(self, revision: int, value: bytes) -> None:
        batch = _decode_batch(value)
        results: list[Outcome | Exception] = []
        for position, command in enumerate(batch.commands):
            try:
                results.append(self._apply(command, batch.at, AppliedEntry(revision, position)))
            except Exception as exc:
                log.exception("Applying a committed command failed; the member's state may be wrong.")
                results.append(exc)
        self.applied_revision = revision
        self._since_checkpoint += 1
        self.last_applied_at = asyncio.get_running_loop().time()
        self.last_applied_wall = time.time()
        self._applied_event.set()
        self._applied_event = asyncio.Event()
        if batch.origin == self.origin:
            waiting = self._waiting.get(batch.seq)
            if waiting is not None and not waiting.done():
                waiting.set_result(results)

    def restart_from(self, revision: int) -> None:
        """After a checkpoint was installed from a peer: go on from the revision after it."""
        self.applied_revision = revision
        self.checkpointed_revision = revision
        self._since_checkpoint = 0

    def checkpointed(self, revision: int) -> None:
        self.checkpointed_revision = revision
        self._since_checkpoint = 0

    async def applied_up_to(self, revision: int, timeout: float) -> bool:
        """Wait until this member has applied `revision`; False if it has not within `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.applied_revision < revision:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._applied_event.wait(), remaining)
        return True

    # -- compaction -----------------------------------------------------------------------------

    async def compact(self, members: list[str]) -> None:
        """Compact the log below what every member has checkpointed (a member far behind is not waited
        for: it will fetch a peer's checkpoint)."""
        client = self.client
        if client is None:
            return
        reported = await reported_checkpoints(client)
        if not reported:
            return
        newest = max(reported.values())
        waited_for = [reported.get(m, 0) for m in members if newest - reported.get(m, 0) <= COMPACT_LAG_LIMIT]
        target = min(waited_for) if waited_for else 0
        if target <= self.compacted_revision + COMPACT_MIN_STEP:
            return
        try:
            await client.compact(target)
        except EtcdUnavailable as exc:
            log.debug("Compaction at revision %d failed: %s", target, exc)
            return
        self.compacted_revision = target
        log.info("Compacted the triad's log below revision %d, which every member has checkpointed.", target)


async def reported_checkpoints(client: EtcdClient) -> dict[str, int]:
    """The revision each member told etcd its checkpoint reflects (`APPLIED_PREFIX`), by member name."""
    kvs, _ = await client.get_prefix(APPLIED_PREFIX)
    return {kv.key[len(APPLIED_PREFIX) :].decode(): int(kv.value) for kv in kvs}


def _fail(futures: list[asyncio.Future[Outcome]], exc: Exception) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)
