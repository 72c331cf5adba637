"""A triad member's watchdog: twice a second it looks at its etcd and at its apply loop.

When etcd stops answering (ETCD_SILENT_AFTER_S) or the apply loop stops making progress
(APPLY_STALLED_AFTER_S) the member stops serving, says so in `/health/ready` and `/health/active`
(through `triad_status.Watchdog`, what the watchdog last saw), restarts what died (an etcd that runs but
does not answer for ETCD_HUNG_AFTER_S is killed, and its supervisor restarts it), logs it as a sentence
and counts it in `/metrics`. On each look it also probes the other members' APIs (for the timeline and
the status view), tells etcd how far this member has applied the log, and, on the tertiary, keeps etcd's
leadership there while things are calm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from licentia.cluster.etcd_client import EtcdClient, EtcdUnavailable
from licentia.cluster.etcd_member import EtcdMember
from licentia.cluster.etcd_route import EtcdRoute
from licentia.cluster.triad_election import TriadElection, probe
from licentia.cluster.triad_log import TriadLog
from licentia.cluster.triad_status import Watchdog
from licentia.cluster.triad_timeline import ActiveTimeline
from licentia.cluster.triad_tls import MemberTLS
from licentia.core.model import TriadMember

log = logging.getLogger("licentia.triad")

LEADER_MOVE_EVERY_S = 5.0
REACH_TIMEOUT_S = 0.3
WATCHDOG_EVERY_S = 0.5
ETCD_SILENT_AFTER_S = 3.0  # etcd not answering this long: not ready, not serving
ETCD_HUNG_AFTER_S = 8.0  # ... and this long while its process runs: kill it (the supervisor restarts it)
APPLY_STALLED_AFTER_S = 3.0
PROGRESS_PREFIX = b"licentia/progress/"


def _behind(report: bytes) -> int | None:
    """A member's progress report ("applied behind"): how many revisions it was behind."""
    parts = report.split()
    return int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None


@dataclass(frozen=True)
class WatchedParts:
    """The parts of the member the watchdog looks at that change while it runs (asked for at each look)."""

    client: Callable[[], EtcdClient | None]  # the etcd client requests go through now
    route: Callable[[], EtcdRoute | None]
    etcd: Callable[[], EtcdMember | None]  # this member's supervised etcd
    tls: Callable[[], MemberTLS | None]
    etcd_endpoint: Callable[[TriadMember], str]  # a member's etcd client endpoint
    apply_task: Callable[[], asyncio.Task[None] | None]
    restart_apply: Callable[[], None]  # cancel the apply loop's task (if any) and start it again


class MemberWatchdog:
    """The watchdog's loop; what it saw is in `seen` (read by the serving check and the status view)."""

    def __init__(self, triad: str, me: TriadMember, members: list[TriadMember], election: TriadElection,
                 log_: TriadLog, timeline: ActiveTimeline, seen: Watchdog, member: WatchedParts) -> None:
        self.triad = triad
        self.me = me
        self.members = members
        self.election = election
        self.log = log_
        self.timeline = timeline
        self.seen = seen
        self.member = member
        self._leader_moved_at = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        dog = self.seen
        last_progress_put: tuple[int, int] | None = None
        while True:
            await asyncio.sleep(WATCHDOG_EVERY_S)
            now = loop.time()
            client, route = self.member.client(), self.member.route()
            if client is None or route is None:
                continue
            own = route.own  # the health of this member's own etcd; the rest through the route
            others = [m for m in self.members if m.name != self.me.name]
            # Whether a TCP connection to each peer's API opens: the network between the two works.
            probed_at = time.time()
            reached = await asyncio.gather(*(probe(m.api_url, REACH_TIMEOUT_S) for m in others))
            reaches = {m.name: answer == "open" for m, answer in zip(others, reached, strict=True)}
            self.timeline.reach_changed(dog.reaches, reaches)
            dog.reaches = reaches
            view = self.election.view
            self.timeline.active_seen(view.holder if view is not None else None, reaches, probed_at)
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
                    await client.put(PROGRESS_PREFIX + self.me.name.encode(), report)
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
                        self.triad,
                        silent,
                    )
                else:
                    log.info("Triad %s: this member's etcd answers again.", self.triad)
            etcd = self.member.etcd()
            if silent > ETCD_HUNG_AFTER_S and etcd is not None and etcd.running:
                dog.count("etcd_killed")
                log.error(
                    "Triad %s: this member's etcd runs but has not answered for %.1f s; killing it so that it "
                    "restarts.",
                    self.triad,
                    silent,
                )
                etcd.kill()
                dog.etcd_ok_at = now
            self.check_apply(now)
            view = self.election.view
            if dog.etcd_healthy and view is not None and self.log.applied_revision >= view.log_revision:
                dog.in_sync_at = time.time()

    async def _keep_etcd_leader_on_the_tertiary(
        self, me_id: int, leader_id: int, names: dict[int, str], now: float
    ) -> None:
        """The tertiary asks for etcd leadership while things are calm, so that killing the active member
        (or the secondary) never also costs an etcd election: that keeps a kill failover well under 1 s."""
        if self.me.role != "tertiary" or leader_id in (0, me_id) or not self.seen.etcd_healthy:
            return
        if now - self._leader_moved_at < LEADER_MOVE_EVERY_S:
            return
        self._leader_moved_at = now
        leader = next((m for m in self.members if m.name == names.get(leader_id)), None)
        tls = self.member.tls()
        if leader is None or tls is None:
            return
        async with EtcdClient(self.member.etcd_endpoint(leader), tls, timeout=2.0) as to_leader:
            try:
                await to_leader.move_leader(me_id)
            except EtcdUnavailable as exc:
                log.info("Triad %s: %s did not hand etcd leadership to the tertiary: %s", self.triad,
                         leader.name, exc)
                return
        log.info("Triad %s: %s handed etcd leadership to this member, the tertiary (it never serves, so losing "
                 "the active member costs no etcd election).", self.triad, leader.name)

    def check_apply(self, now: float) -> None:
        dog = self.seen
        task = self.member.apply_task()
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
                self.triad,
                "died" if dead else "made no progress",
                self.log.applied_revision,
                view.log_revision if view is not None else "?",
            )
            self.member.restart_apply()
            self.log.last_applied_at = now
            return
        if not dog.apply_healthy and not behind:
            dog.apply_healthy = True
            log.info("Triad %s: the apply loop has caught up again.", self.triad)
