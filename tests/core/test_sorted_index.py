"""A sorted order holds its records, not their keys, and reads exactly like a sorted list of the keys.

`SortedIndex` files each entry by a key computed when it is compared; its blocks split as they grow and
go when emptied. Whatever the adds and removes, every walk (any range, cursor and direction) and count
must give what sorting the keys would.
"""

from __future__ import annotations

import bisect
import random
import sys
import tracemalloc

from licentia.core.commands import Checkout, PrintCheck
from licentia.core.listing import Key, Listings, SortedIndex
from licentia.core.model import Client, ClientInfo, Printer, PrinterIdentity
from licentia.core.state import LicenseState

T0 = 1_700_000_000.0


def _reference_walk(keys: list[Key], low: Key | None, high: Key | None, after: Key | None,
                    descending: bool) -> list[Key]:
    found = [k for k in keys if (low is None or k >= low) and (high is None or k < high)]
    if after is not None:
        found = [k for k in found if (k < after if descending else k > after)]
    return sorted(found, reverse=descending)


def test_walks_and_counts_equal_those_of_the_sorted_keys_through_adds_removes_and_splits():
    rng = random.Random(14)
    times: dict[str, float] = {}
    index = SortedIndex(lambda name: (times[name], name), float, str, block=4)
    present: set[str] = set()
    for step in range(3000):
        name = f"r{rng.randrange(200):03d}"
        if name in present and rng.random() < 0.5:
            index.remove(name)
            present.discard(name)
            if rng.random() < 0.5:  # filed again with a new key, as a printer used again is
                times[name] = float(rng.randrange(50))
                index.add(name)
                present.add(name)
        elif name not in present:
            times[name] = float(rng.randrange(50))
            index.add(name)
            present.add(name)
        if step % 50 == 0:
            keys = sorted((times[n], n) for n in present)
            assert list(index.walk()) == keys
            assert len(index) == len(keys)
            for _ in range(10):
                low = (float(rng.randrange(-2, 52)),) if rng.random() < 0.7 else None
                high = (float(rng.randrange(-2, 52)), f"r{rng.randrange(200):03d}") if rng.random() < 0.7 else None
                after = rng.choice(keys) if keys and rng.random() < 0.5 else None
                descending = rng.random() < 0.5
                assert list(index.walk(low=low, high=high, after=after, descending=descending)) == (
                    _reference_walk(keys, low, high, after, descending))
                expected = bisect.bisect_left(keys, high) if high is not None else len(keys)
                expected -= bisect.bisect_left(keys, low) if low is not None else 0
                assert index.count(low, high) == max(0, expected)


def test_removing_an_entry_that_is_not_filed_changes_nothing():
    index = SortedIndex(lambda n: (n,), int, block=2)
    index.fill([5, 1, 3, 9, 7])
    index.remove(4)
    index.remove(10)
    assert list(index.walk()) == [(1,), (3,), (5,), (7,), (9,)]
    assert len(index) == 5


def test_the_printer_orders_read_like_sorted_keys_as_printers_are_used_moved_and_dropped():
    """The by-group order files no group: a printer is taken out of its group's order before it moves."""
    rng = random.Random(7)
    listings = Listings()
    printers: dict[str, Printer] = {}
    groups = ["Default", "Blocked", "Dock", "Office"]
    for step in range(2500):
        pid = f"p{rng.randrange(120):03d}"
        printer = printers.get(pid)
        roll = rng.random()
        if printer is None:
            printer = printers[pid] = Printer(printer_id=pid, identity=PrinterIdentity(name=f"Name {pid}"),
                                              group=rng.choice(groups), first_seen=0.0,
                                              last_used=float(rng.randrange(40)))
            listings.printer_added(printer)
        elif roll < 0.15:
            listings.printer_dropped(printers.pop(pid))
        else:
            listings.printer_changing(printer)
            if roll < 0.4:
                printer.group = rng.choice(groups)
            elif roll < 0.5:
                printer.peer_last_used = float(rng.randrange(40))
            else:
                printer.last_used = float(rng.randrange(40))
            listings.printer_changed(printer)
        if step % 50 == 0:
            seen = {p.printer_id: max(p.last_used, p.peer_last_used) for p in printers.values()}
            by_group = sorted((p.group, -seen[p.printer_id], p.printer_id) for p in printers.values())
            assert list(listings.printers_by_seen.walk()) == sorted((-s, pid) for pid, s in seen.items())
            assert list(listings.printers_by_group.walk()) == by_group
            assert len(listings.printers_by_group) == len(by_group)
            for _ in range(10):
                group = rng.choice(groups)
                low = rng.choice([None, (group,), (group, -float(rng.randrange(40)))])
                high = rng.choice([None, (group + "\x00",), (group, -float(rng.randrange(40)))])
                after = rng.choice(by_group) if by_group and rng.random() < 0.5 else None
                descending = rng.random() < 0.5
                assert list(listings.printers_by_group.walk(low=low, high=high, after=after, descending=descending)) \
                    == _reference_walk(by_group, low, high, after, descending)
                expected = sum(1 for k in by_group if (low is None or k >= low) and (high is None or k < high))
                assert listings.printers_by_group.count(low, high) == expected
            for group in groups:
                assert listings.group_count(group) == sum(1 for p in printers.values() if p.group == group)
    rebuilt = Listings.of([], printers.values(), [])
    for name in ("printers_by_seen", "printers_by_name", "printers_by_group"):
        assert list(getattr(rebuilt, name).walk()) == list(getattr(listings, name).walk()), name


