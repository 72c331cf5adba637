"""The standalone server's state snapshot: a file beside the database, replaced whole at each snapshot.

`licentia.snapshot` holds the journal index the snapshot reflects on its first line, then the state
(`core.state_data.Snapshot`) in MessagePack, which decodes about twice as fast as JSON. It is written by a
forked child (`store.forked_write`) and replaced atomically, so it is either the previous snapshot or
the new one; the journal's commands up to its index are deleted only once it is on disk. Keeping it
out of the database means no free pages left behind by the previous snapshot and no WAL the size of
the state.

Reading a version 1 file, the clients, leases and printers are decoded a thousand at a time, and each thousand made to
share the values they repeat (`core.sharing`) before the next is decoded: the copies a record drops are
freed while the next thousand is decoded, which takes their place. Decoded all at once and shared after,
the copies' places stayed empty between the records that outlive them, in memory the process keeps: at
50,000 leases and printers about 38 MB, a quarter of the loaded state.

A state of `ORDERS_FROM` records or more is written as version 2: its clients, leases and printers as columns over
tables of the values they share (`store.record_columns`), which loading turns into records with no Python code
run per record (~1.2 s of CPU less at 300,000 leases and printers, of ~2.3); and with its list orders
(`core.listing.ListingOrders`, one more key after the state's fields): loading builds them from the positions,
where sorting them again took ~3 s of a restart at 300,000 leases and printers. Smaller states are written as
before, version 1 (sorting them costs milliseconds), so their files are the very bytes earlier versions wrote.
Files of both versions load; a version before 2 refuses a version 2 file ("not a Licentia state snapshot").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from licentia.core.listing import ListingOrders
from licentia.core.model import Client, Lease, Printer
from licentia.core.sharing import ValuePool
from licentia.core.state import LicenseState, Snapshot
from licentia.store.collector import collector_paused
from licentia.store.record_columns import RecordColumns

MAGIC = b"licentia-snapshot "  # then the version, a space, the journal index and a newline
RECORDS_AS_MAPS, RECORDS_AS_COLUMNS = b"1", b"2"  # the versions
SUFFIX = ".snapshot"
RECORDS_PER_CHUNK = 1000
ORDERS_FROM = 1000  # records (leases, printers and clients) from which the file is version 2, with the list orders


class StoredSnapshot(Snapshot):
    """The state as the file holds it: the snapshot's fields, then the list orders of a large state (give them
    to `LicenseState.from_snapshot`)."""

    listing_orders: ListingOrders | None = None
    record_columns: RecordColumns | None = None  # version 2: the clients, leases and printers (their lists empty)


class SnapshotFileError(ValueError):
    """The snapshot file is not one this version can read."""


def snapshot_path(database: Path) -> Path:
    return database.with_suffix(SUFFIX)


def snapshot_chunks(index: int, state: LicenseState) -> list[bytes]:
    """The file's bytes for `state` at journal index `index` (heading, then the encoded state)."""
    snapshot = state.snapshot_struct()
    leases, printers, clients = snapshot.leases, snapshot.printers, snapshot.clients
    if len(leases) + len(printers) + len(clients) < ORDERS_FROM:
        return [MAGIC + RECORDS_AS_MAPS + b" %d\n" % index, msgspec.msgpack.encode(snapshot)]
    fields = msgspec.structs.asdict(snapshot) | {"leases": [], "printers": [], "clients": []}
    stored = StoredSnapshot(**fields, listing_orders=state.listings().positions(leases, printers, clients),
                            record_columns=RecordColumns.of(clients, leases, printers))
    return [MAGIC + RECORDS_AS_COLUMNS + b" %d\n" % index, msgspec.msgpack.encode(stored)]


# The records a large site holds hundreds of thousands of, in the order their values are shared (a lease
# takes its holder's client details, see `core.sharing.share_values`).
_RECORDS: dict[str, type[msgspec.Struct]] = {"clients": Client, "leases": Lease, "printers": Printer}


def _field(info: msgspec.structs.FieldInfo) -> tuple[Any, ...]:
    kind = list[msgspec.Raw] if info.name in _RECORDS else info.type
    if info.default is not msgspec.NODEFAULT:
        return (info.name, kind, info.default)
    if info.default_factory is not msgspec.NODEFAULT:
        return (info.name, kind, msgspec.field(default_factory=info.default_factory))
    return (info.name, kind)


