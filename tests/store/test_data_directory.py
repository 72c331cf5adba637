"""Every entry of a data directory is declared once (`store.data_directory`), and a backup takes what the
declaration says it takes: a file a server writes cannot be silently left out of backups."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from harness import Issuer, ServerProcess

from licentia.config import Config
from licentia.server import LicenseServer
from licentia.store import data_directory
from licentia.store.backup import create_backup
from licentia.store.data_directory import FILES, InBackup, declared

JSON = {"Content-Type": "application/json"}


def test_every_entry_a_running_https_server_writes_is_declared(tmp_path: Path, issuer: Issuer):
    data = tmp_path / "server"
    issuer.trust_in(data)
    server = ServerProcess(data, admin_password=None, tls=True)
    server.start()
    try:
        with httpx.Client(base_url=server.url, verify=server.verify, timeout=10) as client:
            password = (data / "initial-admin-password").read_text().strip()
            added = client.post("/api/v1/admin/licenses", content=issuer.license_bytes(), headers=JSON,
                                auth=("admin", password))
            assert added.status_code == 201, added.text
            check = client.post("/api/v1/print-checks", json={"product": "LabelStudio", "printer": {"name": "P"}})
            assert check.is_success, check.text
    finally:
        server.stop()
    found = [path.relative_to(data).as_posix() for path in data.rglob("*") if path.is_file()]
    assert {"licentia.db", "grant.key", "token.key", "peer.key", "tls/server.crt"} <= set(found)
    assert [name for name in found if declared(name) is None] == []


def test_a_backup_takes_every_file_declared_as_is_and_none_left_out(tmp_path: Path):
    data = tmp_path / "member"
    server = LicenseServer(Config(data_dir=data))
    server.open()
    server.release()
    for entry in FILES:
        path = data / entry.name
        if entry.backup is InBackup.AS_IS and not path.exists():
            path.write_text('{"name": "T1", "me": "b"}' if entry.name == "triad.json" else "{}")
        elif entry.backup is InBackup.LEFT_OUT and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"left out")

    manifest = create_backup(data, tmp_path / "member.tar.gz")

    names = {entry["name"] for entry in manifest["files"]}
    as_is = {entry.name for entry in FILES if entry.backup is InBackup.AS_IS}
    left_out = {entry.name for entry in FILES if entry.backup is InBackup.LEFT_OUT}
    assert as_is and as_is <= names
    assert "licentia.db" in names
    assert not names & left_out


def test_a_file_left_out_of_backups_says_why():
    with pytest.raises(ValueError, match="say why"):
        data_directory.DataFile("new.key", "a new key", InBackup.LEFT_OUT)
    assert all(entry.why_left_out for entry in FILES if entry.backup is InBackup.LEFT_OUT)


def test_the_server_and_the_backup_read_their_paths_from_the_declaration(tmp_path: Path):
    from licentia.store import backup

    assert data_directory.backed_up_as_is() == backup.PLAIN_FILES
    assert Config(data_dir=tmp_path).database == data_directory.DataDirectory(tmp_path).database
