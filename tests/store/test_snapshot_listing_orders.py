"""A large state's snapshot file holds the sorted orders of the admin lists, so a restart builds them without
computing a sort key per record or sorting: each order is read as the positions of its records in the file.

At 300,000 leases and printers, sorting the orders again took ~3 s of a restart's ~5 s. Snapshots of earlier
versions (no orders) and small states still sort; a file with orders is of version 2, which earlier versions refuse.
"""

from __future__ import annotations

from typing import Any

import msgspec
from shuffled_site import T0, shuffled_site

from licentia.core.commands import Checkin, PrintCheck, SetPrinterGroup
from licentia.core.listing import Listings, SortedIndex
from licentia.core.model import ClientInfo
from licentia.core.state import LicenseState, Snapshot
from licentia.store.snapshot_file import decode_snapshot_file, snapshot_chunks

ORDERS = ("leases_by_product", "leases_by_holder", "printers_by_seen", "printers_by_name", "printers_by_group",
          "clients_by_seen", "clients_by_host")


def _walks(listings: Listings) -> dict[str, list[Any]]:
    return {name: list(getattr(listings, name).walk()) for name in ORDERS}


def _sorted_again(state: LicenseState) -> dict[str, list[Any]]:
    return _walks(Listings.of(state.leases.values(), state.printers.values(), state.clients.values()))


def _counting_key_calls(monkeypatch: Any) -> dict[str, int]:
    """Counts every call of every order's key function (`SortedIndex` computes keys only through it)."""
    calls = {"keys": 0}
    original = SortedIndex.__init__

    def counting(self: SortedIndex, key: Any, *shape: type, **options: Any) -> None:
        def counted(entry: Any) -> Any:
            calls["keys"] += 1
            return key(entry)

        original(self, counted, *shape, **options)

    monkeypatch.setattr(SortedIndex, "__init__", counting)
    return calls


def _load(data: bytes) -> LicenseState:
    """As `licentia serve` and a triad member load their snapshot file."""
    _, snapshot = decode_snapshot_file(data)
    return LicenseState.from_snapshot(snapshot, values_shared=True, orders=snapshot.listing_orders)


def test_a_large_snapshot_loads_its_list_orders_without_a_sort_key_per_record(monkeypatch):
    state = shuffled_site(3000)
    records = len(state.leases) + len(state.printers) + len(state.clients)
    data = b"".join(snapshot_chunks(42, state))
    calls = _counting_key_calls(monkeypatch)

    loaded = _load(data)

    assert calls["keys"] < records // 20, f"{calls['keys']} sort keys computed to load {records} records"
    assert loaded == state
    assert _walks(loaded.listings()) == _walks(state.listings()) == _sorted_again(state)


def test_orders_loaded_from_a_snapshot_follow_later_changes_like_sorted_ones():
    state = shuffled_site(1500)
    loaded = _load(b"".join(snapshot_chunks(42, state)))
    for each in (state, loaded):
        client = ClientInfo(host="print-07", user="printing", application="Label Studio", version="3")
        printer = next(p for p in each.printers.values() if p.group != "Blocked")
        assert each.apply(PrintCheck(product="Labels", printer=printer.identity, client=client,
                                     source_ip="10.9.0.1"), T0 + 10**6).ok
        assert each.apply(Checkin(lease_id="lease-0000003"), T0 + 10**6).ok
        assert each.apply(SetPrinterGroup(printer_id=printer.printer_id, group="Blocked"), T0 + 10**6).ok

    assert loaded == state
    assert _walks(loaded.listings()) == _sorted_again(loaded) == _walks(state.listings())


def test_a_snapshot_with_orders_is_refused_by_versions_that_cannot_read_its_records():
    """A state large enough for its orders to be written is written as version 2 (its records as columns,
    `store.record_columns`): versions before it read only version 1 and refuse the file by its heading."""
    state = shuffled_site(1500)
    heading, _, body = b"".join(snapshot_chunks(42, state)).partition(b"\n")

    assert heading == b"licentia-snapshot 2 42"
    # What such a version would have read, had the heading let it: a state without its leases and printers.
    earlier = LicenseState.from_snapshot(msgspec.msgpack.decode(body, type=Snapshot))
    assert not earlier.leases and not earlier.printers and state.leases and state.printers


def test_orders_that_do_not_fit_the_records_are_sorted_again():
    state, other = shuffled_site(1500), shuffled_site(1600)
    _, snapshot = decode_snapshot_file(b"".join(snapshot_chunks(42, state)))
    _, wrong = decode_snapshot_file(b"".join(snapshot_chunks(42, other)))

    loaded = LicenseState.from_snapshot(snapshot, values_shared=True, orders=wrong.listing_orders)

    assert _walks(loaded.listings()) == _walks(state.listings())


def test_orders_whose_positions_are_not_in_key_order_are_sorted_again():
    state = shuffled_site(1500)
    _, snapshot = decode_snapshot_file(b"".join(snapshot_chunks(42, state)))
    orders = snapshot.listing_orders
    assert orders is not None
    reversed_positions = b"".join(reversed([orders.leases_by_holder[i : i + 4]
                                            for i in range(0, len(orders.leases_by_holder), 4)]))
    scrambled = msgspec.structs.replace(orders, leases_by_holder=reversed_positions)

    loaded = LicenseState.from_snapshot(snapshot, values_shared=True, orders=scrambled)

    assert _walks(loaded.listings()) == _walks(state.listings())


def test_a_snapshot_is_written_without_orders_that_hold_a_record_the_state_does_not():
    state = shuffled_site(1500)
    order = state.listings().leases_by_product
    lease = next(iter(state.leases.values()))
    order.remove(lease)
    order.add(msgspec.structs.replace(lease, lease_id="lease-not-held"))  # as many as the state holds, one wrong

    _, snapshot = decode_snapshot_file(b"".join(snapshot_chunks(42, state)))

    assert snapshot.listing_orders is None
    assert LicenseState.from_snapshot(snapshot, values_shared=True) == state
