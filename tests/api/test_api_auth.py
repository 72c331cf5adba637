"""Who may use the admin API: logins, tokens, HTTP Basic and roles."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from api_support import JSON_HEADERS, assert_error, install, state_picture
from harness import ADMIN_PASSWORD

from licentia.api import admin_api

ADMIN_ENDPOINTS = [e for e in admin_api.ENDPOINTS if e.role is not None]


def _path(template: str) -> str:
    return re.sub(r"{\w+}", "x", template)


def _login(server, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/auth/login", json={"username": username, "password": password})


def _bearer(server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _put_user(admin, name: str, password: str, role: str) -> None:
    response = admin.put(f"/api/v1/admin/users/{name}", json={"password": password, "role": role})
    assert response.status_code == 200, response.text


def test_every_admin_endpoint_refuses_requests_without_credentials(server, client, admin):
    before = state_picture(admin)
    assert len(ADMIN_ENDPOINTS) >= 25
    for endpoint in ADMIN_ENDPOINTS:
        path = _path(endpoint.path)
        assert_error(client.request(endpoint.method, path, content=b"{}", headers=JSON_HEADERS), 401, "unauthorized")
        bogus = {"Authorization": "Bearer not-a-token", **JSON_HEADERS}
        assert_error(client.request(endpoint.method, path, content=b"{}", headers=bogus), 401, "unauthorized")
    assert state_picture(admin) == before


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer a.b",
        "Bearer eyJ1IjoiYWRtaW4iLCJ2IjoxLCJleHAiOjk5OTk5OTk5OTl9.c2lnbmF0dXJl",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b"admin:wrong-password").decode(),
        "Basic " + base64.b64encode(b"nobody:" + ADMIN_PASSWORD.encode()).decode(),
        "Digest admin",
        "admin:" + ADMIN_PASSWORD,
    ],
)
def test_bad_credentials_are_refused_with_401(shared_server, authorization):
    answer = httpx.get(f"{shared_server.url}/api/v1/admin/me", headers={"Authorization": authorization})
    assert_error(answer, 401, "unauthorized")


def test_login_with_wrong_password_or_unknown_user_is_refused(shared_server):
    server = shared_server
    assert_error(_login(server, "admin", "wrong-password"), 401, "unauthorized")
    assert_error(_login(server, "nobody", ADMIN_PASSWORD), 401, "unauthorized")
    answer = _login(server, "admin", ADMIN_PASSWORD)
    assert answer.status_code == 200
    assert answer.json()["role"] == "admin" and answer.json()["token"]


def test_http_basic_authentication_works(server, client):
    answer = client.get("/api/v1/admin/me", auth=("admin", ADMIN_PASSWORD))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"username": "admin", "role": "admin"}
    settings = client.patch(
        "/api/v1/admin/settings", json={"changes": {"server_name": "Basic"}}, auth=("admin", ADMIN_PASSWORD)
    )
    assert settings.status_code == 200 and settings.json()["settings"]["server_name"] == "Basic"


def test_token_from_another_server_is_refused(start_server):
    first, second = start_server("first"), start_server("second")
    token = _login(first, "admin", ADMIN_PASSWORD).json()["token"]
    with _bearer(first, token) as same:
        assert same.get("/api/v1/admin/me").status_code == 200
    with _bearer(second, token) as other:
        assert_error(other.get("/api/v1/admin/me"), 401, "unauthorized")


def test_viewer_can_read_but_is_forbidden_to_change_anything(server, admin, issuer):
    _put_user(admin, "vera", "viewer-password", "viewer")
    admin.post("/api/v1/print-checks", json={"product": "LabelStudio", "printer": {"name": "P1"}})
    before = state_picture(admin)
    with _bearer(server, _login(server, "vera", "viewer-password").json()["token"]) as viewer:
        assert viewer.get("/api/v1/admin/me").json() == {"username": "vera", "role": "viewer"}
        for endpoint in ADMIN_ENDPOINTS:
            if endpoint.method == "GET" and endpoint.role == "viewer":
                answer = viewer.get(_path(endpoint.path))
                assert answer.status_code in (200, 404), (endpoint.path, answer.text)
        test = viewer.post("/api/v1/admin/access-rules/test", json={"ip": "10.0.0.1"})
        assert test.status_code == 200
        changes = [
            viewer.post("/api/v1/admin/licenses", content=issuer.license_bytes(), headers=JSON_HEADERS),
            viewer.delete("/api/v1/admin/licenses/x"),
            viewer.post("/api/v1/admin/printers/x/block"),
            viewer.put("/api/v1/admin/printers/x/group", json={"group": "Blocked"}),
            viewer.post("/api/v1/admin/printer-groups", json={"name": "Mine"}),
            viewer.put("/api/v1/admin/printer-mapping-rules", json={"rules": []}),
            viewer.post("/api/v1/admin/leases/x/revoke"),
            viewer.patch("/api/v1/admin/settings", json={"changes": {"server_name": "Hacked"}}),
            viewer.put("/api/v1/admin/access-rules", json={"rules": []}),
            viewer.get("/api/v1/admin/users"),
            viewer.put("/api/v1/admin/users/vera", json={"password": "new-password", "role": "admin"}),
            viewer.delete("/api/v1/admin/users/admin"),
        ]
        for answer in changes:
            error = assert_error(answer, 403, "forbidden")
            assert "vera" in error["message"]
    assert state_picture(admin) == before


def test_manager_manages_licenses_but_not_settings_or_users(server, admin, issuer):
    _put_user(admin, "max", "manager-password", "manager")
    with _bearer(server, _login(server, "max", "manager-password").json()["token"]) as manager:
        assert install(manager, issuer.license_bytes(license_id="BY-MANAGER")).status_code == 201
        assert_error(manager.patch("/api/v1/admin/settings", json={"changes": {}}), 403, "forbidden")
        assert_error(manager.put("/api/v1/admin/access-rules", json={"rules": []}), 403, "forbidden")
        assert_error(manager.get("/api/v1/admin/users"), 403, "forbidden")
    assert admin.get("/api/v1/admin/settings").json()["version"] == 1


def test_changing_a_password_invalidates_old_tokens(server, admin):
    _put_user(admin, "olga", "first-password", "viewer")
    old_token = _login(server, "olga", "first-password").json()["token"]
    with _bearer(server, old_token) as old:
        assert old.get("/api/v1/admin/me").status_code == 200
        _put_user(admin, "olga", "second-password", "viewer")
        assert_error(old.get("/api/v1/admin/me"), 401, "unauthorized")
    assert_error(_login(server, "olga", "first-password"), 401, "unauthorized")
    with _bearer(server, _login(server, "olga", "second-password").json()["token"]) as new:
        assert new.get("/api/v1/admin/me").json()["username"] == "olga"


def test_changing_own_admin_password_invalidates_the_session_token(server, admin):
    _put_user(admin, "admin", "a-brand-new-password", "admin")
    assert_error(admin.get("/api/v1/admin/me"), 401, "unauthorized")
    assert _login(server, "admin", "a-brand-new-password").status_code == 200


def test_deleted_user_token_stops_working(server, admin):
    _put_user(admin, "dora", "dora-password", "manager")
    with _bearer(server, _login(server, "dora", "dora-password").json()["token"]) as dora:
        assert dora.get("/api/v1/admin/me").status_code == 200
        assert admin.delete("/api/v1/admin/users/dora").status_code == 200
        assert_error(dora.get("/api/v1/admin/me"), 401, "unauthorized")
    assert_error(admin.delete("/api/v1/admin/users/dora"), 404, "user_not_found")


def test_token_of_a_deleted_user_does_not_work_for_a_recreated_user(server, admin):
    _put_user(admin, "bob", "bob-password-1", "viewer")
    old_token = _login(server, "bob", "bob-password-1").json()["token"]
    assert admin.delete("/api/v1/admin/users/bob").status_code == 200
    _put_user(admin, "bob", "other-password-2", "admin")
    with _bearer(server, old_token) as old:
        assert_error(old.get("/api/v1/admin/me"), 401, "unauthorized")
        assert_error(old.get("/api/v1/admin/users"), 401, "unauthorized")


def test_last_admin_cannot_be_demoted_or_deleted(admin):
    assert_error(
        admin.put("/api/v1/admin/users/admin", json={"password": "another-password", "role": "viewer"}),
        409,
        "last_admin",
    )
    assert_error(admin.delete("/api/v1/admin/users/admin"), 409, "last_admin")
    assert admin.get("/api/v1/admin/me").json()["role"] == "admin"
    _put_user(admin, "second", "second-password", "admin")
    assert admin.delete("/api/v1/admin/users/second").status_code == 200


def test_user_password_must_be_long_enough(shared_admin):
    admin = shared_admin
    assert_error(admin.put("/api/v1/admin/users/shorty", json={"password": "short"}), 422, "invalid_request")
    assert_error(
        admin.put("/api/v1/admin/users/x", json={"password": "long-enough", "role": "root"}), 422, "invalid_request"
    )
    users = admin.get("/api/v1/admin/users").json()["users"]
    assert users == [{"username": "admin", "role": "admin"}]
