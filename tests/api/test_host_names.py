"""Verified host names: reverse DNS kept only when forward-confirmed, looked up off the event loop, bounded in
time, cached, and one query per address however many requests wait for it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from licentia.api import host_names
from licentia.api.host_names import VerifiedHostNames, forward_confirmed_name


def test_loopback_is_localhost_on_this_machine():
    assert forward_confirmed_name("127.0.0.1") == "localhost"  # /etc/hosts: 127.0.0.1 localhost


def test_a_reverse_name_whose_forward_lookup_gives_another_address_is_not_trusted(monkeypatch):
    monkeypatch.setattr(socket, "gethostbyaddr", lambda address: ("ws7.corp.example", [], [address]))
    monkeypatch.setattr(socket, "getaddrinfo", lambda name, port: [(2, 1, 6, "", ("10.0.0.99", 0))])
    assert forward_confirmed_name("10.0.0.5") == ""


def test_a_forward_confirmed_name_is_lower_case_without_the_trailing_dot(monkeypatch):
    monkeypatch.setattr(socket, "gethostbyaddr", lambda address: ("WS7.Corp.Example.", [], [address]))
    monkeypatch.setattr(socket, "getaddrinfo", lambda name, port: [(10, 1, 6, "", ("::ffff:10.0.0.5", 0, 0, 0))])
    assert forward_confirmed_name("10.0.0.5") == "ws7.corp.example"


def test_an_address_without_a_reverse_name_has_none(monkeypatch):
    def no_name(address: str) -> tuple[str, list[str], list[str]]:
        raise socket.herror(1, "Unknown host")

    monkeypatch.setattr(socket, "gethostbyaddr", no_name)
    assert forward_confirmed_name("10.0.0.5") == ""


def test_concurrent_requests_share_one_lookup_and_later_ones_use_the_cache():
    calls: list[str] = []

    def lookup(address: str) -> str:
        calls.append(address)
        time.sleep(0.05)
        return "ws7.corp.example"

    async def body() -> list[str]:
        names = VerifiedHostNames(lookup)
        first = await asyncio.gather(*(names.name_of("10.0.0.5") for _ in range(20)))
        again = await names.name_of("10.0.0.5")
        names.close()
        return [*first, again]

    assert set(asyncio.run(body())) == {"ws7.corp.example"}
    assert calls == ["10.0.0.5"]


def test_a_slow_resolver_costs_a_request_the_timeout_not_the_loop(caplog):
    release = threading.Event()

    def stuck(address: str) -> str:
        release.wait(5)
        return "late.example"

    async def body() -> tuple[str, float, float]:
        names = VerifiedHostNames(stuck, timeout_s=0.2)
        loop = asyncio.get_running_loop()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        started = loop.time()
        name = await names.name_of("10.0.0.5")
        waited = loop.time() - started
        task.cancel()
        release.set()
        names.close()
        return name, waited, ticks

    name, waited, ticks = asyncio.run(body())
    assert name == ""
    assert 0.2 <= waited < 1.0
    assert ticks >= 10  # the loop kept running while the resolver was stuck
    assert "could not be looked up within 0.2 s" in caplog.text


@pytest.mark.parametrize("text", ["not-an-address", "example.com", ""])
def test_text_that_is_not_an_address_is_never_resolved(text):
    def refuse(address: str) -> str:
        raise AssertionError(f"resolver asked about {address!r}")

    async def body() -> str:
        names = VerifiedHostNames(refuse)
        try:
            return await names.name_of(text)
        finally:
            names.close()

    assert asyncio.run(body()) == ""


def test_the_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr(host_names, "CACHE_ENTRIES", 50)

    async def body() -> int:
        names = VerifiedHostNames(lambda address: "")
        for n in range(200):
            await names.name_of(f"10.0.{n // 250}.{n % 250}")
        size = len(names._cache)
        names.close()
        return size

    assert asyncio.run(body()) <= 50
