"""A batch heartbeat answers one grant per product, and signs no more than that."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import httpx
from harness import Issuer

from licentia.api.app import create_app
from licentia.config import Config
from licentia.core import commands as c
from licentia.server import LicenseServer


def test_batch_heartbeat_of_many_clients_signs_one_grant_per_product(tmp_path: Path, issuer: Issuer):
    async def run() -> tuple[int, dict[str, object], int]:
        server = LicenseServer(Config.load(data_dir=tmp_path / "data"))
        server.open()
        try:
            await server.ensure_admin()
            for product in ("Designer", "Printer"):
                terms = issuer.terms(license_id=f"SEATS-{product}", product=product, unit="seats", count=100)
                assert (await server.execute(c.AddLicense(terms=terms, key_id="k", signature="cw=="))).ok
            app = create_app(server, manage_lifecycle=False)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
                lease_ids = []
                for n in range(40):
                    answer = await http.post("/api/v1/leases", json={
                        "product": "Designer" if n % 4 else "Printer",
                        "client": {"host": f"ws-{n}", "user": f"user-{n}", "application": "app"},
                    })
                    assert answer.status_code == 201, answer.text
                    lease_ids.append(answer.json()["lease_id"])
                signed = 0
                sign = server.grants.sign

                def counting_sign(claims: dict[str, object]) -> str:
                    nonlocal signed
                    signed += 1
                    return sign(claims)

                server.grants.sign = counting_sign  # type: ignore[method-assign]
                server._grant_cache.clear()
                answer = await http.post("/api/v1/leases/heartbeat", json={"lease_ids": lease_ids})
                assert answer.status_code == 200, answer.text
                body = answer.json()
                return signed, body["grants"], len(body["renewed"])
        finally:
            await server.journal.close(server.state)
            server.release()

    signed, grants, renewed = asyncio.run(run())
    assert renewed == 40
    assert sorted(grants) == ["Designer", "Printer"]
    assert signed == 2


def test_grants_kept_for_reuse_leave_the_cycle_collector_nothing_to_walk(tmp_path: Path):
    """The grants kept for reuse (one per kind, product and client, up to 10,000) live long: what is kept for each
    must hold no object the cycle collector tracks, or every full pass walks them all on the event loop. At
    300,000 leases the oldest generation held 8,600-17,900 objects, most of them this cache's entries."""
    server = LicenseServer(Config.load(data_dir=tmp_path / "data"))
    server.open()
    try:
        first = server.grant_token("seat", "Designer", "ws-0")
        gc.collect()
        tracked_before = len(gc.get_objects())
        for n in range(2000):
            server.grant_token("seat", "Designer", f"ws-{n}")
        gc.collect()
        tracked_after = len(gc.get_objects())

        assert tracked_after - tracked_before < 100, tracked_after - tracked_before
        again = server.grant_token("seat", "Designer", "ws-0")
        assert again == first and again is not first  # the same signed token, reused; a dict of its own
    finally:
        asyncio.run(server.journal.close(server.state))
        server.release()
