"""Seat leases over HTTP: checkout, idempotent retries, heartbeats, checkin and revocation."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from api_support import assert_error, install_ok, license_used, usage


def _seats(admin, issuer, count=2, **terms):
    install_ok(admin, issuer.license_bytes(license_id="SEATS", unit="seats", count=count, **terms))


def _checkout(http, **body):
    return http.post("/api/v1/leases", json={"product": "LabelStudio", **body})


def test_checkout_grants_a_lease_and_counts_a_seat(admin, client, issuer):
    _seats(admin, issuer)
    answer = _checkout(client, request_id="req-1", client={"host": "ws-1", "user": "ann", "application": "app"})
    assert answer.status_code == 201, answer.text
    lease = answer.json()
    assert lease["license_id"] == "SEATS" and lease["product"] == "LabelStudio"
    assert lease["repeated"] is False and lease["ttl_s"] == 120
    assert lease["expires_at"] > time.time() + 100
    assert license_used(admin, "SEATS") == 1
    [held] = admin.get("/api/v1/admin/leases").json()["leases"]
    assert held["lease_id"] == lease["lease_id"] and held["request_id"] == "req-1"
    assert held["client"]["host"] == "ws-1" and held["source_ip"] == "127.0.0.1"
    [granted] = usage(admin, kind="checkout")
    assert granted["granted"] is True and granted["lease_id"] == lease["lease_id"]


def test_checkout_over_the_seat_count_is_refused_with_409(admin, client, issuer):
    _seats(admin, issuer, count=2)
    assert _checkout(client).status_code == 201
    assert _checkout(client).status_code == 201
    error = assert_error(_checkout(client), 409, "limit_exceeded")
    assert "2 seats" in error["message"]
    assert license_used(admin, "SEATS") == 2
    assert len(admin.get("/api/v1/admin/leases").json()["leases"]) == 2
    [refusal] = usage(admin, failed_only="true")
    assert refusal["reason"] == "limit_exceeded" and refusal["lease_id"] == ""


def test_repeated_request_id_returns_the_same_lease_and_takes_one_seat(admin, client, issuer):
    _seats(admin, issuer)
    first = _checkout(client, request_id="retry-me")
    second = _checkout(client, request_id="retry-me")
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["lease_id"] == first.json()["lease_id"]
    assert second.json()["repeated"] is True
    assert license_used(admin, "SEATS") == 1
    assert len(admin.get("/api/v1/admin/leases").json()["leases"]) == 1


def test_concurrent_retries_of_one_request_id_take_one_seat(server, admin, issuer):
    _seats(admin, issuer, count=5)

    def attempt(_: int) -> str:
        answer = httpx.post(f"{server.url}/api/v1/leases", json={"product": "LabelStudio", "request_id": "same"})
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["lease_id"]

    with ThreadPoolExecutor(8) as pool:
        lease_ids = set(pool.map(attempt, range(24)))
    assert len(lease_ids) == 1
    assert license_used(admin, "SEATS") == 1


def test_checkout_without_a_license_for_the_product_or_feature_is_refused(admin, client, issuer):
    _seats(admin, issuer, features=["export"])
    assert_error(client.post("/api/v1/leases", json={"product": "Other"}), 404, "no_license")
    error = assert_error(_checkout(client, feature="import"), 404, "no_license")
    assert "import" in error["message"]
    assert _checkout(client, feature="export").json()["feature"] == "export"
    assert license_used(admin, "SEATS") == 1


def test_lease_ttl_is_capped_by_the_server_setting(admin, client, issuer):
    _seats(admin, issuer)
    assert _checkout(client, ttl_s=3600).json()["ttl_s"] == 120
    assert _checkout(client, ttl_s=30).json()["ttl_s"] == 30


def test_heartbeat_extends_leases_and_reports_unknown_ones(admin, client, issuer):
    _seats(admin, issuer)
    lease = _checkout(client, ttl_s=30).json()
    time.sleep(0.05)
    batch = client.post("/api/v1/leases/heartbeat", json={"lease_ids": [lease["lease_id"], "no-such-lease"]})
    assert batch.status_code == 200, batch.text
    renewed = batch.json()["renewed"][lease["lease_id"]]
    assert renewed > lease["expires_at"]
    assert batch.json()["expired"] == ["no-such-lease"]
    time.sleep(0.05)
    one = client.post(f"/api/v1/leases/{lease['lease_id']}/heartbeat")
    assert one.status_code == 200
    assert one.json()["lease_id"] == lease["lease_id"] and one.json()["expires_at"] > renewed
    assert_error(client.post("/api/v1/leases/no-such-lease/heartbeat"), 410, "lease_expired")


def test_expired_lease_frees_its_seat_and_cannot_be_renewed(admin, client, issuer):
    _seats(admin, issuer, count=1)
    short = _checkout(client, ttl_s=1.0).json()
    assert_error(_checkout(client), 409, "limit_exceeded")
    time.sleep(max(0.0, short["expires_at"] - time.time()) + 0.05)
    assert license_used(admin, "SEATS") == 0
    assert_error(client.post(f"/api/v1/leases/{short['lease_id']}/heartbeat"), 410, "lease_expired")
    assert _checkout(client).status_code == 201


def test_checkin_releases_the_seat_once(admin, client, issuer):
    _seats(admin, issuer, count=1)
    lease_id = _checkout(client, request_id="r1").json()["lease_id"]
    answer = client.delete(f"/api/v1/leases/{lease_id}")
    assert answer.status_code == 200
    assert answer.json() == {"lease_id": lease_id, "released": True}
    assert license_used(admin, "SEATS") == 0
    assert admin.get("/api/v1/admin/leases").json()["leases"] == []
    assert_error(client.delete(f"/api/v1/leases/{lease_id}"), 404, "lease_not_found")
    assert_error(client.post(f"/api/v1/leases/{lease_id}/heartbeat"), 410, "lease_expired")
    again = _checkout(client, request_id="r1")
    assert again.status_code == 201 and again.json()["lease_id"] != lease_id
    assert [r["reason"] for r in usage(admin, kind="checkin")] == ["ok"]


def test_admin_revoke_takes_the_seat_back(admin, client, issuer):
    _seats(admin, issuer, count=1)
    lease_id = _checkout(client).json()["lease_id"]
    revoked = admin.post(f"/api/v1/admin/leases/{lease_id}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json() == {"lease_id": lease_id, "revoked": True}
    assert license_used(admin, "SEATS") == 0
    assert_error(client.post(f"/api/v1/leases/{lease_id}/heartbeat"), 410, "lease_expired")
    assert_error(admin.post(f"/api/v1/admin/leases/{lease_id}/revoke"), 404, "lease_not_found")
    assert _checkout(client).status_code == 201
    [record] = [r for r in usage(admin, kind="checkin") if r["lease_id"] == lease_id]
    assert record["reason"] == "revoked" and record["granted"] is False


def test_clients_are_registered_by_checkouts(admin, client, issuer):
    _seats(admin, issuer)
    info = {"host": "ws-9", "user": "zed", "application": "Designer", "version": "2.1"}
    _checkout(client, client=info)
    _checkout(client, client={**info, "version": "2.2"})
    [registered] = admin.get("/api/v1/admin/clients").json()["clients"]
    assert registered["info"]["host"] == "ws-9" and registered["info"]["version"] == "2.2"
    assert registered["requests"] == 2 and registered["source_ip"] == "127.0.0.1"
