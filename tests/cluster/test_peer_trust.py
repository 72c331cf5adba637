"""A triad member checks each other member's certificate once, not once per request it sends it."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import msgspec
import pytest

from licentia.cluster.peer_trust import PeerTrust
from licentia.cluster.triad_forward import ForwardedChange, ForwardFailed, forward
from licentia.cluster.triad_seam import TriadConfig
from licentia.core.model import TriadMember
from licentia.tls import ServerCertificate, server_context


async def _refusing_member(certificate: ServerCertificate, connections: list[int]) -> asyncio.Server:
    """An HTTPS listener on loopback that counts the connections made to it and answers every request 503."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        length = 0
        try:
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if line == b"\r\n":
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the certificate probe hangs up after the handshake
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context(certificate))


def test_changes_forwarded_to_the_active_member_check_its_certificate_once(tmp_path: Path) -> None:
    for name in ("active", "renewed"):
        (tmp_path / name).mkdir()
    certificate = ServerCertificate.self_signed(tmp_path / "active", "127.0.0.1")
    new_certificate = ServerCertificate.self_signed(tmp_path / "renewed", "127.0.0.1")

    async def run() -> int:
        connections: list[int] = []
        listener = await _refusing_member(certificate, connections)
        port = listener.sockets[0].getsockname()[1]
        active = TriadMember(name="primary", role="primary", api_url=f"https://127.0.0.1:{port}",
                             raft_address="127.0.0.1:1", tls_fingerprint=certificate.fingerprint)
        me = TriadMember(name="secondary", role="secondary", api_url="https://127.0.0.1:2",
                         raft_address="127.0.0.1:3")
        config = TriadConfig(name="Labels", me="secondary", members=[active, me], secret="s" * 32, origin="test")
        change = ForwardedChange(method="PATCH", path="/api/v1/admin/settings", query="", body="", content_type="",
                                 username="admin", role="admin")
        trust = PeerTrust()
        try:
            for _ in range(2):
                with pytest.raises(ForwardFailed, match="refused to take the change"):
                    await forward(config, active, change, 0.0, trust.of(active))
            after_two = len(connections)
            # The same fingerprint written otherwise is the same pin; a new certificate pinned for that member is
            # checked anew.
            assert trust.of(msgspec.structs.replace(active, tls_fingerprint=certificate.fingerprint.lower())) is \
                trust.of(active)
            assert trust.of(msgspec.structs.replace(active, tls_fingerprint=new_certificate.fingerprint)) is not \
                trust.of(msgspec.structs.replace(active, tls_fingerprint=certificate.fingerprint))
            return after_two
        finally:
            listener.close()
            await listener.wait_closed()

    after_two = asyncio.run(run())
    # The certificate was read once (one connection that only shakes hands), then one connection per change.
    assert after_two == 3


def test_the_same_member_and_fingerprint_get_the_same_trust() -> None:
    trust = PeerTrust()
    member = TriadMember(name="tertiary", role="tertiary", api_url="https://127.0.0.1:9",
                         raft_address="127.0.0.1:10", tls_fingerprint="AB" * 32)
    assert trust.of(member) is trust.of(msgspec.structs.replace(member))
    other = TriadMember(name="primary", role="primary", api_url="https://127.0.0.1:11",
                        raft_address="127.0.0.1:12", tls_fingerprint="AB" * 32)
    assert trust.of(other) is not trust.of(member)
