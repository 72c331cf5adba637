"""Seats: checking out, renewing and ending leases.

A seat license counts the leases held on it. A lease is checked out for a client's request (a retry of the
same request gets the same lease back), renewed by heartbeats while the access rules allow its holder, and
ends by check-in, by an administrator's revoke or when it ran out (`ReclaimExpired`).
"""

from __future__ import annotations

from collections.abc import Callable

from licentia.core import commands as c
from licentia.core.indexed_state import IndexedState, request_key, request_record
from licentia.core.model import Lease, UsageRecord
from licentia.core.outcomes import (
    Applied,
    LeaseGranted,
    LeaseReleased,
    LeaseRevoked,
    Outcome,
    R,
    Reclaimed,
    Renewals,
    refused,
)


def _ran_out_order(lease: Lease) -> tuple[float, str]:
    return lease.expires_at, lease.lease_id


def granted_lease(lease: Lease, *, repeated: bool) -> LeaseGranted:
    return LeaseGranted(
        lease_id=lease.lease_id,
        license_id=lease.license_id,
        product=lease.product,
        feature=lease.feature,
        expires_at=lease.expires_at,
        ttl_s=lease.ttl_s,
        repeated=repeated,
    )


class Seats(IndexedState):
    def _checkout(self, cmd: c.Checkout, now: float) -> Outcome[LeaseGranted]:
        """The access rules decide first, then a retry of this client's own request (same request id, same
        declared client, same source address) gets its lease back; another client's request id names no
        lease of theirs. The client registry records the client only once a seat is granted."""
        allowed, why = self._client_access(cmd.client, cmd.source_ip, cmd.source_host)
        if not allowed:
            return refused(
                "access_denied", f"denied by access {why}", [request_record(cmd, now, False, "access_denied")]
            )
        key = request_key(cmd.client, cmd.source_ip, cmd.request_id)
        existing = self.leases.get(self.lease_by_request.get(key, ""))
        if existing is not None and existing.expires_at > now:
            if (existing.product, existing.feature) != (cmd.product, cmd.feature):
                return refused("request_conflict", f"request id {cmd.request_id} was used for another product")
            self._touch_client(cmd.client, cmd.source_ip, now)
            return Applied(granted_lease(existing, repeated=True), changed=True)
        if cmd.lease_id in self.leases and (existing is None or existing.lease_id != cmd.lease_id):
            return refused("lease_exists", f"lease id {cmd.lease_id} is already in use")
        licenses = self._valid_licenses(cmd.product, "seats", now, cmd.feature)
        if not licenses:
            what = f"product {cmd.product!r}" + (f" with feature {cmd.feature!r}" if cmd.feature else "")
            return refused(
                "no_license", f"no valid seat license for {what}", [request_record(cmd, now, False, "no_license")]
            )
        # A member that has just taken over honours every lease still held for one more of its TTL (see
        # `Checkout.honour_from`): meanwhile a seat counts as taken while its lease is held at all.
        honouring = cmd.honour_from > 0 and now < cmd.honour_from + self.settings.lease_ttl_s
        chosen = next(
            (
                lic
                for lic in licenses
                if (self._held_count.get(lic.id, 0) if honouring else self.used(lic.id, now)) < lic.terms.count
            ),
            None,
        )
        if chosen is None:
            total = sum(lic.terms.count for lic in licenses)
            return refused(
                "limit_exceeded",
                f"all {total} seats of {cmd.product!r} are in use",
                [request_record(cmd, now, False, "limit_exceeded")],
            )
        if existing is not None:
            self._drop_lease(existing)
        ttl = min(cmd.ttl_s or self.settings.lease_ttl_s, self.settings.lease_ttl_s)
        lease = Lease(
            lease_id=cmd.lease_id,
            request_id=cmd.request_id,
            license_id=chosen.id,
            product=cmd.product,
            feature=cmd.feature,
            client=cmd.client,
            source_ip=cmd.source_ip,
            granted_at=now,
            expires_at=now + ttl,
            ttl_s=ttl,
        )
        self.leases[lease.lease_id] = lease
        self._listings.lease_added(lease)
        self._held_count[chosen.id] = self._held_count.get(chosen.id, 0) + 1
        self._touch_client(cmd.client, cmd.source_ip, now)
        self.lease_by_request.add(lease)
        self._in_use[chosen.id].put(lease.lease_id, lease.expires_at)
        return Applied(
            granted_lease(lease, repeated=False),
            usage=[request_record(cmd, now, True, "ok", chosen.id)],
            changed=True,
        )

    def _heartbeat(self, cmd: c.Heartbeat, now: float) -> Outcome[Renewals]:
        """Renew each request's leases that are still held and that the access rules still allow.

        A lease the rules now deny is not renewed. When the denied heartbeat comes from the address the
        lease was checked out from, the rules deny the lease's own holder: the lease is released at once
        and its seat freed for someone allowed. From any other address the lease is left as it is, so
        whoever else learnt a lease id cannot end it from a denied place. Each request writes at most one
        usage record for leases it named that are not held and one for leases it was denied, besides the
        end record of each lease it released.
        """
        renewed: dict[str, float] = {}
        lost: list[str] = []
        denied: dict[str, str] = {}
        usage: list[UsageRecord] = []
        renewed_in: set[str] = set()  # the licenses whose in-use sets renewals changed
        renewals = [(renewal, True) for renewal in cmd.renewals]
        if cmd.lease_ids:
            renewals.append((c.Renewal(cmd.lease_ids, "", ""), False))
        for renewal, checked in renewals:
            gone: list[str] = []
            refused_here: list[str] = []
            for lease_id in renewal.lease_ids:
                lease = self.leases.get(lease_id)
                if lease is None or (lease.expires_at <= now and cmd.honour_from + lease.ttl_s <= now):
                    gone.append(lease_id)
                    continue
                if checked:
                    allowed, why = self._client_access(lease.client, renewal.source_ip, renewal.source_host)
                    if not allowed:
                        if renewal.source_ip == lease.source_ip:  # its end record is this request's record
                            self._drop_lease(lease)
                            usage.append(self._lease_record(lease, now, "checkin", False, "access_denied"))
                            denied[lease_id] = f"denied by access {why}; the lease was released"
                        else:
                            refused_here.append(lease_id)
                            denied[lease_id] = f"denied by access {why}"
                        continue
                lease.expires_at = now + lease.ttl_s
                self._in_use[lease.license_id].put(lease.lease_id, lease.expires_at)  # not the request's string
                renewed_in.add(lease.license_id)
                renewed[lease_id] = lease.expires_at
            lost += gone
            for reason, ids in (("lease_expired", gone), ("access_denied", refused_here)):
                if ids:
                    usage.append(UsageRecord(at=now, kind="heartbeat", granted=False, reason=reason,
                                             lease_id=ids[0], source_ip=renewal.source_ip))
        for license_id in renewed_in:
            # A renewal leaves the lease's entry in the in-use heap where it was: entries come due here as the
            # leases they were filed for are renewed, and are filed again at their time (`ExpiringSet`), so a
            # count read at the console looks at the few entries due, not at every lease.
            self._in_use[license_id].live_count(now)
        return Applied(
            Renewals(renewed=renewed, expired=lost, denied=denied),
            usage=usage,
            changed=bool(renewed or usage),
        )

    def _checkin(self, cmd: c.Checkin, now: float) -> Outcome[LeaseReleased]:
        """A check-in the access rules deny is refused; as with a heartbeat (see `_heartbeat`), one from the
        address the lease was checked out from also releases it, since the rules now deny its holder."""
        lease = self.leases.get(cmd.lease_id)
        if lease is not None and cmd.source_host is not None:
            allowed, why = self._client_access(lease.client, cmd.source_ip, cmd.source_host)
            if not allowed:
                if cmd.source_ip != lease.source_ip:
                    record = UsageRecord(at=now, kind="checkin", granted=False, reason="access_denied",
                                         product=lease.product, source_ip=cmd.source_ip)
                    return refused("access_denied", f"denied by access {why}", [record])
                self._drop_lease(lease)
                return refused(
                    "access_denied",
                    f"denied by access {why}; the lease was released",
                    [self._lease_record(lease, now, "checkin", False, "access_denied")],
                )
        return self._release(cmd.lease_id, now, granted=True, reason="ok", result=LeaseReleased)

    def _revoke_lease(self, cmd: c.RevokeLease, now: float) -> Outcome[LeaseRevoked]:
        return self._release(cmd.lease_id, now, granted=False, reason="revoked", result=LeaseRevoked)

    def _release(
        self, lease_id: str, now: float, *, granted: bool, reason: str, result: Callable[[str], R]
    ) -> Outcome[R]:
        """End a lease, by its holder (checkin) or by an administrator (revoke)."""
        lease = self.leases.get(lease_id)
        if lease is None:
            return refused("lease_not_found", f"no lease {lease_id} is held")
        self._drop_lease(lease)
        return Applied(
            result(lease.lease_id),
            usage=[self._lease_record(lease, now, "checkin", granted, reason)],
            changed=True,
        )

    def _reclaim_expired(self, cmd: c.ReclaimExpired, now: float) -> Outcome[Reclaimed]:
        """Drop the leases whose time is up (and, with `honour_from`, that have outlived one TTL from then too),
        in the order they ran out. The seats sets note in `_lapsed` the leases they expire, so this looks at
        those, not at every lease (it did: 10-16 ms at 300,000 leases, each reclaim while any ran out)."""
        for expiring in self._seat_sets():
            expiring.live_count(now)  # notes in `_lapsed` what ran out since it last counted
        expired: list[Lease] = []
        for lease_id in list(self._lapsed):
            lease = self.leases.get(lease_id)
            if lease is None or lease.expires_at > now:  # dropped, or renewed since (and in its set again)
                self._lapsed.discard(lease_id)
            elif cmd.honour_from + lease.ttl_s <= now:
                expired.append(lease)
        expired.sort(key=_ran_out_order)  # the set's order differs between processes: the log's replicas agree on this
        for lease in expired:
            self._drop_lease(lease)
        return Applied(
            Reclaimed([lease.lease_id for lease in expired]),
            usage=[self._lease_record(lease, now, "checkin", False, "lease_expired") for lease in expired],
            changed=bool(expired),
        )

