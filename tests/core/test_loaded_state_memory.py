"""A state loaded from a snapshot holds one copy of each value its records repeat, as a running one does.

In a running server a lease and its holder's registry entry hold the very same client details, and every
lease of a product the same product name. Decoding a snapshot gives every record its own copy of every
string and number: at 300,000 leases and printers that roughly doubled the server's memory after a restart
(bench/_scale_store.py `rss_mb_loaded`). Loading shares them again, without changing any value.
"""

from __future__ import annotations

import sys
import tracemalloc

import msgspec

from licentia.core import commands as c
from licentia.core.expiring import ExpiringSet
from licentia.core.indexed_state import request_key
from licentia.core.lease_requests import LeaseRequests
from licentia.core.listing import text_key
from licentia.core.model import ClientInfo, PrinterIdentity
from licentia.core.state import LicenseState, Snapshot

T0 = 1_700_000_000.0


def _site(issuer) -> LicenseState:
    state = LicenseState()
    for unit, product in (("seats", "Designer"), ("printers", "Labels")):
        terms = issuer.terms(license_id=f"LIC-{unit}", product=product, unit=unit, count=100,
                             not_before=T0 - 60, expires=T0 + 86400)
        assert state.apply(c.AddLicense(terms=terms, key_id="k", signature="cw=="), T0).ok
    for n in range(4):
        client = ClientInfo(host=f"ws-{n % 2}", user=f"user-{n}", application="Designer", version="2.1")
        assert state.apply(c.Checkout(request_id=f"r{n}", lease_id=f"L{n}", product="Designer", client=client,
                                      source_ip="10.0.0.7"), T0 + n).ok
        printer = PrinterIdentity(name=f"Printer {n}", driver="Label Driver 3", port="USB001", location="Dock")
        assert state.apply(c.PrintCheck(product="Labels", printer=printer, client=client, source_ip="10.0.0.7"),
                           T0 + 10 + n).ok
    return state


def _reloaded(state: LicenseState) -> LicenseState:
    """Through the bytes, as after a restart (the snapshot file is MessagePack)."""
    return LicenseState.from_snapshot(msgspec.msgpack.decode(msgspec.msgpack.encode(state.snapshot_struct()),
                                                             type=Snapshot))


def test_a_reloaded_lease_and_its_holders_registry_entry_share_one_copy_of_the_client_details(issuer):
    reloaded = _reloaded(_site(issuer))
    for lease in reloaded.leases.values():
        [holder] = [cl for cl in reloaded.clients.values() if cl.info == lease.client]
        assert holder.info is lease.client
        # A retry of the request (same client, same address) finds its lease; another client's does not.
        assert reloaded.lease_by_request.get(request_key(lease.client, lease.source_ip, lease.request_id)) \
            == lease.lease_id
        assert reloaded.lease_by_request.get(request_key(lease.client, "10.9.9.9", lease.request_id)) == ""


def test_reloaded_records_share_the_strings_and_numbers_they_repeat(issuer):
    reloaded = _reloaded(_site(issuer))
    leases, printers = list(reloaded.leases.values()), list(reloaded.printers.values())
    for field in ("product", "license_id", "source_ip"):
        assert len({id(getattr(lease, field)) for lease in leases}) == 1, field
    assert len({id(lease.ttl_s) for lease in leases}) == 1
    assert len({id(lease.client.application) for lease in leases}) == 1
    assert len({id(lease.client.host) for lease in leases}) == 2
    for field in ("group", "license_id", "via", "peer_last_used"):
        assert len({id(getattr(printer, field)) for printer in printers}) == 1, field
    for field in ("driver", "port", "location"):
        assert len({id(getattr(printer.identity, field)) for printer in printers}) == 1, field
    assert all(printer.first_seen is printer.last_used for printer in printers)  # used once each


def test_sharing_values_on_load_changes_no_value(issuer):
    state = _site(issuer)
    assert _reloaded(state).snapshot_bytes() == state.snapshot_bytes()


def test_a_name_that_is_already_case_folded_is_its_own_sort_key():
    name = "".join(["printer-", "7"])  # built at run time, so not a shared constant
    assert text_key(name) is name
    assert text_key("Printer-7") == "printer-7"


def test_an_expiring_set_filled_at_once_counts_like_one_filled_member_by_member():
    times, keys = [T0 + (n * 7919) % 101 for n in range(300)], [f"m{n}" for n in range(300)]
    one_by_one, at_once = ExpiringSet(), ExpiringSet()
    for at, key in zip(times, keys, strict=True):
        one_by_one.put(key, at)
    at_once.fill(times, keys)
    for now in (T0, T0 + 10, T0 + 50, T0 + 100, T0 + 101):
        assert at_once.count_live(now) == one_by_one.count_live(now)
        assert at_once.live_count(now) == one_by_one.live_count(now)
        assert {key for key in keys if key in at_once} == {key for key in keys if key in one_by_one}


def test_a_reloaded_lease_shares_the_time_it_was_granted_with_its_holder_last_seen_then(issuer):
    state = _site(issuer)
    later = ClientInfo(host="ws-9", user="late", application="Designer", version="2.1")
    assert state.apply(c.Checkout(request_id="r9", lease_id="L9", product="Designer", client=later,
                                  source_ip="10.0.0.9"), T0 + 50.5).ok
    reloaded = _reloaded(state)
    lease = reloaded.leases["L9"]
    [holder] = [cl for cl in reloaded.clients.values() if cl.info is lease.client]
    assert lease.granted_at is holder.last_seen
    assert lease.granted_at == T0 + 50.5
    # A holder seen again after its checkout keeps its own time.
    assert all(lease.granted_at != holder.last_seen for lease in reloaded.leases.values()
               for holder in reloaded.clients.values() if holder.info is lease.client and lease.lease_id != "L9")


