"""`licentia backup` while a busy server runs, and `licentia restore` into a new directory, as real processes."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from harness import ADMIN_PASSWORD, Issuer, ServerProcess, every_row

from licentia.config import Config
from licentia.server import LicenseServer
from licentia.store.backup import BackupError, create_backup, read_manifest, restore_backup

JSON = {"Content-Type": "application/json"}


def licentia(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "licentia", *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


class CheckoutLoad:
    """A thread checking out seats as fast as the server answers, remembering when each was acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: dict[str, float] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                body = {"product": "Designer", "request_id": uuid.uuid4().hex,
                        "client": {"host": "ws-load", "user": "load", "application": "Designer"}}
                response = client.post("/api/v1/leases", json=body)
                if response.status_code == 201:
                    self.acked[response.json()["lease_id"]] = time.monotonic()
                else:
                    self.errors.append(response.text)
                    return

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count and not self.errors:
            assert time.monotonic() < deadline, f"only {len(self.acked)} checkouts in {timeout}s"
            time.sleep(0.01)
        assert self.errors == []

    def __enter__(self) -> CheckoutLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def state_of(server: ServerProcess) -> dict:
    with server.admin() as admin:
        status = admin.get("/api/v1/admin/status").json()
        usage = admin.get("/api/v1/admin/usage", params={"kind": "checkout", "limit": 100_000}).json()["records"]
        return {
            "server_id": status["server_id"],
            "journal_index": status["journal_index"],
            "leases": {lease["lease_id"] for lease in every_row(admin, "/api/v1/admin/leases", "leases")},
            "licenses": sorted((lic["license_id"], lic["count"]) for lic in
                               admin.get("/api/v1/admin/licenses").json()["licenses"]),
            "granted_checkouts": {r["lease_id"] for r in usage if r["granted"]},
        }


def test_backup_under_load_restores_to_a_server_with_the_state_at_the_snapshot(start_server, issuer: Issuer,
                                                                              tmp_path: Path):
    server = start_server("live")
    with server.admin() as admin:
        for data in (issuer.license_bytes(product="Designer", unit="seats", count=1_000_000),
                     issuer.license_bytes(product="LabelStudio", unit="printers", count=10)):
            assert admin.post("/api/v1/admin/licenses", headers=JSON, content=data).status_code == 201
    archive = tmp_path / "backups" / "live.tar.gz"

    with CheckoutLoad(server.url) as load:
        load.wait_for(100)
        began = time.monotonic()
        result = licentia("backup", "--data", str(server.data_dir), "--out", str(archive))
        finished = time.monotonic()
        load.wait_for(len(load.acked) + 50)  # the server kept serving during and after the backup
    assert result.returncode == 0, result.stderr
    assert "journal index" in result.stdout
    assert load.errors == []
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    manifest = read_manifest(archive)
    names = {entry["name"] for entry in manifest["files"]}
    assert {"licentia.db", "token.key", "peer.key", "grant.key"} <= names
    assert any(name.startswith("trusted-issuers/") for name in names)

    restored_dir = tmp_path / "restored"
    result = licentia("restore", "--data", str(restored_dir), "--from", str(archive))
    assert result.returncode == 0, result.stderr
    restored = ServerProcess(restored_dir).start()
    try:
        got = state_of(restored)
    finally:
        restored.kill()
    live = state_of(server)

    # The restored server is the same server, at the journal index the manifest names.
    assert got["server_id"] == live["server_id"] == manifest["state"]["server_id"]
    assert got["journal_index"] == manifest["state"]["journal_index"] <= live["journal_index"]
    assert got["licenses"] == live["licenses"]
    # Every restored lease was acknowledged to its client before the backup finished ...
    assert got["leases"] and got["leases"] <= set(load.acked)
    assert all(load.acked[lease] <= finished for lease in got["leases"])
    # ... and every lease acknowledged before it began is there.
    assert {lease for lease, at in load.acked.items() if at < began} <= got["leases"]
    # Leases, usage log and journal index agree: one granted checkout record per lease, nothing later.
    assert got["granted_checkouts"] == got["leases"]
    assert len(got["leases"]) == manifest["state"]["leases"]
    assert got["leases"] < live["leases"]


