"""Signed license files: issuing them (vendor side) and verifying them (server side).

A license file is JSON: the license terms, the id of the issuer key and an
Ed25519 signature over the canonical JSON encoding of the terms. The server
trusts a configured set of issuer public keys and refuses anything else.

A license may be bound to servers: its signed terms then name their server ids
(`bound_to`), and only those servers install it. A server's id is derived from
its own grant-signing key (`LicenseServer.server_id`), so it stays the same across restarts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from licentia.core.commands import AddLicense
from licentia.core.model import LicenseTerms

FORMAT = "licentia-license/1"
MAX_FILE_BYTES = 64 * 1024
# A license id is used in URLs and file names: letters, digits, '.', '_' and '-', and never a path step.
LICENSE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SERVER_ID = re.compile(r"[0-9a-f]{16}")
MAX_BOUND_SERVERS = 16


class LicenseFileError(ValueError):
    """A license file that must not be installed; the message says why."""


class LicenseBoundElsewhere(LicenseFileError):
    """A valid license file that is bound to other servers than this one."""


def license_id_problem(license_id: str) -> str | None:
    if not LICENSE_ID.fullmatch(license_id) or ".." in license_id or license_id == ".":
        return (
            f"license id {license_id[:80]!r} is not valid: a license id is 1 to 64 letters, digits, "
            "'.', '_' or '-', and does not contain '..'"
        )
    return None


def terms_problem(terms: LicenseTerms) -> str | None:
    """Why these terms cannot be issued or installed, or None."""
    problem = license_id_problem(terms.license_id)
    if problem:
        return problem
    if len(terms.bound_to) > MAX_BOUND_SERVERS:
        return f"a license is bound to at most {MAX_BOUND_SERVERS} servers"
    for bound in terms.bound_to:
        if not SERVER_ID.fullmatch(bound):
            return f"{bound[:80]!r} is not a server id (16 hex digits, as 'licentia status' shows it)"
    return None


def check_binding(terms: LicenseTerms, this_server: str) -> None:
    """Raise LicenseBoundElsewhere when the license is bound to servers and this is not one of them."""
    if terms.bound_to and this_server not in terms.bound_to:
        raise LicenseBoundElsewhere(
            f"license {terms.license_id} is bound to server {', '.join(terms.bound_to)}; "
            f"this server's id is {this_server}, so it cannot be installed here"
        )


def terms_document(terms: LicenseTerms) -> dict[str, Any]:
    """The terms as the file holds them. An unbound license has no `bound_to` field, so its file and
    signature are those of earlier versions, which verify as before."""
    document: dict[str, Any] = msgspec.to_builtins(terms)
    if not terms.bound_to:
        del document["bound_to"]
    return document


def canonical(terms: LicenseTerms) -> bytes:
    return json.dumps(terms_document(terms), sort_keys=True, separators=(",", ":")).encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def new_issuer_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise LicenseFileError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(data: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise LicenseFileError("not an Ed25519 public key")
    return key


MAX_PUBLIC_KEY_BYTES = 4096


def read_issuer_key(data: bytes) -> Ed25519PublicKey:
    """An issuer's public key as uploaded (PEM, as `licentia keys new` writes OUT.pub), or LicenseFileError
    saying in a sentence what is wrong with it."""
    if len(data) > MAX_PUBLIC_KEY_BYTES:
        raise LicenseFileError(f"an issuer public key file is at most {MAX_PUBLIC_KEY_BYTES} bytes")
    if b"PRIVATE KEY" in data:
        raise LicenseFileError(
            "this is a private key; upload the issuer's public key (the .pub file), and keep the private key secret"
        )
    try:
        return load_public_key(data)
    except LicenseFileError:
        raise LicenseFileError(
            "this is not an Ed25519 public key; issuer keys are Ed25519 (licentia keys new)"
        ) from None
    except (ValueError, TypeError):
        raise LicenseFileError(
            "this is not a PEM public key file; upload the .pub file made by 'licentia keys new'"
        ) from None


def issue(terms: LicenseTerms, key: Ed25519PrivateKey) -> dict[str, Any]:
    problem = terms_problem(terms)
    if problem:
        raise LicenseFileError(problem)
    signature = key.sign(canonical(terms))
    return {
        "format": FORMAT,
        "terms": terms_document(terms),
        "key_id": key_id(key.public_key()),
        "signature": base64.b64encode(signature).decode(),
    }


class TrustedIssuers:
    """The issuer public keys this server accepts licenses from, by key id."""

    def __init__(self, keys: list[Ed25519PublicKey] | None = None) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key in keys or []:
            self.add(key)

    def add(self, key: Ed25519PublicKey) -> str:
        kid = key_id(key)
        self._keys[kid] = key
        return kid

    @classmethod
    def from_directory(cls, directory: Path, extra: list[Path] | None = None) -> TrustedIssuers:
        trusted = cls()
        paths = sorted(directory.glob("*.pub")) if directory.is_dir() else []
        for path in [*paths, *(extra or [])]:
            trusted.add(load_public_key(path.read_bytes()))
        return trusted

    def ids(self) -> list[str]:
        return sorted(self._keys)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def verify(self, data: bytes | str) -> AddLicense:
        """Parse and verify a license file; raise LicenseFileError saying what is wrong."""
        if isinstance(data, str):
            data = data.encode()
        if len(data) > MAX_FILE_BYTES:
            raise LicenseFileError("license file is too large")
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise LicenseFileError("license file is not valid JSON") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise LicenseFileError(f"not a Licentia license file (expected format {FORMAT!r})")
        if set(document) != {"format", "terms", "key_id", "signature"}:
            raise LicenseFileError("license file has missing or unexpected fields")
        kid = document["key_id"]
        public_key = self._keys.get(kid) if isinstance(kid, str) else None
        if public_key is None:
            raise LicenseFileError(
                f"license is signed by key {kid!r}, which this server does not trust; an administrator can trust "
                "it by uploading the issuer's public key (.pub) under Trust an issuer key on the License Setup page"
            )
        try:
            terms = msgspec.convert(document["terms"], LicenseTerms)
            signature = base64.b64decode(document["signature"], validate=True)
        except (msgspec.ValidationError, ValueError, TypeError) as exc:
            raise LicenseFileError(f"license terms are malformed: {exc}") from None
        if canonical(terms) != json.dumps(document["terms"], sort_keys=True, separators=(",", ":")).encode():
            raise LicenseFileError("license terms are not in canonical form")
        try:
            public_key.verify(signature, canonical(terms))
        except InvalidSignature:
            raise LicenseFileError("license signature does not match its terms (forged or tampered)") from None
        problem = terms_problem(terms)
        if problem:
            raise LicenseFileError(problem)
        return AddLicense(terms=terms, key_id=kid, signature=document["signature"])
