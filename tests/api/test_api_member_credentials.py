"""Setting up a relationship whose servers have different administrator accounts: each member's own
credentials in the request (the shared username and password still work for the rest), refused in a
sentence when a member has none, and never stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import assert_error
from harness import ADMIN_PASSWORD, BackupPairProcesses, Issuer

BACKUP_PASSWORD = "the-backups-own-password"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupPairProcesses]:
    processes = BackupPairProcesses(Path(tmp_path_factory.mktemp("own-logins")), Issuer())
    try:
        processes.start(join=False)
        with processes.backup.admin() as backup:
            answer = backup.put("/api/v1/admin/users/ops", json={"password": BACKUP_PASSWORD, "role": "admin"})
            assert answer.status_code == 200, answer.text
        yield processes
    finally:
        processes.stop()


def _setup(pair: BackupPairProcesses, **logins: object):
    body = {"name": "B1", "main": pair.spec("main"), "backup": pair.spec("backup"), "interval_s": 1.0, **logins}
    with pair.main.admin() as admin:
        return admin.post("/api/v1/admin/relationship/backup", json=body, timeout=30)


def test_a_member_with_no_credentials_at_all_is_named_in_the_refusal(pair):
    error = assert_error(_setup(pair, credentials={"backup": {"username": "ops", "password": BACKUP_PASSWORD}}),
                         422, "invalid_relationship")
    assert error["message"].startswith("give the administrator username and password for main")


def test_credentials_for_a_server_outside_the_relationship_are_refused(pair):
    error = assert_error(
        _setup(pair, username="admin", password=ADMIN_PASSWORD,
               credentials={"lic9": {"username": "ops", "password": BACKUP_PASSWORD}}),
        422, "invalid_relationship")
    assert "lic9" in error["message"]


def test_the_shared_account_alone_cannot_log_in_to_a_server_where_it_is_not_valid(pair):
    with pair.backup.admin() as backup:
        assert backup.put("/api/v1/admin/users/ops", json={"role": "admin"}).status_code == 200
    answer = _setup(pair, username="ops", password=BACKUP_PASSWORD)
    assert answer.json()["error"]["code"] == "member_login_failed", answer.text
    assert "cannot log in to main" in answer.json()["error"]["message"]


def test_each_server_logged_in_to_with_its_own_account_forms_the_pair_and_no_password_is_kept(pair):
    answer = _setup(pair, username="admin", password=ADMIN_PASSWORD,
                    credentials={"backup": {"username": "ops", "password": BACKUP_PASSWORD}})
    assert answer.status_code == 201, answer.text
    assert pair.status("backup")["type"] == "backup"
    for server in pair.servers.values():
        for path in server.data_dir.rglob("*"):
            if path.is_file():
                assert BACKUP_PASSWORD.encode() not in path.read_bytes(), path
