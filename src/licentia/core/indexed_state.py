"""The license state with the indexes derived from its data, and what every kind of command shares.

`IndexedState` adds to the declared data (`licentia.core.state_data.StateData`) what is computed from it and
never written to a snapshot: the lease of each client request, the licenses' in-use sets, the leases held
per license and the sorted listings. The command handlers (`licentia.core.seats`, `.printing`,
`.administration`, `.relationships`) build on it; `licentia.core.state.LicenseState` puts them together.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from licentia.core import commands as c
from licentia.core.access import RequestOrigin, default_decision, matching_rule
from licentia.core.expiring import ExpiringSet
from licentia.core.lease_requests import LeaseRequests, RequestKey
from licentia.core.listing import Listings
from licentia.core.model import BLOCKED_GROUP, Client, ClientInfo, Lease, License, Printer, UsageRecord
from licentia.core.printers import client_id
from licentia.core.state_data import StateData

DAY = 86400.0

def request_key(client: ClientInfo, source_ip: str, request_id: str) -> RequestKey:
    return (client_id(client), source_ip, request_id)


def request_record(
    cmd: c.PrintCheck | c.Checkout, now: float, granted: bool, reason: str, license_id: str = "", printer_id: str = ""
) -> UsageRecord:
    """The usage record of a print check (naming its printer) or a checkout (naming its lease once granted)."""
    return UsageRecord(
        at=now,
        kind="print" if isinstance(cmd, c.PrintCheck) else "checkout",
        granted=granted,
        reason=reason,
        product=cmd.product,
        license_id=license_id,
        printer_id=printer_id,
        printer_name=cmd.printer.name if isinstance(cmd, c.PrintCheck) else "",
        lease_id=cmd.lease_id if isinstance(cmd, c.Checkout) and granted else "",
        client_host=cmd.client.host,
        client_user=cmd.client.user,
        application=cmd.client.application,
        source_ip=cmd.source_ip,
    )


class IndexedState(StateData):
    def __init__(self) -> None:
        super().__init__()
        self.lease_by_request = LeaseRequests()
        self._in_use: dict[str, ExpiringSet] = {}
        self._held_count: dict[str, int] = {}  # leases held per license, expired or not, until dropped
        self._listings = Listings()
        # Leases that ran out, noted by their license's in-use set when it dropped them (`ExpiringSet.lapsed`), or
        # held for no installed license: where `_reclaim_expired` looks, instead of at every lease. Some may have
        # been renewed (honoured after a failover) or dropped since: each is looked at again there.
        self._lapsed: set[str] = set()

    def _seat_sets(self) -> Iterator[ExpiringSet]:
        return (expiring for expiring in self._in_use.values() if expiring.lapsed is not None)

    def expired_leases(self, now: float) -> list[Lease]:
        """The leases held whose time is up by `now`, not yet reclaimed, changing nothing: the lapsed ones and
        the members the seats sets have expired (their entries due by `now`), not a pass over every lease."""
        found = set().union(*(expiring.expired_by(now) for expiring in self._seat_sets()))
        found.update(self._lapsed)
        return [lease for lease_id in found if (lease := self.leases.get(lease_id)) is not None
                and lease.expires_at <= now]

    def leases_expire_by(self, now: float) -> bool:
        """Whether a lease's time is up by `now` (as `expired_leases`, stopping at the first). Asked every few
        seconds by the server's reclaim loop; it scanned every lease (~7 ms at 300,000) once one had expired."""
        if any((lease := self.leases.get(lease_id)) is not None and lease.expires_at <= now
               for lease_id in self._lapsed):
            return True
        return any(expiring.any_expired_by(now) for expiring in self._seat_sets())

    def _mark(self, via: str = "") -> int:
        """The next change sequence number; a change made here (not taken from the partner) is also 'own'."""
        self.change_seq += 1
        if not via:
            self.own_change_seq = self.change_seq
        return self.change_seq

    def _valid_licenses(self, product: str, unit: str, now: float, feature: str | None = None) -> list[License]:
        found = [
            lic
            for lic in self.licenses.values()
            if lic.terms.product == product
            and lic.terms.unit == unit
            and lic.is_valid_at(now)
            and (feature is None or feature in lic.terms.features)
        ]
        found.sort(key=lambda lic: (lic.terms.expires, lic.id))
        return found

    def used(self, license_id: str, now: float) -> int:
        return self._in_use[license_id].live_count(now)

    # -- clients and access ---------------------------------------------------------------------

    def _touch_client(self, info: ClientInfo, source_ip: str, now: float) -> Client:
        key = client_id(info)
        client = self.clients.get(key)
        filed_host = None
        if client is None:
            client = self.clients[key] = Client(
                client_id=key, info=info, source_ip=source_ip, first_seen=now, last_seen=now
            )
        else:
            filed_host = self._listings.client_changing(client)
        # Replace, never mutate: `client.info` may be the very ClientInfo a lease holds.
        client.info = msgspec.structs.replace(client.info, version=info.version)
        client.source_ip = source_ip
        client.last_seen = now
        client.requests += 1
        client.seq, client.via = self._mark(), ""
        if filed_host is None:
            self._listings.client_added(client)
        else:
            self._listings.client_changed(client, filed_host)
        return client

    def _client_access(self, client: ClientInfo, source_ip: str, source_host: str | None) -> tuple[bool, str]:
        if not self.access_rules:  # the default policy decides: no origin to build (once per lease of a batch)
            return default_decision(self.settings.default_access_policy)
        return self.access_decision(RequestOrigin(user=client.user, host=client.host, ip=source_ip,
                                                  source_host=source_host))

    def access_decision(self, origin: RequestOrigin) -> tuple[bool, str]:
        """(allowed, why) for a request from `origin`; `why` names the rule that decided."""
        rule = matching_rule(self.access_rules, origin)
        if rule is None:
            return default_decision(self.settings.default_access_policy)
        return rule.action == "allow", f"rule {rule.rule_id!r} ({rule.action})"

    def _move_printer(self, printer: Printer, group: str, via: str = "") -> None:
        """Put a printer in a group; a blocked printer stops counting against a license at once."""
        self._listings.printer_changing(printer)
        printer.group = group
        printer.seq, printer.via = self._mark(via), via
        self._listings.printer_changed(printer)
        if group == BLOCKED_GROUP and printer.license_id in self._in_use:
            self._in_use[printer.license_id].discard(printer.printer_id)
            printer.license_id = None

    # -- leases ---------------------------------------------------------------------------------

    def _lease_record(self, lease: Lease, now: float, kind: str, granted: bool, reason: str) -> UsageRecord:
        return UsageRecord(
            at=now,
            kind=kind,
            granted=granted,
            reason=reason,
            product=lease.product,
            license_id=lease.license_id,
            lease_id=lease.lease_id,
            client_host=lease.client.host,
            client_user=lease.client.user,
            application=lease.client.application,
            source_ip=lease.source_ip,
        )

    def _drop_lease(self, lease: Lease) -> None:
        del self.leases[lease.lease_id]
        self._listings.lease_dropped(lease)
        self._held_count[lease.license_id] -= 1
        self.lease_by_request.discard(lease)
        if lease.license_id in self._in_use:
            self._in_use[lease.license_id].discard(lease.lease_id)
        self._lapsed.discard(lease.lease_id)

    def _new_in_use(self, lic: License) -> ExpiringSet:
        """A license's in-use set: its printers put with the time last used (the printer window is the set's
        offset), its leases with the time they expire (noting those that run out in `_lapsed`)."""
        if lic.terms.unit == "printers":
            return ExpiringSet(self.settings.printer_window_days * DAY)
        return ExpiringSet(0.0, self._lapsed)

    def _rebuild_in_use(self) -> None:
        times: dict[str, list[float]] = {license_id: [] for license_id in self.licenses}
        keys: dict[str, list[str]] = {license_id: [] for license_id in self.licenses}
        for printer in self.printers.values():
            if printer.license_id in times:
                times[printer.license_id].append(printer.last_used)
                keys[printer.license_id].append(printer.printer_id)
        for lease in self.leases.values():
            if lease.license_id in times:
                times[lease.license_id].append(lease.expires_at)
                keys[lease.license_id].append(lease.lease_id)
            else:
                self._lapsed.add(lease.lease_id)  # no set will note it: reclaimed once its time is up
        self._in_use = {license_id: self._new_in_use(lic) for license_id, lic in self.licenses.items()}
        for license_id, expiring in self._in_use.items():
            expiring.fill(times[license_id], keys[license_id])

    def listings(self) -> Listings:
        """The sorted orders of leases, printers and clients (rebuilt if a record was ever put in without them)."""
        if not self._listings.matches(len(self.leases), len(self.printers), len(self.clients)):
            self._listings = Listings.of(self.leases.values(), self.printers.values(), self.clients.values())
        return self._listings


    def counted_at(self, license_id: str, now: float) -> int:
        """How many printers and seats count against the license at `now`, pruning nothing.

        Not `used()`: its pruning at a reader's clock would make a replica that is replaying the log (or
        applying entries stamped earlier) count fewer seats than the others."""
        return self._in_use[license_id].count_live(now)

    def counts_against(self, license_id: str | None, member: str) -> bool:
        """Whether the printer or lease `member` is in the license's in-use set."""
        return license_id is not None and license_id in self._in_use and member in self._in_use[license_id]
