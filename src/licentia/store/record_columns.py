"""A large state's clients, leases and printers as columns over tables of the values they share (the snapshot
file's version 2, `store.snapshot_file`).

Version 1 held each record as a map of its fields: decoding made one object per field of every record, then
Python code run per record made them share what they repeat (`core.sharing`), 1.5-1.8 s of CPU at 300,000 leases
and printers. Here every string a record could share (products, license ids, groups, addresses, client details'
strings...) is a position in one table of distinct strings, every time and TTL a position in one table of floats
(holding one float for each value `core.sharing` shares, see `_numbers`), every client details a position in one
table of distinct `ClientInfo`; positions are unsigned 32-bit numbers, packed in bytes. Values unique to a record
(its id, a printer's name, a lease's expiry, counters, a user name) are plain lists. Loading decodes the tables,
then builds each record with one call of its type from C (`map`): no Python code runs per record, and equal values
are one object, as `core.sharing` makes them.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, count
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

import msgspec

from licentia.core.listing import packed, unpacked
from licentia.core.model import Client, ClientInfo, Lease, Printer, PrinterIdentity

V = TypeVar("V")

_DETAILS = attrgetter("host", "user", "application", "version")  # what a ClientInfo is told apart by


class ClientInfoColumns(msgspec.Struct, array_like=True):
    host: bytes  # positions in the texts
    user: list[str]  # all but unique to a client
    application: bytes
    version: bytes


class ClientColumns(msgspec.Struct, array_like=True):
    client_id: list[str]  # unique
    info: bytes  # positions in the client details
    source_ip: bytes
    first_seen: bytes  # positions in the numbers
    last_seen: bytes
    requests: list[int]
    seq: list[int]
    via: bytes


class LeaseColumns(msgspec.Struct, array_like=True):
    lease_id: list[str]
    request_id: list[str]
    license_id: bytes
    product: bytes
    feature: bytes
    client: bytes
    source_ip: bytes
    granted_at: bytes
    expires_at: list[float]
    ttl_s: bytes


class PrinterColumns(msgspec.Struct, array_like=True):
    printer_id: list[str]
    name: list[str]
    driver: bytes
    port: bytes
    location: bytes
    group: bytes
    first_seen: bytes
    last_used: bytes
    license_id: bytes
    uses: list[int]
    peer_last_used: bytes
    seq: list[int]
    via: bytes


# Records are built from their columns by position: the columns are declared in the records' order.
assert ClientColumns.__struct_fields__ == Client.__struct_fields__
assert LeaseColumns.__struct_fields__ == Lease.__struct_fields__
assert ClientInfoColumns.__struct_fields__ == ClientInfo.__struct_fields__
assert PrinterColumns.__struct_fields__ == (
    "printer_id", *PrinterIdentity.__struct_fields__, *Printer.__struct_fields__[2:])
assert Printer.__struct_fields__[:2] == ("printer_id", "identity")


class RecordColumns(msgspec.Struct, array_like=True):
    """The clients, leases and printers of a state, in the order the state lists them."""

    texts: list[str | None]
    numbers: bytes  # distinct floats, 64-bit little-endian
    infos: ClientInfoColumns
    clients: ClientColumns
    leases: LeaseColumns
    printers: PrinterColumns

    @classmethod
    def of(cls, clients: Sequence[Client], leases: Sequence[Lease], printers: Sequence[Printer]) -> RecordColumns:
        """The columns of these records (in the forked child that writes the snapshot: calls from C, but for the
        comprehensions placing the times, `_numbers`)."""
        def column(records: Sequence[Any], name: str) -> list[Any]:
            return list(map(attrgetter(name), records))

        identities = column(printers, "identity")
        client_details = list(map(_DETAILS, column(clients, "info")))
        lease_details = list(map(_DETAILS, column(leases, "client")))
        infos = _Table([client_details, lease_details])
        info_keys = infos.values
        text_columns = {
            "hosts": list(map(itemgetter(0), info_keys)),
            "applications": list(map(itemgetter(2), info_keys)), "versions": list(map(itemgetter(3), info_keys)),
            **{f"client.{name}": column(clients, name) for name in ("source_ip", "via")},
            **{f"lease.{name}": column(leases, name) for name in ("license_id", "product", "feature", "source_ip")},
            **{f"identity.{name}": column(identities, name) for name in ("driver", "port", "location")},
            **{f"printer.{name}": column(printers, name) for name in ("group", "license_id", "via")},
        }
        number_columns: dict[str, list[float]] = {
            **{f"client.{name}": column(clients, name) for name in ("first_seen", "last_seen")},
            **{f"lease.{name}": column(leases, name) for name in ("granted_at", "ttl_s")},
            **{f"printer.{name}": column(printers, name)
               for name in ("first_seen", "last_used", "peer_last_used")},
        }
        texts = _Table(text_columns.values())
        text_at = texts.positions
        number_table, number_positions = _numbers(number_columns)
        return cls(
            texts=texts.values,
            numbers=_doubles_bytes(number_table),
            infos=ClientInfoColumns(host=text_at(text_columns["hosts"]), user=list(map(itemgetter(1), info_keys)),
                                    application=text_at(text_columns["applications"]),
                                    version=text_at(text_columns["versions"])),
            clients=ClientColumns(
                client_id=column(clients, "client_id"),
                info=infos.positions(client_details),
                source_ip=text_at(text_columns["client.source_ip"]),
                first_seen=number_positions["client.first_seen"],
                last_seen=number_positions["client.last_seen"],
                requests=column(clients, "requests"), seq=column(clients, "seq"),
                via=text_at(text_columns["client.via"])),
            leases=LeaseColumns(
                lease_id=column(leases, "lease_id"), request_id=column(leases, "request_id"),
                license_id=text_at(text_columns["lease.license_id"]), product=text_at(text_columns["lease.product"]),
                feature=text_at(text_columns["lease.feature"]),
                client=infos.positions(lease_details),
                source_ip=text_at(text_columns["lease.source_ip"]),
                granted_at=number_positions["lease.granted_at"],
                expires_at=column(leases, "expires_at"), ttl_s=number_positions["lease.ttl_s"]),
            printers=PrinterColumns(
                printer_id=column(printers, "printer_id"), name=column(identities, "name"),
                driver=text_at(text_columns["identity.driver"]), port=text_at(text_columns["identity.port"]),
                location=text_at(text_columns["identity.location"]), group=text_at(text_columns["printer.group"]),
                first_seen=number_positions["printer.first_seen"],
                last_used=number_positions["printer.last_used"],
                license_id=text_at(text_columns["printer.license_id"]), uses=column(printers, "uses"),
                peer_last_used=number_positions["printer.peer_last_used"], seq=column(printers, "seq"),
                via=text_at(text_columns["printer.via"])),
        )

    def records(self) -> tuple[list[Client], list[Lease], list[Printer]]:
        """The clients, leases and printers, each value they share one object. ValueError if the columns do not
        fit each other (IndexError if a position is past its table)."""
        texts: list[Any] = self.texts  # strings, and None for no feature or license
        numbers = _doubles(self.numbers)
        c, le, p = self.clients, self.leases, self.printers
        clients, leases, printers = len(c.client_id), len(le.lease_id), len(p.printer_id)
        lengths = (len(c.requests), len(c.seq), len(le.request_id), len(le.expires_at), len(p.name), len(p.uses),
                   len(p.seq))
        if lengths != (clients, clients, leases, leases, printers, printers, printers):
            raise ValueError("the columns of the snapshot's records are not as long as each other")
        i = self.infos
        details = len(i.user)
        infos = list(map(ClientInfo, _at(texts, i.host, details), i.user,
                         _at(texts, i.application, details), _at(texts, i.version, details)))
        return (
            list(map(Client, c.client_id, _at(infos, c.info, clients),
                     _at(texts, c.source_ip, clients), _at(numbers, c.first_seen, clients),
                     _at(numbers, c.last_seen, clients), c.requests, c.seq, _at(texts, c.via, clients))),
            list(map(Lease, le.lease_id, le.request_id, _at(texts, le.license_id, leases),
                     _at(texts, le.product, leases), _at(texts, le.feature, leases), _at(infos, le.client, leases),
                     _at(texts, le.source_ip, leases), _at(numbers, le.granted_at, leases), le.expires_at,
                     _at(numbers, le.ttl_s, leases))),
            list(map(Printer, p.printer_id,
                     map(PrinterIdentity, p.name, _at(texts, p.driver, printers), _at(texts, p.port, printers),
                         _at(texts, p.location, printers)),
                     _at(texts, p.group, printers), _at(numbers, p.first_seen, printers),
                     _at(numbers, p.last_used, printers), _at(texts, p.license_id, printers), p.uses,
                     _at(numbers, p.peer_last_used, printers), p.seq, _at(texts, p.via, printers))),
        )


def _numbers(columns: dict[str, list[float]]) -> tuple[array[float], dict[str, bytes]]:
    """The table of floats and each column's positions in it, sharing what `core.sharing` shares: one float per
    distinct time a client was last seen, a lease granted then takes it; a client's (a printer's) first time seen
    is its last time seen (used) when they are equal; one float per distinct TTL and partner's time used. The
    printers' times used are placed as they come, and so is any other time (it is its record's own)."""
    if any(map(_holds_negative_zero, columns.values())):  # as a dict's key -0.0 is 0.0: share floats by their bits
        bits = {name: _bits(values) for name, values in columns.items()}
        table = _Table(bits.values())
        return array("d", array("Q", table.values).tobytes()), {name: table.positions(v) for name, v in bits.items()}
    ttl_s, peer_last_used = columns["lease.ttl_s"], columns["printer.peer_last_used"]
    pooled = _Table([ttl_s, peer_last_used])
    floats = list(pooled.values)

    def placed(value: float) -> int:
        floats.append(value)
        return len(floats) - 1

    client_last = columns["client.last_seen"]
    times = _Table([client_last], start=len(floats))
    floats += times.values
    time_at = times.at
    last_seen = list(map(time_at.__getitem__, client_last))
    first_seen = [at if first == last != 0.0 else placed(first)
                  for first, last, at in zip(columns["client.first_seen"], client_last, last_seen, strict=True)]
    granted_at = [at if (at := time_at.get(granted)) is not None else placed(granted)
                  for granted in columns["lease.granted_at"]]
    positions = {"client.last_seen": packed(last_seen), "client.first_seen": packed(first_seen),
                 "lease.granted_at": packed(granted_at), "lease.ttl_s": pooled.positions(ttl_s),
                 "printer.peer_last_used": pooled.positions(peer_last_used)}
    printer_last, start = columns["printer.last_used"], len(floats)
    floats += printer_last
    positions["printer.last_used"] = packed(range(start, start + len(printer_last)))
    positions["printer.first_seen"] = packed(
        [start + i if first == last != 0.0 else placed(first)
         for i, (first, last) in enumerate(zip(columns["printer.first_seen"], printer_last, strict=True))])
    return array("d", floats), positions


class _Table:
    """The distinct values of some columns and the position of each (writing)."""

    def __init__(self, columns: Iterable[Iterable[Any]], start: int = 0) -> None:
        self.at: dict[Any, int] = dict.fromkeys(chain.from_iterable(columns), 0)
        self.at.update(zip(self.at, count(start)))  # the same keys: no new table
        self.values = list(self.at)

    def positions(self, values: Iterable[Any]) -> bytes:
        return packed(map(self.at.__getitem__, values))


def _at(table: list[V], positions: bytes, records: int) -> Iterator[V]:
    """The values of a column of `records` positions in `table`."""
    return map(table.__getitem__, unpacked(positions, records))


def _bits(floats: Sequence[float]) -> array[int]:
    """Each float's 64 bits as a number: floats equal by value but not by bits (0.0, -0.0) are told apart."""
    return array("Q", array("d", floats).tobytes())


_NEGATIVE_ZERO = _bits([-0.0])[0]


def _holds_negative_zero(floats: Sequence[float]) -> bool:
    return _bits(floats).count(_NEGATIVE_ZERO) > 0


def _doubles_bytes(doubles: array[float]) -> bytes:
    if sys.byteorder == "big":
        doubles.byteswap()
    return doubles.tobytes()


def _doubles(data: bytes) -> list[float]:
    doubles = array("d")
    doubles.frombytes(data)
    if sys.byteorder == "big":
        doubles.byteswap()
    return doubles.tolist()
