"""A server killed while it writes a snapshot loses no acknowledged change, and keeps serving meanwhile.

The snapshot is written by a forked child beside the database; the journal keeps every command until
the new snapshot file is on disk. The test makes the child pause half-way through the file
(LICENTIA_TEST_SNAPSHOT_PAUSE_S), goes on checking out seats while it pauses, then SIGKILLs both the
server and the child, restarts the server and finds every acknowledged lease.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
from harness import Issuer, ServerProcess


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _install_seats(server: ServerProcess, issuer: Issuer) -> None:
    with server.admin() as admin:
        data = issuer.license_bytes(license_id="SEATS", product="Seats", unit="seats", count=500)
        answer = admin.post("/api/v1/admin/licenses", content=data, headers={"Content-Type": "application/json"})
        assert answer.status_code == 201, answer.text


def _checkout(http: httpx.Client, n: int) -> str:
    answer = http.post("/api/v1/leases", json={"product": "Seats", "request_id": f"req-{n}",
                                               "client": {"host": f"ws-{n}"}, "ttl_s": 3600})
    assert answer.status_code == 201, answer.text
    return answer.json()["lease_id"]


def test_kill_during_snapshot_writing_loses_no_acknowledged_lease(tmp_path: Path, issuer: Issuer):
    data = tmp_path / "server"
    issuer.trust_in(data)
    config = tmp_path / "server.toml"
    config.write_text("[server]\nsnapshot_every = 20\n")
    server = ServerProcess(data, extra_args=["--config", str(config)])
    server.extra_env = {"LICENTIA_TEST_SNAPSHOT_PAUSE_S": "30"}
    server.start()
    try:
        _install_seats(server, issuer)
        acknowledged: list[str] = []
        partial = data / ".licentia.snapshot.tmp"
        with httpx.Client(base_url=server.url, timeout=5) as http:
            n = 0
            while not partial.exists():
                acknowledged.append(_checkout(http, n))
                n += 1
                assert n < 200, "no snapshot was started"
            # The child is writing (and pausing); the server goes on answering and journaling.
            started = time.monotonic()
            for _ in range(30):
                acknowledged.append(_checkout(http, n))
                n += 1
            assert time.monotonic() - started < 10
            assert server.process is not None
            writers = _children(server.process.pid)
            assert writers, "the snapshot writer is not running"
        for pid in [server.process.pid, *writers]:
            os.kill(pid, signal.SIGKILL)
        server.process.wait()
        assert not (data / "licentia.snapshot").exists() or partial.exists()
    finally:
        server.kill()

    restarted = ServerProcess(data)
    restarted.start()
    try:
        with restarted.admin() as admin:
            held = {lease["lease_id"] for lease in admin.get("/api/v1/admin/leases").json()["leases"]}
        assert set(acknowledged) <= held
        assert len(acknowledged) > 20  # some before the snapshot's index, some after
    finally:
        restarted.kill()


def test_snapshots_compact_the_journal_and_restart_gives_the_same_leases(tmp_path: Path, issuer: Issuer):
    data = tmp_path / "server"
    issuer.trust_in(data)
    config = tmp_path / "server.toml"
    config.write_text("[server]\nsnapshot_every = 20\n")
    server = ServerProcess(data, extra_args=["--config", str(config)])
    server.start()
    try:
        _install_seats(server, issuer)
        with httpx.Client(base_url=server.url, timeout=5) as http:
            acknowledged = [_checkout(http, n) for n in range(100)]
        deadline = time.monotonic() + 10
        while not (data / "licentia.snapshot").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (data / "licentia.snapshot").exists()
    finally:
        server.kill()  # SIGKILL: no snapshot on shutdown; the file and the journal after it must suffice
    with sqlite3.connect(data / "licentia.db") as conn:
        journaled = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert journaled < 60  # the commands up to a snapshot's index were dropped from the journal
    assert "snapshot" not in tables  # no copy of the state inside the database
    restarted = ServerProcess(data)
    restarted.start()
    try:
        with restarted.admin() as admin:
            held = {lease["lease_id"] for lease in admin.get("/api/v1/admin/leases").json()["leases"]}
        assert held == set(acknowledged)
    finally:
        restarted.kill()
