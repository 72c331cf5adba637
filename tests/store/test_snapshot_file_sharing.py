"""A snapshot file reads back the state it was written from, its records sharing what they repeat, compactly.

Files of version 2 (a large state's records as columns, `store.record_columns`) share them as they are built.
Reading version 1 files (earlier versions wrote them; the maps of every record's fields) decodes the clients,
leases and printers a thousand at a time and shares each thousand's values before the next is decoded
(`store.snapshot_file.decode_state`): decoded all at once and shared after, the dropped copies left free space
between the records, which the process kept (a quarter of the loaded state).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec

from licentia.core.commands import AddLicense, Checkout, PrintCheck, UpdateSettings
from licentia.core.model import ClientInfo, LicenseTerms, PrinterIdentity
from licentia.core.state import LicenseState
from licentia.store.snapshot_file import RECORDS_PER_CHUNK, decode_snapshot_file, snapshot_chunks

T0 = 1_700_000_000.0


def _site(n: int) -> LicenseState:
    state = LicenseState()
    for license_id, product, unit in (("LIC-P", "Labels", "printers"), ("LIC-S", "CAD", "seats")):
        terms = LicenseTerms(license_id=license_id, product=product, edition="pro", customer="Acme", unit=unit,
                             count=n, not_before=0.0, expires=T0 + 10**8)
        assert state.apply(AddLicense(terms=terms, key_id="k", signature="cw=="), T0).ok
    assert state.apply(UpdateSettings(changes={"lease_ttl_s": 86400.0}), T0).ok
    for i in range(n):
        client = ClientInfo(host=f"ws-{i:06d}", user=f"user{i:06d}", application="CAD Studio", version="9.1")
        assert state.apply(Checkout(request_id=f"r{i}", lease_id=f"lease-{i:07d}", product="CAD", client=client,
                                    source_ip="10.8.0.1"), T0 + i).ok
        printer = PrinterIdentity(name=f"PRN-{i:06d}", driver="ZDesigner ZD420", port=f"IP_{i}", location="Dock")
        printing = ClientInfo(host=f"print-{i % 50:02d}", user="printing", application="Label Studio", version="3")
        assert state.apply(PrintCheck(product="Labels", printer=printer, client=printing, source_ip="10.9.0.1"),
                           T0 + n + i).ok
    return state


def _file_bytes(state: LicenseState) -> bytes:
    return b"".join(snapshot_chunks(42, state))


def _version_1_file_bytes(state: LicenseState) -> bytes:
    """The file an earlier version wrote (records as maps of their fields, no list orders)."""
    return b"licentia-snapshot 1 42\n" + msgspec.msgpack.encode(state.snapshot_struct())


def test_a_version_1_snapshot_file_reads_back_its_state_with_its_values_shared_across_chunks():
    state = _site(2 * RECORDS_PER_CHUNK + 300)  # three chunks of each kind of record

    index, snap = decode_snapshot_file(_version_1_file_bytes(state))
    loaded = LicenseState.from_snapshot(snap, values_shared=True)

    assert index == 42
    assert loaded.snapshot_bytes() == state.snapshot_bytes()
    leases, printers = list(loaded.leases.values()), list(loaded.printers.values())
    assert len({id(lease.product) for lease in leases}) == 1
    assert len({id(lease.client.application) for lease in leases}) == 1
    assert len({id(printer.identity.driver) for printer in printers}) == 1
    holders = {client.info.host: client for client in loaded.clients.values()}
    assert all(lease.client is holders[lease.client.host].info for lease in leases)


LOAD = """
import gc, json, re, sys, ctypes
import msgspec
from licentia.core.state import LicenseState, Snapshot
from licentia.store.snapshot_file import decode_snapshot_file
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
data = open(sys.argv[1], "rb").read()
body = memoryview(data)[data.index(b"\\n") + 1:]
gc.collect()
before = rss()
if sys.argv[2] == "file":
    state = LicenseState.from_snapshot(decode_snapshot_file(data)[1], values_shared=True)
else:  # a version 1 file decoded at once, then shared (as before chunks)
    state = LicenseState.from_snapshot(msgspec.msgpack.decode(body, type=Snapshot))
del body, data
gc.collect()
ctypes.CDLL(None).malloc_trim(0)
print(json.dumps(rss() - before))
"""


def test_a_state_read_from_its_snapshot_file_takes_a_fifth_less_memory_than_decoded_at_once(tmp_path: Path):
    state = _site(8000)
    version_1, version_2 = tmp_path / "version-1.snapshot", tmp_path / "licentia.snapshot"
    version_1.write_bytes(_version_1_file_bytes(state))
    version_2.write_bytes(_file_bytes(state))

    def grown(path: Path, how: str) -> int:
        run = subprocess.run([sys.executable, "-c", LOAD, str(path), how], capture_output=True, text=True,
                             check=True, timeout=120)
        return json.loads(run.stdout.strip().splitlines()[-1])

    at_once, chunked, columns = grown(version_1, "at_once"), grown(version_1, "file"), grown(version_2, "file")
    assert chunked < 0.8 * at_once, (chunked, at_once)
    assert columns < 0.8 * at_once, (columns, at_once)
