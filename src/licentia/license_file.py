"""Signed license files: issuing them (vendor side) and verifying them (server side).

A license file is JSON: the license terms, the id of the issuer key and an
Ed25519 signature over the canonical JSON encoding of the terms. The server
trusts a configured set of issuer public keys and refuses anything else.
"""

from __future__ import annotations

import base64
import hashlib
import json
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


class LicenseFileError(ValueError):
    """A license file that must not be installed; the message says why."""


def canonical(terms: LicenseTerms) -> bytes:
    return json.dumps(msgspec.to_builtins(terms), sort_keys=True, separators=(",", ":")).encode()


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


def issue(terms: LicenseTerms, key: Ed25519PrivateKey) -> dict[str, Any]:
    signature = key.sign(canonical(terms))
    return {
        "format": FORMAT,
        "terms": msgspec.to_builtins(terms),
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

    def verify(self, data: bytes | str) -> AddLicense:
        """Parse and verify a license file; raise LicenseFileError saying what is wrong."""
        if isinstance(data, str):
            data = data.encode()
        if len(data) > MAX_FILE_BYTES:
            raise LicenseFileError("license file is too large")
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise LicenseFileError("license file is not valid JSON") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise LicenseFileError(f"not a Licentia license file (expected format {FORMAT!r})")
        if set(document) != {"format", "terms", "key_id", "signature"}:
            raise LicenseFileError("license file has missing or unexpected fields")
        kid = document["key_id"]
        public_key = self._keys.get(kid) if isinstance(kid, str) else None
        if public_key is None:
            raise LicenseFileError(f"license is signed by key {kid!r}, which this server does not trust")
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
        return AddLicense(terms=terms, key_id=kid, signature=document["signature"])
