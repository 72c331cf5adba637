"""A small admin API session for the CLI and for scripts."""

from __future__ import annotations

from typing import Any

import httpx

from licentia.client.errors import LicenseDenied, ServerUnavailable


class AdminSession:
    def __init__(self, server: str, username: str, password: str, *, timeout: float = 10.0) -> None:
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server, timeout=timeout)
        data = self.request("POST", "/api/v1/auth/login", {"username": username, "password": password})
        self._http.headers["Authorization"] = f"Bearer {data['token']}"

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: Any = None, *, content: bytes | None = None) -> dict[str, Any]:
        try:
            if content is not None:
                response = self._http.request(
                    method, path, content=content, headers={"Content-Type": "application/json"}
                )
            else:
                response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"{self.server}: {exc}") from exc
        data = response.json()
        if response.status_code >= 400:
            raise LicenseDenied.from_answer(response.status_code, data)
        return data
