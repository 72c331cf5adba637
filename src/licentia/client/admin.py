"""A small admin API session for the CLI and for scripts."""

from __future__ import annotations

from typing import Any

import httpx

from licentia.client.errors import LicenseDenied, ServerUnavailable
from licentia.tls import CertificateRefused, ServerTrust


class AdminSession:
    def __init__(
        self,
        server: str,
        username: str,
        password: str,
        *,
        timeout: float = 10.0,
        tls_fingerprint: str | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        # The password is sent only once the server's certificate is verified: by the system's CAs, or,
        # with a fingerprint, by being exactly the pinned certificate.
        self.trust = ServerTrust([tls_fingerprint] if tls_fingerprint else [])
        try:
            self.trust.prepare_sync(self.server)
        except CertificateRefused as exc:
            raise ServerUnavailable(str(exc)) from None
        self._http = httpx.Client(base_url=self.server, timeout=timeout, verify=self.trust.context)
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
            raise ServerUnavailable(self.trust.explain(self.server, exc) or f"{self.server}: {exc}") from exc
        data = response.json()
        if response.status_code >= 400:
            raise LicenseDenied.from_answer(response.status_code, data)
        return data
