"""The link between the two servers of a backup pair: periodic, incremental, two-way synchronization.

Each server keeps its own state and licenses. Every `interval_s` (and at once
when poked: after a settings change on the main, or "sync now") each server
pulls from its partner what changed since its cursor and applies it through its
own core as one `MergePeerChanges` command, so the data and the advanced cursor
become durable together: a sync that fails half way is simply pulled again, and
nothing is applied twice. The main's settings and rules flow to the backup; the
printer and client registries and the usage log flow both ways.

The link also keeps what it learns about the pair (can we reach the partner now;
does each side hold everything of the other) for the Redundancy page, metrics and alerts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from licentia.cluster import network_failure, peer_auth
from licentia.cluster.relationship import Host, JournalReplication
from licentia.cluster.relationship_status import BackupPairStatus, BackupPending, PairMemberStatus, PendingCounts
from licentia.core.commands import MAIN_OWNED, Command, MergePeerChanges, PeerUsage, SharedConfig
from licentia.core.model import BackupPair, Client, PairMember, PairRole, PeerCursor, Printer
from licentia.core.state import Outcome
from licentia.outbound_http import http_client_imported
from licentia.tls import CertificateRefused, ServerTrust

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("licentia.backup")

PEER_TIMEOUT_S = 2.0
SYNC_WATCH_EVERY_S = 1.0


class PeerChanges(msgspec.Struct):
    """A partner's answer to a pull: its changes after our cursor, and what it knows of us."""

    up_to: int
    usage_up_to: int
    more: bool
    your_cursor: PeerCursor
    own_seq: int
    usage_id: int
    config: SharedConfig | None = None
    printers: list[Printer] = []
    clients: list[Client] = []
    usage: list[PeerUsage] = []


class PullRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A pull: our cursor of the partner, and how far our own changes go (so it can tell if it has them)."""

    since: int
    usage_since: int
    own_seq: int
    usage_id: int


class PeerUnreachable(Exception):
    pass


@dataclass
class PartnerView:
    """What this server last learned about its partner (not durable: relearned at the first contact).

    `own_seq`/`usage_id` are how far the partner's own changes went when it last answered our pull;
    `cursor_of_me` is how far it has taken ours (from its pulls and its answers to ours).
    """

    last_ok_at: float | None = None
    last_failure_at: float | None = None
    last_error: str | None = None
    own_seq: int | None = None
    usage_id: int | None = None
    cursor_of_me: PeerCursor | None = None
    last_synchronized_at: float | None = None


@dataclass(frozen=True)
class Checkpoint:
    """How far this server's own changes went at a moment (to tell which ones the partner is late with)."""

    at: float
    changes: int
    usage: int


