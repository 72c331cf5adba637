"""A triad member: license state replicated through pysyncobj (Raft), and the loop that decides who is active.

Every member applies the same committed commands to the same deterministic
core. Who may grant is not Raft leadership: it is the replicated, time-limited
active record (`ClaimActive` in the core), claimed by priority (primary, then
secondary, never tertiary). Every command a member proposes carries the epoch
of the record it holds, and the core refuses a stale one, so a deposed or
partitioned member can never grant. A member stops serving a safety margin
before its record expires, so clients on its side of a partition are never told
"ok" while the other side takes over and reclaims their seats.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from pysyncobj import FAIL_REASON, SyncObjConf, SyncObjConsumer, replicated

from licentia.cluster.raft_cipher import RaftCipher
from licentia.cluster.raft_node import TriadRaftNode
from licentia.core.commands import ClaimActive, Command, DissolveTriad, decode_command, encode_command
from licentia.core.model import TriadMember
from licentia.core.state import LicenseState, Outcome, Snapshot
from licentia.store.journal import usage_rows

if TYPE_CHECKING:
    from licentia.server import LicenseServer

log = logging.getLogger("licentia.triad")

COMMIT_TIMEOUT_S = 2.0
NOT_SENT_RETRY_S = 0.02
PRIMARY_PROBE_TIMEOUT_S = 0.2


MAX_BATCH = 256
FAILBACK_HANDOVER_AFTER_TTLS = 5  # an active secondary that cannot reach the primary hands leadership on
BATCH_STRIDE = 4096  # usage-row key of a batched command: entry index * BATCH_STRIDE + its position
BATCH_ORIGIN_SUFFIX = "/b"


async def nothing_listens_at(address: str, timeout: float = PRIMARY_PROBE_TIMEOUT_S) -> bool:
    """The host at `address` ("host:port") refuses a TCP connection: no process listens there.

    The secondary asks this of the primary's Raft port before it waits for a settled Raft leader: a
    killed primary cannot renew, so there is nothing to wait for. Only an explicit refusal counts; a
    hung primary, a lost host or a partition answers nothing (or another error), and then the secondary
    waits as usual. A wrong answer could only cost a failback (the primary may always claim back),
    never a double grant: epochs fence every grant.
    """
    host, _, port = address.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except ConnectionRefusedError:
        return True
    except (TimeoutError, OSError, ValueError):
        return False
    writer.close()
    return False


class NotActive(Exception):
    """This member may not serve license requests now; `active_url` names the one that can, if any."""

    def __init__(self, message: str, active_url: str | None) -> None:
        super().__init__(message)
        self.active_url = active_url


class CommitFailed(Exception):
    """The command could not be committed to the triad's log (no quorum, or leadership changed)."""


class _NotSent(Exception):
    """pysyncobj refused the command before it reached any log (no leader known): safe to send again."""

    def __init__(self, reason: int) -> None:
        super().__init__(reason)
        self.reason = reason


class TriadConfig(msgspec.Struct):
    """What a member keeps in DATA/triad.json: the relationship and its Raft secret."""

    name: str
    me: str
    members: list[TriadMember]
    secret: str
    origin: str
    active_ttl_s: float = 0.8

    @property
    def member(self) -> TriadMember:
        return next(m for m in self.members if m.name == self.me)

    def others(self) -> list[TriadMember]:
        return [m for m in self.members if m.name != self.me]


@dataclass
class RoleView:
    """What this member last saw of the active record, to log changes once."""

    active: str | None = None
    epoch: int = 0
    raft_leader: str | None = None
    last_active: str | None = None  # the last member seen active, across gaps with none active


class Applied:
    """Where a committed command's outcome lands when the loop's thread applies it.

    The Raft thread hands the proposer this slot as the entry's result; the proposer is
    settled through the same queue, after the apply, so by then the slot is filled.
    """

    __slots__ = ("error", "outcome")

    def __init__(self) -> None:
        self.outcome: Outcome | None = None
        self.error: Exception | None = None


