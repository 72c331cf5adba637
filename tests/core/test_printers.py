"""Printer licenses: counting printers, the usage window, grace and the Blocked group."""

from __future__ import annotations

import pytest

from licentia.core.commands import PrintCheck, RemoveLicense, SetMappingRules, SetPrinterGroup
from licentia.core.model import BLOCKED_GROUP, DEFAULT_GROUP, ClientInfo, MappingRule, PrinterIdentity
from licentia.core.printers import printer_id
from licentia.core.state import LicenseState, Outcome
from licentia.core.views import license_status, printer_view

T0 = 1_700_000_000.0  # the install time the `install` fixture defaults to
DAY = 86400.0
PRODUCT = "LabelStudio"
CLIENT = ClientInfo(host="ws-01", user="alice", application="LabelStudio", version="1.0")


def zebra(name: str = "Zebra-1", *, driver: str = "ZDesigner ZD420", port: str = "USB001",
          location: str = "Warehouse") -> PrinterIdentity:
    return PrinterIdentity(name=name, driver=driver, port=port, location=location)


def check(state: LicenseState, printer: PrinterIdentity, now: float, product: str = PRODUCT) -> Outcome:
    return state.apply(PrintCheck(product=product, printer=printer, client=CLIENT, source_ip="10.0.0.2"), now)


def test_first_print_check_assigns_license_and_counts_printer(state, install):
    lic = install(license_id="LIC-P", count=5)

    outcome = check(state, zebra(), T0 + 10)

    assert outcome.ok and outcome.result.granted
    assert outcome.result.status == "ok"
    assert outcome.result.license_id == lic
    assert outcome.result.group == DEFAULT_GROUP
    pid = outcome.result.printer_id
    assert state.printers[pid].license_id == lic
    assert state.printers[pid].uses == 1
    assert state.used(lic, T0 + 10) == 1
    assert [(u.kind, u.granted, u.reason, u.license_id) for u in outcome.usage] == [("print", True, "ok", lic)]


def test_same_printer_again_is_not_counted_twice(state, install):
    lic = install(count=5)
    first = check(state, zebra(), T0 + 10)
    second = check(state, zebra(), T0 + 3600)

    assert second.ok and second.result.status == "ok"
    assert second.result.printer_id == first.result.printer_id
    assert state.used(lic, T0 + 3600) == 1
    assert len(state.printers) == 1
    assert state.printers[first.result.printer_id].uses == 2
    assert state.printers[first.result.printer_id].last_used == T0 + 3600


@pytest.mark.parametrize(
    "other",
    [
        zebra(port="USB002"),
        zebra(driver="ZDesigner GK420"),
        zebra(location="Office"),
        zebra(name="Zebra-2"),
    ],
    ids=["port", "driver", "location", "name"],
)
def test_same_name_installed_differently_counts_twice(state, install, other):
    lic = install(count=5)
    first = check(state, zebra(), T0 + 1)
    second = check(state, other, T0 + 2)

    assert first.result.printer_id != second.result.printer_id
    assert state.used(lic, T0 + 2) == 2
    assert len(state.printers) == 2


def test_printer_identity_ignores_case_and_surrounding_spaces(state, install):
    lic = install(count=5)
    check(state, zebra("Zebra-1", driver="ZDesigner ZD420", port="USB001", location="Warehouse"), T0 + 1)
    again = check(state, zebra(" ZEBRA-1 ", driver="zdesigner zd420", port="usb001", location="WAREHOUSE"), T0 + 2)

    assert again.ok
    assert state.used(lic, T0 + 2) == 1
    assert len(state.printers) == 1
    assert printer_id(zebra("ZEBRA-1")) == printer_id(zebra("zebra-1"))


def test_blocked_printer_is_denied_even_with_free_seats(state, install):
    lic = install(count=5)
    pid = check(state, zebra(), T0 + 1).result.printer_id
    assert state.apply(SetPrinterGroup(printer_id=pid, group=BLOCKED_GROUP), T0 + 2).ok

    outcome = check(state, zebra(), T0 + 3)

    assert not outcome.ok
    assert outcome.code == "printer_blocked"
    assert [(u.granted, u.reason) for u in outcome.usage] == [(False, "printer_blocked")]
    assert state.used(lic, T0 + 3) == 0  # blocking frees the seat it held
    assert state.printers[pid].license_id is None