class BackupLink:
    """A server's relationship as one of a backup pair (`cluster.relationship.Relationship`): its commands are
    made durable in its own journal, like a standalone server's, and the link synchronizes with the partner."""

    snapshot_on_close = True
    ended = False
    kept_name = ""

    def __init__(self, server: Host, secret: str) -> None:
        self.server = server
        self.journal = JournalReplication(server)
        self.secret = secret
        self.partner = PartnerView()
        self.since = server.now()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        # Over HTTPS the partner is trusted by the certificate fingerprint pinned when the pair was set up.
        self.trust = ServerTrust([self.pair.partner.tls_fingerprint] if self.pair.partner.tls_fingerprint else [])
        self._http: httpx.AsyncClient | None = None  # made once the partner's certificate is checked
        self._http_generation = -1
        self._retired: list[httpx.AsyncClient] = []
        self._sync_lock = asyncio.Lock()
        self._was_connected: bool | None = None
        self._pokes: set[asyncio.Task[None]] = set()
        self._checkpoints: collections.deque[Checkpoint] = collections.deque()
        # Times contact with the partner was lost; on the backup each one is a takeover of the main's
        # clients, counted as a failover in the metrics.
        self.contact_losses = 0
        self._checkpoint()

    @property
    def pair(self) -> BackupPair:
        pair = self.server.state.pair
        assert pair is not None
        return pair

    # -- the server's seam (cluster.relationship.Relationship) -----------------------------------

    async def commit(self, command: Command) -> Outcome:
        return await self.journal.commit(command)

    async def barrier(self) -> None:
        await self.journal.barrier()

    def may_reclaim(self) -> bool:
        return True

    def committed(self, command: Command, outcome: Outcome) -> None:
        """A change of the settings or rules on the main: ask the partner to pull it now."""
        if outcome.changed and isinstance(command, MAIN_OWNED):
            self.poke_partner()

    def describe(self) -> str:
        return f"backup pair {self.pair.name!r}"

    def is_ready(self) -> bool:
        return self.server.journal.failure is None

    def is_active(self) -> bool:
        """The main serves; the backup serves while it cannot reach the main (it has taken over)."""
        return self.pair.me == "main" or not self.connected()

    def client_view(self) -> dict[str, object] | None:
        """What clients cache: the members, and which one serves."""
        pair = self.pair
        return {
            "type": "backup",
            "name": pair.name,
            "me": pair.myself.name,
            "active": pair.main.name,
            "prefer": pair.main.name,
            "serving": True,
            "members": [
                {"name": m.name, "role": role, "api_url": m.api_url, "tls_fingerprint": m.tls_fingerprint or None}
                for role, m in (("main", pair.main), ("backup", pair.backup))
            ],
        }

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._watch_task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        for task in (self._task, self._watch_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for http in (self._http, *self._retired):
            if http is not None:
                await http.aclose()

    def wake(self) -> None:
        """Synchronize now instead of at the next interval."""
        self._wake.set()

    def poke_partner(self) -> None:
        """Ask the partner to pull now (after a settings change here); best effort, the interval catches up."""

        async def poke() -> None:
            with contextlib.suppress(PeerUnreachable):
                await self.call("/api/v1/peer/poke")

        task = asyncio.get_running_loop().create_task(poke())
        self._pokes.add(task)
        task.add_done_callback(self._pokes.discard)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._wake.clear()
            self._checkpoint()
            await self.sync_once()
            wait = max(0.0, self.pair.interval_s - (loop.time() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    # -- talking to the partner -----------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        """The HTTP client to the partner, trusting the certificate checked against the pinned fingerprint."""
        import httpx  # imported when used: a standalone server never loads it (~5 MB)

        if self._http is None or self._http_generation != self.trust.generation:
            if self._http is not None:
                self._retired.append(self._http)
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(PEER_TIMEOUT_S, connect=min(1.0, PEER_TIMEOUT_S)), verify=self.trust.context
            )
            self._http_generation = self.trust.generation
        return self._http

    async def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A signed POST to the partner; raises PeerUnreachable when it cannot be reached or refuses."""
        await http_client_imported()  # off the loop, before the first call to the partner
        import httpx

        pair = self.pair
        data = msgspec.json.encode(body or {})
        signed = peer_auth.sign(self.secret, pair.myself.name, "POST", path, data, self.server.now())
        base = pair.partner.api_url.rstrip("/")
        try:
            await self.trust.prepare(base)
            response = await self._client().post(
                base + path, content=data, headers={"content-type": "application/json", peer_auth.HEADER: signed.header}
            )
        except CertificateRefused as exc:
            raise PeerUnreachable(f"{pair.partner.name} is refused: {exc}") from None
        except httpx.HTTPError as exc:
            why = self.trust.explain(base, exc) or network_failure.describe(exc)
            raise PeerUnreachable(f"{pair.partner.name} ({pair.partner.api_url}) cannot be reached: {why}") from None
        if response.status_code != 200:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise PeerUnreachable(f"{pair.partner.name} answered {response.status_code}: {message}")
        signature = response.headers.get(peer_auth.ANSWER_HEADER, "")
        if not peer_auth.answer_is_genuine(self.secret, signed, response.status_code, response.content, signature):
            raise PeerUnreachable(
                f"the answer from {pair.partner.api_url} is not signed with this pair's secret; it was ignored"
            )
        return response.json()

    async def sync_once(self) -> bool:
        """Pull everything new from the partner (in batches); True when the partner answered."""
        async with self._sync_lock:
            try:
                while True:
                    more = await self._pull_batch()
                    self._reached()
                    if not more:
                        break
            except PeerUnreachable as exc:
                self._failed(str(exc))
                return False
            except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
                self._failed(f"{self.pair.partner.name} sent an answer this server cannot read: {exc}")
                return False
            return True

    async def _pull_batch(self) -> bool:
        state = self.server.state
        pair = self.pair
        request = PullRequest(
            since=pair.cursor.changes,
            usage_since=pair.cursor.usage,
            own_seq=state.own_change_seq,
            usage_id=self.server.journal.own_usage_id,
        )
        answer = msgspec.convert(await self.call("/api/v1/peer/changes", msgspec.to_builtins(request)), PeerChanges)
        news = (
            answer.up_to > pair.cursor.changes
            or answer.usage_up_to > pair.cursor.usage
            or answer.config is not None
            or answer.printers
            or answer.clients
        )
        if news:
            outcome = await self.server.execute(
                MergePeerChanges(
                    peer=pair.partner.name,
                    up_to=answer.up_to,
                    usage_up_to=answer.usage_up_to,
                    config=answer.config,
                    printers=answer.printers,
                    clients=answer.clients,
                    usage=answer.usage,
                )
            )
            if not outcome.ok:
                raise PeerUnreachable(f"could not apply {pair.partner.name}'s changes: {outcome.message}")
            if answer.printers or answer.clients or answer.usage or answer.config is not None:
                log.info(
                    "Took %d printer(s), %d client(s), %d usage record(s)%s from %s.",
                    len(answer.printers),
                    len(answer.clients),
                    len(answer.usage),
                    " and its settings" if answer.config is not None and pair.me == "backup" else "",
                    pair.partner.name,
                )
        self.partner.own_seq = answer.own_seq
        self.partner.usage_id = answer.usage_id
        self._partner_took(answer.your_cursor)
        return answer.more

    async def answer_pull(self, request: PullRequest) -> dict[str, Any]:
        """Serve the partner's pull: what it has not seen, made durable here before it is handed over."""
        server = self.server
        pair = self.pair
        self._partner_took(PeerCursor(request.since, request.usage_since))
        # How far our own changes go, read before anything below can add to them, so that a partner
        # that takes this whole answer holds at least that much.
        own_seq, usage_id = server.state.own_change_seq, server.journal.own_usage_id
        self._checkpoint()
        changes = server.state.changes_since(request.since, pair.partner.name)
        batch = server.config.sync_batch_rows
        rows = await server.journal.own_usage_after(request.usage_since, batch)
        await server.journal.barrier()
        return {
            **changes,
            "usage": [PeerUsage(row_id, record) for row_id, record in rows],
            "usage_up_to": rows[-1][0] if rows else request.usage_since,
            "more": len(rows) == batch,
            "your_cursor": pair.cursor,
            "own_seq": own_seq,
            "usage_id": usage_id,
        }

    def _partner_took(self, cursor: PeerCursor) -> None:
        seen = self.partner.cursor_of_me
        if seen is None or (cursor.changes, cursor.usage) >= (seen.changes, seen.usage):
            self.partner.cursor_of_me = cursor

    def _checkpoint(self) -> None:
        """Note how far our own changes go now; keep what `partner_has_mine` may still need."""
        now = self.server.now()
        self._checkpoints.append(Checkpoint(now, self.server.state.own_change_seq, self.server.journal.own_usage_id))
        cutoff = now - self._grace()
        while len(self._checkpoints) > 1 and self._checkpoints[1].at <= cutoff:
            self._checkpoints.popleft()

    def _grace(self) -> float:
        """How long a change of ours may wait for the partner in a healthy pair: it pulls every interval,
        and we hear that it took the change at our next pull at the latest."""
        return 2 * self.pair.interval_s + PEER_TIMEOUT_S

    def _reached(self) -> None:
        now = self.server.now()
        self.partner.last_ok_at = now
        self.partner.last_error = None
        if self._was_connected is not True:
            log.warning("Backup pair %s: %s can be reached; synchronizing.", self.pair.name, self.pair.partner.name)
            partner = self.pair.partner.name
            events = self.server.role_events
            since = events.unreachable_since(partner)
            gone = f" after {time.time() - since:.0f} s" if since is not None else ""
            events.record("reachable", f"{partner} can be reached{' again' if gone else ''}{gone}; synchronizing.",
                          partner)
            self.poke_partner()
        self._was_connected = True
        if self.synchronized():
            self.partner.last_synchronized_at = now

    def _failed(self, why: str) -> None:
        self.partner.last_failure_at = self.server.now()
        self.partner.last_error = why
        if self._was_connected is None:
            log.info("Backup pair %s: waiting for the partner: %s", self.pair.name, why)
        elif self._was_connected:
            self.contact_losses += 1
            partner = self.pair.partner.name
            taking_over = "; this backup serves the clients that cannot reach it" if self.pair.me == "backup" else ""
            self.server.role_events.record("unreachable", f"Lost contact with {partner}{taking_over}.", partner)
            if self.pair.me == "backup":
                log.warning(
                    "Backup pair %s: lost contact with the main %s; this backup serves the clients that cannot "
                    "reach it: %s",
                    self.pair.name,
                    self.pair.main.name,
                    why,
                )
            else:
                log.warning("Backup pair %s: lost contact with the backup: %s", self.pair.name, why)
        self._was_connected = False

    # -- status ---------------------------------------------------------------------------------

    def connected(self) -> bool:
        """The partner answered our last pull, recently enough that it can be reached now."""
        view = self.partner
        if view.last_ok_at is None:
            return False
        if view.last_failure_at is not None and view.last_failure_at > view.last_ok_at:
            return False
        return self.server.now() - view.last_ok_at <= 2 * self.pair.interval_s + PEER_TIMEOUT_S

    def have_partners(self) -> bool:
        """We hold every change the partner had made when it last answered us."""
        view = self.partner
        cursor = self.pair.cursor
        if view.own_seq is None or view.usage_id is None:
            return False
        return cursor.changes >= view.own_seq and cursor.usage >= view.usage_id

    def partner_has_mine(self) -> bool:
        """The partner holds every change we made up to `_grace()` ago (newer ones are on their way in a
        healthy pair; under steady traffic there always are some)."""
        seen = self.partner.cursor_of_me
        if seen is None:
            return False
        cutoff = self.server.now() - self._grace()
        due = self._checkpoints[0]
        for checkpoint in self._checkpoints:
            if checkpoint.at > cutoff:
                break
            due = checkpoint
        return seen.changes >= due.changes and seen.usage >= due.usage

    def synchronized(self) -> bool:
        """The backup holds the main's latest versions and the main holds everything the backup recorded."""
        return self.have_partners() and self.partner_has_mine()

    def _synchronized_now(self) -> bool:
        """Synchronized: nothing waits on either side as far as this server knows. While the partner answers,
        a change younger than one round of pulls is on its way (see partner_has_mine); once it stops
        answering, any change it has not confirmed is waiting."""
        seen = self.partner.cursor_of_me
        waiting = (seen is None or self.server.state.own_change_seq > seen.changes
                   or self.server.journal.own_usage_id > seen.usage)
        return self.synchronized() and (self.connected() or not waiting)

    def note_synchronized(self) -> None:
        """Remember now as the last time the pair was synchronized, if it is (the watch does this every
        SYNC_WATCH_EVERY_S, so that `status` only reads)."""
        if self._synchronized_now():
            self.partner.last_synchronized_at = self.server.now()

    async def _watch(self) -> None:
        while True:
            self.note_synchronized()
            await asyncio.sleep(SYNC_WATCH_EVERY_S)

    def status(self) -> BackupPairStatus:
        """The pair as this server sees it now; reading it changes nothing."""
        pair = self.pair
        view = self.partner
        now = self.server.now()
        roles: tuple[tuple[PairRole, PairMember], ...] = (("main", pair.main), ("backup", pair.backup))
        connected = self.connected()
        seen = view.cursor_of_me
        own_seq = self.server.state.own_change_seq
        own_usage = self.server.journal.own_usage_id
        synchronized = self._synchronized_now()
        state = ("connected" if connected else "not_connected") + (
            "_synchronized" if synchronized else "_not_synchronized"
        )
        return BackupPairStatus(
            name=pair.name,
            me=pair.myself.name,
            my_role=pair.me,
            partner=pair.partner.name,
            interval_s=pair.interval_s,
            members=tuple(
                PairMemberStatus(
                    name=member.name,
                    role=role,
                    api_url=member.api_url,
                    me=member.name == pair.myself.name,
                    online=True if member.name == pair.myself.name else connected,
                    reachable=True if member.name == pair.myself.name else connected,
                )
                for role, member in roles
            ),
            connected=connected,
            synchronized=synchronized,
            state=state,
            last_sync_at=view.last_ok_at,
            last_synchronized_at=now if synchronized else view.last_synchronized_at,
            last_error=view.last_error,
            since=self.since,
            pending=BackupPending(
                to_partner=PendingCounts(
                    changes=max(0, own_seq - seen.changes) if seen else None,
                    usage_rows=max(0, own_usage - seen.usage) if seen else None,
                ),
                from_partner=PendingCounts(
                    changes=max(0, view.own_seq - pair.cursor.changes) if view.own_seq is not None else None,
                    usage_rows=max(0, view.usage_id - pair.cursor.usage) if view.usage_id is not None else None,
                ),
            ),
            cursor=pair.cursor,
            contact_losses=self.contact_losses,
            active=pair.main.name,
            serving=True,
            checked_at=now,
        )
