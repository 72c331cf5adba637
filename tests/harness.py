"""Real server processes on loopback ports for tests and benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from licentia import license_file
from licentia.core.model import LicenseTerms

ADMIN_PASSWORD = "test-admin-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Issuer:
    """A vendor issuer key that can sign license files for tests."""

    def __init__(self) -> None:
        self.key = license_file.new_issuer_key()

    def public_pem(self) -> bytes:
        return license_file.public_key_pem(self.key.public_key())

    def trust_in(self, data_dir: Path) -> None:
        folder = data_dir / "trusted-issuers"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{license_file.key_id(self.key.public_key())}.pub").write_bytes(self.public_pem())

    def terms(self, **fields: Any) -> LicenseTerms:
        now = time.time()
        values: dict[str, Any] = {
            "license_id": f"LIC-{os.urandom(4).hex()}",
            "product": "LabelStudio",
            "edition": "Automation",
            "customer": "Test Customer",
            "unit": "printers",
            "count": 5,
            "not_before": now - 60,
            "expires": now + 365 * 86400,
        }
        values.update(fields)
        return LicenseTerms(**values)

    def license_bytes(self, **fields: Any) -> bytes:
        return json.dumps(license_file.issue(self.terms(**fields), self.key)).encode()


class ServerProcess:
    """`licentia serve` in a child process, on its own port and data directory."""

    def __init__(self, data_dir: Path, port: int | None = None, extra_args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LICENTIA_ADMIN_PASSWORD": ADMIN_PASSWORD}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "licentia", "serve", "--data", str(self.data_dir),
             "--port", str(self.port), "--log-level", "warning", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/v1/server", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not start in {timeout}s: {self.log_path.read_text()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not exit."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def admin(self) -> httpx.Client:
        """An httpx client logged in as the admin user."""
        token = httpx.post(f"{self.url}/api/v1/auth/login",
                           json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


ROLES = ("primary", "secondary", "tertiary")


class TriadCluster:
    """Three `licentia serve` processes joined in a triad through the setup API of the first one."""

    def __init__(self, base_dir: Path, issuer: Issuer | None = None, name: str = "T1",
                 active_ttl_s: float = 0.8) -> None:
        self.name = name
        self.active_ttl_s = active_ttl_s
        self.servers: dict[str, ServerProcess] = {}
        self.raft_ports: dict[str, int] = {}
        for role in ROLES:
            data_dir = base_dir / role
            if issuer is not None:
                issuer.trust_in(data_dir)
            self.servers[role] = ServerProcess(data_dir)
            self.raft_ports[role] = free_port()

    def member_specs(self) -> list[dict[str, Any]]:
        return [
            {"name": role, "role": role, "api_url": server.url,
             "raft_address": f"127.0.0.1:{self.raft_ports[role]}"}
            for role, server in self.servers.items()
        ]

    def start(self, seed: str = "primary", timeout: float = 20.0) -> TriadCluster:
        for server in self.servers.values():
            server.start()
        body = {"name": self.name, "seed": seed, "username": "admin", "password": ADMIN_PASSWORD,
                "members": self.member_specs(), "active_ttl_s": self.active_ttl_s}
        with self.servers[seed].admin() as admin:
            answer = admin.post("/api/v1/admin/relationship/triad", json=body, timeout=60)
        if answer.status_code != 201:
            raise RuntimeError(f"triad setup failed: {answer.status_code} {answer.text}")
        self.wait_active("primary", timeout)
        return self

    def status(self, role: str) -> dict[str, Any]:
        server = self.servers[role]
        return httpx.get(f"{server.url}/api/v1/admin/relationship", auth=("admin", ADMIN_PASSWORD),
                         timeout=2).json()

    def active(self) -> str | None:
        """The member that says it serves now, asking each live member."""
        for role, server in self.servers.items():
            if server.process is None or server.process.poll() is not None:
                continue
            try:
                info = httpx.get(f"{server.url}/api/v1/server", timeout=0.5).json()
            except httpx.HTTPError:
                continue
            relationship = info.get("relationship") or {}
            if relationship.get("serving"):
                return role
        return None

    def wait_active(self, role: str | None = None, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.active()
            if current is not None and (role is None or current == role):
                return current
            time.sleep(0.05)
        raise TimeoutError(f"no active member{' ' + role if role else ''} within {timeout}s")

    def stop(self) -> None:
        for server in self.servers.values():
            if server.process is not None and server.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    server.process.send_signal(signal.SIGCONT)
            server.kill()
