"""Installing and removing signed license files through the admin API."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from api_support import assert_error, install, install_ok, usage
from harness import Issuer, ServerProcess, plant_license


def _license_ids(admin) -> list[str]:
    return sorted(lic["license_id"] for lic in admin.get("/api/v1/admin/licenses").json()["licenses"])


@pytest.fixture(scope="module")
def keeper(shared_server, shared_issuer):
    """A shared server holding one license, KEEP; the refusal tests below must leave it exactly so."""
    with shared_server.admin() as admin:
        install_ok(admin, shared_issuer.license_bytes(license_id="KEEP"))
    return shared_server


@pytest.fixture
def keeper_admin(keeper):
    with keeper.admin() as admin:
        yield admin


def _print(client, printer: str = "P1"):
    return client.post("/api/v1/print-checks", json={"product": "LabelStudio", "printer": {"name": printer}})


def test_valid_license_upload_is_installed_with_201(admin, issuer):
    answer = install(admin, issuer.license_bytes(license_id="L-OK", count=7, features=["rfid"]))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["license_id"] == "L-OK"
    assert body["count"] == 7 and body["features"] == ["rfid"]
    assert body["used"] == 0 and body["status"] == "ok"
    assert _license_ids(admin) == ["L-OK"]
    assert admin.get("/api/v1/admin/licenses/L-OK").json()["count"] == 7


def test_license_signed_by_an_untrusted_issuer_is_refused(keeper_admin):
    admin = keeper_admin
    stranger = Issuer()
    error = assert_error(install(admin, stranger.license_bytes(license_id="FORGED")), 422, "invalid_license")
    assert "trust" in error["message"]
    assert _license_ids(admin) == ["KEEP"]


def test_license_claiming_a_trusted_key_id_but_signed_by_another_key_is_refused(keeper_admin, shared_issuer):
    admin, issuer = keeper_admin, shared_issuer
    stranger = Issuer()
    document = json.loads(stranger.license_bytes(license_id="FORGED"))
    trusted_document = json.loads(issuer.license_bytes(license_id="ANY"))
    document["key_id"] = trusted_document["key_id"]
    error = assert_error(install(admin, json.dumps(document).encode()), 422, "invalid_license")
    assert "signature" in error["message"]
    assert _license_ids(admin) == ["KEEP"]


def test_license_with_count_edited_after_signing_is_refused(keeper_admin, shared_issuer):
    admin, issuer = keeper_admin, shared_issuer
    document = json.loads(issuer.license_bytes(license_id="TAMPERED", count=5))
    document["terms"]["count"] = 5000
    error = assert_error(install(admin, json.dumps(document).encode()), 422, "invalid_license")
    assert "tampered" in error["message"]
    assert _license_ids(admin) == ["KEEP"]


def test_license_with_expiry_edited_after_signing_is_refused(keeper_admin, shared_issuer):
    admin, issuer = keeper_admin, shared_issuer
    document = json.loads(issuer.license_bytes(license_id="TAMPERED"))
    document["terms"]["expires"] += 10 * 365 * 86400
    assert_error(install(admin, json.dumps(document).encode()), 422, "invalid_license")
    assert _license_ids(admin) == ["KEEP"]


def test_expired_license_is_refused(keeper_admin, shared_issuer):
    admin, issuer = keeper_admin, shared_issuer
    now = time.time()
    old = issuer.license_bytes(license_id="OLD", not_before=now - 20 * 86400, expires=now - 86400)
    error = assert_error(install(admin, old), 422, "license_expired")
    assert "OLD" in error["message"]
    assert _license_ids(admin) == ["KEEP"]


def test_not_a_license_file_is_refused(keeper_admin, shared_issuer):
    admin, issuer = keeper_admin, shared_issuer
    good = json.loads(issuer.license_bytes(license_id="X"))
    bad_files = [
        b"this is not json",
        b"[]",
        json.dumps({**good, "format": "other/1"}).encode(),
        json.dumps({**good, "extra": 1}).encode(),
        json.dumps({k: v for k, v in good.items() if k != "signature"}).encode(),
        json.dumps({**good, "signature": "***not base64***"}).encode(),
        json.dumps({**good, "terms": {**good["terms"], "count": "five"}}).encode(),
    ]
    for data in bad_files:
        assert_error(install(admin, data), 422, "invalid_license")
    assert_error(install(admin, b""), 422, "invalid_license")
    assert _license_ids(admin) == ["KEEP"]


def test_duplicate_license_id_is_refused_with_409_and_keeps_the_original(admin, issuer):
    install_ok(admin, issuer.license_bytes(license_id="DUP", count=5))
    assert_error(install(admin, issuer.license_bytes(license_id="DUP", count=50)), 409, "license_exists")
    assert _license_ids(admin) == ["DUP"]
    assert admin.get("/api/v1/admin/licenses/DUP").json()["count"] == 5


def test_removed_license_is_gone_and_print_checks_get_no_license(admin, client, issuer):
    install_ok(admin, issuer.license_bytes(license_id="GONE"))
    assert _print(client).status_code == 200
    removed = admin.delete("/api/v1/admin/licenses/GONE")
    assert removed.status_code == 200, removed.text
    assert _license_ids(admin) == []
    assert_error(admin.get("/api/v1/admin/licenses/GONE"), 404, "license_not_found")
    assert_error(_print(client), 404, "no_license")
    printer = admin.get("/api/v1/admin/printers").json()["printers"][0]
    assert printer["license_id"] is None and printer["counted"] is False
    assert_error(admin.delete("/api/v1/admin/licenses/GONE"), 404, "license_not_found")


def test_removing_a_seat_license_releases_its_leases(admin, client, issuer):
    install_ok(admin, issuer.license_bytes(license_id="SEATS", unit="seats", count=2))
    lease_id = client.post("/api/v1/leases", json={"product": "LabelStudio"}).json()["lease_id"]
    assert admin.delete("/api/v1/admin/licenses/SEATS").status_code == 200
    assert admin.get("/api/v1/admin/leases").json()["leases"] == []
    assert_error(client.post(f"/api/v1/leases/{lease_id}/heartbeat"), 410, "lease_expired")
    released = [r for r in usage(admin, kind="checkin") if r["lease_id"] == lease_id]
    assert [r["reason"] for r in released] == ["license_removed"]


def test_removed_license_can_be_installed_again(admin, client, issuer):
    data = issuer.license_bytes(license_id="MOVE")
    install_ok(admin, data)
    assert admin.delete("/api/v1/admin/licenses/MOVE").status_code == 200
    install_ok(admin, data)
    assert _print(client).json()["license_id"] == "MOVE"


def test_not_yet_valid_license_installs_but_grants_nothing(admin, client, issuer):
    now = time.time()
    install_ok(admin, issuer.license_bytes(license_id="FUTURE", not_before=now + 86400, expires=now + 10 * 86400))
    assert admin.get("/api/v1/admin/licenses/FUTURE").json()["status"] == "not_yet_valid"
    assert_error(_print(client), 404, "no_license")


def test_print_check_uses_the_license_that_expires_first(admin, client, issuer):
    now = time.time()
    install_ok(admin, issuer.license_bytes(license_id="LATE", expires=now + 300 * 86400))
    install_ok(admin, issuer.license_bytes(license_id="SOON", expires=now + 30 * 86400))
    assert _print(client).json()["license_id"] == "SOON"


def test_license_status_reports_used_and_full(admin, client, issuer):
    install_ok(admin, issuer.license_bytes(license_id="S1", unit="seats", count=1))
    assert client.post("/api/v1/leases", json={"product": "LabelStudio"}).status_code == 201
    status = admin.get("/api/v1/admin/status").json()
    [summary] = status["licenses"]
    assert summary["license_id"] == "S1" and summary["used"] == 1 and summary["status"] == "full"
    assert status["active_leases"] == 1
    assert issuer_key_listed(status, issuer)


def issuer_key_listed(status: dict, issuer: Issuer) -> bool:
    return json.loads(issuer.license_bytes())["key_id"] in status["trusted_issuers"]


def test_license_removed_and_installed_again_keeps_its_use_and_grace(server, issuer):
    """Removing and re-adding a license must not hand out a fresh count and a fresh grace period."""
    data = issuer.license_bytes(license_id="AGAIN", count=2, grace_days=30)
    with server.admin() as admin, httpx.Client(base_url=server.url, timeout=10) as client:
        install_ok(admin, data)
        for n in range(4):
            assert _print(client, f"P{n}").json()["status"] in ("ok", "grace")
        before = admin.get("/api/v1/admin/licenses/AGAIN").json()
        assert (before["used"], before["status"]) == (4, "grace")

        assert admin.delete("/api/v1/admin/licenses/AGAIN").status_code == 200
        again = install_ok(admin, data)
        assert (again["used"], again["status"]) == (4, "grace")
        assert again["grace_started_at"] == before["grace_started_at"]
        assert _print(client, "P9").json()["status"] == "grace"

    server.stop()
    server.start()
    with server.admin() as admin:
        restarted = admin.get("/api/v1/admin/licenses/AGAIN").json()
    assert (restarted["used"], restarted["status"]) == (5, "grace")
    assert restarted["grace_started_at"] == before["grace_started_at"]


def test_a_license_whose_id_is_a_path_is_refused_and_installs_nothing(keeper_admin, shared_issuer):
    admin = keeper_admin
    for license_id in ("../users/admin2", "a/b", "..", "x" * 65):
        data = shared_issuer.unchecked_license_bytes(license_id=license_id)
        error = assert_error(install(admin, data), 422, "invalid_license")
        assert "license id" in error["message"]
    assert _license_ids(admin) == ["KEEP"]


def test_the_server_id_is_its_grant_key_id_and_survives_a_restart(server):
    info = httpx.get(f"{server.url}/api/v1/server").json()
    assert info["server_id"] == info["grant_key_id"]
    assert len(info["server_id"]) == 16 and int(info["server_id"], 16) >= 0
    server.stop()
    server.start()
    assert httpx.get(f"{server.url}/api/v1/server").json()["server_id"] == info["server_id"]


def test_a_license_bound_to_another_server_is_refused_with_403(start_server, issuer):
    here, elsewhere = start_server("here"), start_server("elsewhere")
    here_id = httpx.get(f"{here.url}/api/v1/server").json()["server_id"]
    elsewhere_id = httpx.get(f"{elsewhere.url}/api/v1/server").json()["server_id"]
    assert here_id != elsewhere_id
    with here.admin() as admin:
        error = assert_error(
            install(admin, issuer.license_bytes(license_id="B-ELSEWHERE", bound_to=[elsewhere_id])),
            403,
            "license_bound_elsewhere",
        )
        assert elsewhere_id in error["message"] and here_id in error["message"]
        assert _license_ids(admin) == []

        bound = install_ok(admin, issuer.license_bytes(license_id="B-HERE", bound_to=[elsewhere_id, here_id]))
        assert bound["bound_to"] == [elsewhere_id, here_id]
        unbound = install_ok(admin, issuer.license_bytes(license_id="B-ANY"))
        assert unbound["bound_to"] == []
        assert _license_ids(admin) == ["B-ANY", "B-HERE"]


def test_a_license_an_earlier_version_installed_with_a_path_as_its_id_can_be_removed(tmp_path, issuer):
    data_dir = tmp_path / "server"
    plant_license(data_dir, issuer.terms(license_id="../users/admin2"))
    server = ServerProcess(data_dir).start()
    try:
        with server.admin() as admin:
            user = admin.put("/api/v1/admin/users/admin2", json={"password": "another-password", "role": "viewer"})
            assert user.status_code == 200, user.text
            assert _license_ids(admin) == ["../users/admin2"]
            assert admin.get("/api/v1/admin/licenses/..%2Fusers%2Fadmin2").json()["license_id"] == "../users/admin2"
            removed = admin.delete("/api/v1/admin/licenses/..%2Fusers%2Fadmin2")
            assert removed.status_code == 200, removed.text
            assert _license_ids(admin) == []
            assert "admin2" in [u["username"] for u in admin.get("/api/v1/admin/users").json()["users"]]
    finally:
        server.kill()
