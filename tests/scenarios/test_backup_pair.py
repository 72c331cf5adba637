"""A backup pair of two real server processes: setup, synchronization, takeover by the backup, and return."""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import (
    ADMIN_PASSWORD,
    BackupPairProcesses,
    Issuer,
    ServerProcess,
    admin_get,
    install_licenses,
    wait_for,
)
from metrics_lint import promtool_problems
from openapi_contract import contract_problems, served_document

from licentia.client import LicenseClient
from licentia.cluster import peer_auth

SEATS = "CADStudio"
PRINTS = "LabelStudio"
IDENTITY = {"host": "ws-7", "user": "ana", "application": "backup-tests", "version": "1.0"}


@pytest.fixture
def start_pair(tmp_path: Path, issuer: Issuer):
    started: list[BackupPairProcesses] = []

    def start(join: bool = True, **kwargs: Any) -> BackupPairProcesses:
        pair = BackupPairProcesses(tmp_path / f"pair{len(started)}", issuer, **kwargs)
        started.append(pair)
        return pair.start(join=join)

    yield start
    for pair in started:
        pair.stop()


def usage(server: ServerProcess, **params: Any) -> list[dict[str, Any]]:
    return admin_get(server, "/api/v1/admin/usage", limit=100_000, **params)["records"]


def settings(server: ServerProcess) -> dict[str, Any]:
    return admin_get(server, "/api/v1/admin/settings")["settings"]