def test_new_printer_mapped_to_blocked_is_denied_on_first_use(state, install):
    install(count=5)
    rule = MappingRule(pattern="^guest", group=BLOCKED_GROUP)
    assert state.apply(SetMappingRules(rules=[rule]), T0).ok

    outcome = check(state, zebra("Guest-Printer"), T0 + 1)

    assert outcome.code == "printer_blocked"
    assert printer_id(zebra("Guest-Printer")) not in state.printers  # a refused request records no printer


def test_unblocking_printer_allows_it_again(state, install):
    lic = install(count=5)
    pid = check(state, zebra(), T0 + 1).result.printer_id
    state.apply(SetPrinterGroup(printer_id=pid, group=BLOCKED_GROUP), T0 + 2)
    assert check(state, zebra(), T0 + 3).code == "printer_blocked"

    assert state.apply(SetPrinterGroup(printer_id=pid, group=DEFAULT_GROUP), T0 + 4).ok
    outcome = check(state, zebra(), T0 + 5)

    assert outcome.ok and outcome.result.status == "ok"
    assert state.used(lic, T0 + 5) == 1


def test_set_printer_group_refuses_unknown_printer_or_group(state, install):
    install(count=5)
    pid = check(state, zebra(), T0 + 1).result.printer_id
    before = state.snapshot_bytes()
    assert state.apply(SetPrinterGroup(printer_id="nope", group=DEFAULT_GROUP), T0).code == "printer_not_found"
    assert state.apply(SetPrinterGroup(printer_id=pid, group="Nowhere"), T0).code == "group_not_found"
    assert state.snapshot_bytes() == before


def test_over_count_printer_goes_into_grace(state, install):
    lic = install(count=1, grace_days=30)
    assert check(state, zebra("A"), T0).result.status == "ok"

    outcome = check(state, zebra("B"), T0 + DAY)

    assert outcome.ok and outcome.result.granted
    assert outcome.result.status == "grace"
    assert outcome.result.grace_days_left == 30
    assert state.licenses[lic].grace_started_at == T0 + DAY
    assert state.used(lic, T0 + DAY) == 2
    assert license_status(state, state.licenses[lic], T0 + DAY)["status"] == "grace"


def test_printer_window_frees_seat_after_seven_days(state, install):
    lic = install(count=1, grace_days=30)
    check(state, zebra("A"), T0)
    assert check(state, zebra("B"), T0 + DAY).result.status == "grace"

    # A last printed at T0; its 7-day window ends at T0 + 7 days, so its seat is free again.
    outcome = check(state, zebra("B"), T0 + 7 * DAY + 1)

    assert outcome.ok and outcome.result.status == "ok"
    assert state.used(lic, T0 + 7 * DAY + 1) == 1
    window_a = printer_view(state, state.printers[printer_id(zebra("A"))], T0 + 7 * DAY + 1)
    assert not window_a["in_window"] and not window_a["counted"]


def test_printer_still_counts_just_before_window_ends(state, install):
    lic = install(count=1, grace_days=30)
    check(state, zebra("A"), T0)
    assert check(state, zebra("B"), T0 + 7 * DAY - 1).result.status == "grace"
    assert state.used(lic, T0 + 7 * DAY - 1) == 2


def test_printer_back_after_window_takes_free_seat_again(state, install):
    lic = install(count=1, grace_days=0)
    check(state, zebra("A"), T0)
    outcome = check(state, zebra("B"), T0 + 8 * DAY)  # A's window lapsed, so B fits without grace

    assert outcome.ok and outcome.result.status == "ok"
    assert state.printers[printer_id(zebra("A"))].license_id == lic  # still assigned, but not counted
    assert state.used(lic, T0 + 8 * DAY) == 1
    assert check(state, zebra("A"), T0 + 8 * DAY + 1).code == "limit_exceeded"


