"""Removing a license and installing it again resumes its use and grace: it never starts afresh."""

from __future__ import annotations

from licentia.core.commands import PrintCheck, RemoveLicense
from licentia.core.model import ClientInfo, PrinterIdentity
from licentia.core.state import LicenseState, Outcome
from licentia.core.views import license_status

T0 = 1_700_000_000.0
DAY = 86400.0
CLIENT = ClientInfo(host="ws-01", user="alice", application="LabelStudio")


def check(state: LicenseState, name: str, now: float, product: str = "LabelStudio") -> Outcome:
    return state.apply(PrintCheck(product=product, printer=PrinterIdentity(name=name), client=CLIENT), now)


def over_the_limit(state: LicenseState, install, printers: int = 10) -> str:
    """A 5-printer license used by `printers` printers from T0 + 1 h: in grace since the sixth."""
    lic = install(license_id="LIC-G", count=5, grace_days=30)
    for n in range(printers):
        assert check(state, f"P{n}", T0 + 3600 + n).ok
    return lic


def test_reinstalled_license_keeps_its_printers_and_grace(state, install, signed):
    lic = over_the_limit(state, install)
    before = license_status(state, state.licenses[lic], T0 + DAY)
    assert (before["used"], before["status"], before["grace_started_at"]) == (10, "grace", T0 + 3605)

    assert state.apply(RemoveLicense(license_id=lic), T0 + DAY).ok
    assert state.apply(signed(license_id=lic, count=5, grace_days=30), T0 + DAY + 60).ok

    after = license_status(state, state.licenses[lic], T0 + DAY + 60)
    assert after["used"] == 10
    assert after["status"] == "grace"
    assert after["grace_started_at"] == T0 + 3605
    assert after["grace_days_left"] == round(30 - (DAY + 60 - 3605) / DAY, 2)
    assert all(p.license_id == lic for p in state.printers.values())
    # An eleventh printer is still over the limit, and grace goes on from where it was.
    assert check(state, "P10", T0 + DAY + 120).result.status == "grace"


def test_removed_license_counts_nothing_until_it_is_installed_again(state, install, signed):
    lic = over_the_limit(state, install)
    state.apply(RemoveLicense(license_id=lic), T0 + DAY)

    assert all(p.license_id is None for p in state.printers.values())
    assert check(state, "P0", T0 + DAY + 1).code == "no_license"


def test_a_printer_that_moved_to_another_license_meanwhile_stays_there(state, install, signed):
    lic = over_the_limit(state, install, printers=3)
    other = install(license_id="LIC-OTHER", count=5, now=T0 + 2 * DAY)
    state.apply(RemoveLicense(license_id=lic), T0 + 2 * DAY)
    moved = check(state, "P0", T0 + 2 * DAY + 1)
    assert moved.result.license_id == other

    assert state.apply(signed(license_id=lic, count=5), T0 + 2 * DAY + 2).ok

    assert license_status(state, state.licenses[lic], T0 + 2 * DAY + 2)["used"] == 2
    assert license_status(state, state.licenses[other], T0 + 2 * DAY + 2)["used"] == 1


def test_printers_unused_for_the_whole_window_do_not_come_back(state, install, signed):
    lic = over_the_limit(state, install)
    state.apply(RemoveLicense(license_id=lic), T0 + DAY)

    assert state.apply(signed(license_id=lic, count=5, grace_days=30), T0 + 9 * DAY).ok

    status = license_status(state, state.licenses[lic], T0 + 9 * DAY)
    assert status["used"] == 0
    assert status["grace_started_at"] == T0 + 3605  # grace ran on while the license was away


def test_what_a_removed_license_leaves_behind_survives_a_snapshot(state, install, signed):
    lic = over_the_limit(state, install)
    state.apply(RemoveLicense(license_id=lic), T0 + DAY)
    restored = LicenseState.from_snapshot(state.snapshot())

    assert restored.apply(signed(license_id=lic, count=5, grace_days=30), T0 + DAY + 60).ok

    after = license_status(restored, restored.licenses[lic], T0 + DAY + 60)
    assert (after["used"], after["status"], after["grace_started_at"]) == (10, "grace", T0 + 3605)


def test_a_removed_license_reinstalled_twice_keeps_its_grace(state, install, signed):
    lic = over_the_limit(state, install)
    for at in (T0 + DAY, T0 + 2 * DAY):
        state.apply(RemoveLicense(license_id=lic), at)
        assert state.apply(signed(license_id=lic, count=5, grace_days=30), at + 1).ok

    assert state.licenses[lic].grace_started_at == T0 + 3605
    assert license_status(state, state.licenses[lic], T0 + 2 * DAY + 1)["used"] == 10