# `StoredSnapshot` with each record left encoded (a view of the file's bytes), to be decoded a chunk at a time.
_UndecodedRecords = msgspec.defstruct("UndecodedRecords",
                                      [_field(info) for info in msgspec.structs.fields(StoredSnapshot)])


def _decode_shared(encoded: list[msgspec.Raw], kind: type[msgspec.Struct],
                   share: Callable[[list[Any]], None]) -> list[Any]:
    decoder = msgspec.msgpack.Decoder(list[kind])  # type: ignore[valid-type]
    records: list[Any] = []
    for start in range(0, len(encoded), RECORDS_PER_CHUNK):
        part = encoded[start : start + RECORDS_PER_CHUNK]
        chunk = decoder.decode(b"\xdd%b%b" % (len(part).to_bytes(4, "big"), b"".join(part)))  # a MessagePack array
        share(chunk)
        records += chunk
    return records


def decode_state(body: bytes | memoryview) -> StoredSnapshot:
    """The state encoded in `body`, its clients, leases and printers sharing the values they repeat (give it
    to `LicenseState.from_snapshot` with `values_shared=True` and its `listing_orders`)."""
    undecoded = msgspec.msgpack.decode(body, type=_UndecodedRecords)
    fields = msgspec.structs.asdict(undecoded)
    pool = ValuePool()
    shares: dict[str, Callable[[list[Any]], None]] = {
        "clients": pool.share_clients, "leases": pool.share_leases, "printers": pool.share_printers}
    for name, kind in _RECORDS.items():
        fields[name] = _decode_shared(fields[name], kind, shares[name])
        setattr(undecoded, name, [])
        if name == "leases":
            pool.forget_clients()  # before the printers are decoded: they take the places it held
    return StoredSnapshot(**fields)


def decode_columns(body: bytes | memoryview) -> StoredSnapshot:
    """The state encoded in `body` (version 2), its clients, leases and printers built from their columns, sharing
    the values they repeat (give it to `LicenseState.from_snapshot` as `decode_state`'s)."""
    stored = msgspec.msgpack.decode(body, type=StoredSnapshot)
    if stored.record_columns is None:
        raise SnapshotFileError("the snapshot file holds no records")
    try:
        clients, leases, printers = stored.record_columns.records()
    except (ValueError, IndexError) as damaged:
        raise SnapshotFileError(f"the snapshot file's records are damaged: {damaged}") from None
    return msgspec.structs.replace(stored, clients=clients, leases=leases, printers=printers, record_columns=None)


HEADING_MAX = 64  # bytes: the heading line is shorter


def snapshot_heading(start: bytes) -> tuple[bytes, int, int]:
    """The format version, the journal index (or log revision) and the body's offset, from the file's first
    HEADING_MAX bytes (or more); SnapshotFileError when they are not a Licentia state snapshot's."""
    heading, newline, _ = start[:HEADING_MAX].partition(b"\n")
    version, _, index = heading[len(MAGIC) :].partition(b" ")
    if (not newline or not heading.startswith(MAGIC) or version not in (RECORDS_AS_MAPS, RECORDS_AS_COLUMNS)
            or not index.isdigit()):
        raise SnapshotFileError("not a Licentia state snapshot")
    return version, int(index), len(heading) + 1


def decode_snapshot_file(data: bytes) -> tuple[int, StoredSnapshot]:
    version, index, offset = snapshot_heading(data)
    body = memoryview(data)[offset:]  # a view, not a copy of the state's bytes
    return index, decode_columns(body) if version == RECORDS_AS_COLUMNS else decode_state(body)


def load_snapshot_file(source: bytes | Path) -> tuple[int, LicenseState]:
    """The journal index (or log revision) and the state in the file's bytes (or the file, then read and dropped
    before the state is built), as a server loads its snapshot and a triad member its checkpoint: the records
    decoded sharing their values (`decode_state`), the list orders taken from the file where it holds them. The
    cycle collector waits meanwhile: none of the records can be in a cycle, and each of its passes walked the
    large lists being built (at 300,000 leases and printers, a fifth of the load's time)."""
    with collector_paused():
        index, snapshot = decode_snapshot_file(source.read_bytes() if isinstance(source, Path) else source)
        return index, LicenseState.from_snapshot(snapshot, values_shared=True, orders=snapshot.listing_orders)


def read_snapshot_file(path: Path) -> tuple[int, StoredSnapshot] | None:
    """The snapshot's journal index and state, or None when there is no snapshot file yet; its records share
    the values they repeat (`decode_state`)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode_snapshot_file(data)