def test_restore_refuses_a_running_server_and_a_non_empty_directory(start_server, issuer: Issuer, tmp_path: Path):
    server = start_server("main")
    with server.admin() as admin:
        admin.post("/api/v1/admin/licenses", headers=JSON, content=issuer.license_bytes(license_id="LIC-KEEP"))
    archive = tmp_path / "main.tar.gz"
    assert licentia("backup", "--data", str(server.data_dir), "--out", str(archive)).returncode == 0

    running = licentia("restore", "--data", str(server.data_dir), "--from", str(archive), "--force")
    assert running.returncode == 2 and "a server is running" in running.stderr

    with server.admin() as admin:
        admin.post("/api/v1/admin/licenses", headers=JSON, content=issuer.license_bytes(license_id="LIC-LATER"))
    server.stop()
    not_empty = licentia("restore", "--data", str(server.data_dir), "--from", str(archive))
    assert not_empty.returncode == 2 and "not empty" in not_empty.stderr and "--force" in not_empty.stderr

    # A stopped server's directory can be backed up too (no WAL beside the database then).
    assert licentia("backup", "--data", str(server.data_dir), "--out", str(tmp_path / "later.tar.gz")).returncode == 0
    forced = licentia("restore", "--data", str(server.data_dir), "--from", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    server.start()
    with server.admin() as admin:
        assert [lic["license_id"] for lic in admin.get("/api/v1/admin/licenses").json()["licenses"]] == ["LIC-KEEP"]
    server.stop()


def test_a_damaged_or_foreign_archive_is_refused_and_nothing_is_touched(tmp_path: Path):
    source = tmp_path / "source"
    server = LicenseServer(Config(data_dir=source))
    server.open()
    server.release()
    archive = tmp_path / "good.tar.gz"
    create_backup(source, archive)

    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive, "r:gz") as tar, tarfile.open(damaged, "w:gz") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()
            if member.name == "licentia.db":
                data = data[:-1] + bytes([data[-1] ^ 1])
            out.addfile(member, io.BytesIO(data))
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "r:gz") as tar, tarfile.open(evil, "w:gz") as out:
        for member in tar.getmembers():
            out.addfile(member, tar.extractfile(member))
        extra = tarfile.TarInfo("../escaped")
        extra.size = 1
        out.addfile(extra, io.BytesIO(b"x"))
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(os.urandom(1000))

    target = tmp_path / "target"
    for bad, reason in ((damaged, "checksum"), (evil, "unexpected entry"), (garbage, "cannot read")):
        with pytest.raises(BackupError, match=reason):
            restore_backup(bad, target)
        assert [p.name for p in target.iterdir()] == ["server.lock"]
    with pytest.raises(BackupError, match="not a Licentia data directory"):
        create_backup(tmp_path / "nothing-here", tmp_path / "x.tar.gz")
    assert restore_backup(archive, target)["state"]["server_id"] == server.server_id


def test_a_triad_members_relationship_files_go_along_but_not_its_raft_log(tmp_path: Path):
    data = tmp_path / "member"
    server = LicenseServer(Config(data_dir=data))
    server.open()
    server.release()
    (data / "triad.json").write_text(json.dumps({"name": "T1", "me": "b", "secret": "s3cret"}))
    (data / "triad-state.snapshot").write_bytes(b"licentia-snapshot 1 7\n")
    (data / "triad-state.json").write_text("{}")  # an earlier version's checkpoint, not yet rewritten
    (data / "raft").mkdir()
    (data / "raft" / "raft.journal").write_bytes(b"\0" * 64)
    (data / "initial-admin-password").write_text("first-start\n")

    manifest = create_backup(data, tmp_path / "member.tar.gz")

    names = {entry["name"] for entry in manifest["files"]}
    assert {"triad.json", "triad-state.snapshot", "triad-state.json"} <= names
    assert not any(name.startswith("raft") for name in names) and "initial-admin-password" not in names
    assert manifest["relationship"] == {"type": "triad", "name": "T1", "me": "b"}
    restored = tmp_path / "again"
    restore_backup(tmp_path / "member.tar.gz", restored)
    assert (restored / "triad.json").read_text() == (data / "triad.json").read_text()
    assert stat.S_IMODE((restored / "token.key").stat().st_mode) == 0o600
    assert ADMIN_PASSWORD not in json.dumps(manifest)


def test_a_backup_takes_the_snapshot_file_with_a_database_whose_journal_goes_on_from_it(tmp_path: Path):
    """The journal is compacted only after a newer snapshot file is on disk; a database copy compacted past
    the snapshot file read would miss commands, so the backup never pairs them."""
    import asyncio
    import sqlite3

    from licentia.core import commands as c
    from licentia.core.state import LicenseState
    from licentia.store.journal import SqliteJournal

    data = tmp_path / "data"
    data.mkdir()

    async def write() -> None:
        journal = SqliteJournal(data / "licentia.db", snapshot_every=3)
        state = journal.load()
        for n in range(7):
            command = c.CreatePrinterGroup(name=f"Dock-{n}")
            assert state.apply(command, 1.0 + n).changed
            await journal.append(command, 1.0 + n, [])
            journal.offer_snapshot(state)
            await journal.wait_for_snapshot()
        await journal.close()

    asyncio.run(write())
    manifest = create_backup(data, tmp_path / "good.tar.gz")
    assert "licentia.snapshot" in {entry["name"] for entry in manifest["files"]}
    assert manifest["state"]["journal_index"] == 7
    restored = tmp_path / "restored"
    restore_backup(tmp_path / "good.tar.gz", restored)
    journal = SqliteJournal(restored / "licentia.db")
    try:
        assert sorted(journal.load().groups) == sorted([*LicenseState().groups, *(f"Dock-{n}" for n in range(7))])
    finally:
        asyncio.run(journal.close())

    with sqlite3.connect(data / "licentia.db") as conn:  # as if a newer snapshot compacted the journal meanwhile
        conn.execute("UPDATE meta SET value = '100' WHERE key = 'compacted_to'")
    with pytest.raises(BackupError, match="snapshots faster"):
        create_backup(data, tmp_path / "bad.tar.gz")
    assert not (tmp_path / "bad.tar.gz").exists()
