"""The state machine is deterministic: the same commands at the same times give the same state,
whether applied live, replayed from their encoded form, or replayed on top of a snapshot."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from licentia.core import commands as c
from licentia.core.model import AccessRule, AdminUser, ClientInfo, MappingRule, PrinterIdentity
from licentia.core.printers import printer_id
from licentia.core.state import LicenseState, Outcome

T0 = 1_700_000_000.0
DAY = 86400.0

Script = list[tuple[c.Command, float]]


def workstation(version: str, user: str = "alice") -> ClientInfo:
    return ClientInfo(host="ws-01", user=user, application="Designer", version=version)


def print_check(name: str, user: str = "alice", port: str = "USB001") -> c.PrintCheck:
    return c.PrintCheck(product="LabelStudio", printer=PrinterIdentity(name=name, port=port),
                        client=ClientInfo(host="ws-02", user=user, application="LabelStudio", version="9"),
                        source_ip="10.0.0.7")


def checkout(lease_id: str, version: str, ttl_s: float | None = None) -> c.Checkout:
    return c.Checkout(request_id=f"req-{lease_id}", lease_id=lease_id, product="Designer",
                      client=workstation(version), feature="rfid", source_ip="10.0.0.8", ttl_s=ttl_s)


@pytest.fixture
def script(signed: Callable[..., c.AddLicense]) -> Script:
    """A command sequence touching every kind of state, with explicit times."""
    return [
        (c.PutAdminUser(user=AdminUser("admin", "h1", "admin")), T0),
        (signed(license_id="LIC-P", product="LabelStudio", unit="printers", count=2, grace_days=30), T0),
        (signed(license_id="LIC-S", product="Designer", unit="seats", count=2, features=["rfid"]), T0),
        (c.CreatePrinterGroup(name="Labels"), T0 + 1),
        (c.SetMappingRules(rules=[MappingRule(pattern="^zebra", group="Labels")]), T0 + 2),
        (print_check("Zebra-1"), T0 + 10),
        (print_check("Zebra-1", port="USB002"), T0 + 20),
        (checkout("L1", "1.0"), T0 + 30),
        (print_check("HP-1"), T0 + DAY),  # third printer on a count of 2: grace
        (checkout("L2", "2.0"), T0 + DAY + 1),  # same workstation, newer client version
        (c.Heartbeat(lease_ids=["L1", "L2"]), T0 + DAY + 50),
        (c.RenamePrinterGroup(name="Labels", new_name="Label Printers"), T0 + DAY + 60),
        (print_check("Zebra-9"), T0 + DAY + 70),
        (c.UpdateSettings(changes={"lease_ttl_s": 300}, expected_version=1), T0 + DAY + 80),
        (c.SetAccessRules(rules=[AccessRule(rule_id="no-eve", action="deny", who_kind="user", who="eve")]),
         T0 + DAY + 90),
        (print_check("Eve-Printer", user="eve"), T0 + DAY + 100),
        (c.Checkin(lease_id="L2"), T0 + DAY + 110),
        (c.ReclaimExpired(), T0 + DAY + 1000),
        (checkout("L3", "3.0", ttl_s=200), T0 + DAY + 1010),
        (c.SetPrinterGroup(printer_id=printer_id(PrinterIdentity(name="HP-1", port="USB001")),
                           group="Blocked"), T0 + DAY + 1020),
        (print_check("HP-1"), T0 + DAY + 1030),
        (c.DeleteAdminUser(username="admin"), T0 + DAY + 1040),
        (c.UpdateSettings(changes={"printer_window_days": 3}), T0 + 2 * DAY),
        (print_check("Zebra-1"), T0 + 5 * DAY),
        (c.Heartbeat(lease_ids=["L3"]), T0 + 5 * DAY),
        (c.PutAdminUser(user=AdminUser("ops", "h2", "viewer")), T0 + 5 * DAY + 1),
        (c.RemoveLicense(license_id="LIC-S"), T0 + 6 * DAY),
    ]


def run(state: LicenseState, script: Script) -> list[Outcome]:
    return [state.apply(command, now) for command, now in script]


def fresh_copies(script: Script) -> Script:
    """The script as the journal gives it back: every command encoded and decoded again."""
    return [(c.decode_command(c.encode_command(command)), now) for command, now in script]


def test_script_exercises_grants_and_refusals(script):
    outcomes = run(LicenseState(), fresh_copies(script))
    codes = [outcome.code for outcome in outcomes]
    assert codes.count("ok") >= 20
    assert {"access_denied", "printer_blocked", "last_admin"} <= set(codes)
    assert any(outcome.ok and getattr(outcome.result, "status", None) == "grace" for outcome in outcomes)


def test_same_commands_at_same_times_give_identical_state(script):
    first, second = LicenseState(), LicenseState()

    first_outcomes = run(first, script)
    second_outcomes = run(second, script)

    assert first_outcomes == second_outcomes
    assert first.snapshot_bytes() == second.snapshot_bytes()


def test_replaying_encoded_commands_gives_identical_state(script):
    live, replayed = LicenseState(), LicenseState()
    live_outcomes = run(live, fresh_copies(script))
    replayed_outcomes = run(replayed, fresh_copies(script))
    assert live_outcomes == replayed_outcomes
    assert live.snapshot_bytes() == replayed.snapshot_bytes()


def test_different_times_give_different_state(script):
    shifted = [(command, now + 1) for command, now in fresh_copies(script)]
    a, b = LicenseState(), LicenseState()
    run(a, fresh_copies(script))
    run(b, shifted)
    assert a.snapshot_bytes() != b.snapshot_bytes()


def test_snapshot_roundtrip_preserves_state(script):
    state = LicenseState()
    run(state, fresh_copies(script)[:15])
    restored = LicenseState.from_snapshot(state.snapshot())
    assert restored.snapshot_bytes() == state.snapshot_bytes()
    restored_from_bytes = LicenseState.from_snapshot(msgspec.json.decode(state.snapshot_bytes(),
                                                                          type=type(state.snapshot())))
    assert restored_from_bytes.snapshot_bytes() == state.snapshot_bytes()


@pytest.mark.parametrize("split", range(28))
def test_snapshot_then_remaining_commands_equals_applying_all(script, split):
    assert split <= len(script)
    whole = LicenseState()
    whole_steps = [(whole.apply(command, now), whole.snapshot_bytes()) for command, now in fresh_copies(script)]

    head = LicenseState()
    run(head, fresh_copies(script[:split]))
    resumed = LicenseState.from_snapshot(head.snapshot())

    for step, (command, now) in enumerate(fresh_copies(script[split:]), start=split):
        outcome = resumed.apply(command, now)
        assert (outcome, resumed.snapshot_bytes()) == whole_steps[step], f"diverged at command {step}: {command}"
    end = script[-1][1]
    for license_id in whole.licenses:
        assert resumed.used(license_id, end) == whole.used(license_id, end)


def test_a_change_stamped_before_the_last_one_is_applied_at_the_last_ones_time():
    from licentia.core.commands import AddLicense, Checkout
    from licentia.core.model import ClientInfo, LicenseTerms

    state = LicenseState()
    terms = LicenseTerms(license_id="S", product="CAD", edition="e", customer="c", unit="seats", count=1,
                         not_before=0.0, expires=10_000.0)
    state.apply(AddLicense(terms=terms, key_id="k", signature="s"), 1.0)
    state.apply(Checkout(request_id="r1", lease_id="l1", product="CAD", client=ClientInfo(), ttl_s=10.0), 100.0)
    late = state.apply(Checkout(request_id="r2", lease_id="l2", product="CAD", client=ClientInfo()), 50.0)
    assert late.code == "limit_exceeded"
    assert state.time_floor == 100.0
    restored = LicenseState.from_snapshot(state.snapshot())
    assert restored.time_floor == 100.0 and restored.snapshot_bytes() == state.snapshot_bytes()
