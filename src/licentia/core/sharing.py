"""One copy of each value that records decoded from a snapshot repeat.

In a running server records share their values: a lease and its holder's registry entry hold the very
same `ClientInfo`, every lease of a product the same product name, every printer of a group the same
group name. Decoding a snapshot gives each record its own copy of every string and number; at 300,000
leases and printers those copies were about a third of the server's memory after a restart. `share_values`
gives the records one copy each again. Values are only replaced by equal values of the same type, so
nothing the state computes or encodes changes; the pools live only while the snapshot is being loaded.

Fields that are unique per record (lease, request, printer and client ids, printer names) are left alone:
pooling them would cost a table entry each and share nothing. Empty strings (the usual `via`) are one
object already.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from licentia.core.model import Client, ClientInfo, Lease, Printer


class ValuePool:
    """Equal strings, numbers and client details collapsed to one object each."""

    __slots__ = ("_clients", "_numbers", "_texts", "_times")

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._numbers: dict[float, float] = {}
        self._clients: dict[tuple[str, str, str, str], ClientInfo] = {}
        self._times: dict[float, float] = {}  # when each client was last seen: a lease granted then shares it

    def text(self, value: str) -> str:
        return self._texts.setdefault(value, value)

    def number(self, value: float) -> float:
        """`value`, or an equal float seen before (never -0.0 for 0.0, nor an int for a float)."""
        if type(value) is not float or (value == 0.0 and math.copysign(1.0, value) < 0):
            return value
        return self._numbers.setdefault(value, value)

    # The loops below call the pools' methods directly: they run for every record at start-up.

    def share_clients(self, clients: Iterable[Client]) -> None:
        text, client_info, time = self._texts.setdefault, self.client, self._times.setdefault
        for client in clients:
            client.info = client_info(client.info)
            client.source_ip = text(client.source_ip, client.source_ip)
            client.client_id = text(client.client_id, client.client_id)  # request keys name clients by it
            client.last_seen = time(client.last_seen, client.last_seen)
            if client.first_seen == client.last_seen != 0.0:
                client.first_seen = client.last_seen

    def share_leases(self, leases: Iterable[Lease]) -> None:
        """After `share_clients` of the same state (a lease takes its holder's `ClientInfo`, and the float of
        the time its holder was last seen when that is when it was granted)."""
        text, numbers, client_info, times = self._texts.setdefault, self._numbers.setdefault, self.client, self._times
        for lease in leases:
            lease.client = client_info(lease.client)
            # A lease's holder was last seen when it was granted, unless the holder asked again since.
            lease.granted_at = times.get(lease.granted_at, lease.granted_at)
            lease.license_id = text(lease.license_id, lease.license_id)
            lease.product = text(lease.product, lease.product)
            if lease.feature is not None:
                lease.feature = text(lease.feature, lease.feature)
            lease.source_ip = text(lease.source_ip, lease.source_ip)
            ttl = lease.ttl_s
            if type(ttl) is float and (ttl or math.copysign(1.0, ttl) > 0):  # as `number`, without a call per lease
                lease.ttl_s = numbers(ttl, ttl)

    def share_printers(self, printers: Iterable[Printer]) -> None:
        text, numbers = self._texts.setdefault, self._numbers.setdefault
        for printer in printers:
            identity = printer.identity
            identity.driver = text(identity.driver, identity.driver)
            identity.port = text(identity.port, identity.port)
            identity.location = text(identity.location, identity.location)
            printer.group = text(printer.group, printer.group)
            if printer.license_id is not None:
                printer.license_id = text(printer.license_id, printer.license_id)
            peer = printer.peer_last_used
            if type(peer) is float and (peer or math.copysign(1.0, peer) > 0):  # as `number`, no call per printer
                printer.peer_last_used = numbers(peer, peer)
            if printer.first_seen == printer.last_used != 0.0:  # a printer used once
                printer.first_seen = printer.last_used

    def client(self, info: ClientInfo) -> ClientInfo:
        """The first `ClientInfo` seen with these details (its strings shared in turn)."""
        key = (info.host, info.user, info.application, info.version)
        found = self._clients.get(key)
        if found is None:
            info.host, info.application, info.version = (
                self.text(info.host), self.text(info.application), self.text(info.version))
            # Filed by the shared strings: a key holding the decoded copies would keep them until the pool goes.
            found = self._clients[(info.host, info.user, info.application, info.version)] = info
        return found

    def forget_clients(self) -> None:
        """Drop what only the clients and leases share (call it once both are shared): the places it held in
        memory are then taken by what is decoded next instead of staying empty among the records."""
        self._clients = {}
        self._times = {}


def share_values(leases: Iterable[Lease], printers: Iterable[Printer], clients: Iterable[Client]) -> ValuePool:
    """Make freshly decoded records share the values they repeat (changing no value); returns the pool, for
    what the caller builds from the same records (then drop it)."""
    pool = ValuePool()
    pool.share_clients(clients)  # first: a lease takes its holder's ClientInfo
    pool.share_leases(leases)
    pool.share_printers(printers)
    return pool
