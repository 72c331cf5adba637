"""Admin password hashing (scrypt) and signed, expiring bearer tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate.hex(), digest)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_stamp(password_hash: str) -> str:
    """A one-way fingerprint of a stored hash: a token carries it, so a re-created user's old tokens fail."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def issue_token(secret: bytes, username: str, password_version: int, expires_at: float, stamp: str = "") -> str:
    body = _b64(json.dumps({"u": username, "v": password_version, "s": stamp, "exp": expires_at}).encode())
    signature = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def read_token(secret: bytes, token: str, now: float) -> tuple[str, int, str] | None:
    """(username, password_version, hash stamp) of a valid, unexpired token, else None."""
    try:
        body, signature = token.split(".")
        expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature):
            return None
        claims = json.loads(_unb64(body))
        if float(claims["exp"]) <= now:
            return None
        return str(claims["u"]), int(claims["v"]), str(claims.get("s", ""))
    except (ValueError, KeyError, TypeError):
        return None
