"""Grant tokens: what a server granted a client and until when, signed with the server's Ed25519 key.

A client keeps the last valid token it received; when no server can be
reached it keeps working for the connectivity grace period on the strength of
that token, after checking the signature itself. A tampered or expired token
grants nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from licentia.store.private_file import write_private


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def grant_key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


class GrantSigner:
    def __init__(self, key: Ed25519PrivateKey, issuer: str) -> None:
        self._key = key
        self.issuer = issuer
        self.public_raw = _raw_public(key.public_key())
        self.key_id = grant_key_id(self.public_raw)

    @classmethod
    def from_file(cls, path: Path, issuer: str) -> GrantSigner:
        if path.exists():
            key = Ed25519PrivateKey.from_private_bytes(path.read_bytes())
        else:
            key = Ed25519PrivateKey.generate()
            raw = key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            write_private(path, raw)
        return cls(key, issuer)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    def sign(self, claims: dict[str, Any]) -> str:
        body = _b64(json.dumps({**claims, "iss": self.issuer, "kid": self.key_id}, sort_keys=True).encode())
        return f"{body}.{_b64(self._key.sign(body.encode()))}"


def read_grant(token: str, public_keys: dict[str, bytes]) -> dict[str, Any] | None:
    """The claims of a token signed by one of `public_keys` (key id -> raw key), else None.

    Expiry is the caller's to judge against its own clock.
    """
    try:
        body, signature = token.split(".")
        claims = json.loads(_unb64(body))
        raw = public_keys.get(str(claims.get("kid")))
        if raw is None:
            return None
        Ed25519PublicKey.from_public_bytes(raw).verify(_unb64(signature), body.encode())
    except (ValueError, InvalidSignature, TypeError, AttributeError):
        return None
    return claims if isinstance(claims, dict) else None


def unverified_key_id(token: str) -> str | None:
    try:
        claims = json.loads(_unb64(token.split(".")[0]))
        return str(claims["kid"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None
