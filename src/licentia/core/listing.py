"""Leases, printers and clients in sorted order, kept up to date as the state changes.

The admin lists and the console's tables read pages of these orders: a page
costs O(log n + page size), a count over a range O(log n), whatever the number
of records. Each order reads as a sorted list of keys, a key being the sort
fields followed by the record's id (so keys are unique and a key is also a page
cursor); it holds the records or their ids, not the keys (`SortedIndex`).
The state calls `lease_added`, `lease_dropped`, and for printers and clients
`..._added`, `..._changing` (before it changes one), `..._changed` (after) and
`..._dropped`; like the rest of the core, this module is deterministic and does no I/O.

A snapshot of a large state holds the orders as positions of records (`ListingOrders`), so that loading it
builds them without a key per record or a sort (`Listings.in_order`).
"""

from __future__ import annotations

import bisect
import itertools
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import attrgetter
from typing import Any, Protocol

import msgspec

from licentia.core.model import Client, Lease, Printer

Key = tuple[Any, ...]
Passes = tuple[tuple[Callable[[Any], Any], bool], ...]  # (sort key, descending), applied in turn (`SortedIndex`)
TOP = "\U0010ffff"  # sorts after every character a name can hold
_GROUP = attrgetter("group")  # a printer's group, read from C: pairing 300,000 printers with theirs runs no Python code


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


class Order(Protocol):
    """What the lists read: a sorted order of keys (`SortedIndex`, `GroupedIndex`)."""

    shape: tuple[type, ...]

    def __len__(self) -> int: ...

    def walk(
        self, *, low: Key | None = None, high: Key | None = None, after: Key | None = None, descending: bool = False
    ) -> Iterator[Key]: ...

    def count(self, low: Key | None = None, high: Key | None = None) -> int: ...


