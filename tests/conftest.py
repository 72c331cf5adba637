from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Issuer, NetnsLab, NetnsUnavailable, ServerProcess


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def start_server(tmp_path: Path, issuer: Issuer) -> Iterator:
    """Start real servers that trust `issuer`; every one is stopped after the test."""
    started: list[ServerProcess] = []

    def start(name: str = "server", extra_args: list[str] | None = None) -> ServerProcess:
        data_dir = tmp_path / name
        issuer.trust_in(data_dir)
        server = ServerProcess(data_dir, extra_args=extra_args)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def server(start_server) -> ServerProcess:
    return start_server()


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    """One network namespace per triad member (harness `NetnsLab`), removed after the test."""
    try:
        lab = NetnsLab()
    except NetnsUnavailable as exc:
        pytest.skip(f"network namespaces are not available here: {exc}")
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def start_triad(tmp_path: Path, issuer: Issuer) -> Iterator:
    """Start real triads (three server processes); every process is killed after the test."""
    from harness import TriadCluster

    started: list[TriadCluster] = []

    def start(**kwargs) -> TriadCluster:
        cluster = TriadCluster(tmp_path / f"triad{len(started)}", issuer, **kwargs)
        started.append(cluster)
        return cluster.start()

    yield start
    for cluster in started:
        cluster.stop()
