"""How the triad's Raft messages are sealed: AES-256-GCM under a key derived from the relationship secret.

pysyncobj seals each message with Fernet (AES-CBC plus HMAC-SHA256, assembled from a
dozen Python objects per message). A committed entry costs the active member eight
such messages, and at a few thousand checkouts a second Fernet was the largest single
cost of the triad on every member. AES-GCM gives the same guarantees (secrecy, and
integrity of the message and of its timestamp) in one call to OpenSSL.

`RaftCipher` has the three methods pysyncobj's connections call on their encryptor;
`SealedSyncObj` hands it to them. The rest of pysyncobj's handshake is unchanged: each
side of a connection sends a random key first and expects it back inside every
message, so a message recorded on one connection is refused on any other.
"""

from __future__ import annotations

import os
import struct
import threading
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pysyncobj import SyncObj

VERSION = b"\x01"
INFO = b"licentia triad raft v1"
_HEADER = struct.Struct(">cQ")  # version, sender's timestamp: authenticated, not secret
_NONCE_PREFIX_BYTES = 8
_NONCE_BYTES = _NONCE_PREFIX_BYTES + 4
_NONCE_COUNTER_LIMIT = 1 << 32
_TAG_BYTES = 16


class RaftCipher:
    """Seal and open Raft messages with a key only the three members hold.

    Nonces are a random 64-bit prefix, drawn when the process starts and again every
    2**32 messages, followed by a counter: they never repeat within a process, and two
    processes (or restarts) share a prefix with probability about 2**-64.
    """

    def __init__(self, secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(secret.encode())
        self._aead = AESGCM(key)
        self._lock = threading.Lock()
        self._prefix = os.urandom(_NONCE_PREFIX_BYTES)
        self._counter = 0

    def _next_nonce(self) -> bytes:
        with self._lock:
            if self._counter >= _NONCE_COUNTER_LIMIT:
                self._prefix, self._counter = os.urandom(_NONCE_PREFIX_BYTES), 0
            counter, self._counter = self._counter, self._counter + 1
            return self._prefix + counter.to_bytes(_NONCE_BYTES - _NONCE_PREFIX_BYTES, "big")

    def encrypt_at_time(self, data: bytes, current_time: int) -> bytes:
        header = _HEADER.pack(VERSION, current_time)
        nonce = self._next_nonce()
        return header + nonce + self._aead.encrypt(nonce, data, header)

    def extract_timestamp(self, token: bytes) -> int:
        """The sender's timestamp, before the message is opened (pysyncobj refuses one that goes back)."""
        return self._parse(token)

    def decrypt(self, token: bytes) -> bytes:
        """The message, or an exception (pysyncobj then drops the connection) if it was not sealed with this key."""
        self._parse(token)
        sealed_from = _HEADER.size + _NONCE_BYTES
        return self._aead.decrypt(token[_HEADER.size : sealed_from], token[sealed_from:], token[: _HEADER.size])

    @staticmethod
    def _parse(token: bytes) -> int:
        if len(token) < _HEADER.size + _NONCE_BYTES + _TAG_BYTES:
            raise ValueError("the Raft message is too short to be sealed")
        version, timestamp = _HEADER.unpack_from(token)
        if version != VERSION:
            raise ValueError("the Raft message is not sealed in a format this server knows")
        return int(timestamp)


class SealedSyncObj(SyncObj):  # type: ignore[misc]
    """pysyncobj's SyncObj with its messages sealed by `RaftCipher` instead of Fernet.

    Each connection asks its SyncObj for the `encryptor`; this one always answers with the
    cipher, so no message is ever sent or accepted unsealed. The triad still sets pysyncobj's
    `password` to the same secret, so none of pysyncobj's own paths runs without one.
    """

    def __init__(self, *args: Any, cipher: RaftCipher, **kwargs: Any) -> None:
        self._cipher = cipher
        super().__init__(*args, **kwargs)

    @property
    def encryptor(self) -> RaftCipher:
        return self._cipher

    def _getEncryptor(self) -> RaftCipher:
        return self._cipher