class SortedIndex:
    """One order of one kind of record: the records (or their ids) themselves, in sorted blocks.

    No key is stored per record: `key` computes an entry's key whenever it is compared (a few dozen
    times per change, once per row read), so an order costs one list slot per record. At 300,000
    leases and printers the orders held a tuple per record each (about 200 MB); now they hold ~10 MB.
    An entry's key must stay the one it was filed with until it is removed, or be named to `remove` (`filed`):
    a record that changes in place is taken out before it changes (see `Listings`).
    `shape` is the type of each key field (for checking cursors). `passes` are sort keys that, applied in turn
    (each sort stable; True: descending), put entries in the order of `key` from what the records hold, where
    `key` makes a new object per record (minus a time: see `Listings.of`).
    """

    __slots__ = ("_blocks", "_key", "_len", "_maxes", "_passes", "block", "shape")

    def __init__(self, key: Callable[[Any], Key], *shape: type, block: int = 128, passes: Passes = ()) -> None:
        self._key = key
        self._passes = passes
        self._blocks: list[list[Any]] = []
        self._maxes: list[Key] = []  # the key of each block's last entry
        self._len = 0
        self.block = block  # entries per block when filled; a block splits at twice as many
        self.shape = shape

    def fill(self, entries: Iterable[Any]) -> None:
        """Put many entries in at once (sorted once: far faster than one at a time)."""
        ordered = [entry for block in self._blocks for entry in block]
        ordered.extend(entries)
        if self._passes:
            for by, descending in self._passes:
                ordered.sort(key=by, reverse=descending)
        else:
            ordered.sort(key=self._key)
        size, key = self.block, self._key
        self._blocks = [ordered[i : i + size] for i in range(0, len(ordered), size)]
        self._maxes = [key(block[-1]) for block in self._blocks]
        self._len = len(ordered)

    def fill_in_order(self, entries: list[Any]) -> bool:
        """Put in `entries`, already in key order, in place of what there was: a key computed per block, not per
        entry. False (and nothing changed) when the blocks' keys are not in order: they were not sorted."""
        size, key = self.block, self._key
        blocks = [entries[i : i + size] for i in range(0, len(entries), size)]
        maxes = [key(block[-1]) for block in blocks]
        if any(low >= high for low, high in itertools.pairwise(maxes)) or (blocks and key(blocks[0][0]) > maxes[0]):
            return False
        self._blocks, self._maxes, self._len = blocks, maxes, len(entries)
        return True

    def entries(self) -> Iterator[Any]:
        """The entries (records or ids), in order."""
        return itertools.chain.from_iterable(self._blocks)

    def add(self, entry: Any) -> None:
        key, blocks, maxes = self._key(entry), self._blocks, self._maxes
        if not blocks:
            blocks.append([entry])
            maxes.append(key)
            self._len += 1
            return
        if key < self._key(blocks[0][0]):  # before every entry (the newest of a newest-first order): first
            i = 0
            blocks[0].insert(0, entry)
        else:
            i = bisect.bisect_right(maxes, key)
            if i == len(maxes):  # after every entry (the newest time, say): at the end of the last block
                i -= 1
                blocks[i].append(entry)
                maxes[i] = key
            else:
                bisect.insort_right(blocks[i], entry, key=self._key)
        self._len += 1
        block = blocks[i]
        if len(block) > 2 * self.block:
            half = len(block) // 2
            blocks[i : i + 1] = [block[:half], block[half:]]
            maxes.insert(i, self._key(block[half - 1]))

    def remove(self, entry: Any, filed: Key | None = None) -> bool:
        """Take `entry` out; False if it is not there. Its key must be the one it was filed with, else `filed`
        names that key (every other entry's key being the one it was filed with)."""
        key = self._key(entry) if filed is None else filed
        maxes = self._maxes
        i = bisect.bisect_left(maxes, key)
        if i == len(maxes):
            return False
        block = self._blocks[i]
        key_of = self._key if filed is None else (lambda other: filed if other is entry else self._key(other))
        j = bisect.bisect_left(block, key, key=key_of)
        if j == len(block) or (block[j] is not entry and key_of(block[j]) != key):
            return False
        del block[j]
        self._len -= 1
        if not block:
            del self._blocks[i], maxes[i]
        elif j == len(block):
            maxes[i] = self._key(block[-1])
        return True

    def __len__(self) -> int:
        return self._len

    def _position(self, key: Key, after: bool) -> tuple[int, int]:
        """(block, offset) of the first entry whose key is >= `key` (> `key` when `after`)."""
        find = bisect.bisect_right if after else bisect.bisect_left
        i = find(self._maxes, key)
        if i == len(self._maxes):
            return i, 0
        return i, find(self._blocks[i], key, key=self._key)

    def _rank(self, position: tuple[int, int]) -> int:
        i, j = position
        return sum(len(block) for block in self._blocks[:i]) + j

    def walk(
        self, *, low: Key | None = None, high: Key | None = None, after: Key | None = None, descending: bool = False
    ) -> Iterator[Key]:
        """The keys in [low, high), in order (or in reverse), starting after the cursor `after`."""
        low_inclusive, high_inclusive = True, False
        if after is not None and not descending and (low is None or after >= low):
            low, low_inclusive = after, False
        if after is not None and descending and (high is None or after <= high):
            high, high_inclusive = after, False
        start = (0, 0) if low is None else self._position(low, after=not low_inclusive)
        end = (len(self._blocks), 0) if high is None else self._position(high, after=high_inclusive)
        return self._keys_between(start, end, descending)

    def _keys_between(self, start: tuple[int, int], end: tuple[int, int], descending: bool) -> Iterator[Key]:
        if start >= end:
            return
        key, blocks = self._key, self._blocks
        (first, offset), (last, stop) = start, end
        if stop == 0:  # the end is the start of block `last`: block `last - 1` is read to its end
            last, stop = last - 1, len(blocks[last - 1])
        # Block by block as the keys are asked for: a page reads a block or two of the range, however many the
        # range holds (listing every block of it first cost a page 0.3-0.5 ms at 300,000 entries).
        for i in (range(last, first - 1, -1) if descending else range(first, last + 1)):
            block = blocks[i]
            lo, hi = offset if i == first else 0, stop if i == last else len(block)
            if descending:
                for j in range(hi - 1, lo - 1, -1):
                    yield key(block[j])
            else:
                for j in range(lo, hi):
                    yield key(block[j])

    def count(self, low: Key | None = None, high: Key | None = None) -> int:
        """How many keys are in [low, high)."""
        end = self._len if high is None else self._rank(self._position(high, after=False))
        start = 0 if low is None else self._rank(self._position(low, after=False))
        return max(0, end - start)


