from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from harness import Issuer, ServerProcess


@pytest.fixture
def admin(server) -> Iterator[httpx.Client]:
    """An httpx client logged in as the admin user of `server`."""
    with server.admin() as client:
        yield client


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    """An anonymous httpx client for `server`, as an application would use it."""
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        yield anonymous


@pytest.fixture(scope="module")
def shared_issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory, shared_issuer) -> Iterator[ServerProcess]:
    """One server for a module's tests that each prove a request changes nothing (so they cannot interfere)."""
    data_dir = tmp_path_factory.mktemp("shared") / "server"
    shared_issuer.trust_in(data_dir)
    server = ServerProcess(data_dir)
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture
def shared_admin(shared_server) -> Iterator[httpx.Client]:
    with shared_server.admin() as client:
        yield client
