"""A triad member: license state replicated through etcd, and the loop that decides who is active.

Each member runs its own etcd member (a supervised child process, `etcd_member`), over TLS with
certificates from the triad's CA (`triad_tls`). Every member applies the same committed batches to
the same deterministic core (`triad_log`). Who may grant is decided by an election on etcd with
etcd leases (`triad_election`): the primary, then the secondary, never the tertiary. Every command
the active member commits carries its epoch and is committed only while its claim is the
election's, so a deposed or partitioned member can never grant, whatever the members' clocks say.

A watchdog looks at etcd and at the apply loop twice a second: when either stops making
progress the member stops serving, says so in `/health/ready` and `/health/active`, restarts
what died, logs it as a sentence and counts it in `/metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time

import msgspec

from licentia.cluster.etcd_client import EtcdClient, EtcdUnavailable
from licentia.cluster.etcd_member import EtcdMember, EtcdPeer, EtcdTiming
from licentia.cluster.etcd_route import CHECK_EVERY_S, EtcdRoute
from licentia.cluster.relationship import Host
from licentia.cluster.relationship_status import TriadStatus
from licentia.cluster.triad_checkpoint import CheckpointPeers, TriadCheckpoints
from licentia.cluster.triad_election import KEEPALIVE_EVERY_S, TriadElection, probe
from licentia.cluster.triad_log import CHECKPOINT_AFTER_S, AppliedEntry, ClaimLost, CommitFailed, TriadLog
from licentia.cluster.triad_status import Watchdog, triad_status
from licentia.cluster.triad_tls import MemberTLS, ensure_member_tls
from licentia.core.commands import Checkout, Command, DissolveTriad, ElectedActive, Heartbeat, ReclaimExpired
from licentia.core.model import License, TriadMember
from licentia.core.state import Outcome
from licentia.store import data_directory
from licentia.store.journal import usage_rows

__all__ = ["CommitFailed", "NotActive", "TriadConfig", "TriadNode"]

log = logging.getLogger("licentia.triad")

LOOK_EVERY_S = 0.1
SERVING_WAIT_S = 1.5
LEADER_MOVE_EVERY_S = 5.0
REACH_TIMEOUT_S = 0.3
CLOCK_JUMP_S = 3.0  # the clock watch ticks every 0.1 s; a tick this late means a stop or a clock jump
WATCHDOG_EVERY_S = 0.5
ETCD_SILENT_AFTER_S = 3.0  # etcd not answering this long: not ready, not serving
ETCD_HUNG_AFTER_S = 8.0  # ... and this long while its process runs: kill it (the supervisor restarts it)
APPLY_STALLED_AFTER_S = 3.0
BATCH_STRIDE = 4096  # usage-row key of a command: revision * BATCH_STRIDE + its position in the batch
PROGRESS_PREFIX = b"licentia/progress/"
CHECKPOINT_FILE = data_directory.TRIAD_CHECKPOINT.name
ETCD_DIR = data_directory.ETCD.name
ETCD_TLS_DIR = data_directory.ETCD_TLS.name
ETCD_TIMING = EtcdTiming(heartbeat_ms=30, election_ms=300)


def _behind(report: bytes) -> int | None:
    """A member's progress report ("applied behind"): how many revisions it was behind."""
    parts = report.split()
    return int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None


class NotActive(Exception):
    """This member may not serve license requests now; `active_url` names the one that can, if any."""

    def __init__(self, message: str, active_url: str | None) -> None:
        super().__init__(message)
        self.active_url = active_url


class TriadConfig(msgspec.Struct):
    """What a member keeps in DATA/triad.json: the relationship and its secret (from which the triad's
    CA is derived, see `triad_tls`)."""

    name: str
    me: str
    members: list[TriadMember]
    secret: str
    origin: str
    active_ttl_s: float = 0.8
    own_name: str = ""  # this member's server name when it joined: the triad's settings carry the seed's
    set_aside: list[License] = []  # this member's licenses that could not join the pool; back when it leaves


    @property
    def member(self) -> TriadMember:
        return next(m for m in self.members if m.name == self.me)

    def others(self) -> list[TriadMember]:
        return [m for m in self.members if m.name != self.me]


