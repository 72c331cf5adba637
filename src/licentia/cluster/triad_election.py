"""Who serves in a triad: an election on etcd, by the triad's priority rules, measured by etcd leases.

Each member holds one etcd lease (kept alive by its keep-alives, expired by etcd's leader when they
stop) and puts `ALIVE_PREFIX + name` under it. The active member also holds `ACTIVE_KEY` under its
lease; the etcd revision that put it there is the member's claim, and every batch it commits is
compared against it (see `triad_log`). The rules:

- the primary claims whenever the key is free, and takes it from the secondary once it has caught up;
- the secondary claims only when the key is free and the primary's lease is gone (or the primary has
  had a few looks to claim and did not); if the key is held by a primary whose process is gone (its
  API port refuses connections), the secondary revokes that lease rather than wait for it to expire,
  which makes a kill failover take well under a second. A wrong guess costs a failback, never a
  double grant: the revision comparison fences the old holder's batches;
- the tertiary never claims.

No member compares its clock with another's: etcd's leader measures lease lifetimes, and a member
serves only while its last acknowledged keep-alive, sent at a time of its own monotonic clock, is
younger than the lease's TTL less a safety margin.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from licentia.cluster.etcd_client import Compare, EtcdClient, EtcdUnavailable, Op
from licentia.cluster.triad_log import ACTIVE_KEY, LOG_KEY, LogBatch
from licentia.core.commands import ElectedActive
from licentia.core.model import TriadMember

log = logging.getLogger("licentia.triad")

ALIVE_PREFIX = b"licentia/alive/"
LEASE_TTL_S = 1  # etcd leases are whole seconds; one second is etcd's floor with a LAN's election timeout
KEEPALIVE_EVERY_S = 0.2
SERVING_MARGIN_S = 0.35  # stop serving this long before the lease could have expired at etcd's leader
PROBE_TIMEOUT_S = 0.2
# A keep-alive answered later than this cannot keep the member serving anyway (it serves until TTL less the
# margin after the keep-alive was sent); waiting less lets the member find another route to etcd sooner.
KEEPALIVE_TIMEOUT_S = 0.5
SECONDARY_DEFERS_LOOKS = 3
VIEW_FRESH_S = 1.0
SECONDARY_START_GRACE_S = 2.0  # a just-started secondary leaves a free key to the primary this long


class Holder(msgspec.Struct):
    """The value of the election key."""

    member: str


@dataclass(frozen=True, slots=True)
class ElectionView:
    """One look at the election: who holds the key (under which lease, since which revision), whose
    leases are alive, and the log's newest revision."""

    holder: str | None
    holder_lease: int
    claim_revision: int
    alive: frozenset[str]
    log_revision: int


async def probe(url_or_address: str, timeout: float = PROBE_TIMEOUT_S) -> Literal["open", "refused", "silent"]:
    """Try a TCP connection to this URL or "host:port": it opens, it is refused (no process listens
    there), or nothing answers in `timeout` (a hung process, a lost host, a partition, a bad address)."""
    if "://" in url_or_address:
        parts = urlsplit(url_or_address)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    else:
        host, _, port_text = url_or_address.rpartition(":")
        if not port_text.isdigit():
            return "silent"
        port = int(port_text)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except ConnectionRefusedError:
        return "refused"
    except (TimeoutError, OSError, ValueError):
        return "silent"
    writer.close()
    return "open"


