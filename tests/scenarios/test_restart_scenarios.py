"""Stopping and restarting a server on the same data directory keeps everything it acknowledged."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from harness import ADMIN_PASSWORD, ServerProcess

from licentia.store.snapshot_file import read_snapshot_file

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def restarted() -> Iterator[list[ServerProcess]]:
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        server.kill()


def _picture(admin: httpx.Client) -> dict:
    status = admin.get("/api/v1/admin/status").json()
    leases = admin.get("/api/v1/admin/leases").json()["leases"]
    for lease in leases:
        lease.pop("expires_in_s")
    printers = admin.get("/api/v1/admin/printers").json()
    return {
        "server_id": status["server_id"],
        "journal_index": status["journal_index"],
        "licenses": status["licenses"],
        "leases": leases,
        "printers": printers,
        "clients": admin.get("/api/v1/admin/clients").json(),
        "groups": admin.get("/api/v1/admin/printer-groups").json(),
        "access_rules": admin.get("/api/v1/admin/access-rules").json(),
        "settings": admin.get("/api/v1/admin/settings").json(),
        "users": admin.get("/api/v1/admin/users").json(),
        "usage": admin.get("/api/v1/admin/usage", params={"limit": 1000}).json()["records"],
    }


def _populate(server: ServerProcess, issuer) -> str:
    """Touch every kind of state; returns a held lease id."""
    with server.admin() as admin, httpx.Client(base_url=server.url, timeout=10) as http:
        for lic in (
            issuer.license_bytes(license_id="SEATS", unit="seats", count=5),
            issuer.license_bytes(license_id="PRN", unit="printers", count=5),
        ):
            assert admin.post("/api/v1/admin/licenses", content=lic, headers=JSON).status_code == 201
        assert admin.post("/api/v1/admin/printer-groups", json={"name": "Labels"}).status_code == 201
        rules = [{"pattern": "^Zebra", "group": "Labels"}]
        assert admin.put("/api/v1/admin/printer-mapping-rules", json={"rules": rules}).status_code == 200
        access = [{"rule_id": "no-guests", "action": "deny", "who_kind": "user", "who": "guest"}]
        assert admin.put("/api/v1/admin/access-rules", json={"rules": access}).status_code == 200
        assert admin.patch("/api/v1/admin/settings", json={"changes": {"server_name": "Kept"}}).status_code == 200
        user = {"password": "viewer-password", "role": "viewer"}
        assert admin.put("/api/v1/admin/users/vera", json=user).status_code == 200
        for name in ("Zebra ZT410", "Office"):
            assert http.post(
                "/api/v1/print-checks", json={"product": "LabelStudio", "printer": {"name": name}}
            ).is_success
        guest = {"product": "LabelStudio", "client": {"user": "guest"}}
        assert http.post("/api/v1/leases", json=guest).status_code == 403
        kept = http.post("/api/v1/leases", json={"product": "LabelStudio", "request_id": "keep"}).json()["lease_id"]
        gone = http.post("/api/v1/leases", json={"product": "LabelStudio"}).json()["lease_id"]
        assert http.delete(f"/api/v1/leases/{gone}").status_code == 200
    return kept


def test_graceful_stop_and_restart_keeps_all_state(server, issuer):
    kept = _populate(server, issuer)
    with server.admin() as admin:
        before = _picture(admin)
    server.stop()
    # uvicorn re-raises the SIGTERM it handled once shutdown is done, so -15 is a clean exit too.
    assert server.process is not None and server.process.returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in server.log_path.read_text()
    found = read_snapshot_file(server.data_dir / "licentia.snapshot")  # shutdown left a snapshot of the last state
    assert found is not None and found[0] == before["journal_index"]
    with sqlite3.connect(server.data_dir / "licentia.db") as db:
        assert db.execute("SELECT COUNT(*) FROM journal").fetchone() == (0,)
    server.start()
    with server.admin() as admin:
        after = _picture(admin)
    assert after == before
    assert [lease["lease_id"] for lease in after["leases"]] == [kept]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        again = http.post("/api/v1/leases", json={"product": "LabelStudio", "request_id": "keep"})
        assert again.status_code == 200 and again.json()["lease_id"] == kept
        assert http.post("/api/v1/leases/heartbeat", json={"lease_ids": [kept]}).json()["expired"] == []
        assert (
            http.post("/api/v1/leases", json={"product": "LabelStudio", "client": {"user": "guest"}}).status_code == 403
        )
        assert (
            http.post("/api/v1/print-checks", json={"product": "LabelStudio", "printer": {"name": "Zebra 2"}}).json()[
                "group"
            ]
            == "Labels"
        )


def test_sigkill_keeps_all_acknowledged_state(server, issuer, restarted):
    _populate(server, issuer)
    with server.admin() as admin:
        before = _picture(admin)
    server.kill()
    again = ServerProcess(server.data_dir, server.port)
    restarted.append(again)
    again.start()
    with again.admin() as admin:
        assert _picture(admin) == before


def test_admin_token_survives_a_restart(server):
    with server.admin() as admin:
        token = admin.headers["Authorization"]
        server.stop()
        server.start()
        assert admin.get("/api/v1/admin/me").json()["username"] == "admin"
        assert admin.headers["Authorization"] == token


def test_initial_admin_password_comes_from_the_environment_only_on_first_start(server):
    with server.admin() as admin:
        assert admin.put("/api/v1/admin/users/admin", json={"password": "changed-password", "role": "admin"}).is_success
    server.stop()
    server.start()  # LICENTIA_ADMIN_PASSWORD is still set, but the admin user exists already
    login = httpx.post(f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login.status_code == 401
    login = httpx.post(f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": "changed-password"})
    assert login.status_code == 200


def test_second_server_on_a_running_data_directory_is_refused(server):
    result = subprocess.run(
        [sys.executable, "-m", "licentia", "serve", "--data", str(server.data_dir), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "LICENTIA_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    assert result.returncode == 2
    assert "another licentia server" in result.stderr
    assert httpx.get(f"{server.url}/api/v1/server").status_code == 200
