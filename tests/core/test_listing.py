"""The sorted orders of leases, printers and clients follow every change, and pages read from them."""

from __future__ import annotations

import msgspec

from licentia.api.lists import LEASES, PRINTERS, ListQuery, lease_page, list_query, printer_page
from licentia.core.commands import Checkin, Checkout, PrintCheck, SetPrinterGroup
from licentia.core.listing import Listings
from licentia.core.model import ClientInfo, PrinterIdentity
from licentia.core.state import LicenseState

T0 = 1_700_000_000.0
DAY = 86400.0


def _print(state: LicenseState, name: str, now: float) -> str:
    client = ClientInfo(host=f"host-{name}", user="ann", application="Labels")
    command = PrintCheck(product="Labels", printer=PrinterIdentity(name=name), client=client, source_ip="10.0.0.1")
    outcome = state.apply(command, now)
    assert outcome.ok, outcome
    return outcome.result.printer_id


def _checkout(state: LicenseState, lease_id: str, user: str, product: str, now: float) -> None:
    client = ClientInfo(host=f"ws-{user}", user=user, application="CAD")
    command = Checkout(request_id=f"r-{lease_id}", lease_id=lease_id, product=product, client=client,
                       source_ip="10.0.0.2")
    assert state.apply(command, now).ok


def _names(page) -> list[str]:
    return [p["identity"]["name"] for p in page.items]


def _query(kind, **params: str):
    return list_query(kind, params)


def test_printers_come_newest_first_and_move_when_used_again(state, install):
    install(license_id="LIC-P", product="Labels", count=100)
    for i in range(5):
        _print(state, f"P{i}", T0 + i)
    _print(state, "P1", T0 + 10)

    page = printer_page(state, T0 + 20, _query(PRINTERS))

    assert _names(page) == ["P1", "P4", "P3", "P2", "P0"]
    assert page.total == 5 and page.next is None


def test_printer_pages_follow_the_cursor_to_the_end_without_repeats(state, install):
    install(license_id="LIC-P", product="Labels", count=1000)
    for i in range(25):
        _print(state, f"P{i:02d}", T0 + i)
    seen: list[str] = []
    query = _query(PRINTERS, sort="name", limit="10")
    pages = 0
    while True:
        page = printer_page(state, T0 + 100, query)
        seen += _names(page)
        pages += 1
        if page.next is None:
            break
        query = _query(PRINTERS, sort="name", limit="10", after=page.next)

    assert seen == [f"P{i:02d}" for i in range(25)]
    assert pages == 3


def test_printer_search_finds_names_by_prefix_in_any_case(state, install):
    install(license_id="LIC-P", product="Labels", count=100)
    for name in ("Zebra-1", "zebra-2", "Brother", "Zeta"):
        _print(state, name, T0)

    page = printer_page(state, T0 + 1, _query(PRINTERS, q="ZEB"))

    assert _names(page) == ["Zebra-1", "zebra-2"]
    assert page.total == 2


def test_group_filter_and_recent_window_are_answered_by_the_group_order(state, install):
    install(license_id="LIC-P", product="Labels", count=100)
    old = _print(state, "Old", T0)
    _print(state, "New", T0 + 8 * DAY)
    blocked = _print(state, "Bad", T0 + 8 * DAY)
    assert state.apply(SetPrinterGroup(printer_id=blocked, group="Blocked"), T0 + 8 * DAY).ok

    default_recent = printer_page(state, T0 + 8 * DAY, _query(PRINTERS), group="Default", recent=True)
    default_all = printer_page(state, T0 + 8 * DAY, _query(PRINTERS), group="Default")
    blocked_page = printer_page(state, T0 + 8 * DAY, _query(PRINTERS), group="Blocked")

    assert _names(default_recent) == ["New"] and default_recent.total == 1
    assert _names(default_all) == ["New", "Old"] and default_all.total == 2
    assert _names(blocked_page) == ["Bad"]
    assert state.listings().group_count("Default") == 2
    assert old in state.printers


def test_leases_leave_the_orders_when_checked_in_and_are_found_by_holder(state, install):
    install(license_id="LIC-S", product="CAD", unit="seats", count=10)
    install(license_id="LIC-T", product="Art", unit="seats", count=10)
    _checkout(state, "L1", "bob", "CAD", T0 + 1)
    _checkout(state, "L2", "amy", "CAD", T0 + 2)
    _checkout(state, "L3", "bea", "Art", T0 + 3)
    assert state.apply(Checkin(lease_id="L2"), T0 + 4).ok

    by_product = lease_page(state, T0 + 5, _query(LEASES))
    by_user = lease_page(state, T0 + 5, _query(LEASES, sort="user", order="desc"))
    found = lease_page(state, T0 + 5, _query(LEASES, q="BE"))

    assert [lease["lease_id"] for lease in by_product.items] == ["L3", "L1"]
    assert [lease["lease_id"] for lease in by_user.items] == ["L1", "L3"]
    assert [lease["lease_id"] for lease in found.items] == ["L3"] and found.total == 1


