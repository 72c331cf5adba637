"""A triad member's Raft port refuses anyone without the relationship secret, before unpickling anything.

pysyncobj unpickles what its peers send, so a message that reached `pickle.loads`
from an outsider could run code in the server. Every message must be opened with
the triad's key first; anything else makes the member drop the connection.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import time
import zlib
from pathlib import Path

from triad_support import checkout, install_licenses

from licentia.cluster.raft_cipher import RaftCipher


class _MakesDirectoryWhenUnpickled:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.path),)


def _frame(data: bytes) -> bytes:
    """pysyncobj's framing: a native-endian length, then the (sealed) message."""
    return struct.pack("i", len(data)) + data


def _dropped_after_sending(port: int, frame: bytes, timeout: float = 5.0) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(frame)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if sock.recv(4096) == b"":
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True
            except TimeoutError:
                return False
    return False


def test_raft_messages_without_the_secret_are_dropped_unopened_and_change_nothing(start_triad, issuer, tmp_path):
    cluster = start_triad()
    install_licenses(cluster, issuer, seats=2)
    primary = cluster.servers["primary"]
    held = checkout(primary)
    assert held.status_code == 201, held.text

    attempts = {
        "an unsealed pickle": lambda payload: payload,
        "a pickle sealed with another secret": lambda payload: RaftCipher("not-this-triads-secret").encrypt_at_time(
            payload, int(time.monotonic())
        ),
    }
    for role in ("primary", "secondary"):
        for what, seal in attempts.items():
            marker = tmp_path / f"ran-{role}-{len(what)}"
            payload = zlib.compress(pickle.dumps(_MakesDirectoryWhenUnpickled(marker)), 3)
            assert _dropped_after_sending(cluster.raft_ports[role], _frame(seal(payload))), (
                f"the {role} kept a connection that sent {what}"
            )
            assert not marker.exists(), f"the {role} unpickled {what}"

    # The triad is unharmed: the primary still grants, and the held seat still counts.
    assert checkout(primary).status_code == 201
    third = checkout(primary)
    assert third.status_code == 409, third.text
    assert third.json()["error"]["code"] == "limit_exceeded", third.text