def etcd_peer(member: TriadMember) -> EtcdPeer:
    """A member's etcd: peer traffic on its replication address, client traffic on the next port."""
    host, _, port = member.raft_address.rpartition(":")
    return EtcdPeer(name=member.name, host=host, peer_port=int(port), client_port=int(port) + 1)


class TriadNode:
    """A server's relationship as a member of a triad (`cluster.relationship.Relationship`)."""

    def __init__(self, server: Host, config: TriadConfig, applied_revision: int) -> None:
        self.server = server
        self.config = config
        data = server.config.data_dir
        self.checkpoint_file = data / CHECKPOINT_FILE
        self.earlier_checkpoint_file = data / data_directory.TRIAD_CHECKPOINT_JSON.name
        self.etcd_dir = data / ETCD_DIR
        self.tls_dir = data / ETCD_TLS_DIR
        self.election = TriadElection(config.member, config.members, config.name)
        self.log = TriadLog(config.me, applied_revision, self._command_time, self._apply,
                            lambda: self.checkpoints.write(), lambda: self.checkpoints.fetch_from_peer())
        peers = CheckpointPeers(config.name, config.me, config.secret, config.others())
        self.checkpoints = TriadCheckpoints(self.checkpoint_file, server, self.log, peers)
        self.etcd: EtcdMember | None = None
        self.client: EtcdClient | None = None  # the route's current client (see `etcd_route`)
        self.route: EtcdRoute | None = None
        self.watchdog = Watchdog()
        self.failovers = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._last_active: str | None = None
        self._observed: tuple[str | None, int] = (None, 0)
        self._active_seen_at: float | None = None  # Unix time the active member was last seen active and reachable
        self._serving_claim: int | None = None  # the claim this member serves under now
        self._frame_claim: int | None = None  # the claim its command times were set up for
        self._clock_base = 0.0  # command time when it started serving, advanced by the monotonic clock
        self._clock_mono = 0.0
        self._honour_from = 0.0  # command time from which leases are honoured for one more TTL (takeover, jump)
        self._tick_command_time = 0.0  # the command time at the clock watch's last tick
        self._clock_tick_mono = 0.0
        self._stopping = False
        self.dissolved = False  # the dissolve is committed; this member leaves after leave_delay()
        self._leader_moved_at = 0.0
        self._tls: MemberTLS | None = None  # this member's certificates, loaded at start

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        me = self.config.member
        tls = await asyncio.to_thread(
            ensure_member_tls, self.tls_dir, self.config.secret, self.config.name, me.name, etcd_peer(me).host
        )
        peers = [etcd_peer(m) for m in self.config.members]
        self.etcd = EtcdMember(self.etcd_dir, etcd_peer(me), peers, self.config.origin, self.tls_dir, ETCD_TIMING)
        await self.etcd.start()
        self._tls = tls
        own = EtcdClient(etcd_peer(me).client_endpoint, tls, timeout=1.5)
        others = {m.name: EtcdClient(etcd_peer(m).client_endpoint, tls, timeout=1.5) for m in self.config.others()}
        self.route = EtcdRoute(self.config.name, own, others, self._route_changed)
        self.client = own
        self.log.client = self.client
        self.watchdog.etcd_ok_at = asyncio.get_running_loop().time()
        self._clock_tick_mono = self.watchdog.etcd_ok_at
        self.election.started()
        for name, loop in (
            ("apply", self.log.run),
            ("lease", self._lease_loop),
            ("election", self._election_loop),
            ("watchdog", self._watchdog_loop),
            ("checkpoint", self._checkpoint_loop),
            ("clock", self._clock_loop),
            ("route", self._route_loop),
        ):
            self._tasks[name] = asyncio.create_task(loop(), name=f"triad-{name}")
        log.info(
            "Triad %s: started as the %s (%s); etcd peer %s, client %s.",
            self.config.name,
            me.role,
            me.name,
            etcd_peer(me).peer_url,
            etcd_peer(me).client_url,
        )

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.log.applied_revision > self.log.checkpointed_revision:
            with contextlib.suppress(Exception):
                await self.checkpoints.write(report=False)
        if self.route is not None:
            with contextlib.suppress(Exception):
                await self.route.close()
            with contextlib.suppress(Exception):
                await self.route.own.close()
            self.route = None
            self.client = None
            self.log.client = None
        if self.etcd is not None:
            await self.etcd.stop()
            self.etcd = None

    def remove_files(self) -> None:
        """After the triad was dissolved: this member's etcd data, certificates and checkpoint."""
        shutil.rmtree(self.etcd_dir, ignore_errors=True)
        shutil.rmtree(self.tls_dir, ignore_errors=True)
        self.checkpoint_file.unlink(missing_ok=True)
        self.earlier_checkpoint_file.unlink(missing_ok=True)

    def leave_delay(self) -> float:
        """Long enough for every member to learn a commit, even through an etcd election."""
        return 1.5

    # -- the clock commands are stamped with ------------------------------------------------------

    def _command_time(self) -> float:
        """While serving: the time it started serving, advanced by this member's monotonic clock, so a
        wall clock stepped while it serves moves no lease; otherwise the wall clock, never behind the state.

        A monotonic clock that jumped (forwards by more than CLOCK_JUMP_S since the last tick of the
        clock watch, which ticks every LOOK_EVERY_S, or backwards) moves no command time either."""
        now = asyncio.get_running_loop().time()
        self._watch_clock(now)
        if self._in_frame():
            return self._clock_base + (now - self._clock_mono)
        # The wall clock as it reads now, not the server's never-backwards `now()`: a clock that ran ahead
        # and was put back (seed 3008: +120 s for 6 s) must not stamp this member's next claim, and with it
        # every lease it grants, two minutes ahead. The state's time floor keeps the log's times in order.
        return max(self.server.clock(), self.server.state.time_floor)

    def _in_frame(self) -> bool:
        """Whether this member still holds the claim its command times were set up for."""
        return self._frame_claim is not None and self._frame_claim == self.election.claim_revision

    def _watch_clock(self, now: float) -> None:
        gap = now - self._clock_tick_mono
        if gap > CLOCK_JUMP_S or gap < -0.05:
            self._clock_jumped(gap, now)
        self._clock_tick_mono = now
        if self._in_frame():
            self._tick_command_time = self._clock_base + (now - self._clock_mono)

    async def _clock_loop(self) -> None:
        """Ticks the clock watch (no I/O, so a slow etcd never makes a tick late)."""
        while True:
            self._watch_clock(asyncio.get_running_loop().time())
            await asyncio.sleep(LOOK_EVERY_S)

    # -- serving --------------------------------------------------------------------------------

    def serving_epoch(self) -> int:
        """The epoch this member serves in, or NotActive naming who serves instead."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        election = self.election
        active = self.server.state.active
        claim = election.claim_revision
        if (
            claim is not None
            and election.holds_claim(now)
            and self.watchdog.etcd_healthy
            and self.watchdog.apply_healthy
            and self.log.applied_revision >= claim
            and active is not None
            and active.member == self.config.me
        ):
            if self._serving_claim != claim:
                self._start_serving(claim, now)
            return active.epoch
        self._serving_claim = None
        view = election.fresh_view(now)
        holder = view.holder if view is not None else None
        if holder is not None and holder != self.config.me:
            member = next((m for m in self.config.members if m.name == holder), None)
            raise NotActive(
                f"{holder} is the active server of triad {self.config.name}", member.api_url if member else None
            )
        if not election.lease_valid(now):
            raise NotActive(f"this member of triad {self.config.name} reaches no majority of the triad", None)
        raise NotActive(f"no member of triad {self.config.name} is active right now", None)

    async def _serving_epoch_soon(self) -> int:
        """The serving epoch; while this member still holds its claim but cannot confirm its lease (an
        etcd election under way), wait a little for the confirmation rather than turn the client away."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SERVING_WAIT_S
        while True:
            try:
                return self.serving_epoch()
            except NotActive:
                if self.election.claim_revision is None or loop.time() >= deadline:
                    raise
            await asyncio.sleep(0.02)

    def _clock_jumped(self, gap: float, now: float) -> None:
        """This loop slept far longer than it asked. A real stop that long would have cost this member its
        etcd lease (and its claim); if it still holds them, its monotonic clock jumped. Commands then go on
        from the time they had, not from the jump, and leases are honoured for a lease TTL as after a
        takeover, so no lease expires because of the jump."""
        if not self._in_frame():
            return
        log.warning(
            "Triad %s: this member's monotonic clock jumped by %+.1f s while it served; its command times go on "
            "from where they were, and every lease is honoured for one more of its TTL.",
            self.config.name,
            gap,
        )
        self._clock_base = self._tick_command_time
        self._clock_mono = now
        self._honour_from = self._clock_base

    def _start_serving(self, claim: int, now: float) -> None:
        self._serving_claim = claim
        if claim == self._frame_claim:
            return  # serving again under the same claim (its lease was unconfirmed for a moment): same times
        self._frame_claim = claim
        self._clock_base = max(self.server.clock(), self.server.state.time_floor)  # see _command_time
        self._clock_mono = now
        self._tick_command_time = self._clock_base
        self._honour_from = self._clock_base
        log.info(
            "Triad %s: serving from revision %d; a lease that ran out during the change is honoured for one "
            "more of its TTL.",
            self.config.name,
            claim,
        )

    def is_serving(self) -> bool:
        try:
            self.serving_epoch()
        except NotActive:
            return False
        return True

    def may_reclaim(self) -> bool:
        """Leases are reclaimed only by the serving member (which honours each for one more of its TTL
        after it took over: see `ReclaimExpired.honour_from`)."""
        return self.is_serving()

    def is_ready(self) -> bool:
        view = self.election.view
        now = asyncio.get_running_loop().time()
        return (
            self.watchdog.etcd_healthy
            and self.watchdog.apply_healthy
            and self.election.lease_valid(now)
            and view is not None
            and self.log.applied_revision >= view.log_revision
        )

    async def submit(self, command: Command, *, fenced: bool = True) -> Outcome:
        guard = None
        if fenced:
            epoch = await self._serving_epoch_soon()
            guard = self.election.claim_revision
            if isinstance(command, Heartbeat | ReclaimExpired | Checkout):
                command = msgspec.structs.replace(command, epoch=epoch, honour_from=self._honour_from)
            else:
                command = msgspec.structs.replace(command, epoch=epoch)
        try:
            outcome = await self.log.submit(command, guard)
        except ClaimLost:
            self._serving_claim = None
            self.serving_epoch()
            raise NotActive(f"this member of triad {self.config.name} is no longer active", None) from None
        except CommitFailed:
            # etcd did not confirm in time: serve nothing more until a keep-alive is acknowledged again,
            # so that no further request joins a batch that may be stuck without a majority.
            self.election.lease_valid_until = 0.0
            raise
        if fenced and not outcome.ok and outcome.code == "not_active":
            self.serving_epoch()
            raise NotActive(outcome.message, None)
        return outcome

    # -- the server's seam (cluster.relationship.Replication) -------------------------------------

    snapshot_on_close = False  # the state is in this member's checkpoint, not in the server's journal

    async def commit(self, command: Command) -> Outcome:
        return await self.submit(command)

    async def barrier(self) -> None:
        """Applied state is committed state: there is nothing to wait for."""
        return None

    @property
    def ended(self) -> bool:
        return self.dissolved

    @property
    def kept_name(self) -> str:
        return self.config.own_name

    def describe(self) -> str:
        return f"triad {self.config.name!r}"

    def committed(self, command: Command, outcome: Outcome) -> None:
        return None

    def is_active(self) -> bool:
        return self.is_serving()

    def client_view(self) -> dict[str, object] | None:
        """What clients cache: the members, and which one serves."""
        status = self.status()
        return {
            "type": "triad",
            "name": status.name,
            "me": status.me,
            "active": status.active,
            "serving": status.serving,
            "members": [
                {"name": m.name, "role": m.role, "api_url": m.api_url, "tls_fingerprint": m.tls_fingerprint or None}
                for m in self.config.members
            ],
        }

    async def propose(self, command: Command) -> Outcome:
        """Commit a command that needs no claim (dissolving the triad) and return its outcome."""
        return await self.submit(command, fenced=False)

    # -- applying committed batches -------------------------------------------------------------

    def _apply(self, command: Command, at: float, entry: AppliedEntry) -> Outcome:
        server = self.server
        outcome = server.state.apply(command, at)
        if outcome.usage:
            key = entry.revision * BATCH_STRIDE + entry.position
            server.journal.record_usage(usage_rows(self.config.origin, key, outcome.usage))
        if outcome.ok and isinstance(command, ElectedActive):
            self._observe()
        if outcome.ok and isinstance(command, DissolveTriad) and not self._stopping:
            self.dissolved = True
            # Leave only after a while, so every member learns of the commit before this etcd stops.
            loop = asyncio.get_running_loop()
            owners = dict(outcome.data.get("license_owners", {}))
            loop.call_later(self.leave_delay(), lambda: loop.create_task(server.leave_triad(owners)))
        return outcome

    # -- loops ----------------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        while True:
            client = self.client
            if client is not None:
                try:
                    await self.election.keep_lease(client)
                except EtcdUnavailable as exc:
                    log.debug("Triad %s: keep-alive failed: %s", self.config.name, exc)
                    if self.route is not None:
                        await self.route.failed()
                    if self.client is not client:
                        continue  # another route: renew through it at once
                except Exception:
                    # The loop must outlive anything: a member whose lease loop died would go on claiming
                    # under a lease that etcd has long let expire.
                    log.exception("Triad %s: renewing this member's etcd lease hit an unexpected error.",
                                  self.config.name)
            await asyncio.sleep(KEEPALIVE_EVERY_S)

    async def _route_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            if self.route is not None:
                try:
                    await self.route.check()
                except Exception:
                    log.exception("Triad %s: checking the route to etcd hit an unexpected error.", self.config.name)

    def _route_changed(self) -> None:
        """Requests go through another etcd member now: so does the log's watch (restarted on it)."""
        if self.route is None:
            return
        self.client = self.route.current
        self.log.client = self.client
        task = self._tasks.get("apply")
        if task is not None and not self._stopping:
            task.cancel()
            self._tasks["apply"] = asyncio.create_task(self.log.run(), name="triad-apply")

    async def _election_loop(self) -> None:
        while True:
            client = self.client
            try:
                if client is not None:
                    view = await self.election.look(client)
                    await self.election.decide(client, view, self.log.applied_revision, self._command_time())
                    self._observe()
            except EtcdUnavailable as exc:
                log.debug("Triad %s: %s", self.config.name, exc)
            except Exception:
                log.exception("Triad %s: the election loop hit an unexpected error.", self.config.name)
            await asyncio.sleep(LOOK_EVERY_S)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_AFTER_S)
            try:
                if self.log.applied_revision > self.log.checkpointed_revision:
                    await self.checkpoints.write()
                if self.is_serving():
                    await self.log.compact([m.name for m in self.config.members])
            except EtcdUnavailable:
                continue
            except Exception:
                log.exception("Triad %s: writing the checkpoint failed.", self.config.name)

    async def _watchdog_loop(self) -> None:
        loop = asyncio.get_running_loop()
        dog = self.watchdog
        last_progress_put: tuple[int, int] | None = None
        while True:
            await asyncio.sleep(WATCHDOG_EVERY_S)
            now = loop.time()
            client = self.client
            if client is None or self.route is None:
                continue
            own = self.route.own  # the health of this member's own etcd; the rest through the route
            others = self.config.others()
            # Whether a TCP connection to each peer's API opens: the network between the two works.
            probed_at = time.time()
            reached = await asyncio.gather(*(probe(m.api_url, REACH_TIMEOUT_S) for m in others))
            reaches = {m.name: answer == "open" for m, answer in zip(others, reached, strict=True)}
            self._note_reach_changes(dog.reaches, reaches)
            dog.reaches = reaches
            view = self.election.view
            active = self._last_active
            if active is not None and view is not None and view.holder == active and reaches.get(active, True):
                self._active_seen_at = probed_at  # still active, and its API answered: what a failover counts from
            try:
                status = await own.status()
                names = await own.member_names()
                dog.leader_name = names.get(status.leader_id)
                await self._keep_etcd_leader_on_the_tertiary(status.member_id, status.leader_id, names, now)
                dog.etcd_ok_at = now
                # How far behind this member is, as it knows it: the log's newest revision it has seen, less
                # what it has applied (a report that is half a second old still says how far behind it was).
                view = self.election.view
                behind = max(0, view.log_revision - self.log.applied_revision) if view is not None else 0
                if (self.log.applied_revision, behind) != last_progress_put:
                    report = f"{self.log.applied_revision} {behind}".encode()
                    await client.put(PROGRESS_PREFIX + self.config.me.encode(), report)
                    last_progress_put = (self.log.applied_revision, behind)
                kvs, _ = await client.get_prefix(PROGRESS_PREFIX)
                dog.progress = {kv.key[len(PROGRESS_PREFIX) :].decode(): _behind(kv.value) for kv in kvs}
            except EtcdUnavailable:
                pass
            silent = now - dog.etcd_ok_at
            healthy = silent < ETCD_SILENT_AFTER_S
            if healthy != dog.etcd_healthy:
                dog.etcd_healthy = healthy
                if not healthy:
                    dog.count("etcd_silent")
                    log.error(
                        "Triad %s: this member's etcd has not answered for %.1f s; the member stops serving "
                        "until it does.",
                        self.config.name,
                        silent,
                    )
                else:
                    log.info("Triad %s: this member's etcd answers again.", self.config.name)
            if silent > ETCD_HUNG_AFTER_S and self.etcd is not None and self.etcd.running:
                dog.count("etcd_killed")
                log.error(
                    "Triad %s: this member's etcd runs but has not answered for %.1f s; killing it so that it "
                    "restarts.",
                    self.config.name,
                    silent,
                )
                self.etcd.kill()
                dog.etcd_ok_at = now
            self._check_apply(now)
            view = self.election.view
            if dog.etcd_healthy and view is not None and self.log.applied_revision >= view.log_revision:
                dog.in_sync_at = time.time()

    async def _keep_etcd_leader_on_the_tertiary(
        self, me_id: int, leader_id: int, names: dict[int, str], now: float
    ) -> None:
        """The tertiary asks for etcd leadership while things are calm, so that killing the active member
        (or the secondary) never also costs an etcd election: that keeps a kill failover well under 1 s."""
        if self.config.member.role != "tertiary" or leader_id in (0, me_id) or not self.watchdog.etcd_healthy:
            return
        if now - self._leader_moved_at < LEADER_MOVE_EVERY_S:
            return
        self._leader_moved_at = now
        leader = next((m for m in self.config.members if m.name == names.get(leader_id)), None)
        if leader is None or self._tls is None:
            return
        async with EtcdClient(etcd_peer(leader).client_endpoint, self._tls, timeout=2.0) as to_leader:
            try:
                await to_leader.move_leader(me_id)
            except EtcdUnavailable as exc:
                log.info("Triad %s: %s did not hand etcd leadership to the tertiary: %s", self.config.name,
                         leader.name, exc)
                return
        log.info("Triad %s: %s handed etcd leadership to this member, the tertiary (it never serves, so losing "
                 "the active member costs no etcd election).", self.config.name, leader.name)

    def _check_apply(self, now: float) -> None:
        dog = self.watchdog
        task = self._tasks.get("apply")
        view = self.election.view
        behind = view is not None and view.log_revision > self.log.applied_revision
        if not behind:
            dog.behind_since = 0.0
        elif not dog.behind_since:
            dog.behind_since = now
        stalled = (behind and not self.log.fetching_checkpoint
                   and now - max(dog.behind_since, self.log.last_applied_at) > APPLY_STALLED_AFTER_S)
        dead = task is None or task.done()
        if dead or stalled:
            dog.apply_healthy = False
            dog.count("apply_restarted")
            log.error(
                "Triad %s: the apply loop %s at revision %d (the log is at %s); the member stops serving and "
                "restarts it.",
                self.config.name,
                "died" if dead else "made no progress",
                self.log.applied_revision,
                view.log_revision if view is not None else "?",
            )
            if task is not None:
                task.cancel()
            self._tasks["apply"] = asyncio.create_task(self.log.run(), name="triad-apply")
            self.log.last_applied_at = now
            return
        if not dog.apply_healthy and not behind:
            dog.apply_healthy = True
            log.info("Triad %s: the apply loop has caught up again.", self.config.name)

    def _observe(self) -> None:
        """Log every change of the active member as one sentence."""
        view = self.election.view
        holder = view.holder if view is not None else None
        active = self.server.state.active
        epoch = active.epoch if active is not None else 0
        if (holder, epoch) == self._observed:
            return
        previous = self._observed[0]
        self._observed = (holder, epoch)
        events = self.server.role_events
        if holder is None:
            log.warning(
                "Triad %s: no member is active (%s's etcd lease is gone); license requests wait.",
                self.config.name,
                previous or "the previous active member",
            )
            if previous is not None:
                events.record("no_active", f"No member is active: {previous}'s etcd lease is gone.", previous)
            return
        if holder == self.config.me:
            log.warning("Triad %s: this server (%s, %s) is active in epoch %d.", self.config.name, holder,
                        self.config.member.role, epoch)
        else:
            log.warning(
                "Triad %s: %s is now active; this server (%s) redirects clients to it.",
                self.config.name,
                holder,
                self.config.me,
            )
        if self._last_active is not None and holder != self._last_active:
            self.failovers += 1
            took = time.time() - self._active_seen_at if self._active_seen_at is not None else None
            if took is not None:
                text = (f"Failover to {holder} took {took:.1f} s, from when {self._last_active} was last seen active "
                        "and reachable.")
            else:
                text = f"Failover to {holder}; {self._last_active} is no longer active."
            events.record("failover", text, holder, round(took, 2) if took is not None else None)
        elif self._last_active != holder or previous is None:
            events.record("active", f"{holder} is active (epoch {epoch}).", holder)
        if self._last_active != holder:
            self._active_seen_at = time.time()
        self._last_active = holder

    def _note_reach_changes(self, before: dict[str, bool], now: dict[str, bool]) -> None:
        """Record each member this member stopped (or started again) reaching, for the timeline."""
        events = self.server.role_events
        for name, reached in now.items():
            if reached == before.get(name, True):
                continue
            if reached:
                since = events.unreachable_since(name)
                gone = f" after {time.time() - since:.0f} s" if since is not None else ""
                log.warning("Triad %s: %s can be reached again%s.", self.config.name, name, gone)
                events.record("reachable", f"{name} can be reached again{gone}.", name)
            else:
                log.warning("Triad %s: %s cannot be reached from this member.", self.config.name, name)
                events.record("unreachable", f"{name} cannot be reached from this server.", name)

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> TriadStatus:
        """This member's view of the triad (`triad_status.triad_status`); reading it changes nothing but the
        time this member was last seen caught up with the log."""
        if self.is_ready():
            self.watchdog.in_sync_at = time.time()
        return triad_status(
            name=self.config.name,
            me=self.config.me,
            members=self.config.members,
            active=self.server.state.active,
            election=self.election,
            watchdog=self.watchdog,
            applied_revision=self.log.applied_revision,
            serving=self.is_serving(),
            failovers=self.failovers,
            etcd_restarts=self.etcd.restarts if self.etcd is not None else 0,
            now_mono=asyncio.get_running_loop().time(),
        )
