"""Server settings through PATCH /api/v1/admin/settings: validated, versioned and applied."""

from __future__ import annotations

import pytest
from api_support import assert_error, install_ok


def _settings(admin):
    return admin.get("/api/v1/admin/settings").json()


def _patch(admin, changes, **extra):
    return admin.patch("/api/v1/admin/settings", json={"changes": changes, **extra})


def test_settings_start_at_version_one_with_defaults(admin):
    current = _settings(admin)
    assert current["version"] == 1 and current["history"] == []
    assert current["settings"]["lease_ttl_s"] == 120 and current["settings"]["default_access_policy"] == "allow"


def test_valid_change_is_applied_versioned_and_recorded(admin, client, issuer):
    answer = _patch(admin, {"lease_ttl_s": 300, "heartbeat_interval_s": 60, "server_name": "Plant 2"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == 2
    assert body["settings"]["lease_ttl_s"] == 300 and body["settings"]["server_name"] == "Plant 2"
    [entry] = body["history"]
    assert entry["version"] == 2
    assert entry["changes"] == {"lease_ttl_s": 300, "heartbeat_interval_s": 60, "server_name": "Plant 2"}
    assert _settings(admin) == body
    info = client.get("/api/v1/server").json()
    assert info["name"] == "Plant 2" and info["lease_ttl_s"] == 300 and info["heartbeat_interval_s"] == 60
    install_ok(admin, issuer.license_bytes(unit="seats"))
    assert client.post("/api/v1/leases", json={"product": "LabelStudio"}).json()["ttl_s"] == 300


def test_expected_version_guards_against_lost_updates(admin):
    assert _patch(admin, {"server_name": "First"}, expected_version=1).status_code == 200
    error = assert_error(_patch(admin, {"server_name": "Stale"}, expected_version=1), 409, "version_conflict")
    assert "version 2" in error["message"]
    assert _settings(admin)["settings"]["server_name"] == "First"
    assert _patch(admin, {"server_name": "Fresh"}, expected_version=2).json()["version"] == 3


@pytest.mark.parametrize(
    "changes, mentions",
    [
        ({"no_such_setting": 1}, "no_such_setting"),
        ({"lease_ttl_s": 1}, "lease_ttl_s"),
        ({"lease_ttl_s": 10 * 86400}, "lease_ttl_s"),
        ({"lease_ttl_s": "long"}, "lease_ttl_s"),
        ({"lease_ttl_s": True}, "lease_ttl_s"),
        ({"printer_window_days": 0}, "printer_window_days"),
        ({"usage_retention_days": None}, "usage_retention_days"),
        ({"heartbeat_interval_s": 100}, "heartbeat_interval_s"),
        ({"default_access_policy": "sometimes"}, "default_access_policy"),
        ({"server_name": ""}, "server_name"),
        ({"server_name": "n" * 81}, "server_name"),
        ({"server_name": {"nested": "object"}}, "server_name"),
    ],
)
def test_invalid_change_is_refused_and_changes_nothing(shared_admin, changes, mentions):
    admin = shared_admin
    before = _settings(admin)
    error = assert_error(_patch(admin, changes), 422, "invalid_settings")
    assert mentions in error["message"]
    assert _settings(admin) == before


def test_one_bad_field_refuses_the_whole_change(shared_admin):
    admin = shared_admin
    before = _settings(admin)
    assert_error(_patch(admin, {"server_name": "Fine", "lease_ttl_s": -5}), 422, "invalid_settings")
    assert _settings(admin) == before


def test_settings_body_shape_is_validated(admin):
    assert_error(admin.patch("/api/v1/admin/settings", json={"lease_ttl_s": 300}), 422, "invalid_request")
    assert_error(_patch(admin, {"server_name": "x"}, expected_version="1"), 422, "invalid_request")
    assert _settings(admin)["version"] == 1
