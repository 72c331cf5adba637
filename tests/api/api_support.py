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


def sample_triad_status() -> Any:
    """A triad member's status as `TriadNode.status()` makes it (every field set), for schema checks."""
    from licentia.cluster.relationship_status import TriadMemberStatus, TriadStatus

    members = tuple(
        TriadMemberStatus(name=name, role=role, api_url=f"http://{name}:8470", raft_address=f"{name}:7000",
                          active=name == "lic-a", reachable=True, etcd_lease_alive=True, raft_leader=name == "lic-a",
                          log_behind=None if name == "lic-c" else 0)
        for name, role in (("lic-a", "primary"), ("lic-b", "secondary"), ("lic-c", "tertiary"))
    )
    return TriadStatus(name="T1", me="lic-a", my_role="primary", serving=True, active="lic-a", epoch=4,
                       active_until=None, has_quorum=True, commit_index=120, applied_index=120, in_sync_at=1.7e9,
                       failovers_seen=1, etcd_restarts=0, watchdog_events={"stall": 1}, healthy=True, members=members,
                       etcd_route_switches={"another_member": 1, "own": 1})


def sample_backup_pair_status() -> Any:
    """A backup pair server's status as `BackupLink.status()` makes it, for schema checks."""
    from licentia.cluster.relationship_status import BackupPairStatus, BackupPending, PairMemberStatus, PendingCounts
    from licentia.core.model import PeerCursor

    members = tuple(
        PairMemberStatus(name=name, role=role, api_url=f"http://{name}:8470", me=name == "lic-1", online=True,
                         reachable=True)
        for name, role in (("lic-1", "main"), ("lic-2", "backup"))
    )
    return BackupPairStatus(
        name="B1", me="lic-1", my_role="main", partner="lic-2", interval_s=5.0, members=members, connected=True,
        synchronized=True, state="connected_synchronized", last_sync_at=1.7e9, last_synchronized_at=1.7e9,
        last_error=None, since=1.6e9, pending=BackupPending(PendingCounts(0, 0), PendingCounts(None, None)),
        cursor=PeerCursor(), contact_losses=0, active="lic-1", serving=True, checked_at=1.7e9,
    )


def as_served(status: Any) -> dict[str, Any]:
    """A relationship status as `GET /api/v1/admin/relationship` sends it: its document, through JSON."""
    import json

    return json.loads(json.dumps(status.as_json()))
