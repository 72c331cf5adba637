"""HTTPS for the API, the console and the traffic between servers, tried on real server processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
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
    TriadCluster,
    free_port,
    install_licenses,
    wait_for,
)

from licentia.client import LicenseClient, ServerUnavailable
from licentia.cluster import peer_auth


@pytest.fixture
def tls_server(tmp_path: Path, issuer: Issuer):
    data_dir = tmp_path / "lic-a"
    issuer.trust_in(data_dir)
    server = ServerProcess(data_dir, tls=True)
    try:
        yield server.start()
    finally:
        server.kill()


def _new_certificate(server: ServerProcess) -> None:
    """The server's certificate is replaced (its data directory's certificate removed, a new one made)."""
    server.stop()
    shutil.rmtree(server.data_dir / "tls")
    server.start()


def test_https_serves_the_api_with_the_fingerprint_it_prints_and_refuses_plain_http(tls_server):
    assert tls_server.url.startswith("https://")
    info = httpx.get(f"{tls_server.url}/api/v1/server", verify=tls_server.verify).json()
    assert info["tls_fingerprint"] == tls_server.fingerprint
    log = tls_server.log_path.read_text()
    assert f"SHA-256 fingerprint {tls_server.fingerprint}" in log
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/api/v1/server", timeout=3)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_server.url}/api/v1/server")  # the system's CAs do not know a self-signed certificate


def test_a_server_off_loopback_answers_https_by_default(tmp_path):
    port = free_port()
    data_dir = tmp_path / "lan"
    process = subprocess.Popen(
        [sys.executable, "-m", "licentia", "serve", "--data", str(data_dir), "--host", "0.0.0.0",
         "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**__import__("os").environ, "LICENTIA_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        wait_for(lambda: (data_dir / "tls" / "server.crt").exists(), 20, "the certificate to be made")
        probe = ServerProcess(data_dir, port=port, tls=True)

        def https_answers() -> bool:
            try:
                return httpx.get(f"{probe.url}/api/v1/server", verify=probe.verify, timeout=1).status_code == 200
            except (httpx.HTTPError, OSError, Exception):
                probe._trust = None
                return False

        wait_for(https_answers, 20, "the server to answer over HTTPS")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/api/v1/server", timeout=3)
    finally:
        process.kill()
        process.wait()


def test_sdk_pinned_to_the_fingerprint_works_and_refuses_a_replaced_certificate(tls_server, issuer, tmp_path):
    install_licenses(tls_server, issuer)
    with LicenseClient(tls_server.url, tls_fingerprint=tls_server.fingerprint, cache_dir=tmp_path / "c1",
                       host="ws-1", user="ann") as client:
        assert client.checkout("CADStudio")["lease_id"]
    with (
        LicenseClient(tls_server.url, cache_dir=tmp_path / "c2", host="ws-1", user="ann") as unpinned,
        pytest.raises(ServerUnavailable, match="not signed by a certificate authority"),
    ):
        unpinned.checkout("CADStudio")
    old = tls_server.fingerprint
    _new_certificate(tls_server)
    assert tls_server.fingerprint != old
    with (
        LicenseClient(tls_server.url, tls_fingerprint=old, cache_dir=tmp_path / "c3", host="ws-1") as client,
        pytest.raises(ServerUnavailable, match="not the pinned one"),
    ):
        client.checkout("CADStudio")


def test_cli_checks_the_certificate_by_fingerprint(tls_server):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "licentia", "license", "list", "--server", tls_server.url, *args],
            capture_output=True, text=True, timeout=60,
            env={**__import__("os").environ, "LICENTIA_PASSWORD": ADMIN_PASSWORD},
        )

    trusted = cli("--tls-fingerprint", tls_server.fingerprint.replace(":", "").lower())
    assert trusted.returncode == 0, trusted.stderr
    refused = cli("--tls-fingerprint", "AB" * 32)
    assert refused.returncode == 1
    assert "not the pinned one" in refused.stderr and "Traceback" not in refused.stderr
    unpinned = cli()
    assert unpinned.returncode == 1
    assert "not signed by a certificate authority" in unpinned.stderr


@pytest.fixture
def tls_pair(tmp_path: Path, issuer: Issuer):
    pair = BackupPairProcesses(tmp_path / "pair", issuer, tls=True)
    try:
        yield pair
    finally:
        pair.stop()


def _synchronized(status: dict[str, Any]) -> bool:
    return bool(status.get("connected") and status.get("synchronized"))


def test_a_backup_pair_is_set_up_over_https_only_once_the_certificates_are_confirmed(tls_pair, issuer):
    tls_pair.start(join=False)
    unconfirmed = {"name": "B1", "username": "admin", "password": ADMIN_PASSWORD,
                   "main": {"name": "main", "api_url": tls_pair.main.url},
                   "backup": {"name": "backup", "api_url": tls_pair.backup.url}}
    with tls_pair.main.admin() as admin:
        answer = admin.post("/api/v1/admin/relationship/backup", json=unconfirmed, timeout=30)
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "tls_fingerprint_needed"
    assert {(p["server"], p["tls_fingerprint"]) for p in error["problems"]} == {
        ("main", tls_pair.main.fingerprint), ("backup", tls_pair.backup.fingerprint)}
    wrong = {**unconfirmed, "backup": {**unconfirmed["backup"], "tls_fingerprint": "AB" * 32},
             "main": tls_pair.spec("main")}
    with tls_pair.main.admin() as admin:
        answer = admin.post("/api/v1/admin/relationship/backup", json=wrong, timeout=30)
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "member_certificate_refused"
    assert tls_pair.status("main") == {"type": None}

    tls_pair.join()
    install_licenses(tls_pair.main, issuer)
    status = tls_pair.wait(_synchronized, role="backup", timeout=30)
    assert status["type"] == "backup"
    info = httpx.get(f"{tls_pair.backup.url}/api/v1/server", verify=tls_pair.backup.verify).json()
    pinned = {m["name"]: m.get("tls_fingerprint") for m in info["relationship"]["members"]}
    assert pinned == {"main": tls_pair.main.fingerprint, "backup": tls_pair.backup.fingerprint}


def test_a_captured_peer_request_is_refused_when_played_again_and_answers_are_signed(tls_pair):
    tls_pair.start()
    tls_pair.wait(_synchronized, role="backup", timeout=30)
    secret = (tls_pair.main.data_dir / "backup-pair.key").read_text().strip()
    body = b'{"since": 0, "usage_since": 0, "own_seq": 0, "usage_id": 0}'
    signed = peer_auth.sign(secret, "main", "POST", "/api/v1/peer/changes", body, time.time())
    url = f"{tls_pair.backup.url}/api/v1/peer/changes"
    headers = {peer_auth.HEADER: signed.header, "content-type": "application/json"}
    first = httpx.post(url, content=body, headers=headers, verify=tls_pair.backup.verify)
    assert first.status_code == 200
    assert peer_auth.answer_is_genuine(
        secret, signed, 200, first.content, first.headers[peer_auth.ANSWER_HEADER])
    replay = httpx.post(url, content=body, headers=headers, verify=tls_pair.backup.verify)
    assert replay.status_code == 403
    assert "already received" in replay.json()["error"]["message"]
    odd = httpx.post(url, content=body, headers={peer_auth.HEADER.encode(): "é 1 2 3".encode("latin-1")},
                     verify=tls_pair.backup.verify)
    assert odd.status_code == 400  # a header that is not ASCII is malformed input (issue #13, finding 16)
    assert odd.json()["error"]["code"] == "invalid_request"
    wait_for(lambda: _synchronized(tls_pair.status("main")), 15, "the pair to stay synchronized")


def test_a_triad_over_https_pins_its_members_and_a_pinned_client_fails_over_to_the_learned_ones(
    tmp_path: Path, issuer: Issuer
):
    cluster = TriadCluster(tmp_path / "triad", issuer, tls=True)
    try:
        cluster.start()
        primary, secondary = cluster.servers["primary"], cluster.servers["secondary"]
        with primary.admin() as admin:
            answer = admin.post("/api/v1/admin/licenses", content=issuer.license_bytes(unit="seats", product="CAD"),
                                headers={"Content-Type": "application/json"})
            assert answer.status_code == 201, answer.text
        # The client is given the primary and its fingerprint only; the others' come from the triad.
        with LicenseClient(primary.url, tls_fingerprint=primary.fingerprint, cache_dir=tmp_path / "cache",
                           host="ws-1", user="ann") as client:
            lease = client.checkout("CAD")
            assert client.aio.trust.pins == {m.fingerprint for m in cluster.servers.values()}
            primary.kill()
            cluster.wait_active("secondary")
            renewed = client.heartbeat(lease["lease_id"])
            assert lease["lease_id"] in renewed["renewed"]
            assert client.aio.directory.active == secondary.url
    finally:
        cluster.stop()
