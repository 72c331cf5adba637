"""A triad and bound licenses: a license names the three members' server ids, installs on the active
member, and is served by whichever member is active; every member keeps its data directory private."""

from __future__ import annotations

import httpx
from harness import ROLES, readable_by_others, umask

JSON = {"Content-Type": "application/json"}


def test_a_license_bound_to_the_three_members_installs_and_is_served_after_a_failover(start_triad, issuer):
    with umask(0o022):
        cluster = start_triad()
    ids = {role: httpx.get(f"{cluster.servers[role].url}/api/v1/server").json()["server_id"] for role in ROLES}
    assert len(set(ids.values())) == 3

    primary = cluster.servers["primary"]
    with primary.admin() as admin:
        elsewhere = issuer.license_bytes(license_id="T-ELSEWHERE", bound_to=["0123456789abcdef"])
        refused = admin.post("/api/v1/admin/licenses", content=elsewhere, headers=JSON)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "license_bound_elsewhere"
        bound = issuer.license_bytes(license_id="T-BOUND", bound_to=list(ids.values()), count=3)
        installed = admin.post("/api/v1/admin/licenses", content=bound, headers=JSON)
        assert installed.status_code == 201, installed.text

    for server in cluster.servers.values():
        names = {path.name for path in server.data_dir.rglob("*")}
        assert {"licentia.db", "triad.json", "etcd"} <= names, names  # etcd's own data is checked too
        assert readable_by_others(server.data_dir) == [], server.data_dir

    primary.kill()
    assert cluster.wait_active("secondary", timeout=15) == "secondary"
    secondary = cluster.servers["secondary"]
    granted = httpx.post(
        f"{secondary.url}/api/v1/print-checks",
        json={"product": "LabelStudio", "printer": {"name": "After failover"}},
        timeout=10,
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["license_id"] == "T-BOUND"
