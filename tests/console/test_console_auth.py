"""The console's session and CSRF rules, checked in process without a browser (fast and exact)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ADMIN_PASSWORD
from starlette.testclient import TestClient

from licentia.api.app import create_app
from licentia.api.auth import csrf_token, session_cookie_name
from licentia.config import Config, ConfigError
from licentia.console.licensing import LicenseServerView, in_console_order, known_license_servers
from licentia.core.settings import Settings, SettingsError, merged_settings
from licentia.server import LicenseServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LicenseServer]:
    server = LicenseServer(Config.load(data_dir=tmp_path_factory.mktemp("auth") / "data"))
    server.open()
    yield server


@pytest.fixture(scope="module")
def app(server: LicenseServer) -> Iterator[TestClient]:
    """The whole app in process (its lifespan starts the server and creates `admin`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LICENTIA_ADMIN_PASSWORD", ADMIN_PASSWORD)
        with TestClient(create_app(server), follow_redirects=False) as client:
            yield client


def _browser(app: TestClient) -> TestClient:
    """A client with its own cookie jar, like a separate browser."""
    client = TestClient(app.app, follow_redirects=False)
    return client


def _form_token(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _log_in(browser: TestClient, username: str = "admin", password: str = ADMIN_PASSWORD, next_: str = "") -> object:
    token = _form_token(browser.get("/console/login").text)
    return browser.post("/console/login", data={"csrf": token, "username": username, "password": password,
                                                "next": next_})


def _page_csrf(browser: TestClient) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', browser.get("/console/").text).group(1)


def test_console_login_sets_an_httponly_strict_session_cookie_for_the_whole_site(app, server):
    browser = _browser(app)
    answer = _log_in(browser)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(session_cookie_name(server)))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/;" in cookie
    assert browser.get("/api/v1/admin/me").json() == {"username": "admin", "role": "admin"}


def test_the_csrf_value_is_derived_from_the_session_token(app, server):
    browser = _browser(app)
    _log_in(browser)
    token = browser.cookies[session_cookie_name(server)]
    assert _page_csrf(browser) == csrf_token(server.token_secret, token)
    assert csrf_token(server.token_secret, token) != csrf_token(server.token_secret, token + "x")
    assert csrf_token(server.token_secret, token) != csrf_token(b"another secret", token)


@pytest.mark.parametrize("header", [None, "", "wrong", "of-another-session"])
def test_a_cookie_change_without_the_right_csrf_header_is_refused_with_403(app, server, header):
    browser = _browser(app)
    _log_in(browser)
    other = _browser(app)
    _log_in(other)
    sent = _page_csrf(other) if header == "of-another-session" else header
    headers = {} if sent is None else {"X-CSRF-Token": sent}
    before = app.get("/api/v1/admin/settings", auth=("admin", ADMIN_PASSWORD)).json()["version"]
    answer = browser.patch("/api/v1/admin/settings", json={"changes": {"server_name": "Forged"}}, headers=headers)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "csrf_failed"
    assert app.get("/api/v1/admin/settings", auth=("admin", ADMIN_PASSWORD)).json()["version"] == before


def test_a_cookie_change_with_the_sessions_csrf_header_is_accepted_and_reads_need_none(app):
    browser = _browser(app)
    _log_in(browser)
    assert browser.get("/api/v1/admin/settings").status_code == 200
    answer = browser.patch("/api/v1/admin/settings", json={"changes": {"server_name": "Cookie"}},
                           headers={"X-CSRF-Token": _page_csrf(browser)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["settings"]["server_name"] == "Cookie"


def test_bearer_and_basic_callers_need_no_csrf_header_even_with_a_session_cookie(app):
    browser = _browser(app)
    _log_in(browser)
    token = app.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    bearer = browser.patch("/api/v1/admin/settings", json={"changes": {"server_name": "Bearer"}},
                           headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200, bearer.text
    basic = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    answer = browser.patch("/api/v1/admin/settings", json={"changes": {"server_name": "Basic"}},
                           headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code == 200, answer.text
    # A bad Authorization header is not rescued by the cookie.
    bad = browser.get("/api/v1/admin/me", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401


def test_a_login_post_without_its_form_token_or_nonce_cookie_is_refused(app, server):
    browser = _browser(app)
    page = browser.get("/console/login")
    token = _form_token(page.text)
    fields = {"username": "admin", "password": ADMIN_PASSWORD}
    no_field = browser.post("/console/login", data=fields)
    wrong_field = browser.post("/console/login", data={**fields, "csrf": "0" * 64})
    elsewhere = _browser(app)  # the right token, but not this browser's nonce cookie
    no_cookie = elsewhere.post("/console/login", data={**fields, "csrf": token})
    for answer in (no_field, wrong_field, no_cookie):
        assert answer.status_code == 403
        assert "did not come from this console" in answer.text
        assert not any(c.startswith(session_cookie_name(server)) for c in answer.headers.get_list("set-cookie"))


def test_a_wrong_password_on_the_login_form_is_refused(app, server):
    browser = _browser(app)
    answer = _log_in(browser, password="wrong-password")
    assert answer.status_code == 401 and "Wrong username or password." in answer.text
    assert session_cookie_name(server) not in browser.cookies


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/api/v1/admin/users", "/console/../api", "/consolex"]
)
def test_after_login_the_console_only_redirects_to_its_own_pages(app, target):
    assert _log_in(_browser(app), next_=target).headers["location"] == "/console/"


def test_after_login_the_console_returns_to_the_page_asked_for(app):
    browser = _browser(app)
    first = browser.get("/console/seats")
    assert first.status_code == 303 and first.headers["location"] == "/console/login?next=/console/seats"
    assert _log_in(browser, next_="/console/seats").headers["location"] == "/console/seats"


def test_logout_without_the_csrf_value_is_refused_and_keeps_the_session(app, server):
    browser = _browser(app)
    _log_in(browser)
    refused = browser.post("/console/logout", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert browser.get("/console/").status_code == 200
    done = browser.post("/console/logout", data={"csrf": _page_csrf(browser)})
    assert done.status_code == 303 and done.headers["location"] == "/console/login?logged_out=1"
    assert session_cookie_name(server) not in browser.cookies


def test_without_a_session_pages_redirect_to_login_and_status_is_a_401(app):
    browser = _browser(app)
    assert browser.get("/").headers["location"] == "/console/"
    assert browser.get("/console").headers["location"] == "/console/"
    assert browser.get("/console/users").headers["location"] == "/console/login?next=/console/users"
    status = browser.get("/console/status.json")
    assert status.status_code == 401 and status.json()["error"]["code"] == "unauthorized"


def test_pages_forbid_inline_script_and_framing(app):
    browser = _browser(app)
    _log_in(browser)
    answer = browser.get("/console/")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_status_json_reports_the_strip(app):
    browser = _browser(app)
    _log_in(browser)
    status = browser.get("/console/status.json").json()
    assert status["relationship"] == "Standalone" and status["active"] is True
    assert set(status["licenses"]) == {"ok", "grace", "bad"}


def test_a_role_change_without_a_password_keeps_the_password(app):
    auth = ("admin", ADMIN_PASSWORD)
    assert app.put("/api/v1/admin/users/erin", json={"password": "erin-password"}, auth=auth).status_code == 200
    assert app.put("/api/v1/admin/users/erin", json={"role": "manager"}, auth=auth).status_code == 200
    assert app.get("/api/v1/admin/me", auth=("erin", "erin-password")).json()["role"] == "manager"
    new_user = app.put("/api/v1/admin/users/frank", json={"role": "viewer"}, auth=auth)
    assert new_user.status_code == 422 and new_user.json()["error"]["code"] == "invalid_request"


def test_console_path_is_configurable_and_checked(tmp_path: Path):
    assert Config.load(data_dir=tmp_path, console_path="/admin/console").console_path == "/admin/console"
    for bad in ("console", "/", "/console/", "/api", "/api/console", "/health", "/con sole", "/../x"):
        with pytest.raises(ConfigError):
            Config.load(data_dir=tmp_path, console_path=bad)


def test_console_server_order_setting_is_validated():
    settings = merged_settings(Settings(), {"console_server_order": ["b", "a"]})
    assert settings.console_server_order == ["b", "a"]
    for bad in (["a", "a"], [""], ["x" * 201], [str(n) for n in range(51)], "a", [1]):
        with pytest.raises(SettingsError):
            merged_settings(Settings(), {"console_server_order": bad})


def test_a_triad_is_one_license_server_and_other_relationships_list_each_member():
    licenses = [{"license_id": "L1"}]
    alone = known_license_servers(None, "id1", "Plant", licenses)
    assert [(s.key, s.name, s.licenses) for s in alone] == [("id1", "Plant", licenses)]
    members = [{"name": n, "role": r, "reachable": True} for n, r in (("a", "primary"), ("b", "secondary"))]
    triad = {"type": "triad", "name": "T1", "active": "a", "members": members}
    [one] = known_license_servers(triad, "id1", "Plant", licenses)
    assert (one.key, one.name, one.kind, one.active, one.licenses, one.members) == (
        "triad:T1", "T1", "Triad", True, licenses, members)
    [idle] = known_license_servers({**triad, "active": None}, "id1", "Plant", licenses)
    assert idle.active is False and idle.licenses == []
    backup = {"type": "backup", "name": "P", "me": "main1", "members": [
        {"name": "main1", "role": "main", "online": True}, {"name": "spare", "role": "backup", "online": False}]}
    pair = known_license_servers(backup, "id1", "Plant", licenses)
    assert [(s.key, s.here, s.active, s.licenses) for s in pair] == [
        ("main1", True, True, licenses), ("spare", False, False, None)]


def test_license_servers_are_shown_in_the_saved_order_and_unknown_ones_after():
    views = [LicenseServerView(key, key, "Backup", False, True, None) for key in ("a", "b", "c")]
    assert [v.key for v in in_console_order(views, ["c", "gone", "a"])] == ["c", "a", "b"]
    assert [v.key for v in in_console_order(views, [])] == ["a", "b", "c"]