class GroupedIndex:
    """An order whose keys start with a group name: one `SortedIndex` per group (its keys without the name).

    A record's group is not filed anywhere: a record that changed group is looked for in its new group's
    order, then in the others (there are few groups). Reads as one `SortedIndex` of keys (group, ...).
    """

    __slots__ = ("_groups", "_key", "_passes", "shape")

    def __init__(self, key: Callable[[Any], Key], *shape: type, passes: Passes = ()) -> None:
        self._key = key  # the key of an entry inside its group
        self._passes = passes
        self._groups: dict[str, SortedIndex] = {}
        self.shape = shape

    @staticmethod
    def _by_group(entries: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
        by_group: dict[str, list[Any]] = {}
        for group, entry in entries:
            by_group.setdefault(group, []).append(entry)
        return by_group

    def fill(self, entries: Iterable[tuple[str, Any]]) -> None:
        """Put many (group, entry) in at once."""
        for group, members in self._by_group(entries).items():
            self._index(group).fill(members)

    def fill_in_order(self, entries: Iterable[tuple[str, Any]]) -> bool:
        """(group, entry) pairs, each group's entries already in order (`SortedIndex.fill_in_order`), into an
        empty order."""
        return all(self._index(group).fill_in_order(members) for group, members in self._by_group(entries).items())

    def _index(self, group: str) -> SortedIndex:
        index = self._groups.get(group)
        if index is None:
            index = self._groups[group] = SortedIndex(self._key, *self.shape[1:], passes=self._passes)
        return index

    def add(self, group: str, entry: Any) -> None:
        self._index(group).add(entry)

    def remove(self, group: str, entry: Any) -> None:
        """Take `entry` out of `group`, else out of the group it is in."""
        index = self._groups.get(group)
        if index is not None and index.remove(entry):
            if not index:
                del self._groups[group]
            return
        for name in [name for name in self._groups if name != group]:
            index = self._groups.get(name)
            if index is not None and index.remove(entry):
                if not index:
                    del self._groups[name]
                return

    def __len__(self) -> int:
        return sum(len(index) for index in self._groups.values())

    def _ranges(self, low: Key | None, high: Key | None) -> Iterator[tuple[str, Key | None, Key | None]]:
        """Each group with keys in [low, high), and that range inside the group."""
        for group in sorted(self._groups):
            if (low is not None and low[0] > group) or (high is not None and (high[0] < group or high == (group,))):
                continue
            inner_low = low[1:] or None if low is not None and low[0] == group else None
            inner_high = high[1:] if high is not None and high[0] == group else None
            yield group, inner_low, inner_high

    def walk(
        self, *, low: Key | None = None, high: Key | None = None, after: Key | None = None, descending: bool = False
    ) -> Iterator[Key]:
        ranges = list(self._ranges(low, high))
        for group, inner_low, inner_high in reversed(ranges) if descending else ranges:
            inner_after = None
            if after is not None:
                if after[0] == group:
                    inner_after = after[1:]
                elif (after[0] < group) == descending:  # the cursor is past this whole group
                    continue
            for key in self._groups[group].walk(low=inner_low, high=inner_high, after=inner_after,
                                                descending=descending):
                yield (group, *key)

    def count(self, low: Key | None = None, high: Key | None = None) -> int:
        return sum(self._groups[group].count(inner_low, inner_high) for group, inner_low, inner_high in
                   self._ranges(low, high))


class ListingOrders(msgspec.Struct, frozen=True):
    """The orders of a state as positions of their entries in the lists of its leases, printers and clients (as a
    snapshot holds them), each an array of unsigned 32-bit little-endian numbers. The printers by group are the
    printers by when last seen, taken group by group."""

    leases_by_product: bytes
    leases_by_holder: bytes
    printers_by_seen: bytes
    printers_by_name: bytes
    clients_by_seen: bytes
    clients_by_host: bytes


def packed(positions: Iterable[int]) -> bytes:
    """`positions` as unsigned 32-bit little-endian numbers (also the columns of `store.record_columns`)."""
    numbers = array("I", positions)
    if sys.byteorder == "big":
        numbers.byteswap()
    return numbers.tobytes()


def unpacked(data: bytes, count: int) -> array[int]:
    """The positions in `data`; ValueError unless there are `count` of them (one past the list: IndexError when
    they are used)."""
    numbers = array("I")
    numbers.frombytes(data)
    if sys.byteorder == "big":
        numbers.byteswap()
    if len(numbers) != count:
        raise ValueError(f"{len(numbers)} positions do not order {count} records")
    return numbers


def _positions(ids: Iterable[str]) -> dict[str, int]:
    return dict(zip(ids, itertools.count()))


class Listings:
    """The orders the lists are read in.

    - leases by product (then time granted) and by holder (user, else host);
    - printers by when last seen (newest first: the key is minus the time), by name, and by group then last seen;
    - clients by when last seen (newest first) and by host.

    Every order holds the records and computes their keys from them; nothing is kept per record besides its
    slot in each order. Leases never change their keys while held, nor printers their names. A printer or
    client that changes is taken out of the orders its change may move it in before it changes
    (`printer_changing`, `client_changing`) and filed again after (`printer_changed`, `client_changed`); a
    client's host (its host name, else its address) seldom changes, so the host it was filed under is handed
    back and the client moved in that order only if it did. A printer's group is not kept (see `GroupedIndex`).
    """

    def __init__(self) -> None:
        # Newest first: by id, then by the time itself, descending (the sort is stable), not by minus the time.
        printers_seen: Passes = ((attrgetter("printer_id"), False), (self.printer_seen, True))
        clients_seen: Passes = ((attrgetter("client_id"), False), (attrgetter("last_seen"), True))
        self.leases_by_product = SortedIndex(self.lease_product_key, str, float, str)
        self.leases_by_holder = SortedIndex(self.lease_holder_key, str, float, str)
        self.printers_by_seen = SortedIndex(self.printer_seen_key, float, str, passes=printers_seen)
        self.printers_by_name = SortedIndex(self.printer_name_key, str, str)
        self.printers_by_group = GroupedIndex(self.printer_seen_key, str, float, str, passes=printers_seen)
        self.clients_by_seen = SortedIndex(self.client_seen_key, float, str, passes=clients_seen)
        self.clients_by_host = SortedIndex(self.client_host_key, str, str)

    # -- leases: their keys never change while they are held --------------------------------------

    @staticmethod
    def holder(lease: Lease) -> str:
        return text_key(lease.client.user or lease.client.host or lease.source_ip)

    @staticmethod
    def lease_product_key(lease: Lease) -> Key:
        return (lease.product, lease.granted_at, lease.lease_id)

    @staticmethod
    def lease_holder_key(lease: Lease) -> Key:
        client = lease.client
        return (text_key(client.user or client.host or lease.source_ip), lease.granted_at, lease.lease_id)

    def lease_added(self, lease: Lease) -> None:
        self.leases_by_product.add(lease)
        self.leases_by_holder.add(lease)

    def lease_dropped(self, lease: Lease) -> None:
        self.leases_by_product.remove(lease)
        self.leases_by_holder.remove(lease)

    # -- printers -----------------------------------------------------------------------------------

    @staticmethod
    def printer_seen(printer: Printer) -> float:
        """When the printer was last used here or (as a backup partner saw it) there."""
        return max(printer.last_used, printer.peer_last_used)

    @staticmethod
    def printer_seen_key(printer: Printer) -> Key:
        here, there = printer.last_used, printer.peer_last_used  # max() spelt out: it runs at every comparison
        return (-(there if there > here else here), printer.printer_id)

    @staticmethod
    def printer_name_key(printer: Printer) -> Key:
        return (text_key(printer.identity.name), printer.printer_id)

    def printer_added(self, printer: Printer) -> None:
        self.printers_by_name.add(printer)
        self.printer_changed(printer)

    def printer_changing(self, printer: Printer) -> None:
        """Before the printer's times or group change."""
        self.printers_by_seen.remove(printer)
        self.printers_by_group.remove(printer.group, printer)

    def printer_changed(self, printer: Printer) -> None:
        """After `printer_changing` and the change."""
        self.printers_by_seen.add(printer)
        self.printers_by_group.add(printer.group, printer)

    def printer_dropped(self, printer: Printer) -> None:
        if self.printers_by_name.remove(printer):
            self.printers_by_seen.remove(printer)
            self.printers_by_group.remove(printer.group, printer)

    def group_count(self, group: str) -> int:
        return self.printers_by_group.count(*exact_range(group))

    # -- clients ------------------------------------------------------------------------------------

    @staticmethod
    def client_seen_key(client: Client) -> Key:
        return (-client.last_seen, client.client_id)

    @staticmethod
    def client_host_key(client: Client) -> Key:
        return (text_key(client.info.host or client.source_ip), client.client_id)

    def client_added(self, client: Client) -> None:
        self.clients_by_seen.add(client)
        self.clients_by_host.add(client)

    def client_changing(self, client: Client) -> str:
        """Before the client's details, address or time last seen change: the host it is filed under (as
        given, not case-folded), for `client_changed`."""
        self.clients_by_seen.remove(client)
        return client.info.host or client.source_ip

    def client_changed(self, client: Client, filed_host: str) -> None:
        """After `client_changing` (which gave `filed_host`) and the change."""
        self.clients_by_seen.add(client)
        if (client.info.host or client.source_ip) != filed_host:
            self.clients_by_host.remove(client, filed=(text_key(filed_host), client.client_id))
            self.clients_by_host.add(client)

    def client_dropped(self, client: Client) -> None:
        if self.clients_by_host.remove(client):
            self.clients_by_seen.remove(client)

    def matches(self, leases: int, printers: int, clients: int) -> bool:
        """Whether these orders hold as many records as the state (a cheap check that none was missed)."""
        return (len(self.leases_by_product), len(self.printers_by_name), len(self.clients_by_host)) == (
            leases,
            printers,
            clients,
        )

    def positions(self, leases: Sequence[Lease], printers: Sequence[Printer],
                  clients: Sequence[Client]) -> ListingOrders | None:
        """These orders as positions in these lists (every record of the state, as a snapshot lists them); None if
        an order holds a record the lists do not (then the snapshot is written without them)."""
        lease_id, printer_id = attrgetter("lease_id"), attrgetter("printer_id")
        lease_at = _positions(map(lease_id, leases))
        printer_at = _positions(map(printer_id, printers))
        client_at = _positions(map(attrgetter("client_id"), clients))
        try:
            return self._positions_in(lease_at, printer_at, client_at)
        except KeyError:
            return None

    def _positions_in(self, lease_at: dict[str, int], printer_at: dict[str, int],
                      client_at: dict[str, int]) -> ListingOrders:
        lease_id, printer_id, client_id = attrgetter("lease_id"), attrgetter("printer_id"), attrgetter("client_id")
        return ListingOrders(
            leases_by_product=packed(map(lease_at.__getitem__, map(lease_id, self.leases_by_product.entries()))),
            leases_by_holder=packed(map(lease_at.__getitem__, map(lease_id, self.leases_by_holder.entries()))),
            printers_by_seen=packed(map(printer_at.__getitem__, map(printer_id, self.printers_by_seen.entries()))),
            printers_by_name=packed(map(printer_at.__getitem__, map(printer_id, self.printers_by_name.entries()))),
            clients_by_seen=packed(map(client_at.__getitem__, map(client_id, self.clients_by_seen.entries()))),
            clients_by_host=packed(map(client_at.__getitem__, map(client_id, self.clients_by_host.entries()))),
        )

    @classmethod
    def in_order(cls, leases: Sequence[Lease], printers: Sequence[Printer], clients: Sequence[Client],
                 orders: ListingOrders) -> Listings | None:
        """Built from `orders` (`positions` of these very lists) with no sort and a key per block, not per record;
        None when the orders do not fit the lists (then build them with `of`)."""
        try:
            return cls()._filled_in_order(leases, printers, clients, orders)
        except (ValueError, IndexError):  # not as many positions as records, or one past the end of its list
            return None

    def _filled_in_order(self, leases: Sequence[Lease], printers: Sequence[Printer], clients: Sequence[Client],
                         orders: ListingOrders) -> Listings | None:
        by_seen = list(map(printers.__getitem__, unpacked(orders.printers_by_seen, len(printers))))
        filled = (
            self.leases_by_product.fill_in_order(
                list(map(leases.__getitem__, unpacked(orders.leases_by_product, len(leases)))))
            and self.leases_by_holder.fill_in_order(
                list(map(leases.__getitem__, unpacked(orders.leases_by_holder, len(leases)))))
            and self.printers_by_seen.fill_in_order(by_seen)
            and self.printers_by_name.fill_in_order(
                list(map(printers.__getitem__, unpacked(orders.printers_by_name, len(printers)))))
            and self.printers_by_group.fill_in_order(zip(map(_GROUP, by_seen), by_seen, strict=True))
            and self.clients_by_seen.fill_in_order(
                list(map(clients.__getitem__, unpacked(orders.clients_by_seen, len(clients)))))
            and self.clients_by_host.fill_in_order(
                list(map(clients.__getitem__, unpacked(orders.clients_by_host, len(clients)))))
        )
        return self if filled else None

    @classmethod
    def of(cls, leases: Iterable[Lease], printers: Iterable[Printer], clients: Iterable[Client]) -> Listings:
        """Built from scratch (after loading a snapshot), each order sorted once.

        The newest-first orders are sorted by what the records hold (their `SortedIndex` passes), not by their
        keys: minus a time is a float made per record, and the interpreter keeps the last hundred floats (and
        thousands of the key tuples) freed in its free lists, scattered through the memory the keys took, where
        the orders' blocks filed next took their places and kept it resident: 5.5 MB at 60,000 leases +
        printers + clients, in as much time."""
        listings = cls()
        leases = list(leases)
        listings.leases_by_product.fill(leases)
        listings.leases_by_holder.fill(leases)
        printers = list(printers)
        listings.printers_by_seen.fill(printers)
        listings.printers_by_group.fill(zip(map(_GROUP, printers), printers, strict=True))
        listings.printers_by_name.fill(printers)
        clients = list(clients)
        listings.clients_by_seen.fill(clients)
        listings.clients_by_host.fill(clients)
        return listings