def distinct_refusals(server: ServerProcess, count: int, tag: str) -> None:
    """`count` usage rows: refused print checks from as many different computers (one client's repeated
    refusals would share a row)."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for i in range(count):
            body = {"product": "Unlicensed", "printer": {"name": "P"}, "client": {"host": f"{tag}-{i}"}}
            assert client.post("/api/v1/print-checks", json=body).status_code == 404


def print_check(server: ServerProcess, printer: str, host: str = "ws-1") -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/print-checks",
        json={"product": PRINTS, "printer": {"name": printer}, "client": {**IDENTITY, "host": host}},
        timeout=5,
    )




def both_flags(status: dict[str, Any]) -> bool:
    return bool(status.get("connected") and status.get("synchronized"))


def test_initial_sync_brings_each_server_the_others_printers_clients_usage_and_the_mains_settings(start_pair, issuer):
    pair = start_pair(join=False, interval_s=1.0)
    install_licenses(pair.main, issuer)
    install_licenses(pair.backup, issuer)
    with pair.main.admin() as admin:
        assert admin.post("/api/v1/admin/printer-groups", json={"name": "Warehouse"}).status_code == 201
        rules = {"rules": [{"pattern": "^WH-", "group": "Warehouse"}]}
        assert admin.put("/api/v1/admin/printer-mapping-rules", json=rules).status_code == 200
        assert admin.patch("/api/v1/admin/settings", json={"changes": {"lease_ttl_s": 300}}).status_code == 200
    assert print_check(pair.main, "WH-Zebra-1", host="main-host").status_code == 200
    assert print_check(pair.backup, "Office-HP", host="backup-host").status_code == 200

    pair.join()
    pair.wait(both_flags, role="main")
    pair.wait(both_flags, role="backup")

    backup_printers = {p["identity"]["name"]: p for p in admin_get(pair.backup, "/api/v1/admin/printers")["printers"]}
    assert backup_printers["WH-Zebra-1"]["group"] == "Warehouse"
    assert backup_printers["WH-Zebra-1"]["in_window"] is True
    main_printers = {p["identity"]["name"] for p in admin_get(pair.main, "/api/v1/admin/printers")["printers"]}
    assert "Office-HP" in main_printers
    assert settings(pair.backup)["lease_ttl_s"] == 300
    backup_clients = {c["info"]["host"] for c in admin_get(pair.backup, "/api/v1/admin/clients")["clients"]}
    assert {"main-host", "backup-host"} <= backup_clients
    from_main = [r for r in usage(pair.backup, kind="print") if r["server"] == "main"]
    assert [r["printer_name"] for r in from_main] == ["WH-Zebra-1"]
    from_backup = [r for r in usage(pair.main, kind="print") if r["server"] == "backup"]
    assert [r["printer_name"] for r in from_backup] == ["Office-HP"]


def test_settings_change_on_the_main_reaches_the_backup_within_one_interval(start_pair):
    pair = start_pair(interval_s=2.0)
    pair.wait(both_flags, role="backup")
    with pair.main.admin() as admin:
        changed_at = time.monotonic()
        assert admin.patch("/api/v1/admin/settings", json={"changes": {"printer_window_days": 3}}).status_code == 200
    wait_for(lambda: settings(pair.backup)["printer_window_days"] == 3, timeout=2.0, what="the setting on the backup")
    assert time.monotonic() - changed_at < pair.interval_s


def test_backup_refuses_a_settings_change_and_names_the_main(start_pair):
    pair = start_pair()
    pair.wait(both_flags, role="backup")
    with pair.backup.admin() as admin:
        answer = admin.patch("/api/v1/admin/settings", json={"changes": {"lease_ttl_s": 600}})
        rules = admin.put("/api/v1/admin/access-rules", json={"rules": [], "default_policy": "deny"})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "owned_by_main"
    assert pair.main.url in answer.json()["error"]["message"]
    assert rules.status_code == 409
    assert settings(pair.backup)["lease_ttl_s"] != 600


def test_main_killed_clients_are_served_by_the_backup_and_come_back_when_it_returns(start_pair, issuer, tmp_path):
    pair = start_pair(interval_s=1.0)
    install_licenses(pair.main, issuer)
    install_licenses(pair.backup, issuer)
    pair.wait(both_flags, role="backup")
    with LicenseClient(pair.main.url, cache_dir=tmp_path / "cache", host="ws-9", user="ana") as client:
        assert client.print_check(PRINTS, "Line-1")["granted"] is True
        assert client.aio.directory.preferred == pair.main.url

        pair.main.kill()
        started = time.monotonic()
        answer = client.print_check(PRINTS, "Line-2")
        gap = time.monotonic() - started
        assert answer["granted"] is True
        assert client.aio.directory.active == pair.backup.url
        assert gap < 1.0
        lease = client.checkout(SEATS)
        on_backup = usage(pair.backup, kind="print")
        assert any(r["printer_name"] == "Line-2" and r["server"] == "" for r in on_backup)
        assert admin_get(pair.backup, "/api/v1/admin/leases")["leases"][0]["lease_id"] == lease["lease_id"]

        pair.main.start()
        pair.wait(both_flags, role="main", timeout=20)
        pair.wait(both_flags, role="backup", timeout=20)
        flowed_back = [r for r in usage(pair.main, kind="print") if r["server"] == "backup"]
        assert [r["printer_name"] for r in flowed_back] == ["Line-2"]

        def served_by_main() -> bool:
            client.print_check(PRINTS, "Line-3")
            return client.aio.directory.active == pair.main.url

        wait_for(served_by_main, timeout=10, what="the client to return to the main")
        assert any(r["printer_name"] == "Line-3" and r["server"] == "" for r in usage(pair.main, kind="print"))


def test_the_four_connection_and_synchronization_states(start_pair, tmp_path):
    pair = start_pair(join=False, interval_s=1.0)
    config = tmp_path / "small-batches.toml"
    config.write_text("[server]\nsync_batch_rows = 10\n")
    pair.backup.stop()
    pair.backup.extra_args = ["--config", str(config)]
    pair.backup.start()
    pair.join()
    assert pair.wait(both_flags, role="backup")["state"] == "connected_synchronized"

    # Not connected, synchronized: the main is gone, and nothing changed since the last sync.
    pair.main.kill()
    status = pair.wait(lambda s: not s["connected"], role="backup", timeout=10)
    assert status["state"] == "not_connected_synchronized"
    assert [m["online"] for m in status["members"]] == [False, True]

    # Not connected, not synchronized: the backup records what the main cannot have yet.
    distinct_refusals(pair.backup, 3000, "gone")
    status = pair.wait(lambda s: not s["synchronized"], role="backup", timeout=10)
    assert status["state"] == "not_connected_not_synchronized"
    assert status["pending"]["to_partner"]["usage_rows"] >= 3000

    # Connected, not synchronized: the main is back and still taking in the backlog, 10 rows at a time.
    pair.main.start()
    status = pair.wait(lambda s: s["connected"], role="main", timeout=10)
    assert status["state"] == "connected_not_synchronized"
    assert status["pending"]["from_partner"]["usage_rows"] > 0

    status = pair.wait(both_flags, role="main", timeout=60)
    assert status["state"] == "connected_synchronized"
    assert pair.wait(both_flags, role="backup", timeout=20)["state"] == "connected_synchronized"


def test_an_interrupted_sync_resumes_without_duplicates(start_pair, tmp_path):
    pair = start_pair(join=False, interval_s=0.5)
    config = tmp_path / "small-batches.toml"
    config.write_text("[server]\nsync_batch_rows = 10\n")
    pair.main.stop()
    pair.main.extra_args = ["--config", str(config)]
    pair.main.start()
    # 1500 usage rows on the main.
    distinct_refusals(pair.main, 1500, "gone")
    total = len(usage(pair.main, kind="print"))
    assert total == 1500

    pair.join()

    def partial() -> int:
        count = len([r for r in usage(pair.backup, kind="print") if r["server"] == "main"])
        return count if 0 < count < total else 0

    wait_for(partial, timeout=20, what="the backup to be part way through")
    pair.backup.kill()
    pair.backup.start()
    pair.wait(both_flags, role="backup", timeout=60)
    rows = [r for r in usage(pair.backup, kind="print") if r["server"] == "main"]
    assert len(rows) == total
    counts = collections.Counter(r["client_host"] for r in rows)
    assert max(counts.values()) == 1


def test_a_server_outside_the_relationship_is_refused(start_pair, start_server):
    pair = start_pair()
    pair.wait(both_flags, role="main")
    intruder = start_server("intruder")
    body = b'{"since": 0, "usage_since": 0, "own_seq": 0, "usage_id": 0}'
    unsigned = httpx.post(f"{pair.main.url}/api/v1/peer/changes", content=body)
    assert unsigned.status_code == 403
    assert unsigned.json()["error"]["code"] == "not_in_relationship"
    for sender in ("intruder", "backup"):
        header = peer_auth.sign("not-the-secret", sender, "POST", "/api/v1/peer/changes", body, time.time()).header
        forged = httpx.post(f"{pair.main.url}/api/v1/peer/changes", content=body, headers={peer_auth.HEADER: header})
        assert forged.status_code == 403, sender
    # A server that is not in a pair accepts nothing from the pair's members either.
    stray = httpx.post(f"{intruder.url}/api/v1/peer/leave", content=b"{}")
    assert stray.status_code == 403
    assert pair.status("main")["type"] == "backup"


def test_setup_names_the_missing_access_rule_on_the_server_that_lacks_it(start_pair):
    pair = start_pair(join=False)
    with pair.backup.admin() as admin:
        rules = {"rules": [{"rule_id": "only-office", "action": "allow", "who_kind": "user", "who": "ana"}],
                 "default_policy": "deny"}
        assert admin.put("/api/v1/admin/access-rules", json=rules).status_code == 200
    body = {"name": "B1", "main": pair.spec("main"), "backup": pair.spec("backup"),
            "username": "admin", "password": ADMIN_PASSWORD}
    with pair.main.admin() as admin:
        answer = admin.post("/api/v1/admin/relationship/backup", json=body)
    assert answer.status_code == 409
    problems = answer.json()["error"]["problems"]
    assert [(p["server"], p["must_allow"]) for p in problems] == [("backup", "main")]
    assert "default policy" in problems[0]["decided_by"]
    assert pair.status("main") == {"type": None}


def test_swap_roles_then_remove_leaves_both_servers_working_alone(start_pair, issuer):
    pair = start_pair()
    install_licenses(pair.main, issuer)
    install_licenses(pair.backup, issuer)
    pair.wait(both_flags, role="backup")
    document = served_document(pair.main.url)
    with pair.main.admin() as admin:
        answers = [admin.get("/api/v1/admin/relationship"), admin.post("/api/v1/admin/relationship/sync", json={}),
                   httpx.get(f"{pair.main.url}/api/v1/server")]
        answer = admin.post("/api/v1/admin/relationship/swap", json={})
    assert answer.status_code == 200, answer.text
    assert [p for a in [*answers, answer] for p in contract_problems(document, a)] == []  # as the document says
    assert answer.json()["my_role"] == "backup"
    assert pair.status("backup")["my_role"] == "main"
    with pair.backup.admin() as admin:
        assert admin.patch("/api/v1/admin/settings", json={"changes": {"lease_ttl_s": 240}}).status_code == 200
    wait_for(lambda: settings(pair.main)["lease_ttl_s"] == 240, timeout=5, what="the new main's setting")

    with pair.main.admin() as admin:
        dissolved = admin.post("/api/v1/admin/relationship/dissolve", json={})
    assert contract_problems(document, dissolved) == []
    removed = dissolved.json()
    assert removed["partner_left"] is True
    for server in (pair.main, pair.backup):
        assert admin_get(server, "/api/v1/admin/relationship") == {"type": None}
        assert print_check(server, "After-Removal").status_code == 200
        assert len(admin_get(server, "/api/v1/admin/licenses")["licenses"]) == 2


def test_replace_backup_moves_the_pair_to_another_server(start_pair, start_server):
    pair = start_pair()
    pair.wait(both_flags, role="main")
    newcomer = start_server("newcomer")
    body = {"backup": {"name": "backup2", "api_url": newcomer.url}, "username": "admin", "password": ADMIN_PASSWORD}
    with pair.main.admin() as admin:
        answer = admin.post("/api/v1/admin/relationship/backup/replace", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["replaced"] == "backup"
    status = pair.wait(lambda s: s["partner"] == "backup2" and both_flags(s), role="main")
    assert [m["name"] for m in status["members"]] == ["main", "backup2"]
    assert admin_get(pair.backup, "/api/v1/admin/relationship") == {"type": None}


def test_cli_sets_up_watches_syncs_and_removes_a_backup_pair(start_pair):
    import os
    import subprocess
    import sys

    pair = start_pair(join=False)
    env = {**os.environ, "LICENTIA_PASSWORD": ADMIN_PASSWORD}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "licentia", "relationship", *args, "--server", pair.backup.url]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    created = cli("backup", "--name", "B9", "--main", f"main={pair.main.url}", "--backup",
                  f"backup={pair.backup.url}", "--interval", "1")
    assert created.returncode == 0, created.stderr
    pair.wait(both_flags, role="backup")
    status = cli("status")
    assert "backup pair B9: connected, synchronized" in status.stdout
    assert cli("sync").returncode == 0
    removed = cli("remove")
    assert removed.returncode == 0, removed.stderr
    assert "not in a relationship" in cli("status").stdout


def test_metrics_health_and_alerts_follow_the_pair_through_a_takeover(tmp_path, issuer):
    from alert_sinks import SmtpSink, alerts_config

    smtp = SmtpSink().start()
    config = alerts_config(tmp_path, smtp)
    pair = BackupPairProcesses(tmp_path / "pair", issuer, interval_s=0.5)
    for server in pair.servers.values():
        server.extra_args = ["--config", str(config)]
    try:
        pair.start()
        pair.wait(both_flags, role="backup")
        with pair.main.admin() as admin:
            answer = admin.put("/api/v1/admin/alerts", json={
                "recipients": ["ops@example.com"], "member_down_after_s": 1, "expiring_within_days": 0,
                "denials_threshold": 0})
            assert answer.status_code == 200, answer.text
        wait_for(lambda: admin_get(pair.backup, "/api/v1/admin/alerts")["settings"]["recipients"],
                 timeout=15, what="alert settings on the backup")
        pair.wait(both_flags, role="main")
        metrics = httpx.get(f"{pair.main.url}/metrics").text
        assert 'licentia_backup_connected{partner="backup"} 1.0' in metrics
        assert 'licentia_backup_synchronized{partner="backup"} 1.0' in metrics
        assert promtool_problems(metrics) == ""
        assert httpx.get(f"{pair.main.url}/health/active").status_code == 200
        assert httpx.get(f"{pair.backup.url}/health/active").status_code == 503
        time.sleep(1.5)
        assert smtp.messages == []

        pair.main.kill()
        wait_for(lambda: httpx.get(f"{pair.backup.url}/health/active").status_code == 200, timeout=15,
                 what="backup taking over")
        backup_metrics = httpx.get(f"{pair.backup.url}/metrics").text
        assert 'licentia_backup_connected{partner="main"} 0.0' in backup_metrics
        assert 'licentia_backup_failovers_total{partner="main"} 1.0' in backup_metrics
        assert promtool_problems(backup_metrics) == ""
        wait_for(lambda: len(smtp.messages) >= 2, timeout=15, what="member-down and failover alerts")
        time.sleep(1.5)
        assert len(smtp.matching("[Licentia ALERT]", "main main", "is down")) == 1, smtp.subjects()
        assert len(smtp.matching("[Licentia ALERT]", "failover")) == 1, smtp.subjects()
        assert len(smtp.messages) == 2, smtp.subjects()

        pair.main.start()
        pair.wait(both_flags, role="backup", timeout=20)
        wait_for(lambda: len(smtp.messages) >= 4, timeout=15, what="recovery and failback alerts")
        time.sleep(1.5)
        assert len(smtp.matching("[Licentia RESOLVED]", "failback")) == 1, smtp.subjects()
        assert len(smtp.messages) == 4, smtp.subjects()
    finally:
        pair.stop()
        smtp.stop()


def test_a_busy_pair_still_reads_synchronized(start_pair, issuer):
    import threading

    pair = start_pair(interval_s=0.5)
    install_licenses(pair.main, issuer, printers=500)
    pair.wait(both_flags, role="main")
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        with httpx.Client(base_url=pair.main.url, timeout=5) as http:
            while not stop.is_set():
                n += 1
                http.post("/api/v1/print-checks", json={"product": PRINTS, "printer": {"name": f"Busy-{n % 50}"}})
                time.sleep(0.02)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        time.sleep(2.0)
        samples = []
        for _ in range(10):
            samples.append(pair.status("main")["state"])
            time.sleep(0.2)
    finally:
        stop.set()
        worker.join()
    assert samples.count("connected_synchronized") >= 8, samples
