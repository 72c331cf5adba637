"""Server-wide settings (validated, versioned, with history) and the admin users."""

from __future__ import annotations

import msgspec
import pytest

from licentia.core.commands import (
    Checkout,
    DeleteAdminUser,
    PrintCheck,
    PutAdminUser,
    RehashAdminPassword,
    UpdateSettings,
)
from licentia.core.model import AdminUser, ClientInfo, PrinterIdentity
from licentia.core.settings import Settings

T0 = 1_700_000_000.0
DAY = 86400.0


@pytest.mark.parametrize(
    "changes",
    [
        {"no_such_setting": 1},
        {"lease_ttl_s": 1},
        {"lease_ttl_s": 8 * 86400},
        {"printer_window_days": 0},
        {"printer_window_days": 366},
        {"usage_retention_days": 0.5},
        {"client_grace_hours": -1},
        {"heartbeat_interval_s": 61},  # more than half of the default 120 s TTL
        {"lease_ttl_s": 50},  # makes the default 30 s heartbeat more than half of the TTL
        {"lease_ttl_s": "long"},
        {"default_access_policy": "sometimes"},
        {"server_name": ""},
    ],
)
def test_invalid_settings_are_refused_and_nothing_changes(state, changes):
    before = state.snapshot_bytes()

    outcome = state.apply(UpdateSettings(changes=changes), T0)

    assert outcome.code == "invalid_settings"
    assert not outcome.changed
    assert state.settings == Settings()
    assert state.settings_version == 1
    assert state.snapshot_bytes() == before


def test_unknown_setting_is_named_in_refusal(state):
    assert "no_such_setting" in state.apply(UpdateSettings(changes={"no_such_setting": 1}), T0).message


def test_heartbeat_of_exactly_half_the_ttl_is_accepted(state):
    assert state.apply(UpdateSettings(changes={"heartbeat_interval_s": 60}), T0).ok
    assert state.settings.heartbeat_interval_s == 60


def test_update_settings_applies_change_and_bumps_version(state):
    outcome = state.apply(UpdateSettings(changes={"lease_ttl_s": 300, "server_name": "Plant 4"}), T0)

    assert outcome.ok and msgspec.to_builtins(outcome.result) == {"version": 2}
    assert state.settings_version == 2
    assert state.settings.lease_ttl_s == 300
    assert state.settings.server_name == "Plant 4"
    assert state.settings.heartbeat_interval_s == 30  # untouched


def test_expected_version_mismatch_is_a_conflict(state):
    assert state.apply(UpdateSettings(changes={"lease_ttl_s": 300}, expected_version=1), T0).ok
    before = state.snapshot_bytes()

    stale = state.apply(UpdateSettings(changes={"lease_ttl_s": 600}, expected_version=1), T0 + 1)

    assert stale.code == "version_conflict"
    assert state.settings.lease_ttl_s == 300
    assert state.snapshot_bytes() == before
    assert state.apply(UpdateSettings(changes={"lease_ttl_s": 600}, expected_version=2), T0 + 2).ok
    assert state.settings_version == 3


def test_settings_history_records_each_change(state):
    state.apply(UpdateSettings(changes={"lease_ttl_s": 300}), T0)
    state.apply(UpdateSettings(changes={"bad": 1}), T0 + 1)
    state.apply(UpdateSettings(changes={"server_name": "X"}), T0 + 2)

    assert state.settings_history == [
        {"version": 2, "at": T0, "changes": {"lease_ttl_s": 300}},
        {"version": 3, "at": T0 + 2, "changes": {"server_name": "X"}},
    ]


def test_settings_history_is_bounded(state):
    for i in range(60):
        state.apply(UpdateSettings(changes={"lease_ttl_s": 100 + i}), T0 + i)
    assert len(state.settings_history) == 50
    assert state.settings_history[-1]["version"] == 61
    assert state.settings_history[0]["version"] == 12


def test_new_lease_ttl_applies_to_new_leases(state, install):
    install(product="Designer", unit="seats", count=2)
    state.apply(UpdateSettings(changes={"lease_ttl_s": 600}), T0)
    outcome = state.apply(Checkout(request_id="r", lease_id="L", product="Designer", client=ClientInfo()), T0 + 1)
    assert outcome.result.expires_at == T0 + 601


