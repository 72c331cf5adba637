"""The data directory holds the admin password hash, the server's keys and the usage log: other local
users must not read any of it, whatever umask the server was started under."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from harness import Issuer, ServerProcess, free_port, install_licenses, readable_by_others, umask, wait_for

JSON_HEADERS = {"Content-Type": "application/json"}


def use(server: ServerProcess, issuer: Issuer) -> None:
    """Make the server write what it writes in normal use: licenses, a print check, a seat, the usage log."""
    install_licenses(server, issuer)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/api/v1/print-checks", json={"product": "LabelStudio", "printer": {"name": "P"}}).is_success
        assert client.post("/api/v1/leases", json={"product": "CADStudio"}).is_success


def test_a_server_started_under_umask_022_keeps_every_file_private(tmp_path, issuer):
    data_dir = tmp_path / "server"
    server = ServerProcess(data_dir, admin_password=None)  # also writes initial-admin-password
    with umask(0o022):
        issuer.trust_in(data_dir)  # made before the server starts: 0755 and 0644 under this umask
        assert readable_by_others(data_dir)
        server.start()
    try:
        password = (data_dir / "initial-admin-password").read_text().strip()
        with httpx.Client(base_url=server.url, auth=("admin", password), timeout=10) as admin:
            added = admin.post("/api/v1/admin/licenses", content=issuer.license_bytes(), headers=JSON_HEADERS)
            assert added.status_code == 201, added.text
        names = {path.name for path in data_dir.rglob("*")}
        assert {"licentia.db", "licentia.db-wal", "grant.key", "token.key", "initial-admin-password"} <= names
        assert readable_by_others(data_dir) == []
    finally:
        server.stop()
    assert readable_by_others(data_dir) == []


def test_a_data_directory_left_readable_by_an_earlier_version_is_made_private_at_start(tmp_path, issuer):
    data_dir = tmp_path / "server"
    issuer.trust_in(data_dir)
    server = ServerProcess(data_dir)
    with umask(0o022):
        server.start()
        use(server, issuer)
        server.stop()
    for path in [data_dir, *data_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert len(readable_by_others(data_dir)) > 5

    with umask(0o022):
        server.start()
    try:
        use(server, issuer)
        assert readable_by_others(data_dir) == []
    finally:
        server.stop()


def test_the_demo_under_umask_022_keeps_its_keys_and_licenses_private(tmp_path):
    data_dir, port = tmp_path / "demo", free_port()
    env = {**os.environ, "LICENTIA_ADMIN_PASSWORD": "demo-admin-password"}
    with umask(0o022), (tmp_path / "demo.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "licentia", "demo", "--data", str(data_dir), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        def serving() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v1/server", timeout=0.5).is_success
            except httpx.HTTPError:
                return False

        wait_for(serving, timeout=20, what="the demo server")
        assert {"demo-issuer.key", "DEMO-PRINT-1.lic", "demo-issuer.pub"} <= {p.name for p in data_dir.rglob("*")}
        assert readable_by_others(data_dir) == []
    finally:
        process.terminate()
        process.wait(10)
