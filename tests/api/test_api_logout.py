"""POST /api/v1/auth/logout ends the presented token or console session on the server, for good."""

from __future__ import annotations

import re

import httpx
from api_support import assert_error
from harness import ADMIN_PASSWORD


def _token(server, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    answer = httpx.post(f"{server.url}/api/v1/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def _bearer(server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _console_login(browser: httpx.Client) -> None:
    """Log `browser` in through the console's form: it then holds a session cookie."""
    form = browser.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    answer = browser.post(
        "/console/login", data={"csrf": csrf, "username": "admin", "password": ADMIN_PASSWORD, "next": ""}
    )
    assert answer.status_code == 303, answer.text


def _page_csrf(browser: httpx.Client) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', browser.get("/console/").text).group(1)


def test_logout_revokes_the_bearer_token_and_only_that_token(server):
    ended, other = _token(server), _token(server)
    with _bearer(server, ended) as client:
        assert client.get("/api/v1/admin/me").status_code == 200
        answer = client.post("/api/v1/auth/logout")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"logged_out": True}
        assert_error(client.get("/api/v1/admin/me"), 401, "unauthorized")
        assert_error(client.post("/api/v1/auth/logout"), 401, "unauthorized")
    with _bearer(server, other) as client:
        assert client.get("/api/v1/admin/me").status_code == 200


def test_a_revoked_token_stays_revoked_after_a_restart(server):
    ended, kept = _token(server), _token(server)
    with _bearer(server, ended) as client:
        assert client.post("/api/v1/auth/logout").status_code == 200
    server.stop()
    server.start()
    with _bearer(server, ended) as client:
        assert_error(client.get("/api/v1/admin/me"), 401, "unauthorized")
    with _bearer(server, kept) as client:
        assert client.get("/api/v1/admin/me").status_code == 200


def test_logout_with_the_console_cookie_ends_that_session_server_side(server):
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        _console_login(browser)
        cookies = dict(browser.cookies)
        assert browser.get("/api/v1/admin/me").status_code == 200
        # A change made with the cookie needs the page's CSRF value, logout included.
        assert_error(browser.post("/api/v1/auth/logout"), 403, "csrf_failed")
        answer = browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": _page_csrf(browser)})
        assert answer.status_code == 200, answer.text
    # The same cookie, kept by someone who copied it, no longer works.
    with httpx.Client(base_url=server.url, cookies=cookies, timeout=10) as copied:
        assert_error(copied.get("/api/v1/admin/me"), 401, "unauthorized")
        assert copied.get("/console/seats").status_code == 303


def test_the_consoles_logout_revokes_its_session_cookie(server):
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        _console_login(browser)
        cookies = dict(browser.cookies)
        answer = browser.post("/console/logout", data={"csrf": _page_csrf(browser)})
        assert answer.status_code == 303 and answer.headers["location"].endswith("/login?logged_out=1")
    with httpx.Client(base_url=server.url, cookies=cookies, timeout=10) as copied:
        assert_error(copied.get("/api/v1/admin/me"), 401, "unauthorized")
        assert copied.get("/console/").status_code == 303


def test_http_basic_has_no_session_to_end(server):
    answer = httpx.post(f"{server.url}/api/v1/auth/logout", auth=("admin", ADMIN_PASSWORD))
    assert_error(answer, 400, "invalid_request")
