"""The secondary's probe of the primary's API port: only a refused connection means "nobody there"."""

from __future__ import annotations

import asyncio
import socket

from licentia.cluster.triad_election import nothing_listens_at


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_port_nobody_listens_on_counts_as_a_dead_primary():
    assert asyncio.run(nothing_listens_at(f"127.0.0.1:{_closed_port()}")) is True


def test_a_listening_port_counts_as_alive_even_when_its_process_never_accepts():
    # A SIGSTOPped member: the kernel completes the handshake, the process never reads.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        assert asyncio.run(nothing_listens_at(f"127.0.0.1:{port}")) is False


def test_an_unparsable_address_is_not_taken_for_a_dead_primary():
    assert asyncio.run(nothing_listens_at("no-port-here")) is False
