"""A large state's snapshot file holds its clients, leases and printers as columns over tables of the values they
share, so loading builds each record with one call from C and no Python code per record.

Version 1 files held every record as a map of its fields: loading decoded each field into its own object, then
made the records share what they repeat with Python code run per record (`core.sharing`): at 300,000 leases and
printers ~1.8 s of a restart's ~2.4 s of CPU. Files written by earlier versions still load as they did, and
small states are still written as version 1 (their bytes unchanged).
"""

from __future__ import annotations

import gzip
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from shuffled_site import shuffled_site

from licentia.core.model import Client, ClientInfo, Lease, Printer, PrinterIdentity
from licentia.core.state import LicenseState
from licentia.store.snapshot_file import (
    SnapshotFileError,
    StoredSnapshot,
    decode_snapshot_file,
    load_snapshot_file,
    snapshot_chunks,
)

VERSION_1_FILE = Path(__file__).parent / "data" / "large-state-version-1.snapshot.gz"


def _file_bytes(state: LicenseState) -> bytes:
    return b"".join(snapshot_chunks(77, state))


def _python_calls_decoding(data: bytes, decode: Callable[[bytes], object] = decode_snapshot_file) -> int:
    """How many Python functions run while `data` is decoded (C functions are not counted)."""
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        decode(data)
    finally:
        sys.setprofile(None)
    return calls


def test_decoding_a_large_snapshot_file_runs_no_python_code_per_record():
    small, large = _file_bytes(shuffled_site(600)), _file_bytes(shuffled_site(1800))  # 1,850 and 5,450 records

    _python_calls_decoding(small)  # once first: the first decoding of a type looks at its annotations
    more_calls = _python_calls_decoding(large) - _python_calls_decoding(small)

    # Version 1 files ran the pools' functions for every client and lease: ~7,000 more calls here.
    assert more_calls < 50, more_calls


def test_loading_a_large_snapshot_file_with_its_indexes_runs_no_python_call_per_record():
    """The whole load, the indexes included: the request index was filled with one call per lease (~0.15 s of a
    restart at 300,000 leases) and each printer paired with its group by a generator (one call per printer); the
    list orders still compute one key per block of 128 records."""
    small, large = _file_bytes(shuffled_site(600)), _file_bytes(shuffled_site(1800))  # 600 and 1,800 leases

    _python_calls_decoding(small, load_snapshot_file)
    more_calls = _python_calls_decoding(large, load_snapshot_file) - _python_calls_decoding(small, load_snapshot_file)

    assert more_calls < 400, more_calls  # 2,563 before: one call per lease and one per printer is 2,400 more


def test_a_large_snapshot_file_reads_back_the_state_with_the_values_its_records_repeat_shared():
    state = shuffled_site(1200)

    index, loaded = load_snapshot_file(_file_bytes(state))

    assert index == 77
    assert loaded.snapshot_bytes() == state.snapshot_bytes()
    assert loaded == state
    leases, printers = list(loaded.leases.values()), list(loaded.printers.values())
    clients = list(loaded.clients.values())
    assert {type(lease) for lease in leases} == {Lease} and {type(lease.client) for lease in leases} == {ClientInfo}
    assert {type(printer) for printer in printers} == {Printer} and {type(client) for client in clients} == {Client}
    assert {type(printer.identity) for printer in printers} == {PrinterIdentity}
    assert len({id(lease.product) for lease in leases}) == 2
    assert len({id(lease.ttl_s) for lease in leases}) == 1
    assert len({id(lease.client.application) for lease in leases}) == 1
    assert len({id(printer.identity.driver) for printer in printers}) == 1
    assert len({id(printer.group) for printer in printers}) == 2
    holders = {client.info.host: client for client in clients}
    assert all(lease.client is holders[lease.client.host].info for lease in leases)
    assert all(lease.granted_at is holders[lease.client.host].last_seen for lease in leases)
    assert all(printer.first_seen is printer.last_used
               for printer in printers if printer.first_seen == printer.last_used)
    assert all(client.first_seen is client.last_seen for client in clients if client.first_seen == client.last_seen)
    # The list orders come from the file too, and follow the records loaded.
    for order in ("leases_by_holder", "printers_by_name", "clients_by_seen"):
        assert list(getattr(loaded.listings(), order).walk()) == list(getattr(state.listings(), order).walk())


def test_a_large_snapshot_file_keeps_every_time_as_it_was():
    state = shuffled_site(600)
    for printer in list(state.printers.values())[::3]:  # used again since first seen
        printer.last_used += 7.5
    for lease in list(state.leases.values())[::4]:  # granted before its holder was last seen
        lease.granted_at -= 3.25

    _, loaded = load_snapshot_file(_file_bytes(state))

    assert loaded.snapshot_bytes() == state.snapshot_bytes()


def test_a_large_snapshot_file_keeps_the_sign_of_a_zero_and_every_value_as_it_was():
    state = shuffled_site(600)
    printer = next(iter(state.printers.values()))
    printer.peer_last_used = -0.0
    other = list(state.printers.values())[1]
    other.peer_last_used = 0.0

    _, loaded = load_snapshot_file(_file_bytes(state))

    assert math.copysign(1.0, loaded.printers[printer.printer_id].peer_last_used) == -1.0
    assert math.copysign(1.0, loaded.printers[other.printer_id].peer_last_used) == 1.0
    assert loaded.snapshot_bytes() == state.snapshot_bytes()


def test_a_large_snapshot_file_an_earlier_version_wrote_loads_as_the_same_state():
    """`VERSION_1_FILE`: `shuffled_site(600)` written by the version before the columns (records as maps of fields)."""
    written = gzip.decompress(VERSION_1_FILE.read_bytes())
    assert written.startswith(b"licentia-snapshot 1 77\n")

    index, loaded = load_snapshot_file(written)

    state = shuffled_site(600)
    assert index == 77
    assert loaded.snapshot_bytes() == state.snapshot_bytes()
    assert _file_bytes(loaded) == _file_bytes(state) != written  # written again in the columns' layout


def test_a_small_state_is_written_as_earlier_versions_wrote_it():
    state = shuffled_site(100)

    data = _file_bytes(state)

    assert data.startswith(b"licentia-snapshot 1 77\n")
    assert load_snapshot_file(data)[1].snapshot_bytes() == state.snapshot_bytes()


def test_a_snapshot_file_whose_columns_do_not_fit_each_other_is_refused_not_loaded_short():
    data = _file_bytes(shuffled_site(600))
    heading, _, body = data.partition(b"\n")
    stored = msgspec.msgpack.decode(body, type=StoredSnapshot)
    assert stored.record_columns is not None
    stored.record_columns.leases.product = stored.record_columns.leases.product[:-4]  # one lease's product missing
    damaged = heading + b"\n" + msgspec.msgpack.encode(stored)

    with pytest.raises(SnapshotFileError, match="damaged"):
        load_snapshot_file(damaged)