class ReplicatedLicenseLog(SyncObjConsumer):
    """The pysyncobj consumer: one replicated method that applies an encoded command to the core."""

    def __init__(self, node: TriadNode) -> None:
        self._node = node
        super().__init__()

    @replicated
    def apply_entry(self, blob: bytes, at: float) -> Applied:
        return self._node.apply_committed(blob, at)

    @replicated
    def apply_entries(self, blobs: list[bytes], at: float) -> list[Applied]:
        """Several commands in one Raft entry (see `TriadNode._flush_outbox`); applied in order."""
        return self._node.apply_committed_batch(blobs, at)

    def _serialize(self) -> dict[str, Any]:
        return {"snapshot": self._node.snapshot_bytes()}

    def _deserialize(self, data: dict[str, Any]) -> None:
        self._node.restore(data["snapshot"])


@dataclass(frozen=True, slots=True)
class LeadershipTransfer:
    """A Raft leadership hand-over the HA loop asked for, waiting for the Raft thread to send it."""

    target: TriadMember
    why: str
    earlier: tuple[float, float]  # the backoff before this request, restored if pysyncobj refuses it


class TriadNode:
    def __init__(self, server: LicenseServer, config: TriadConfig, raft_dir: Path) -> None:
        self.server = server
        self.config = config
        self.raft_dir = raft_dir
        self._loop_thread = 0
        self._queue_lock = threading.Lock()
        self._queue: list[Callable[[], None]] = []
        self._drain_scheduled = False
        self._transfer_to: LeadershipTransfer | None = None
        self._transfer_requested_at = 0.0
        self._transfer_backoff_s = 1.0
        self.log = ReplicatedLicenseLog(self)
        self.syncobj: TriadRaftNode | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._view = RoleView()
        self.failovers = 0
        self._leader_seen: str | None = None
        self._leader_seen_since = 0.0
        # Commands proposed in the same turn of the event loop, sent to Raft as one entry.
        self._outbox: list[tuple[bytes, Callable[[Any, int], None]]] = []
        self._outbox_scheduled = False

    # -- replication (Raft thread) --------------------------------------------------------------

    def apply_committed(self, blob: bytes, at: float) -> Applied:
        """Hand a committed entry to the event loop's thread, without waiting for it.

        State is only ever touched on the loop's thread, so request handlers read it
        without locks. Entries are queued in commit order and applied in batches (one
        wake-up of the loop for many entries), and the Raft thread goes on replicating.
        The proposer finds the outcome in the returned `Applied` once its commit is settled.
        """
        index = self.syncobj.raftLastApplied + 1 if self.syncobj else 0
        return self._hand_over([(decode_command(blob), index)], at, self.config.origin)[0]

    def apply_committed_batch(self, blobs: list[bytes], at: float) -> list[Applied]:
        """A batch entry: its commands in order, each with its own usage-row key (entry index, position)."""
        index = self.syncobj.raftLastApplied + 1 if self.syncobj else 0
        commands = [(decode_command(blob), index * BATCH_STRIDE + position) for position, blob in enumerate(blobs)]
        return self._hand_over(commands, at, self.config.origin + BATCH_ORIGIN_SUFFIX)

    def _hand_over(self, commands: list[tuple[Command, int]], at: float, origin: str) -> list[Applied]:
        applied = [Applied() for _ in commands]
        work = [partial(self._apply_into, slot, command, at, index, origin) for slot, (command, index) in zip(
            applied, commands, strict=True
        )]
        loop = self._loop
        if loop is None or loop.is_closed() or threading.get_ident() == self._loop_thread:
            for apply in work:
                apply()
        else:
            self._on_loop_soon(work)
        return applied

    def _on_loop_soon(self, work: list[Callable[[], None]]) -> None:
        """Queue `work` for the loop's thread, after everything queued before it (any thread)."""
        loop = self._loop
        with self._queue_lock:
            self._queue.extend(work)
            schedule, self._drain_scheduled = not self._drain_scheduled, True
        if not schedule:
            return
        if loop is None:
            self._drain()
            return
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            self._drain()

    def _drain(self) -> None:
        """Run every queued piece of work (committed entries, then their proposers' settlements), in order."""
        with self._queue_lock:
            work, self._queue = self._queue, []
            self._drain_scheduled = False
        for item in work:
            item()

    def _apply_into(self, slot: Applied, command: Command, at: float, index: int, origin: str) -> None:
        try:
            slot.outcome = self._apply(command, at, index, origin)
        except Exception as exc:
            slot.error = exc

    def _on_loop(self, work: Callable[[], Any]) -> Any:
        """Run `work` on the loop's thread after every queued entry, and wait (Raft snapshots only)."""
        loop = self._loop
        if loop is None or loop.is_closed() or threading.get_ident() == self._loop_thread:
            self._drain()
            return work()
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                self._drain()
                done.set_result(work())
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return done.result(timeout=30)

    def _apply(self, command: Command, at: float, index: int, origin: str) -> Outcome:
        outcome = self.server.state.apply(command, at)
        if outcome.usage:
            self.server.journal.record_usage(usage_rows(origin, index, outcome.usage))
        if outcome.ok and isinstance(command, ClaimActive):
            self._observe()
        if outcome.ok and isinstance(command, DissolveTriad) and self._loop is not None:
            # Leave only after a while: a leader that stopped replicating at once could leave a
            # follower that never learns the dissolve was committed, stranded in the triad.
            loop = self._loop
            loop.call_later(self.leave_delay(), lambda: loop.create_task(self.server.leave_triad()))
        return outcome

    def leave_delay(self) -> float:
        """Long enough for every member to learn a commit, even through a new election."""
        return max(1.0, 2 * self.config.active_ttl_s)

    def snapshot_bytes(self) -> bytes:
        return self._on_loop(lambda: self.server.state.snapshot_bytes())

    def restore(self, data: bytes) -> None:
        state = LicenseState.from_snapshot(msgspec.json.decode(data, type=Snapshot))

        def put() -> None:
            self.server.state = state

        self._on_loop(put)
        log.info("Loaded the triad state from a Raft snapshot.")

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.raft_dir.mkdir(parents=True, exist_ok=True)
        ttl = self.config.active_ttl_s
        conf = SyncObjConf(
            password=self.config.secret,
            journalFile=str(self.raft_dir / "raft.journal"),
            fullDumpFile=str(self.raft_dir / "raft.dump"),
            raftMinTimeout=self.election_timeout_min_s(),
            raftMaxTimeout=max(0.4, 0.5 * ttl),
            appendEntriesPeriod=0.04,
            appendEntriesUseBatch=False,
            connectionTimeout=max(0.6, 0.75 * ttl),
            connectionRetryTime=0.2,
            leaderFallbackTimeout=max(0.6, 0.75 * ttl),
            dynamicMembershipChange=False,
            useFork=False,
            logCompactionMinEntries=50_000,
            logCompactionMinTime=600,
            commandsWaitLeader=False,
        )
        me = self.config.member
        others = [m.raft_address for m in self.config.others()]
        self.syncobj = TriadRaftNode(
            me.raft_address,
            others,
            conf=conf,
            consumers=[self.log],
            cipher=RaftCipher(self.config.secret),
            before_append=self._send_leadership_transfer,
        )
        self._task = asyncio.create_task(self._role_loop())
        log.info("Triad %s: started as the %s (%s), Raft on %s.", self.config.name, me.role, me.name, me.raft_address)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.syncobj is not None:
            syncobj, self.syncobj = self.syncobj, None
            await asyncio.get_running_loop().run_in_executor(None, syncobj.destroy_synchronous)

    # -- serving --------------------------------------------------------------------------------

    def margin(self) -> float:
        return 0.35 * self.config.active_ttl_s

    def serving_epoch(self) -> int:
        """The epoch this member serves in, or NotActive naming who serves instead."""
        state = self.server.state
        active = state.active
        now = self.server.now()
        if active is not None and active.member == self.config.me and now < active.until - self.margin():
            if not self._has_quorum():
                # Alone, a command could not commit now, yet it would stay in this member's Raft log
                # and be granted later, after the client was told 503: refuse before proposing.
                raise NotActive(f"this member of triad {self.config.name} reaches no other member", None)
            return active.epoch
        if active is not None and active.member != self.config.me and active.until > now:
            member = state.triad.member(active.member) if state.triad else None
            raise NotActive(
                f"{active.member} is the active server of triad {self.config.name}", member.api_url if member else None
            )
        raise NotActive(f"no member of triad {self.config.name} is active right now", None)

    def _has_quorum(self) -> bool:
        """Whether pysyncobj is connected to a majority (read across threads; retried if it changed meanwhile)."""
        for _ in range(5):
            syncobj = self.syncobj
            if syncobj is None:
                return False
            try:
                return bool(syncobj.hasQuorum)
            except RuntimeError:
                continue
        return True

    def is_serving(self) -> bool:
        try:
            self.serving_epoch()
        except NotActive:
            return False
        return True

    async def submit(self, command: Command, *, fenced: bool = True) -> Outcome:
        if fenced:
            command.epoch = self.serving_epoch()
        outcome = await self.propose(command)
        if fenced and not outcome.ok and outcome.code == "not_active":
            # Fenced off: another member took over while the command was in flight, and it
            # changed nothing. Answer like any member that does not serve: name the one that does.
            self.serving_epoch()
            raise NotActive(outcome.message, None)
        return outcome

    async def propose(self, command: Command, timeout: float = COMMIT_TIMEOUT_S) -> Outcome:
        """Commit `command` through Raft and return its outcome.

        While no leader is known (an election, or a leadership transfer this member asked for)
        pysyncobj refuses the command without sending it anywhere, so it is retried until
        `timeout`: a client of the active member does not see a 503 for a moment's election.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                return await self._propose_once(command, max(0.0, deadline - loop.time()))
            except _NotSent as exc:
                if loop.time() + NOT_SENT_RETRY_S >= deadline:
                    raise CommitFailed(f"the triad could not commit the command (reason {exc.reason})") from None
                await asyncio.sleep(NOT_SENT_RETRY_S)

    async def _propose_once(self, command: Command, timeout: float) -> Outcome:
        syncobj = self.syncobj
        if syncobj is None:
            raise CommitFailed("this member is not replicating")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()

        def settle(result: Any, error: int) -> None:
            if future.done():
                return
            if error == FAIL_REASON.SUCCESS and isinstance(result, Applied):
                if result.error is not None:
                    future.set_exception(result.error)
                else:
                    future.set_result(result.outcome)
            elif error in (FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER):
                future.set_exception(_NotSent(error))
            else:
                future.set_exception(CommitFailed(f"the triad could not commit the command (reason {error})"))

        def expire() -> None:
            if not future.done():
                future.set_exception(CommitFailed("the triad did not commit the command in time (no quorum?)"))

        self._outbox.append((encode_command(command), settle))
        if not self._outbox_scheduled:
            self._outbox_scheduled = True
            loop.call_soon(self._flush_outbox)
        timer = loop.call_later(timeout, expire)
        try:
            return await future
        finally:
            timer.cancel()

    def _flush_outbox(self) -> None:
        """Send the commands proposed in this turn of the loop as one Raft entry (at most MAX_BATCH).

        Each Raft entry costs every member a fixed amount of work (serialize, encrypt, send, journal,
        apply callback); under load many commands share that cost. Each command still carries its own
        epoch and gets its own outcome; a failed entry fails each of its commands, which are retried alone.
        """
        self._outbox_scheduled = False
        batch, self._outbox = self._outbox[:MAX_BATCH], self._outbox[MAX_BATCH:]
        if self._outbox:
            self._outbox_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_outbox)
        if not batch:
            return
        callbacks = [callback for _, callback in batch]

        def settle_all(result: Any, error: int) -> None:
            for position, callback in enumerate(callbacks):
                callback(result[position] if isinstance(result, list) else result, error)

        def committed(result: Any, error: int) -> None:
            """On the Raft thread, just after the entry was applied: settle its proposers after that apply."""
            self._on_loop_soon([partial(settle_all, result, error)])

        self.log.apply_entries([blob for blob, _ in batch], self.server.now(), callback=committed)

    # -- who is active (the HA loop) ------------------------------------------------------------

    def _raft_status(self) -> dict[str, Any]:
        """pysyncobj's status, read from this thread; retried if the Raft thread changed it meanwhile."""
        for _ in range(5):
            if self.syncobj is None:
                return {}
            try:
                return self.syncobj.getStatus()
            except RuntimeError:
                continue
        return {}

    def caught_up(self) -> bool:
        status = self._raft_status()
        # pysyncobj knows the leader before it knows the leader's commit index (e.g. just after a
        # restart, or a new leader that has not committed in its term yet): not caught up then.
        if not status or status.get("leader") is None or status.get("leader_commit_idx") is None:
            return False
        return status["last_applied"] >= status["leader_commit_idx"]

    async def _role_loop(self) -> None:
        me = self.config.member
        tick = min(0.1, self.config.active_ttl_s / 5)
        while True:
            await asyncio.sleep(self._until_next_look(me, tick))
            try:
                await self._run_once(me)
            except (CommitFailed, NotActive) as exc:
                log.debug("Triad %s: %s", self.config.name, exc)
            except Exception:
                log.exception("Triad %s: the role loop hit an unexpected error.", self.config.name)

    def _takeover_barred_until(self, state: LicenseState) -> float:
        """Until when the secondary may not claim: the active record, and the primary's liveness record."""
        primary = state.triad.by_role("primary").name if state.triad else ""
        return max(state.active.until if state.active else 0.0, state.liveness.get(primary, 0.0))

    def _until_next_look(self, me: TriadMember, tick: float) -> float:
        """A tick, or less for the secondary when the primary's records run out sooner: it looks again
        just after they do, so a takeover does not also wait for the rest of a tick."""
        state = self.server.state
        if me.role != "secondary" or state.active is None or state.active.member == me.name:
            return tick
        runs_out = self._takeover_barred_until(state) - self.server.now()
        return min(tick, runs_out + 0.002) if runs_out > 0 else tick

    async def _run_once(self, me: TriadMember) -> None:
        self._observe()
        self._align_raft_leader()
        state = self.server.state
        now = self.server.now()
        active = state.active
        # Renewing the record this member holds needs no catch-up: under load the leader nearly always
        # has a committed entry whose apply waits for this very loop, and skipping renewals for that
        # let the record run into its margin (503s) on a healthy active member.
        renewing = active is not None and active.member == me.name and active.until > now
        leader_settled = self._leader_stable_for(now) >= self.takeover_settle_s()
        if me.role == "tertiary" or not (renewing or self.caught_up()):
            return
        if me.role == "secondary" and state.triad is not None:
            primary = state.triad.by_role("primary")
            if not renewing:
                if self._takeover_barred_until(state) > now:
                    return
                if not leader_settled and not await nothing_listens_at(primary.raft_address):
                    return
        # Not waiting longer than half a record's life: a claim lost in an election is retried at once,
        # so an alive primary renews well within the secondary's takeover_settle_s of a settled leader.
        outcome = await self.propose(
            ClaimActive(member=me.name, ttl_s=self.config.active_ttl_s, reaches=self._reached()),
            timeout=0.5 * self.config.active_ttl_s,
        )
        if not outcome.ok:
            log.debug("Triad %s: claim refused: %s", self.config.name, outcome.message)
        self._observe()

    def takeover_settle_s(self) -> float:
        """How long the secondary waits for a settled Raft leader before taking over.

        Election churn (a member cut off from the leader keeps calling elections) stops all
        commits, so an alive primary's record runs out too; once a leader is settled the
        primary renews within a tick, and this wait lets it do so before the secondary claims.
        """
        return self.config.active_ttl_s

    def _leader_stable_for(self, now: float) -> float:
        """For how long this member has seen the same Raft leader (0 while it sees none)."""
        leader = self._raft_status().get("leader")
        key = str(getattr(leader, "address", leader)) if leader is not None else None
        if key != self._leader_seen:
            self._leader_seen, self._leader_seen_since = key, now
            self._log_raft_leader(key)
        return now - self._leader_seen_since if key is not None else 0.0

    def _log_raft_leader(self, address: str | None) -> None:
        named = next((f"the {m.role} ({m.name})" for m in self.config.members if m.raft_address == address), address)
        if address is None:
            log.info("Triad %s: no Raft leader is known here (an election is under way).", self.config.name)
        else:
            term = self._raft_status().get("raft_term")
            log.info("Triad %s: Raft leader is now %s, term %s.", self.config.name, named, term)

    def _align_raft_leader(self) -> None:
        """Keep Raft leadership on the active member, so its commands need no extra hop; after a failover,
        on a member that reaches the primary, so that a returning primary can catch up and claim back.

        A returning primary that reaches only the tertiary (cut off from the active secondary) catches
        up only from a leader it reaches: the tertiary keeps leadership while it reaches the primary, and
        an active secondary that has not reached the primary for a while hands leadership to the tertiary.

        A leader that reaches every member keeps leadership from an active member that does not (as its
        last claim reported): a member that cannot hear the leader keeps calling elections, and each one
        deposes the leader through the member both reach, so the active record would lapse and flap.
        """
        syncobj = self.syncobj
        active = self.server.state.active
        now = self.server.now()
        if syncobj is None or active is None or active.until <= now or not syncobj._isLeader():
            return
        members = {m.role: m for m in self.config.members}
        primary, me = members["primary"], self.config.member
        target = next((m for m in self.config.members if m.name == active.member), None)
        if active.member != primary.name and me.role != "primary":
            if self._reaches(primary):
                return
            if active.member == me.name:
                if now - active.since < FAILBACK_HANDOVER_AFTER_TTLS * self.config.active_ttl_s:
                    return
                target = members["tertiary"]
        if target is None or target.name == me.name:
            return
        if target.name == active.member and not self._reaches_all(active.member, active.reaches) and self._reaches_all(
            me.name, self._reached()
        ):
            return
        since = now - self._transfer_requested_at
        # Leadership back here soon after it was handed over means the target could not keep it (a
        # member it cannot reach keeps calling elections, or neither of two reaches the primary). Then
        # hand it over less and less often, and only after holding it a while.
        bounced = since < 2 * self._transfer_backoff_s + 5.0
        if bounced and (since < self._transfer_backoff_s or self._leader_stable_for(now) < self.takeover_settle_s()):
            return
        earlier = (self._transfer_requested_at, self._transfer_backoff_s)
        self._transfer_backoff_s = min(30.0, 2 * self._transfer_backoff_s) if bounced else 1.0
        self._transfer_requested_at = now
        why = "the active member" if target.name == active.member else "which reaches the primary"
        self._transfer_to = LeadershipTransfer(target, why, earlier)

    def _transfer_denied(self, earlier: tuple[float, float]) -> None:
        """pysyncobj refused to send the transfer (the target was not fully caught up): nothing was
        handed over, so it is no bounce; the next look asks again, without a longer backoff."""
        self._transfer_requested_at, self._transfer_backoff_s = earlier

    def _reaches(self, member: TriadMember) -> bool:
        """This member has a live Raft connection to `member`."""
        return member.name in self._reached()

    def _reached(self) -> list[str]:
        """The other members this one has a live Raft connection to."""
        status = self._raft_status()
        return [m.name for m in self.config.others() if status.get(f"partner_node_status_server_{m.raft_address}") == 2]

    def _reaches_all(self, member: str, reached: list[str]) -> bool:
        return {m.name for m in self.config.members if m.name != member} <= set(reached)

    def _send_leadership_transfer(self) -> None:
        """Runs on the Raft thread (pysyncobj calls are only made from there), just before the leader
        appends newly queued commands: the one moment a follower can be fully caught up under load."""
        request, self._transfer_to = self._transfer_to, None
        loop = self._loop
        if request is None or self.syncobj is None or loop is None:
            return
        target = request.target
        if self.syncobj.hand_over(target.raft_address, hold_s=self.election_timeout_min_s()):
            log.info("Triad %s: handed Raft leadership to the %s (%s), %s.",
                     self.config.name, target.role, target.name, request.why)
        else:
            loop.call_soon_threadsafe(self._transfer_denied, request.earlier)

    def election_timeout_min_s(self) -> float:
        """Raft's shortest election timeout; also how long a leader that handed leadership over holds
        new commands back, an election round being what the hand-over takes."""
        return max(0.2, 0.25 * self.config.active_ttl_s)

    def _observe(self) -> None:
        """Log every change of the active member as one sentence."""
        state = self.server.state
        active = state.active
        now = self.server.now()
        name = active.member if active is not None and active.until > now else None
        epoch = active.epoch if active is not None else 0
        view = self._view
        if (name, epoch) == (view.active, view.epoch):
            return
        if name is None:
            log.warning(
                "Triad %s: no member is active (the %s's record expired); license requests wait.",
                self.config.name,
                view.active or "previous active",
            )
        elif name == self.config.me:
            log.warning(
                "Triad %s: this server (%s, %s) became active in epoch %d%s.",
                self.config.name,
                name,
                self.config.member.role,
                epoch,
                f", taking over from {view.active}" if view.active and view.active != name else "",
            )
        else:
            log.warning(
                "Triad %s: %s is now active in epoch %d; this server (%s) redirects clients to it.",
                self.config.name,
                name,
                epoch,
                self.config.me,
            )
        # A failover is a change of the active member, even with a gap between the two (the usual case:
        # the old record expires before the secondary may claim).
        if name is not None and view.last_active is not None and name != view.last_active:
            self.failovers += 1
        if name is not None:
            view.last_active = name
        view.active, view.epoch = name, epoch

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        state = self.server.state
        now = self.server.now()
        syncobj = self.syncobj
        raft = self._raft_status()
        leader = raft.get("leader")
        leader_address = str(getattr(leader, "address", leader)) if leader is not None else None
        active = state.active
        members = []
        for member in self.config.members:
            is_me = member.name == self.config.me
            if is_me:
                reachable = syncobj is not None
                match = raft.get("last_applied")
            else:
                reachable = raft.get(f"partner_node_status_server_{member.raft_address}") == 2
                match = raft.get(f"match_idx_server_{member.raft_address}")
            commit = raft.get("commit_idx")
            members.append(
                {
                    "name": member.name,
                    "role": member.role,
                    "api_url": member.api_url,
                    "raft_address": member.raft_address,
                    "active": active is not None and active.member == member.name and active.until > now,
                    "reachable": reachable,
                    "raft_leader": leader_address == member.raft_address,
                    "log_behind": (commit - match)
                    if isinstance(match, int) and isinstance(commit, int) and (is_me or raft.get("state") == 2)
                    else None,
                }
            )
        return {
            "type": "triad",
            "name": self.config.name,
            "me": self.config.me,
            "my_role": self.config.member.role,
            "serving": self.is_serving(),
            "active": active.member if active is not None and active.until > now else None,
            "epoch": active.epoch if active is not None else 0,
            "active_until": active.until if active is not None else None,
            "has_quorum": bool(raft.get("has_quorum")),
            "commit_index": raft.get("commit_idx"),
            "applied_index": raft.get("last_applied"),
            "failovers_seen": self.failovers,
            "members": members,
        }
