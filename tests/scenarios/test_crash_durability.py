"""A server killed with SIGKILL in the middle of a checkout burst loses no acknowledged lease.

The server answers a checkout only once the command is on disk, so after a
restart on the same data directory every lease a client was told about must
still be held, and retrying any request id must never take a second seat.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from harness import ServerProcess, every_row

BURST = 400
THREADS = 8
KILL_AFTER = 150
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def restarted(request) -> Iterator[list[ServerProcess]]:
    """Servers a test restarts by hand; each is killed at the end."""
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        server.kill()


def _burst_then_kill(server: ServerProcess) -> tuple[dict[str, str], int]:
    """Check out BURST seats from THREADS threads and SIGKILL the server mid-way.

    Returns {request_id: lease_id} for every checkout acknowledged with 201, and how many
    requests got no answer.
    """
    request_ids = iter(f"req-{n:04d}" for n in range(BURST))
    next_lock = threading.Lock()
    acknowledged: dict[str, str] = {}
    unanswered = 0
    enough = threading.Event()
    unexpected: list[str] = []

    def worker() -> None:
        nonlocal unanswered
        with httpx.Client(base_url=server.url, timeout=5) as http:
            while True:
                with next_lock:
                    request_id = next(request_ids, None)
                if request_id is None:
                    return
                try:
                    answer = http.post(
                        "/api/v1/leases",
                        json={"product": "LabelStudio", "request_id": request_id, "client": {"host": "burst"}},
                    )
                except httpx.HTTPError:
                    with next_lock:
                        unanswered += 1
                    continue
                with next_lock:
                    if answer.status_code != 201:
                        unexpected.append(f"{answer.status_code} {answer.text}")
                        continue
                    acknowledged[request_id] = answer.json()["lease_id"]
                    if len(acknowledged) >= KILL_AFTER:
                        enough.set()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        assert enough.wait(30), "the burst did not reach the kill point"
        server.kill()
    finally:
        for thread in threads:
            thread.join(30)
    assert not unexpected, unexpected[:5]
    return acknowledged, unanswered


@pytest.mark.parametrize("snapshot_every", [None, 25], ids=["journal-only", "with-snapshots"])
def test_sigkill_mid_burst_loses_no_acknowledged_checkout(start_server, issuer, tmp_path, restarted, snapshot_every):
    extra_args = []
    if snapshot_every:
        config = tmp_path / "licentia.toml"
        config.write_text(f"[server]\nsnapshot_every = {snapshot_every}\n")
        extra_args = ["--config", str(config)]
    server = start_server(extra_args=extra_args)
    with server.admin() as admin:
        added = admin.post(
            "/api/v1/admin/licenses",
            content=issuer.license_bytes(license_id="BIG", unit="seats", count=1000),
            headers=JSON,
        )
        assert added.status_code == 201, added.text

    acknowledged, unanswered = _burst_then_kill(server)
    assert server.process is not None and server.process.returncode == -9
    assert len(acknowledged) >= KILL_AFTER
    assert len(acknowledged) < BURST and unanswered > 0, "the kill did not land in the middle of the burst"

    again = ServerProcess(server.data_dir, server.port, extra_args=extra_args)
    restarted.append(again)
    again.start()
    with again.admin() as admin:
        leases = {lease["lease_id"]: lease for lease in every_row(admin, "/api/v1/admin/leases", "leases")}
        missing = set(acknowledged.values()) - set(leases)
        assert not missing, f"{len(missing)} acknowledged leases were lost"
        for request_id, lease_id in acknowledged.items():
            assert leases[lease_id]["request_id"] == request_id
        assert all(lease["client"]["host"] == "burst" for lease in leases.values())
        big = admin.get("/api/v1/admin/licenses/BIG").json()
        assert big["used"] == len(leases)
        granted = [
            r
            for r in admin.get("/api/v1/admin/usage", params={"limit": 5000}).json()["records"]
            if r["kind"] == "checkout" and r["granted"]
        ]
        assert {r["lease_id"] for r in granted} == set(leases)

        # Every client now retries what it sent: acknowledged ids get their lease back, the rest get one seat each.
        with httpx.Client(base_url=again.url, timeout=10) as http:
            for n in range(BURST):
                request_id = f"req-{n:04d}"
                body = {"product": "LabelStudio", "request_id": request_id, "client": {"host": "burst"}}
                answer = http.post("/api/v1/leases", json=body)  # the same client: a request id is its own
                assert answer.status_code in (200, 201), answer.text
                if request_id in acknowledged:
                    assert answer.status_code == 200 and answer.json()["lease_id"] == acknowledged[request_id]
        assert admin.get("/api/v1/admin/licenses/BIG").json()["used"] == BURST
        assert len(every_row(admin, "/api/v1/admin/leases", "leases")) == BURST
