"""Password checks through a running server: they do not stall it, do not tell who exists, and upgrade old hashes."""

from __future__ import annotations

import asyncio
import base64
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest
from api_support import assert_error, legacy_hash
from harness import ADMIN_PASSWORD, ServerProcess

from licentia.api.passwords import hash_password
from licentia.config import Config
from licentia.core.commands import PutAdminUser
from licentia.core.model import AdminUser
from licentia.server import LicenseServer


def _from(server, address: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, transport=httpx.HTTPTransport(local_address=address), timeout=10)


def _timed_login(server, address: str, username: str, password: str) -> float:
    with _from(server, address) as client:
        started = time.perf_counter()
        answer = client.post("/api/v1/auth/login", json={"username": username, "password": password})
        elapsed = time.perf_counter() - started
    assert_error(answer, 401, "unauthorized")
    return elapsed


def test_an_unknown_user_takes_as_long_to_refuse_as_a_wrong_password(server):
    known = [_timed_login(server, f"127.0.8.{n}", "admin", "wrong-password") for n in (1, 2)]
    unknown = [_timed_login(server, f"127.0.8.{n}", f"nobody{n}", "wrong-password") for n in (3, 4)]
    assert min(unknown) > min(known) / 2, (known, unknown)


def test_repeated_http_basic_requests_are_answered_from_a_short_cache(server):
    with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=10) as client:
        times = []
        for _ in range(9):
            started = time.perf_counter()
            assert client.get("/api/v1/admin/me").status_code == 200
            times.append(time.perf_counter() - started)
    # The first request runs scrypt; the next ones find the verified credentials in the cache.
    assert statistics.median(times[1:]) * 4 < times[0], times


def test_cached_http_basic_credentials_stop_working_once_the_password_changes(server):
    old = ("admin", ADMIN_PASSWORD)
    assert httpx.get(f"{server.url}/api/v1/admin/me", auth=old).status_code == 200
    changed = httpx.put(
        f"{server.url}/api/v1/admin/users/admin", json={"password": "the-next-password", "role": "admin"}, auth=old
    )
    assert changed.status_code == 200, changed.text
    assert_error(httpx.get(f"{server.url}/api/v1/admin/me", auth=old), 401, "unauthorized")
    assert httpx.get(f"{server.url}/api/v1/admin/me", auth=("admin", "the-next-password")).status_code == 200


def test_wrong_basic_credentials_from_three_clients_do_not_stall_other_requests(server):
    def quiet_p50() -> float:
        samples = []
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(40):
                started = time.perf_counter()
                assert client.get("/api/v1/server").status_code == 200
                samples.append(time.perf_counter() - started)
                time.sleep(0.01)
        return statistics.median(samples)

    stop = threading.Event()

    def flood(n: int) -> None:
        async def run() -> None:
            import aiohttp

            credentials = base64.b64encode(f"admin:wrong-password-{n}".encode()).decode()
            headers = {"Authorization": f"Basic {credentials}"}
            async with aiohttp.ClientSession() as session:
                while not stop.is_set():
                    async with session.get(f"{server.url}/api/v1/admin/me", headers=headers) as answer:
                        await answer.read()

        asyncio.run(run())

    baseline = quiet_p50()
    flooders = [threading.Thread(target=flood, args=(n,)) for n in range(3)]
    for thread in flooders:
        thread.start()
    try:
        time.sleep(0.3)
        flooded = quiet_p50()
    finally:
        stop.set()
        for thread in flooders:
            thread.join()
    # Before: scrypt ran on the event loop for every wrong Basic request, and the p50 grew ~50-100x.
    assert flooded < max(0.02, baseline * 5), (baseline, flooded)


def _plant_user(data_dir: Path, user: AdminUser) -> None:
    """Store `user` as-is in a stopped server's data directory (as an earlier version left it)."""
    server = LicenseServer(Config.load(data_dir=data_dir))
    server.open()

    async def put() -> None:
        await server.execute(PutAdminUser(user=user))
        await server.journal.close(server.state)

    asyncio.run(put())
    server.release()


def _stored_user(data_dir: Path, username: str) -> AdminUser:
    server = LicenseServer(Config.load(data_dir=data_dir))
    server.open()
    try:
        return server.state.users[username]
    finally:
        asyncio.run(server.journal.close())
        server.release()


@pytest.mark.parametrize("how", ["login", "basic"])
def test_an_old_parameter_hash_is_replaced_at_the_next_successful_login(tmp_path, issuer, how):
    data_dir = tmp_path / "server"
    issuer.trust_in(data_dir)
    _plant_user(data_dir, AdminUser("admin", legacy_hash("old-style-password"), "admin"))
    version = _stored_user(data_dir, "admin").password_version
    server = ServerProcess(data_dir).start()
    try:
        if how == "login":
            answer = httpx.post(
                f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": "old-style-password"}
            )
            assert answer.status_code == 200, answer.text
            headers = {"Authorization": f"Bearer {answer.json()['token']}"}
            # The token handed out at that login names the new hash: it keeps working.
            assert httpx.get(f"{server.url}/api/v1/admin/me", headers=headers).status_code == 200
        else:
            answer = httpx.get(f"{server.url}/api/v1/admin/me", auth=("admin", "old-style-password"))
            assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    stored = _stored_user(data_dir, "admin")
    assert stored.password_hash.startswith("scrypt$131072$8$1$"), stored.password_hash
    assert stored.password_version == version
    server = ServerProcess(data_dir).start()
    try:
        assert httpx.get(f"{server.url}/api/v1/admin/me", auth=("admin", "old-style-password")).status_code == 200
    finally:
        server.kill()


@pytest.mark.parametrize("password", ["with\x00nul-inside", "tab\there-too", "line\nbreak-password", "\x1b[31mred-pw"])
def test_a_password_with_control_characters_is_refused_with_400(admin, password):
    for username in ("eve", "admin"):
        answer = admin.put(f"/api/v1/admin/users/{username}", json={"password": password, "role": "admin"})
        error = assert_error(answer, 400, "invalid_password")
        assert "control character" in error["message"]
    assert admin.get("/api/v1/admin/users").json()["users"] == [{"username": "admin", "role": "admin"}]
    assert admin.get("/api/v1/admin/me").status_code == 200


def test_the_first_admin_can_start_from_a_password_hash_and_a_malformed_one_stops_the_start(tmp_path):
    provisioned = ServerProcess(tmp_path / "provisioned", admin_password=None)
    provisioned.extra_env["LICENTIA_ADMIN_PASSWORD_HASH"] = hash_password("provisioned-password")
    provisioned.start()
    try:
        answer = httpx.post(
            f"{provisioned.url}/api/v1/auth/login", json={"username": "admin", "password": "provisioned-password"}
        )
        assert answer.status_code == 200, answer.text
        assert not (provisioned.data_dir / "initial-admin-password").exists()
    finally:
        provisioned.kill()
    broken = ServerProcess(tmp_path / "broken", admin_password=None)
    broken.extra_env["LICENTIA_ADMIN_PASSWORD_HASH"] = "scrypt$not-a-hash"
    with pytest.raises(RuntimeError, match="server exited"):
        broken.start()
    assert "LICENTIA_ADMIN_PASSWORD_HASH is not a hash made by `licentia admin hash-password`." in (
        broken.log_path.read_text()
    )