def test_the_request_index_holds_no_key_object_per_lease(issuer):
    """It held a (client id, address, request id) tuple per lease besides its entry: ~90 bytes a lease."""
    state = _site(issuer)
    leases = [c.Checkout(request_id=f"bulk-{n}", lease_id=f"B{n}", product="Designer", source_ip="10.0.0.8",
                         client=ClientInfo(host=f"pc-{n}", user="u", application="Designer")) for n in range(90)]
    for n, command in enumerate(leases):
        assert state.apply(command, T0 + 60 + n).ok
    reloaded = _reloaded(state)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        index = LeaseRequests.of(reloaded.leases.values())
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(index) == len(reloaded.leases) == 94
    assert held / len(index) < 60


def test_a_printer_counted_against_its_license_costs_the_in_use_set_no_time_of_its_own(issuer):
    """The printer license's in-use set held each printer's end of window (last used + the window), a float
    made per printer: ~10 MB at 300,000 printers. It holds the printer's own time last used, the window being
    the set's offset; the counts are as before (tests/core/test_printers.py: the window's edges)."""
    state = LicenseState()
    n = 2000
    terms = issuer.terms(license_id="LIC-P", product="Labels", unit="printers", count=n,
                         not_before=T0 - 60, expires=T0 + 86400)
    assert state.apply(c.AddLicense(terms=terms, key_id="k", signature="cw=="), T0).ok
    client = ClientInfo(host="ws-1", user="ann", application="Labels")
    for i in range(n):
        printer = PrinterIdentity(name=f"Printer {i}")
        assert state.apply(c.PrintCheck(product="Labels", printer=printer, client=client), T0 + i / 8).ok
    state._in_use = {}
    spare = [(i, None) for i in range(n)]  # takes the tuples the interpreter keeps for reuse: each new one counts
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        state._rebuild_in_use()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del spare
    assert state.counted_at("LIC-P", T0 + n) == n
    assert held / n < 100, f"{held / n:.0f} bytes a printer"  # 113 with a float each


def test_an_expiring_set_costs_under_60_bytes_a_member():
    """Each member is a dict entry and a heap entry. The heap entry was a (time, key) tuple, 64 bytes with the
    collector's header (38 MB at 300,000 leases and printers), then an untracked record of 32 and the list's
    reference to it (75 bytes a member in all here); it is a time in an array and a reference to the member's
    own key, 16 bytes (52 a member)."""
    n = 3000
    keys = [f"lease-{i:07d}" for i in range(n)]
    times = [T0 + (i * 7919) % 1013 for i in range(n)] + [T0 + 2000 + i for i in range(n)]
    spare = [(i, None) for i in range(n)]  # takes the tuples the interpreter keeps for reuse: each new one counts
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        expiring = ExpiringSet()
        for i, key in enumerate(keys):
            expiring.put(key, times[i])
        for i in range(0, n, 3):  # renewed, as heartbeats do: the heap keeps the earlier entry until it is due
            expiring.put(keys[i], times[n + i])
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del spare
    assert expiring.count_live(T0 + 1013) == n // 3
    assert held / n < 60, f"{held / n:.0f} bytes a member"  # 120 with a tuple each, 75 with a record each


def test_the_pool_of_client_details_keeps_no_decoded_copy_of_a_string_it_shares():
    """It filed each client's details by the strings as decoded, which for a shared application name or
    version were copies the record no longer held: kept until loading ended, then freed among the records
    (42,000 holes at 20,000 clients, memory the process keeps)."""
    from licentia.core.sharing import ValuePool

    pool = ValuePool()
    first = ClientInfo(host="ws-1", user="ann", application="".join(["CAD ", "Studio"]), version="9.1")
    assert pool.client(first) is first
    copy = "".join(["CAD ", "Studio"])  # equal to the shared name, another object, as decoding gives
    second = ClientInfo(host="ws-2", user="bob", application=copy, version="9.1")
    assert pool.client(second) is second
    assert second.application is first.application
    assert sys.getrefcount(copy) == 2  # this name and the call's argument: nothing else holds it


def test_renewals_and_print_checks_file_the_records_own_ids_in_the_in_use_sets(issuer):
    """A heartbeat's lease ids and a print check's printer id are strings of the request: an in-use set that
    filed them kept one per renewal until its heap was rebuilt (~80 bytes each, 43,000 in a run at 30,000
    leases); it files the lease's and the printer's own."""
    state = _reloaded(_site(issuer))
    sent = "".join(["L", "1"])  # another object than the lease's own id, as a decoded request gives
    assert state.apply(c.Heartbeat(lease_ids=[sent]), T0 + 30).ok
    assert sys.getrefcount(sent) == 2  # this name and the call's argument: nothing of the state holds it
    client = ClientInfo(host="ws-1", user="user-1", application="Designer", version="2.1")
    printer = PrinterIdentity(name="Printer 1", driver="Label Driver 3", port="USB001", location="Dock")
    assert state.apply(c.PrintCheck(product="Labels", printer=printer, client=client, source_ip="10.0.0.7"),
                       T0 + 40).ok
    seats, printers = state._in_use["LIC-seats"].entries(), state._in_use["LIC-printers"].entries()
    assert all(key is state.leases[key].lease_id for _, key in seats)
    assert all(key is state.printers[key].printer_id for _, key in printers)
