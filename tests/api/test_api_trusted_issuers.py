"""Trusting an issuer's public key through the admin API: at once (no restart), kept privately in the data
directory, refused with a sentence (and nothing stored) when the upload is not such a key, admins only."""

from __future__ import annotations

import stat

import httpx
import pytest
from api_support import assert_error, install
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from harness import Issuer, ServerProcess

from licentia import license_file

TRUST = "/api/v1/admin/trusted-issuers"


def _stored_keys(server: ServerProcess) -> set[str]:
    return {path.name for path in (server.data_dir / "trusted-issuers").iterdir()}


def test_an_admin_trusts_an_issuer_key_and_its_license_installs_without_a_restart(shared_server, shared_admin):
    vendor = Issuer()
    kid = license_file.key_id(vendor.key.public_key())
    refused = assert_error(
        install(shared_admin, vendor.license_bytes(license_id="NEW-VENDOR")), 422, "invalid_license"
    )
    assert "Trust an issuer key on the License Setup page" in refused["message"]

    answer = shared_admin.post(TRUST, json={"public_key": vendor.public_pem().decode()})
    assert answer.status_code == 201, answer.text
    assert answer.json()["key_id"] == kid and answer.json()["new"] is True
    assert kid in shared_admin.get("/api/v1/admin/status").json()["trusted_issuers"]
    assert install(shared_admin, vendor.license_bytes(license_id="NEW-VENDOR")).status_code == 201

    stored = shared_server.data_dir / "trusted-issuers" / f"{kid}.pub"
    assert stored.read_bytes() == vendor.public_pem()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert f"admin made this server trust issuer key {kid}" in shared_server.log_path.read_text()
    again = shared_admin.post(TRUST, json={"public_key": vendor.public_pem().decode()})
    assert again.status_code == 200 and again.json()["new"] is False

    shared_server.stop()
    shared_server.start()
    with shared_server.admin() as restarted:
        assert kid in restarted.get("/api/v1/admin/status").json()["trusted_issuers"]


def _ec_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.parametrize(("upload", "says"), [
    ("not a key at all", "not a PEM public key file"),
    ("ec", "not an Ed25519 public key"),
    ("private", "this is a private key"),
])
def test_an_upload_that_is_not_an_issuer_public_key_is_refused_and_nothing_is_stored(
    shared_server, shared_admin, upload, says
):
    if upload == "ec":
        upload = _ec_key()
    elif upload == "private":
        upload = license_file.private_key_pem(Issuer().key).decode()
    before = _stored_keys(shared_server), shared_admin.get("/api/v1/admin/status").json()["trusted_issuers"]
    error = assert_error(shared_admin.post(TRUST, json={"public_key": upload}), 422, "invalid_issuer_key")
    assert says in error["message"]
    assert (_stored_keys(shared_server), shared_admin.get("/api/v1/admin/status").json()["trusted_issuers"]) == before
    assert "Refused to trust an issuer key uploaded by admin" in shared_server.log_path.read_text()


def test_only_an_administrator_may_trust_an_issuer_key(shared_server, shared_admin):
    answer = shared_admin.put("/api/v1/admin/users/keeper", json={"password": "keeper-password-1", "role": "manager"})
    assert answer.status_code == 200, answer.text
    token = httpx.post(f"{shared_server.url}/api/v1/auth/login",
                       json={"username": "keeper", "password": "keeper-password-1"}).json()["token"]
    before = _stored_keys(shared_server)
    refused = httpx.post(f"{shared_server.url}{TRUST}", headers={"Authorization": f"Bearer {token}"},
                         json={"public_key": Issuer().public_pem().decode()})
    assert_error(refused, 403, "forbidden")
    assert _stored_keys(shared_server) == before
