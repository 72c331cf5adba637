"""Leases, printers and clients in sorted order, kept up to date as the state changes.

The admin lists and the console's tables read pages of these orders: a page
costs O(log n + page size), a count over a range O(log n), whatever the number
of records. Each order is a sorted list of keys, a key being the sort fields
followed by the record's id (so keys are unique and a key is also a page
cursor). The state calls `lease_added`, `lease_dropped`, `printer_changed` and
`client_changed` where it changes those records; like the rest of the core,
this module is deterministic and does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sortedcontainers import SortedList  # type: ignore[import-untyped]

from licentia.core.model import Client, Lease, Printer

Key = tuple[Any, ...]
TOP = "\U0010ffff"  # sorts after every character a name can hold


def text_key(value: str) -> str:
    """How names are compared, sorted and searched: case-folded (the name itself when it already is, so that
    the sort keys of the many lower-case names cost no second copy)."""
    folded = value.casefold()
    return value if folded == value else folded


def prefix_range(prefix: str) -> tuple[Key, Key]:
    """The keys whose first field starts with `prefix` (already case-folded)."""
    return (prefix,), (prefix + TOP,)


def exact_range(value: str) -> tuple[Key, Key]:
    """The keys whose first field is `value`."""
    return (value,), (value + "\x00",)


def key_fits(key: Key, shape: tuple[type, ...]) -> bool:
    """Whether `key` (a cursor a client sent back) has these fields, so comparing it with keys cannot fail."""
    return len(key) == len(shape) and all(
        type(value) is kind or (kind is float and type(value) is int) for value, kind in zip(key, shape, strict=True)
    )


class SortedIndex:
    """One order of one kind of record. `shape` is the type of each key field (for checking cursors)."""

    __slots__ = ("_keys", "shape")

    def __init__(self, *shape: type) -> None:
        self._keys: SortedList = SortedList()
        self.shape = shape

    def fill(self, keys: list[Key]) -> None:
        """Put many keys in at once (sorted once: far faster than one at a time)."""
        self._keys.update(keys)

    def add(self, key: Key) -> None:
        self._keys.add(key)

    def remove(self, key: Key) -> None:
        self._keys.discard(key)

    def __len__(self) -> int:
        return len(self._keys)

    def walk(
        self, *, low: Key | None = None, high: Key | None = None, after: Key | None = None, descending: bool = False
    ) -> Iterator[Key]:
        """The keys in [low, high), in order (or in reverse), starting after the cursor `after`."""
        low_inclusive, high_inclusive = True, False
        if after is not None and not descending and (low is None or after >= low):
            low, low_inclusive = after, False
        if after is not None and descending and (high is None or after <= high):
            high, high_inclusive = after, False
        return self._keys.irange(low, high, (low_inclusive, high_inclusive), reverse=descending)

    def count(self, low: Key | None = None, high: Key | None = None) -> int:
        """How many keys are in [low, high)."""
        end = len(self._keys) if high is None else self._keys.bisect_left(high)
        start = 0 if low is None else self._keys.bisect_left(low)
        return max(0, end - start)


class Listings:
    """The orders the lists are read in.

    - leases by product (then time granted) and by holder (user, else host);
    - printers by when last seen (newest first: the key is minus the time), by name, and by group then last seen;
    - clients by when last seen (newest first) and by host.
    """

    def __init__(self) -> None:
        self.leases_by_product = SortedIndex(str, float, str)
        self.leases_by_holder = SortedIndex(str, float, str)
        self.printers_by_seen = SortedIndex(float, str)
        self.printers_by_name = SortedIndex(str, str)
        self.printers_by_group = SortedIndex(str, float, str)
        self.clients_by_seen = SortedIndex(float, str)
        self.clients_by_host = SortedIndex(str, str)
        # Keys that change with the record, as they were filed (records are changed in place). A printer's
        # is its by-group key; its by-seen key is that key without the group (one tuple less per printer).
        self._printer_filed: dict[str, Key] = {}
        self._client_filed: dict[str, Key] = {}

    # -- leases: their keys never change while they are held --------------------------------------

    @staticmethod
    def holder(lease: Lease) -> str:
        return text_key(lease.client.user or lease.client.host or lease.source_ip)

    def lease_added(self, lease: Lease) -> None:
        self.leases_by_product.add((lease.product, lease.granted_at, lease.lease_id))
        self.leases_by_holder.add((self.holder(lease), lease.granted_at, lease.lease_id))

    def lease_dropped(self, lease: Lease) -> None:
        self.leases_by_product.remove((lease.product, lease.granted_at, lease.lease_id))
        self.leases_by_holder.remove((self.holder(lease), lease.granted_at, lease.lease_id))

    # -- printers -----------------------------------------------------------------------------------

    @staticmethod
    def printer_seen(printer: Printer) -> float:
        """When the printer was last used here or (as a backup partner saw it) there."""
        return max(printer.last_used, printer.peer_last_used)

    def printer_changed(self, printer: Printer) -> None:
        pid = printer.printer_id
        seen = -self.printer_seen(printer)
        new = (printer.group, seen, pid)
        old = self._printer_filed.get(pid)
        if old == new:
            return
        if old is None:
            self.printers_by_name.add((text_key(printer.identity.name), pid))
        else:
            self.printers_by_seen.remove(old[1:])
            self.printers_by_group.remove(old)
        self.printers_by_seen.add((seen, pid))
        self.printers_by_group.add(new)
        self._printer_filed[pid] = new

    def printer_dropped(self, printer: Printer) -> None:
        filed = self._printer_filed.pop(printer.printer_id, None)
        if filed is not None:
            self.printers_by_seen.remove(filed[1:])
            self.printers_by_group.remove(filed)
            self.printers_by_name.remove((text_key(printer.identity.name), printer.printer_id))

    def group_count(self, group: str) -> int:
        return self.printers_by_group.count(*exact_range(group))

    # -- clients ------------------------------------------------------------------------------------

    def client_changed(self, client: Client) -> None:
        cid = client.client_id
        new = (-client.last_seen, cid)
        old = self._client_filed.get(cid)
        if old == new:
            return
        if old is None:
            self.clients_by_host.add((text_key(client.info.host or client.source_ip), cid))
        else:
            self.clients_by_seen.remove(old)
        self.clients_by_seen.add(new)
        self._client_filed[cid] = new

    def client_dropped(self, client: Client) -> None:
        filed = self._client_filed.pop(client.client_id, None)
        if filed is not None:
            self.clients_by_seen.remove(filed)
            self.clients_by_host.remove((text_key(client.info.host or client.source_ip), client.client_id))

    def matches(self, leases: int, printers: int, clients: int) -> bool:
        """Whether these orders hold as many records as the state (a cheap check that none was missed)."""
        return (len(self.leases_by_product), len(self._printer_filed), len(self._client_filed)) == (
            leases,
            printers,
            clients,
        )

    @classmethod
    def of(cls, leases: Iterable[Lease], printers: Iterable[Printer], clients: Iterable[Client]) -> Listings:
        """Built from scratch (after loading a snapshot), each order sorted once."""
        listings = cls()
        leases = list(leases)
        listings.leases_by_product.fill([(lease.product, lease.granted_at, lease.lease_id) for lease in leases])
        listings.leases_by_holder.fill([(cls.holder(lease), lease.granted_at, lease.lease_id) for lease in leases])
        by_seen, by_group, by_name = [], [], []
        for printer in printers:
            seen = -cls.printer_seen(printer)
            filed = listings._printer_filed[printer.printer_id] = (printer.group, seen, printer.printer_id)
            by_seen.append((seen, printer.printer_id))
            by_group.append(filed)
            by_name.append((text_key(printer.identity.name), printer.printer_id))
        listings.printers_by_seen.fill(by_seen)
        listings.printers_by_group.fill(by_group)
        listings.printers_by_name.fill(by_name)
        clients_by_host = []
        for client in clients:
            listings._client_filed[client.client_id] = (-client.last_seen, client.client_id)
            clients_by_host.append((text_key(client.info.host or client.source_ip), client.client_id))
        listings.clients_by_seen.fill(list(listings._client_filed.values()))
        listings.clients_by_host.fill(clients_by_host)
        return listings