def test_orders_rebuilt_from_a_snapshot_equal_the_ones_kept_up_to_date(state, install):
    install(license_id="LIC-P", product="Labels", count=100)
    install(license_id="LIC-S", product="CAD", unit="seats", count=10)
    for i in range(6):
        _print(state, f"P{i}", T0 + (i * 7) % 5)
        _checkout(state, f"L{i}", f"u{i % 3}", "CAD", T0 + i)

    loaded = LicenseState.from_snapshot(state.snapshot())
    rebuilt = Listings.of(state.leases.values(), state.printers.values(), state.clients.values())

    for name in ("leases_by_product", "leases_by_holder", "printers_by_seen", "printers_by_name",
                 "printers_by_group", "clients_by_seen", "clients_by_host"):
        assert list(getattr(state.listings(), name).walk()) == list(getattr(rebuilt, name).walk()), name
        assert list(getattr(loaded.listings(), name).walk()) == list(getattr(rebuilt, name).walk()), name


def test_a_cursor_the_list_never_gave_out_is_refused_with_a_sentence():
    import pytest

    from licentia.api.errors import ApiError

    for bad in ("%%%", "bm90IGpzb24", msgspec.json.encode([1, 2, 3]).hex()):
        with pytest.raises(ApiError) as refused:
            list_query(PRINTERS, {"after": bad})
        assert "cursor" in refused.value.message
    assert isinstance(list_query(PRINTERS, {}), ListQuery)


def test_clients_seen_again_from_another_address_or_merged_from_a_partner_stay_in_order(state, install):
    """A client without a host name is listed by its address; the orders keep no copy of it, so the state
    takes the client out before the address changes. Whatever changes, the orders equal ones built afresh."""
    from licentia.core.commands import FormBackupPair, MergePeerChanges
    from licentia.core.model import Client, PairMember

    install(license_id="LIC-P", product="Labels", count=100)
    for n in range(12):
        client = ClientInfo(host="" if n % 2 else f"Host-{n % 3}", user=f"u{n % 4}", application="Labels")
        command = PrintCheck(product="Labels", printer=PrinterIdentity(name=f"P{n % 5}"), client=client,
                             source_ip=f"10.0.{n % 3}.{9 - n}")
        assert state.apply(command, T0 + n).ok
    assert state.apply(FormBackupPair(name="B1", main=PairMember("main", "http://10.0.0.1:8470"),
                                      backup=PairMember("backup", "http://10.0.0.2:8470"), me="backup"), T0 + 20).ok
    theirs = [msgspec.structs.replace(client, source_ip="10.9.9.9", last_seen=T0 + 30 + n)
              for n, client in enumerate(state.clients.values())]
    theirs.append(Client(client_id="new", info=ClientInfo(), source_ip="10.1.1.1", first_seen=T0, last_seen=T0 + 40))
    merged = state.apply(MergePeerChanges(peer="main", up_to=5, usage_up_to=0, config=None, printers=[],
                                          clients=theirs, usage=[]), T0 + 50)
    assert merged.ok, merged

    rebuilt = Listings.of(state.leases.values(), state.printers.values(), state.clients.values())
    for name in ("clients_by_seen", "clients_by_host", "printers_by_seen", "printers_by_group"):
        assert list(getattr(state.listings(), name).walk()) == list(getattr(rebuilt, name).walk()), name
    hosts = [key[0] for key in state.listings().clients_by_host.walk()]
    assert hosts.count("10.9.9.9") == 2 and "10.1.1.1" in hosts  # the two without a host name, and the new one
    assert not any(host.startswith("10.0.") for host in hosts)


class _CountedBlocks(list):
    """An index's blocks, counting how many times one of them is looked up."""

    looked_up = 0

    def __getitem__(self, item):
        _CountedBlocks.looked_up += 1
        return super().__getitem__(item)


def test_a_page_from_the_start_or_the_end_of_a_large_order_looks_at_a_few_blocks_only() -> None:
    """Reading the first 100 keys of a 300,000-entry order listed every block of it first (0.3-0.5 ms a page)."""
    from licentia.core.listing import SortedIndex

    index = SortedIndex(lambda n: (n,), int)
    index.fill(range(300_000))
    index._blocks = _CountedBlocks(index._blocks)
    for descending in (False, True):
        _CountedBlocks.looked_up = 0
        walked = index.walk(descending=descending)
        keys = [next(walked) for _ in range(100)]
        assert keys[0] == ((299_999,) if descending else (0,))
        assert _CountedBlocks.looked_up <= 4  # the first (or last) block, and the next: not 2,344
