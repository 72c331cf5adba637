"""Forming a triad pools the members' licenses and loses none: a license that cannot join (an issuer the
others do not trust, or a different license under an id already in the pool) is named before the triad
forms, set aside on the member that has it, and back on that member when the triad is dissolved."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from harness import ADMIN_PASSWORD, Issuer, TriadCluster, start_servers

JSON = {"Content-Type": "application/json"}


def _ids(server) -> dict[str, int]:
    with server.admin() as admin:
        return {lic["license_id"]: lic["count"] for lic in admin.get("/api/v1/admin/licenses").json()["licenses"]}


def test_licenses_that_cannot_join_are_named_before_forming_and_return_to_their_member_on_dissolve(tmp_path: Path):
    vendor, other_vendor = Issuer(), Issuer()
    cluster = TriadCluster(tmp_path / "triad", vendor, name="Labels")
    other_vendor.trust_in(cluster.servers["secondary"].data_dir)  # only the secondary trusts this issuer
    try:
        start_servers(cluster.servers.values())
        primary, secondary = cluster.servers["primary"], cluster.servers["secondary"]
        with primary.admin() as admin:
            admin.post("/api/v1/admin/licenses", content=vendor.license_bytes(license_id="SHARED", count=10),
                       headers=JSON).raise_for_status()
        with secondary.admin() as admin:
            for data in (vendor.license_bytes(license_id="SHARED", count=3),
                         vendor.license_bytes(license_id="OWN-B", count=25),
                         other_vendor.license_bytes(license_id="OTHER-VENDOR", count=2)):
                admin.post("/api/v1/admin/licenses", content=data, headers=JSON).raise_for_status()

        body = {"name": "Labels", "seed": "primary", "username": "admin", "password": ADMIN_PASSWORD,
                "members": cluster.member_specs(), "check_only": True}
        with primary.admin() as admin:
            check = admin.post("/api/v1/admin/relationship/triad", json=body, timeout=60)
        assert check.status_code == 200, check.text
        plan = {member["server"]: member for member in check.json()["license_pool"]}
        assert [line["license_id"] for line in plan["primary"]["joining"]] == ["SHARED"]
        assert [line["license_id"] for line in plan["secondary"]["joining"]] == ["OWN-B"]
        refused = {line["license_id"]: line["reason"] for line in plan["secondary"]["not_joining"]}
        assert refused["SHARED"] == "primary has a different license with the same id"
        assert refused["OTHER-VENDOR"].endswith("is not trusted on primary, tertiary")

        with primary.admin() as admin:
            formed = admin.post("/api/v1/admin/relationship/triad", json={**body, "check_only": False}, timeout=60)
        assert formed.status_code == 201, formed.text
        cluster.wait_active("primary", 20)
        for role, server in cluster.servers.items():
            assert _ids(server) == {"SHARED": 10, "OWN-B": 25}, role  # one copy of each id, the seed's SHARED

        with primary.admin() as admin:
            dissolved = admin.post("/api/v1/admin/relationship/dissolve", json={})
        assert dissolved.json()["license_owners"] == {"OWN-B": "secondary", "SHARED": "primary"}
        expected = {"primary": {"SHARED": 10}, "secondary": {"OWN-B": 25, "SHARED": 3, "OTHER-VENDOR": 2},
                    "tertiary": {}}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            alone = all(httpx.get(f"{s.url}/api/v1/server", timeout=2).json()["relationship"] is None
                        for s in cluster.servers.values())
            if alone and all(_ids(s) == expected[role] for role, s in cluster.servers.items()):
                break
            time.sleep(0.2)
        assert {role: _ids(s) for role, s in cluster.servers.items()} == expected
    finally:
        cluster.stop()
