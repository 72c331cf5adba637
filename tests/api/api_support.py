"""Helpers shared by the HTTP API tests: error-shape checks and a picture of the server's state."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

JSON_HEADERS = {"Content-Type": "application/json"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the documented JSON refusal with this status and code, and leaks no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"].strip(), body
    assert "Traceback" not in response.text and 'File "' not in response.text
    return error


def install(admin: httpx.Client, data: bytes) -> httpx.Response:
    return admin.post("/api/v1/admin/licenses", content=data, headers=JSON_HEADERS)


def install_ok(admin: httpx.Client, data: bytes) -> dict[str, Any]:
    response = install(admin, data)
    assert response.status_code == 201, response.text
    return response.json()


def license_used(admin: httpx.Client, license_id: str) -> int:
    response = admin.get(f"/api/v1/admin/licenses/{license_id}")
    assert response.status_code == 200, response.text
    return response.json()["used"]


def usage(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    params.setdefault("limit", 10_000)
    response = admin.get("/api/v1/admin/usage", params=params)
    assert response.status_code == 200, response.text
    return response.json()["records"]


def state_picture(admin: httpx.Client) -> dict[str, Any]:
    """Everything a refused request must leave alone, minus values that move with the clock."""
    status = admin.get("/api/v1/admin/status").json()
    leases = admin.get("/api/v1/admin/leases").json()["leases"]
    for lease in leases:
        lease.pop("expires_in_s")
    return {
        "journal_index": status["journal_index"],
        "licenses": status["licenses"],
        "active_leases": status["active_leases"],
        "printers": admin.get("/api/v1/admin/printers").json(),
        "clients": admin.get("/api/v1/admin/clients").json(),
        "leases": leases,
        "usage": usage(admin),
        "settings": admin.get("/api/v1/admin/settings").json(),
        "access_rules": admin.get("/api/v1/admin/access-rules").json(),
        "groups": admin.get("/api/v1/admin/printer-groups").json(),
        "users": admin.get("/api/v1/admin/users").json(),
    }


def assert_log_clean(server: Any) -> None:
    """The server logged no unexpected error (an unhandled exception means a 500 somewhere)."""
    text = server.log_path.read_text()
    assert "Traceback" not in text, text[-4000:]
    assert "Unexpected error" not in text, text[-4000:]


def legacy_hash(password: str, n: int = 2**14) -> str:
    """A password hash as Licentia wrote it before the scrypt parameters were raised (N=2^14)."""
    salt = bytes(range(16))
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    return f"scrypt${n}$8$1${salt.hex()}${digest.hex()}"
