"""Sealing the triad secret for one member: X25519 + HKDF-SHA256 + AES-GCM.

Each server has a long-lived X25519 key whose public half it publishes at
`/api/v1/server`; the server that sets up a relationship seals the generated
secret for each member, so the secret never crosses the network in clear.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from licentia.store.private_file import write_private

INFO = b"licentia relationship secret v1"


def load_or_create_peer_key(path: Path) -> X25519PrivateKey:
    if path.exists():
        return X25519PrivateKey.from_private_bytes(path.read_bytes())
    key = X25519PrivateKey.generate()
    write_private(
        path,
        key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
    )
    return key


def public_b64(key: X25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _aead_key(shared: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(shared)


def seal(secret: str, recipient_public_b64: str) -> str:
    recipient = X25519PublicKey.from_public_bytes(base64.b64decode(recipient_public_b64))
    ephemeral = X25519PrivateKey.generate()
    nonce = os.urandom(12)
    ciphertext = AESGCM(_aead_key(ephemeral.exchange(recipient))).encrypt(nonce, secret.encode(), INFO)
    ephemeral_raw = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(ephemeral_raw + nonce + ciphertext).decode()


def open_sealed(sealed_b64: str, key: X25519PrivateKey) -> str:
    """The secret, or ValueError when it was not sealed for this key or was altered."""
    try:
        data = base64.b64decode(sealed_b64, validate=True)
        ephemeral = X25519PublicKey.from_public_bytes(data[:32])
        plain = AESGCM(_aead_key(key.exchange(ephemeral))).decrypt(data[32:44], data[44:], INFO)
    except Exception as exc:
        raise ValueError("the relationship secret was not sealed for this server") from exc
    return plain.decode()