def test_shorter_printer_window_frees_seats_at_once(state, install):
    lic = install(count=1, grace_days=0)
    client = ClientInfo(host="ws")
    state.apply(PrintCheck(product="LabelStudio", printer=PrinterIdentity(name="A"), client=client), T0)
    later = T0 + 2 * DAY
    assert state.apply(PrintCheck(product="LabelStudio", printer=PrinterIdentity(name="B"), client=client),
                       later).code == "limit_exceeded"

    assert state.apply(UpdateSettings(changes={"printer_window_days": 1}), later).ok

    assert state.used(lic, later) == 0
    assert state.apply(PrintCheck(product="LabelStudio", printer=PrinterIdentity(name="B"), client=client),
                       later).ok


# -- users ------------------------------------------------------------------------------------------


def user(name: str, role: str = "admin", password_hash: str = "hash") -> AdminUser:
    return AdminUser(username=name, password_hash=password_hash, role=role)


def test_put_admin_user_creates_user(state):
    outcome = state.apply(PutAdminUser(user=user("admin")), T0)
    assert outcome.ok and msgspec.to_builtins(outcome.result) == {"username": "admin", "role": "admin"}
    assert state.users["admin"].role == "admin"
    assert state.users["admin"].password_version == 1


def test_put_admin_user_updates_and_bumps_password_version(state):
    state.apply(PutAdminUser(user=user("admin")), T0)
    state.apply(PutAdminUser(user=user("ops", "viewer")), T0)
    assert state.apply(PutAdminUser(user=user("ops", "manager", "new-hash")), T0 + 1).ok
    assert state.users["ops"].role == "manager"
    assert state.users["ops"].password_hash == "new-hash"
    assert state.users["ops"].password_version == 2


@pytest.mark.parametrize("username", ["", "x" * 65, "tab\tname"])
def test_invalid_username_is_refused(state, username):
    assert state.apply(PutAdminUser(user=user(username)), T0).code == "invalid_user"
    assert state.users == {}


@pytest.mark.parametrize("role", ["manager", "viewer"])
def test_last_admin_cannot_be_demoted(state, role):
    state.apply(PutAdminUser(user=user("admin")), T0)
    state.apply(PutAdminUser(user=user("viewer1", "viewer")), T0)
    before = state.snapshot_bytes()

    outcome = state.apply(PutAdminUser(user=user("admin", role)), T0 + 1)

    assert outcome.code == "last_admin"
    assert state.users["admin"].role == "admin"
    assert state.snapshot_bytes() == before


def test_last_admin_cannot_be_deleted(state):
    state.apply(PutAdminUser(user=user("admin")), T0)
    before = state.snapshot_bytes()
    assert state.apply(DeleteAdminUser(username="admin"), T0).code == "last_admin"
    assert "admin" in state.users
    assert state.snapshot_bytes() == before


def test_admin_can_be_demoted_or_deleted_while_another_admin_remains(state):
    state.apply(PutAdminUser(user=user("a1")), T0)
    state.apply(PutAdminUser(user=user("a2")), T0)
    assert state.apply(PutAdminUser(user=user("a1", "viewer")), T0).ok
    assert state.apply(DeleteAdminUser(username="a1"), T0).ok
    assert state.apply(DeleteAdminUser(username="a2"), T0).code == "last_admin"
    assert list(state.users) == ["a2"]


def test_non_admin_user_can_be_deleted(state):
    state.apply(PutAdminUser(user=user("admin")), T0)
    state.apply(PutAdminUser(user=user("v", "viewer")), T0)
    assert state.apply(DeleteAdminUser(username="v"), T0).ok
    assert state.apply(DeleteAdminUser(username="v"), T0).code == "user_not_found"


def test_a_rehash_replaces_the_hash_and_keeps_the_password_version(state):
    state.apply(PutAdminUser(user=user("admin", password_hash="old-hash")), T0)
    outcome = state.apply(RehashAdminPassword(username="admin", old_hash="old-hash", new_hash="new-hash"), T0 + 1)
    assert outcome.ok and outcome.changed
    assert state.users["admin"].password_hash == "new-hash"
    assert state.users["admin"].password_version == 1
    assert state.users["admin"].role == "admin"


def test_a_rehash_after_the_password_changed_meanwhile_changes_nothing(state):
    state.apply(PutAdminUser(user=user("admin", password_hash="old-hash")), T0)
    state.apply(PutAdminUser(user=user("admin", password_hash="set-by-an-admin")), T0 + 1)
    before = state.snapshot_bytes()
    stale = RehashAdminPassword(username="admin", old_hash="old-hash", new_hash="rehashed-old-password")
    assert state.apply(stale, T0 + 2).code == "password_changed"
    missing = RehashAdminPassword(username="nobody", old_hash="old-hash", new_hash="x")
    assert state.apply(missing, T0 + 2).code == "password_changed"
    assert state.snapshot_bytes() == before
