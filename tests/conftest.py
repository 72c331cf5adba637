from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Issuer, NetnsLab, NetnsUnavailable, ServerPool, ServerProcess


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("pool"))
    yield pool
    pool.close()


@pytest.fixture
def issuer(server_pool: ServerPool) -> Issuer:
    """A new issuer key: the one the server launched ahead trusts (`ServerPool`), if there is one."""
    return server_pool.issuer()


@pytest.fixture
def start_server(tmp_path: Path, issuer: Issuer, server_pool: ServerPool) -> Iterator:
    """Start real servers that trust `issuer`; every one is stopped after the test. The first one with no
    extra arguments is the server `server_pool` launched ahead, if it suits (at tmp_path/name, a link)."""
    started: list[ServerProcess] = []

    def start(name: str = "server", extra_args: list[str] | None = None) -> ServerProcess:
        data_dir = tmp_path / name
        pooled = None if extra_args else server_pool.take(issuer, data_dir)
        if pooled is not None:
            started.append(pooled)
            return pooled
        issuer.trust_in(data_dir)
        server = ServerProcess(data_dir, extra_args=extra_args)
        started.append(server)
        server.start()
        server_pool.launch()
        return server

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
