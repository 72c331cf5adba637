"""Seat leases held by the SDK against one real server: background renewal, and a seat taken on grace
while the server was down becomes a real lease (same request id) once the server is back, which the
application releases with the id it was given."""

from __future__ import annotations

import time

from client_support import IDENTITY, SEATS, admin_get, install_licenses, license_used
from harness import wait_for

from licentia.client import LicenseClient


def test_background_renewal_extends_held_leases(server, issuer, tmp_path):
    license_id = install_licenses(server, issuer)[SEATS]
    with LicenseClient(server.url, cache_dir=tmp_path / "cache", heartbeat_interval_s=0.2, **IDENTITY) as client:
        lease = client.checkout(SEATS)
        first = client.aio.leases[lease["lease_id"]].expires_at
        wait_for(lambda: client.aio.leases[lease["lease_id"]].expires_at > first, 5, "a background renewal")
        assert license_used(server, license_id) == 1
        assert client.checkin(lease["lease_id"])["released"] is True
        assert license_used(server, license_id) == 0


def test_a_seat_taken_on_grace_becomes_a_real_lease_when_the_server_is_back(server, issuer, tmp_path):
    license_id = install_licenses(server, issuer)[SEATS]
    with LicenseClient(server.url, cache_dir=tmp_path / "cache", heartbeat_interval_s=0.2, **IDENTITY) as client:
        online = client.checkout(SEATS)  # leaves a seat grant for the grace period
        client.checkin(online["lease_id"])
        time.sleep(0.5)  # the renewer has nothing left to renew and stops

        server.kill()
        offline = client.checkout(SEATS, request_id="while-down")
        assert offline["offline"] is True
        server.start()

        def real_lease():
            return [held for held in client.aio.leases.values() if not held.offline]

        [held] = wait_for(real_lease, 10, "the offline seat re-established on the server")
        assert held.request_id == "while-down"
        assert [lease["lease_id"] for lease in admin_get(server, "/api/v1/admin/leases")["leases"]] == [held.lease_id]
        assert license_used(server, license_id) == 1
        # The application still holds the id it was given; checking that in releases the real lease.
        released = client.checkin(offline["lease_id"])
        assert released["released"] is True, released
        assert client.aio.leases == {}
        assert admin_get(server, "/api/v1/admin/leases")["leases"] == []
        assert license_used(server, license_id) == 0


def test_an_expired_lease_is_taken_again_and_checked_in_by_its_first_id(server, issuer, tmp_path):
    license_id = install_licenses(server, issuer)[SEATS]
    with server.admin() as admin:
        answer = admin.patch("/api/v1/admin/settings", json={"changes": {"lease_ttl_s": 5, "heartbeat_interval_s": 2}})
        assert answer.status_code == 200, answer.text
    with LicenseClient(server.url, cache_dir=tmp_path / "cache", heartbeat_interval_s=3600, **IDENTITY) as client:
        first = client.checkout(SEATS, request_id="long-job")
        time.sleep(5.3)  # not renewed in time: the server lets it go
        client.renew_now()  # the heartbeat says it expired; the client takes the seat again, same request id
        [held] = client.aio.leases.values()
        assert held.request_id == "long-job" and held.lease_id != first["lease_id"] and not held.offline
        assert license_used(server, license_id) == 1

        released = client.checkin(first["lease_id"])
        assert released == {"lease_id": held.lease_id, "released": True}
        assert client.aio.leases == {}
        assert license_used(server, license_id) == 0
