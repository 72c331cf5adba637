"""A synchronous client for the client API of one Licentia server.

Failover across the members of a relationship is layered on top of this
(see the client SDK issue); this class speaks the protocol.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx


class LicenseDenied(Exception):
    """The server answered and refused; `code` is its machine-readable reason."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class ServerUnavailable(Exception):
    """No answer from the server (connection refused, timed out, or a 5xx)."""


class LicenseClient:
    def __init__(
        self,
        server: str,
        *,
        host: str = "",
        user: str = "",
        application: str = "",
        version: str = "",
        connect_timeout: float = 0.5,
        timeout: float = 5.0,
    ) -> None:
        self.server = server.rstrip("/")
        self.identity = {"host": host, "user": user, "application": application, "version": version}
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=connect_timeout))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LicenseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, f"{self.server}{path}", json=body)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"{self.server}: {exc}") from exc
        if response.status_code >= 500:
            raise ServerUnavailable(f"{self.server} answered {response.status_code}")
        data = response.json()
        if response.status_code >= 400:
            error = data.get("error", {})
            raise LicenseDenied(response.status_code, error.get("code", "error"), error.get("message", ""))
        return data

    def server_info(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/server")

    def print_check(
        self, product: str, printer: str, *, driver: str = "", port: str = "", location: str = ""
    ) -> dict[str, Any]:
        body = {
            "product": product,
            "printer": {"name": printer, "driver": driver, "port": port, "location": location},
            "client": self.identity,
        }
        return self._call("POST", "/api/v1/print-checks", body)

    def checkout(
        self,
        product: str,
        *,
        feature: str | None = None,
        request_id: str | None = None,
        ttl_s: float | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "product": product,
            "client": self.identity,
            "request_id": request_id or uuid.uuid4().hex,
        }
        if feature:
            body["feature"] = feature
        if ttl_s:
            body["ttl_s"] = ttl_s
        return self._call("POST", "/api/v1/leases", body)

    def heartbeat(self, *lease_ids: str) -> dict[str, Any]:
        return self._call("POST", "/api/v1/leases/heartbeat", {"lease_ids": list(lease_ids)})

    def checkin(self, lease_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/leases/{lease_id}")
