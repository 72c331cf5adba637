"""Guessing admin passwords: failed logins lock the user and the source address (bearer login, HTTP Basic)."""

from __future__ import annotations

import re

import httpx
from api_support import assert_error
from harness import ADMIN_PASSWORD

MAX_FAILURES = 5


def _from(server, address: str) -> httpx.Client:
    """A client whose requests come from `address` (any 127.x.y.z reaches a server on 127.0.0.1)."""
    return httpx.Client(base_url=server.url, transport=httpx.HTTPTransport(local_address=address), timeout=10)


def _login(server, address: str, username: str, password: str) -> httpx.Response:
    with _from(server, address) as client:
        return client.post("/api/v1/auth/login", json={"username": username, "password": password})


def _basic(server, address: str, username: str, password: str) -> httpx.Response:
    with _from(server, address) as client:
        return client.get("/api/v1/admin/me", auth=(username, password))


def _assert_locked(answer: httpx.Response) -> int:
    error = assert_error(answer, 429, "login_locked")
    retry_after = int(answer.headers["Retry-After"])
    assert 1 <= retry_after <= 30, retry_after
    assert "try again in" in error["message"]
    return retry_after


def test_failed_logins_for_one_user_from_many_addresses_lock_that_user(server):
    for n in range(MAX_FAILURES):
        assert_error(_login(server, f"127.0.1.{n + 1}", "admin", "wrong-password"), 401, "unauthorized")
    # The right password does not get through any more, from any address, by any way of logging in.
    _assert_locked(_login(server, "127.0.2.1", "admin", ADMIN_PASSWORD))
    _assert_locked(_basic(server, "127.0.2.2", "admin", ADMIN_PASSWORD))
    # Other users are not locked out by it.
    assert _login(server, "127.0.2.3", "nobody", "wrong-password").status_code == 401


def test_failed_logins_from_one_address_lock_that_address_for_every_user(server, admin):
    admin.put("/api/v1/admin/users/vera", json={"password": "viewer-password", "role": "viewer"})
    for n in range(MAX_FAILURES):
        assert_error(_login(server, "127.0.3.1", f"guess{n}", "wrong-password"), 401, "unauthorized")
    _assert_locked(_login(server, "127.0.3.1", "vera", "viewer-password"))
    assert _login(server, "127.0.3.2", "vera", "viewer-password").status_code == 200


def test_failed_http_basic_requests_count_like_failed_logins(server):
    for n in range(MAX_FAILURES):
        assert_error(_basic(server, f"127.0.4.{n + 1}", "admin", "wrong-password"), 401, "unauthorized")
    _assert_locked(_basic(server, "127.0.4.9", "admin", ADMIN_PASSWORD))
    _assert_locked(_login(server, "127.0.4.10", "admin", ADMIN_PASSWORD))


def test_a_successful_login_resets_the_count(server):
    for _ in range(2):
        for _ in range(MAX_FAILURES - 1):
            assert _login(server, "127.0.5.1", "admin", "wrong-password").status_code == 401
        assert _login(server, "127.0.5.1", "admin", ADMIN_PASSWORD).status_code == 200
    assert _basic(server, "127.0.5.1", "admin", ADMIN_PASSWORD).status_code == 200


def test_a_bogus_bearer_token_is_not_a_password_guess_and_locks_nothing(server):
    with _from(server, "127.0.6.1") as client:
        for _ in range(MAX_FAILURES * 2):
            answer = client.get("/api/v1/admin/me", headers={"Authorization": "Bearer not-a-token"})
            assert_error(answer, 401, "unauthorized")
    assert _login(server, "127.0.6.1", "admin", ADMIN_PASSWORD).status_code == 200


def test_each_lock_is_logged_as_a_sentence_and_counted_in_metrics(server):
    for n in range(MAX_FAILURES):
        _login(server, "127.0.7.1", "admin", f"wrong-{n}")
    _assert_locked(_login(server, "127.0.7.1", "admin", ADMIN_PASSWORD))
    metrics = httpx.get(f"{server.url}/metrics").text
    assert re.search(r'^licentia_login_locks_total\{kind="user"\} 1\.0$', metrics, re.M), metrics
    assert re.search(r'^licentia_login_locks_total\{kind="address"\} 1\.0$', metrics, re.M), metrics
    assert re.search(r"^licentia_login_failures_total 5\.0$", metrics, re.M), metrics
    assert re.search(r"^licentia_logins_refused_while_locked_total 1\.0$", metrics, re.M), metrics
    log = server.log_path.read_text()
    assert "Locked logins for user 'admin' for 30 seconds after 5 failed attempts" in log, log[-3000:]
    assert "Locked logins from address 127.0.7.1 for 30 seconds after 5 failed attempts" in log, log[-3000:]