async def nothing_listens_at(url_or_address: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """The host refuses a TCP connection at this URL or "host:port": no process listens there.

    Only an explicit refusal counts; a hung process, a lost host or a partition answers nothing (or
    another error), and then the lease is left to expire.
    """
    return await probe(url_or_address, timeout) == "refused"


class TriadElection:
    """This member's lease, its claim, and the decisions of the priority rules."""

    def __init__(self, me: TriadMember, members: list[TriadMember], triad_name: str) -> None:
        self.me = me
        self.members = members
        self.triad_name = triad_name
        self.lease_id = 0
        self.lease_valid_until = 0.0  # monotonic: sent time of the last acknowledged keep-alive + TTL - margin
        self.claim_revision: int | None = None  # the election key's mod revision this member's claim made
        self.view: ElectionView | None = None
        self.view_at = 0.0  # monotonic time of the last successful look
        self._deferred_looks = 0
        self._previous_log_revision = 0  # the log's revision at the look before this one
        self._started_at = 0.0
        self._latest_now = 0.0
        self._acknowledged_at = 0.0  # monotonic: when the last acknowledged keep-alive (or grant) was sent
        self._unanswered = 0  # keep-alives not answered since the last acknowledged one
        self._primary = next(m for m in members if m.role == "primary")

    def fresh_view(self, now_mono: float) -> ElectionView | None:
        """The last look, if it is recent enough to say who is active (a member cut off from the majority
        cannot look, and then knows nothing of the election)."""
        return self.view if now_mono - self.view_at < VIEW_FRESH_S else None

    def started(self) -> None:
        self._started_at = asyncio.get_running_loop().time()

    def lease_valid(self, now_mono: float) -> bool:
        if now_mono < self._latest_now - 0.05:
            # The monotonic clock went backwards (a faked or broken clock): what was measured on it
            # before cannot be trusted, so the lease counts as unconfirmed until the next keep-alive.
            self.lease_valid_until = 0.0
            self._latest_now = now_mono
        self._latest_now = max(self._latest_now, now_mono)
        return self.lease_id != 0 and now_mono < self.lease_valid_until

    def holds_claim(self, now_mono: float) -> bool:
        return self.claim_revision is not None and self.lease_valid(now_mono)

    # -- the lease ------------------------------------------------------------------------------

    async def keep_lease(self, client: EtcdClient) -> None:
        """Grant this member's lease if it has none (and put its alive key), else send one keep-alive."""
        loop = asyncio.get_running_loop()
        sent = loop.time()
        # Keep-alives must have gone unanswered too: a monotonic clock that jumped forward (a faked or broken
        # clock) makes a whole TTL seem to pass with no keep-alive missed, and the lease is fine.
        if self.lease_id and self._unanswered >= 2 and sent - self._acknowledged_at > LEASE_TTL_S:
            # No keep-alive answered for a whole TTL, yet they may still reach etcd's leader (a one-way
            # partition: this member's requests arrive, the answers do not), which would keep the lease,
            # and the election, alive for a member that cannot serve. Stop renewing it so that it lapses
            # and another member can take over; take a new one once etcd answers again.
            log.warning(
                "Triad %s: no keep-alive of this member's etcd lease was answered for %.1f s; it lets the lease "
                "lapse so that another member can serve, and takes a new one when etcd answers again.",
                self.triad_name,
                sent - self._acknowledged_at,
            )
            self.lease_id = 0
            self.lease_valid_until = 0.0
            self.claim_revision = None
        if self.lease_id == 0:
            lease_id, ttl = await client.grant_lease(LEASE_TTL_S)
            await client.put(ALIVE_PREFIX + self.me.name.encode(), b"1", lease=lease_id)
            self.lease_id = lease_id
            self._acknowledged_at = sent
            self._unanswered = 0
            self.lease_valid_until = sent + ttl - SERVING_MARGIN_S
            log.info("Triad %s: this member holds etcd lease %x (TTL %d s).", self.triad_name, lease_id, ttl)
            return
        try:
            ttl = await client.keep_alive(self.lease_id, timeout=KEEPALIVE_TIMEOUT_S)
        except EtcdUnavailable:
            self._unanswered += 1
            raise
        self._unanswered = 0
        if ttl <= 0:
            log.warning(
                "Triad %s: this member's etcd lease expired (its keep-alives did not reach etcd's leader in time); "
                "taking a new one.",
                self.triad_name,
            )
            self.lease_id = 0
            self.lease_valid_until = 0.0
            self.claim_revision = None
            return
        self._acknowledged_at = sent
        self.lease_valid_until = sent + ttl - SERVING_MARGIN_S

    # -- looking and deciding -------------------------------------------------------------------

    async def look(self, client: EtcdClient) -> ElectionView:
        result = await client.txn([], [Op.get(ACTIVE_KEY), Op.get(ALIVE_PREFIX, prefix=True), Op.get(LOG_KEY)])
        active_kvs, alive_kvs, log_kvs = (r if isinstance(r, list) else [] for r in result.responses)
        holder, holder_lease, claim_revision = None, 0, 0
        if active_kvs:
            kv = active_kvs[0]
            try:
                holder = msgspec.json.decode(kv.value, type=Holder).member
            except msgspec.DecodeError:
                holder = None
            holder_lease, claim_revision = kv.lease, kv.mod_revision
        alive = frozenset(kv.key[len(ALIVE_PREFIX) :].decode() for kv in alive_kvs)
        view = ElectionView(
            holder=holder,
            holder_lease=holder_lease,
            claim_revision=claim_revision,
            alive=alive,
            log_revision=log_kvs[0].mod_revision if log_kvs else 0,
        )
        self.view = view
        self.view_at = asyncio.get_running_loop().time()
        if self.claim_revision is not None and (holder != self.me.name or claim_revision != self.claim_revision):
            log.warning(
                "Triad %s: this member no longer holds the election (%s does); it stops serving.",
                self.triad_name,
                holder or "nobody",
            )
            self.claim_revision = None
        return view

    async def decide(self, client: EtcdClient, view: ElectionView, applied_revision: int, at: float) -> int | None:
        """Apply the priority rules to one look; return the revision of a claim made now, if any.

        `at` stamps the claim's `ElectedActive` in the log."""
        me = self.me
        if me.role == "tertiary" or not self.lease_id:
            return None
        if view.holder == me.name and view.holder_lease == self.lease_id:
            self.claim_revision = view.claim_revision
            return None
        # Caught up: applied what the log held one look ago (under load the log always grows a little).
        caught_up = applied_revision >= min(view.log_revision, self._previous_log_revision)
        self._previous_log_revision = view.log_revision
        if view.holder is None:
            starting = asyncio.get_running_loop().time() - self._started_at < SECONDARY_START_GRACE_S
            if me.role == "secondary" and (self._primary.name in view.alive or starting) and caught_up:
                # A live primary claims a free key within a look or two; give it that chance.
                self._deferred_looks += 1
                if self._deferred_looks <= SECONDARY_DEFERS_LOOKS or starting:
                    return None
            self._deferred_looks = 0
            return await self._claim(client, [Compare.create_revision(ACTIVE_KEY, "==", 0)], at, "the key was free")
        self._deferred_looks = 0
        holder = next((m for m in self.members if m.name == view.holder), None)
        if me.role == "primary" and holder is not None and holder.role != "primary" and caught_up:
            return await self._claim(
                client,
                [Compare.mod_revision(ACTIVE_KEY, "==", view.claim_revision)],
                at,
                f"the primary takes over from {holder.name}, the {holder.role}",
            )
        primary_holds = me.role == "secondary" and holder is not None and holder.role == "primary"
        if primary_holds and holder is not None and await nothing_listens_at(holder.api_url):
            log.warning(
                "Triad %s: the primary %s holds the election but nothing listens at %s any more (its process "
                "is gone); revoking its etcd lease.",
                self.triad_name,
                holder.name,
                holder.api_url,
            )
            await client.revoke_lease(view.holder_lease)
            return await self._claim(
                client, [Compare.create_revision(ACTIVE_KEY, "==", 0)], at, "the primary's process is gone"
            )
        return None

    async def _claim(self, client: EtcdClient, compare: list[Compare], at: float, why: str) -> int | None:
        """Put the election key under this member's lease and the `ElectedActive` batch in one transaction."""
        batch = LogBatch(at=at, origin=self.me.name, seq=0, commands=[ElectedActive(member=self.me.name)])
        value = msgspec.json.encode(Holder(member=self.me.name))
        try:
            result = await client.txn(
                compare,
                [
                    Op.put(ACTIVE_KEY, value, lease=self.lease_id),
                    Op.put(LOG_KEY, msgspec.msgpack.encode(batch)),
                ],
            )
        except EtcdUnavailable as exc:
            log.info("Triad %s: a claim could not be committed (%s).", self.triad_name, exc)
            return None
        if not result.succeeded:
            return None
        self.claim_revision = result.revision
        if self.view is not None:
            self.view = dataclasses.replace(
                self.view,
                holder=self.me.name,
                holder_lease=self.lease_id,
                claim_revision=result.revision,
                log_revision=result.revision,
            )
        log.warning(
            "Triad %s: this member (%s, %s) won the election at revision %d: %s.",
            self.triad_name,
            self.me.name,
            self.me.role,
            result.revision,
            why,
        )
        return result.revision
