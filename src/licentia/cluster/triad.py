"""A triad member: its lifecycle, its serving check and the server's seam; the parts it runs live beside it.

Each member runs its own etcd member (a supervised child process, `etcd_member`), over TLS with
certificates from the triad's CA (`triad_tls`). Every member applies the same committed batches to
the same deterministic core: the replicated log (`triad_log`) hands each committed batch, in revision
order, to `TriadNode._apply_committed`, on the loop. Who may grant is decided by the active-member
election on etcd with etcd leases (`triad_election`): the primary, then the secondary, never the
tertiary. Every command the active member commits carries its epoch and is committed only while its
claim is the election's, so a deposed or partitioned member can never grant, whatever the members'
clocks say; commands are stamped by `triad_clock`.

Beside it: the member's checkpoint (`triad_checkpoint`), its watchdog (`triad_watchdog`: when etcd or
the apply loop stops making progress the member stops serving, says so in `/health/ready` and
`/health/active`, restarts what died, logs it as a sentence and counts it in `/metrics`), the changes
it tells people about (`triad_timeline`) and its status view (`triad_status`).
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
from licentia.cluster.peer_trust import PeerTrust
from licentia.cluster.relationship import Host
from licentia.cluster.relationship_status import TriadStatus
from licentia.cluster.triad_checkpoint import CheckpointPeers, TriadCheckpoints
from licentia.cluster.triad_clock import CommandClock
from licentia.cluster.triad_election import KEEPALIVE_EVERY_S, TriadElection
from licentia.cluster.triad_log import CHECKPOINT_AFTER_S, AppliedEntry, ClaimLost, TriadLog
from licentia.cluster.triad_seam import CommitFailed, NotActive, TriadConfig
from licentia.cluster.triad_status import Watchdog, triad_status
from licentia.cluster.triad_timeline import ActiveTimeline
from licentia.cluster.triad_tls import MemberTLS, ensure_member_tls
from licentia.cluster.triad_watchdog import MemberWatchdog, WatchedParts
from licentia.core.commands import Checkout, Command, DissolveTriad, ElectedActive, Heartbeat, ReclaimExpired
from licentia.core.model import TriadMember
from licentia.core.state import Outcome
from licentia.outbound_http import http_client_imported
from licentia.store import data_directory
from licentia.store.journal import usage_rows

__all__ = ["CommitFailed", "NotActive", "TriadConfig", "TriadNode"]

log = logging.getLogger("licentia.triad")

LOOK_EVERY_S = 0.1
SERVING_WAIT_S = 1.5
BATCH_STRIDE = 4096  # usage-row key of a command: revision * BATCH_STRIDE + its position in the batch
CHECKPOINT_FILE = data_directory.TRIAD_CHECKPOINT.name
ETCD_DIR = data_directory.ETCD.name
ETCD_TLS_DIR = data_directory.ETCD_TLS.name
ETCD_TIMING = EtcdTiming(heartbeat_ms=30, election_ms=300)


def etcd_peer(member: TriadMember) -> EtcdPeer:
    """A member's etcd: peer traffic on its replication address, client traffic on the next port."""
    host, _, port = member.raft_address.rpartition(":")
    return EtcdPeer(name=member.name, host=host, peer_port=int(port), client_port=int(port) + 1)


# The member serving the clients writes its own checkpoint (a fork) only when its last one is this old and no other
# member has a newer one to take.
SERVING_FORKS_AFTER_S = 3 * CHECKPOINT_AFTER_S


