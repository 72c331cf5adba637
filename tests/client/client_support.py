"""Helpers for the client SDK tests: licenses, admin reads, the triad members by role."""

from __future__ import annotations

import time
from typing import Any

import httpx
from harness import ADMIN_PASSWORD, Issuer, ServerProcess, TriadCluster, admin_get, install_licenses

JSON = {"Content-Type": "application/json"}
AUTH = ("admin", ADMIN_PASSWORD)
SEATS = "CADStudio"
PRINTS = "LabelStudio"
IDENTITY = {"host": "ws-7", "user": "ana", "application": "sdk-tests", "version": "1.0"}


def install_on_triad(cluster: TriadCluster, issuer: Issuer, **counts: int) -> dict[str, str]:
    return install_licenses(cluster.servers[cluster.wait_active()], issuer, **counts)


def admin_post(server: ServerProcess, path: str) -> Any:
    answer = httpx.post(f"{server.url}{path}", auth=AUTH, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def license_used(server: ServerProcess, license_id: str) -> int:
    return admin_get(server, f"/api/v1/admin/licenses/{license_id}")["used"]


def print_usage(server: ServerProcess) -> list[dict[str, Any]]:
    """The print checks of the usage log, one entry per request, oldest first (a row that coalesces a client's
    repeated refusals stands for `count` requests)."""
    records = admin_get(server, "/api/v1/admin/usage", kind="print", limit=10_000)["records"]
    return [record for record in sorted(records, key=lambda record: record["id"]) for _ in range(record["count"])]


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps a client's transport and notes every attempt: (base url, path, sent, done, status or exception)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.attempts: list[tuple[str, str, float, float, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        sent = time.monotonic()
        try:
            response = await self.inner.handle_async_request(request)
        except Exception as exc:
            self.attempts.append((base, request.url.path, sent, time.monotonic(), type(exc).__name__))
            raise
        self.attempts.append((base, request.url.path, sent, time.monotonic(), str(response.status_code)))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