def test_the_client_orders_read_like_sorted_keys_as_clients_are_seen_again_from_other_addresses():
    """A client without a host name is listed by its address: it moves in the host order when that changes."""
    rng = random.Random(11)
    listings = Listings()
    clients: dict[str, Client] = {}
    for step in range(2500):
        cid = f"c{rng.randrange(120):03d}"
        client = clients.get(cid)
        roll = rng.random()
        host = rng.choice(["", "", "WS-1", "ws-2", "Lab"])
        address = f"10.0.0.{rng.randrange(9)}"
        if client is None:
            client = clients[cid] = Client(client_id=cid, info=ClientInfo(host=host), source_ip=address,
                                           first_seen=0.0, last_seen=float(rng.randrange(40)))
            listings.client_added(client)
        elif roll < 0.15:
            listings.client_dropped(clients.pop(cid))
        else:
            filed = listings.client_changing(client)
            if roll < 0.5:
                client.source_ip = address
            if roll < 0.3:
                client.info = ClientInfo(host=host)
            if roll > 0.2:
                client.last_seen = float(rng.randrange(40))
            listings.client_changed(client, filed)
        if step % 50 == 0:
            by_seen = sorted((-cl.last_seen, cl.client_id) for cl in clients.values())
            by_host = sorted(((cl.info.host or cl.source_ip).casefold(), cl.client_id) for cl in clients.values())
            assert list(listings.clients_by_seen.walk()) == by_seen
            assert list(listings.clients_by_host.walk()) == by_host
            assert listings.matches(0, 0, len(clients))
    rebuilt = Listings.of([], [], clients.values())
    for name in ("clients_by_seen", "clients_by_host"):
        assert list(getattr(rebuilt, name).walk()) == list(getattr(listings, name).walk()), name


def test_an_entry_changed_since_it_was_filed_is_removed_by_the_key_it_was_filed_with():
    values = {n: n for n in range(0, 200, 2)}
    index = SortedIndex(lambda n: (values[n],), int, block=4)
    index.fill(values)
    values[50] = 151  # changed in place: its key now says it belongs elsewhere
    assert index.remove(50, filed=(50,))
    assert [key for key in index.walk()] == [(values[n],) for n in sorted(values) if n != 50]
    assert len(index) == len(values) - 1


def _site(state: LicenseState, n: int) -> None:
    from licentia.core.commands import AddLicense, UpdateSettings
    from licentia.core.model import LicenseTerms

    for license_id, product, unit in (("LIC-P", "Labels", "printers"), ("LIC-S", "CAD", "seats")):
        terms = LicenseTerms(license_id=license_id, product=product, edition="pro", customer="Acme", unit=unit,
                             count=n, not_before=0.0, expires=T0 + 10**8)
        assert state.apply(AddLicense(terms=terms, key_id="k", signature="cw=="), T0).ok
    assert state.apply(UpdateSettings(changes={"lease_ttl_s": 86400.0}), T0).ok
    for i in range(n):
        client = ClientInfo(host=f"WS-{i:05d}", user=f"User{i:05d}", application="CAD", version="9")
        assert state.apply(Checkout(request_id=f"r{i}", lease_id=f"lease-{i:07d}", product="CAD", client=client,
                                    source_ip="10.0.0.2"), T0 + i).ok
        printer = PrinterIdentity(name=f"PRN-{i:06d}", driver="Zebra", port=f"IP_{i}", location="Dock")
        assert state.apply(PrintCheck(product="Labels", printer=printer, client=client, source_ip="10.0.0.2"),
                           T0 + i).ok


def test_the_orders_of_a_loaded_site_cost_under_30_bytes_a_record():
    """They held a key tuple per record and order (and a case-folded copy of each name): ~680 bytes per lease,
    printer and client, about 200 MB of a server's memory at 300,000 of each; then the time each printer and
    client was last seen (and each client's host) in a dict, so that a changed record could be found by the
    key it was filed with: ~75 bytes, 30 MB at 300,000. Now a list slot per order (~21 bytes)."""
    state = LicenseState()
    n = 3000
    _site(state, n)
    records = (state.leases.values(), state.printers.values(), state.clients.values())
    tracemalloc.start()
    try:
        Listings.of(*records)  # first: the tuples its sorting frees fill the interpreter's lists of spare tuples
        before = tracemalloc.get_traced_memory()[0]
        listings = Listings.of(*records)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert listings.matches(n, n, n)
    per_record = held / (3 * n)
    assert per_record < 30, f"{per_record:.0f} bytes a record ({sys.getsizeof(listings)})"