def first_checkpoint_after(me: str, members: list[str], every_s: float) -> float:
    """How long after its start a member writes its first checkpoint (then one every `every_s`): the members take
    turns, spread over the interval. Started together (after a site-wide power cut, or on one machine), each forked
    and wrote its whole state at the same moment otherwise: at 300,000 leases, three 200 MB checkpoints at once left
    etcd's leader 60-170 ms late with its heartbeats, and the active member's clients waiting for their commits."""
    names = sorted(members)
    turn = names.index(me) if me in names else 0
    return every_s + every_s * turn / len(names)

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
        self.log = TriadLog(config.me, applied_revision, self._command_time, self._apply_committed,
                            self._checkpoint_turn, lambda: self.checkpoints.fetch_from_peer())
        peers = CheckpointPeers(config.name, config.me, config.secret, config.others())
        self.peer_trust = PeerTrust()  # checks the other members' certificates, for checkpoints and forwarded changes
        self.checkpoints = TriadCheckpoints(self.checkpoint_file, server, self.log, peers, self.peer_trust)
        self.etcd: EtcdMember | None = None
        self.client: EtcdClient | None = None  # the route's current client (see `etcd_route`)
        self.route: EtcdRoute | None = None
        self.watchdog = Watchdog()
        self.timeline = ActiveTimeline(config.name, config.me, config.member.role, server.role_events)
        parts = WatchedParts(
            client=lambda: self.client,
            route=lambda: self.route,
            etcd=lambda: self.etcd,
            tls=lambda: self._tls,
            etcd_endpoint=lambda member: etcd_peer(member).client_endpoint,
            apply_task=lambda: self._tasks.get("apply"),
            restart_apply=self._restart_apply,
        )
        self.watchdog_loop = MemberWatchdog(config.name, config.member, config.members, self.election, self.log,
                                            self.timeline, self.watchdog, parts)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._serving_claim: int | None = None  # the claim this member serves under now
        self.clock = CommandClock(config.name, lambda: self.election.claim_revision,
                                  lambda: max(server.clock(), server.state.time_floor))
        self._stopping = False
        self._checkpoint_turns = asyncio.Lock()  # one `_checkpoint_turn` at a time (the timer's, the log's)
        self._checkpoint_at = 0.0  # the loop's time of this member's last checkpoint (its start's, at first)
        self.dissolved = False  # the dissolve is committed; this member leaves after leave_delay()
        self._tls: MemberTLS | None = None  # this member's certificates, loaded at start

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        me = self.config.member
        tls = await asyncio.to_thread(
            ensure_member_tls, self.tls_dir, self.config.secret, self.config.name, me.name, etcd_peer(me).host
        )
        await http_client_imported()  # off the loop, before the first request to a peer
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
        self.clock.started(self.watchdog.etcd_ok_at)
        self._checkpoint_at = self.watchdog.etcd_ok_at  # it started from its checkpoint
        self.election.started()
        for name, loop in (
            ("apply", self.log.run),
            ("lease", self._lease_loop),
            ("election", self._election_loop),
            ("watchdog", self.watchdog_loop.run),
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

    # -- the clock commands are stamped with (`triad_clock`) -------------------------------------

    def _command_time(self) -> float:
        return self.clock.command_time(asyncio.get_running_loop().time())

    async def _clock_loop(self) -> None:
        """Ticks the clock watch (no I/O, so a slow etcd never makes a tick late)."""
        while True:
            self.clock.watch(asyncio.get_running_loop().time())
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

    def _start_serving(self, claim: int, now: float) -> None:
        self._serving_claim = claim
        if self.clock.frame(claim, now):
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
                command = msgspec.structs.replace(command, epoch=epoch, honour_from=self.clock.honour_from)
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

    def _apply_committed(self, command: Command, at: float, entry: AppliedEntry) -> Outcome:
        """One committed command, handed over by the log in revision order: applied to the server's state,
        its usage rows recorded under the command's place in the log."""
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
            owners = dict(outcome.result.license_owners)
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
        members = [member.name for member in self.config.members]
        await asyncio.sleep(first_checkpoint_after(self.config.me, members, CHECKPOINT_AFTER_S) - CHECKPOINT_AFTER_S)
        while True:
            await asyncio.sleep(CHECKPOINT_AFTER_S)
            try:
                await self._checkpoint_turn()
                if self.is_serving():
                    await self.log.compact([m.name for m in self.config.members])
            except EtcdUnavailable:
                continue
            except Exception:
                log.exception("Triad %s: writing the checkpoint failed.", self.config.name)

    async def _checkpoint_turn(self) -> None:
        """This member's checkpoint, when it has applied more of the log since the last one (every
        CHECKPOINT_AFTER_S, and after CHECKPOINT_EVERY batches). The member serving the clients takes another
        member's newer checkpoint (`TriadCheckpoints.adopt_from_peer`) and forks to write its own only when its
        last one is SERVING_FORKS_AFTER_S old and no other member has a newer one (they are away)."""
        async with self._checkpoint_turns:
            if self.log.applied_revision <= self.log.checkpointed_revision:
                return
            now = asyncio.get_running_loop().time()
            if self.is_serving():
                if await self.checkpoints.adopt_from_peer() is not None:
                    self._checkpoint_at = now
                    return
                if now - self._checkpoint_at < SERVING_FORKS_AFTER_S:
                    return
                log.info("Triad %s: this member's checkpoint is %.0f s old and no other member has a newer one; "
                         "this member writes its own.", self.config.name, now - self._checkpoint_at)
            await self.checkpoints.write()
            self._checkpoint_at = now

    def _restart_apply(self) -> None:
        task = self._tasks.get("apply")
        if task is not None:
            task.cancel()
        self._tasks["apply"] = asyncio.create_task(self.log.run(), name="triad-apply")

    def _observe(self) -> None:
        view = self.election.view
        active = self.server.state.active
        self.timeline.observe(view.holder if view is not None else None, active.epoch if active is not None else 0)

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
            failovers=self.timeline.failovers,
            etcd_restarts=self.etcd.restarts if self.etcd is not None else 0,
            now_mono=asyncio.get_running_loop().time(),
            etcd_route_switches=self.route.switches if self.route is not None else None,
        )