def test_spent_grace_denies_new_printer_but_serves_known_printer_in_window(state, install):
    lic = install(count=1, grace_days=30)
    assert check(state, zebra("A"), T0).result.status == "ok"
    assert check(state, zebra("B"), T0 + DAY).result.status == "grace"  # grace starts at T0 + 1 day
    # Keep both printers inside their 7-day window, so the license stays over its count.
    for day in range(6, 32, 5):
        for name in ("A", "B"):
            outcome = check(state, zebra(name), T0 + day * DAY)
            assert outcome.ok and outcome.result.status == "grace", (name, day)

    now = T0 + 32 * DAY  # 31 days of grace
    assert state.licenses[lic].grace_seconds_left(now) == 0
    denied = check(state, zebra("C"), now)
    known = check(state, zebra("A"), now)

    assert not denied.ok
    assert denied.code == "limit_exceeded"
    assert [(u.granted, u.reason) for u in denied.usage] == [(False, "limit_exceeded")]
    assert known.ok and known.result.granted
    assert known.result.printer_id == printer_id(zebra("A"))
    assert license_status(state, state.licenses[lic], now)["status"] == "exhausted"


def test_known_printer_outside_its_window_is_denied_once_grace_is_spent(state, install):
    install(count=1, grace_days=1)
    check(state, zebra("A"), T0)
    check(state, zebra("B"), T0 + 1)  # grace starts
    assert check(state, zebra("A"), T0 + 5 * DAY).ok  # A now counts until T0 + 12 days
    assert check(state, zebra("C"), T0 + 5 * DAY).code == "limit_exceeded"
    # B's window ended at T0 + 7 days, but A still holds the only seat.
    assert check(state, zebra("B"), T0 + 8 * DAY).code == "limit_exceeded"


def test_zero_grace_days_denies_over_use_immediately(state, install):
    lic = install(count=1, grace_days=0)
    assert check(state, zebra("A"), T0).ok

    outcome = check(state, zebra("B"), T0 + 1)

    assert outcome.code == "limit_exceeded"
    assert state.used(lic, T0 + 1) == 1
    assert check(state, zebra("A"), T0 + 2).ok  # the printer that holds the seat keeps printing


def test_no_license_for_product_is_refused(state, install):
    install(product="LabelStudio", count=5)

    outcome = check(state, zebra(), T0 + 1, product="OtherProduct")

    assert outcome.code == "no_license"
    assert [(u.granted, u.reason, u.product) for u in outcome.usage] == [(False, "no_license", "OtherProduct")]


def test_seat_license_does_not_serve_printers(state, install):
    install(unit="seats", count=5)
    assert check(state, zebra(), T0 + 1).code == "no_license"


def test_license_not_yet_valid_does_not_serve_until_it_starts(state, install):
    install(count=5, not_before=T0 + DAY, expires=T0 + 30 * DAY)

    assert check(state, zebra(), T0 + DAY - 1).code == "no_license"
    assert check(state, zebra(), T0 + DAY).ok


def test_expired_license_does_not_serve(state, install):
    lic = install(count=5, expires=T0 + 10 * DAY)
    assert check(state, zebra(), T0 + 10 * DAY - 1).ok

    outcome = check(state, zebra(), T0 + 10 * DAY)

    assert outcome.code == "no_license"
    assert license_status(state, state.licenses[lic], T0 + 10 * DAY)["status"] == "expired"


def test_printer_moves_to_another_valid_license_when_its_own_expires(state, install):
    short = install(license_id="LIC-SHORT", count=1, expires=T0 + 10 * DAY)
    long = install(license_id="LIC-LONG", count=1, expires=T0 + 100 * DAY)
    assert check(state, zebra(), T0).result.license_id == short  # the one expiring first is used first

    outcome = check(state, zebra(), T0 + 10 * DAY)

    assert outcome.ok and outcome.result.license_id == long
    assert state.used(long, T0 + 10 * DAY) == 1


def test_printers_fill_the_second_license_when_the_first_is_full(state, install):
    first = install(license_id="LIC-1", count=1, expires=T0 + 50 * DAY)
    second = install(license_id="LIC-2", count=1, expires=T0 + 60 * DAY)
    assert check(state, zebra("A"), T0).result.license_id == first
    outcome = check(state, zebra("B"), T0 + 1)
    assert outcome.result.license_id == second and outcome.result.status == "ok"


def test_removing_license_unassigns_its_printers(state, install):
    lic = install(count=5)
    pid = check(state, zebra(), T0).result.printer_id
    assert state.apply(RemoveLicense(lic), T0 + 1).ok
    assert state.printers[pid].license_id is None
    assert check(state, zebra(), T0 + 2).code == "no_license"
