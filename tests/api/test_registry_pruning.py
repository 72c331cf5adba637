"""The server forgets printers and clients unseen for longer than the usage retention, in bounded slices."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

from licentia import server as server_module
from licentia.config import Config
from licentia.core.commands import AddLicense, PrintCheck
from licentia.core.model import ClientInfo, LicenseTerms, PrinterIdentity
from licentia.server import LicenseServer

T0 = 1_800_000_000.0
DAY = 86400.0


def test_idle_printers_and_clients_are_pruned_a_slice_per_command(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(server_module, "PRUNE_SLICE", 100)
    now = [T0]
    server = LicenseServer(Config.load(data_dir=tmp_path / "data"), clock=lambda: now[0])
    server.open()

    async def run() -> tuple[tuple[int, int], int, list[str], list[str]]:
        terms = LicenseTerms(license_id="PRN", product="Label", edition="std", customer="Acme", unit="printers",
                             count=1000, not_before=T0 - 60, expires=T0 + 400 * DAY)
        assert (await server.execute(AddLicense(terms=terms, key_id="k", signature="unchecked"))).ok
        for n in range(250):
            check = PrintCheck(product="Label", printer=PrinterIdentity(name=f"P{n}"),
                               client=ClientInfo(host=f"ws-{n}"), source_ip="10.0.0.5")
            assert (await server.execute(check)).ok
        now[0] = T0 + 91 * DAY  # past the default 90-day retention
        fresh = PrintCheck(product="Label", printer=PrinterIdentity(name="P-new"), client=ClientInfo(host="ws-new"),
                           source_ip="10.0.0.5")
        assert (await server.execute(fresh)).ok
        before = server.journal.last_index
        forgotten = await server.prune_registries()
        commands = server.journal.last_index - before
        printers = [p.identity.name for p in server.state.printers.values()]
        clients = [cl.info.host for cl in server.state.clients.values()]
        await server.journal.close(server.state)
        return forgotten, commands, printers, clients

    try:
        forgotten, commands, printers, clients = asyncio.run(run())
    finally:
        server.release()
    assert forgotten == (250, 250)
    assert commands == 6  # 251 printers and 251 clients, 100 looked at per command: 3 slices each
    assert printers == ["P-new"] and clients == ["ws-new"]
    reopened = LicenseServer(Config.load(data_dir=tmp_path / "data"))
    reopened.open()
    try:
        assert [p.identity.name for p in reopened.state.printers.values()] == ["P-new"]
    finally:
        reopened.release()


def test_pruning_a_large_registry_copies_no_more_than_a_slice_of_its_keys(tmp_path: Path):
    """The pruning looked at a list of every key (300,000 at a large site, made in one turn of the loop and
    walked by every pass of the cycle collector until it was done); now it takes each slice from the registry."""
    now = [T0]
    server = LicenseServer(Config.load(data_dir=tmp_path / "data"), clock=lambda: now[0])
    server.open()
    terms = LicenseTerms(license_id="PRN", product="Label", edition="std", customer="Acme", unit="printers",
                         count=30_000, not_before=T0 - 60, expires=T0 + 400 * DAY)
    assert server.state.apply(AddLicense(terms=terms, key_id="k", signature="unchecked"), T0).ok
    for n in range(20_000):  # applied to the core alone: nothing here is stale, so the pruning commits nothing
        check = PrintCheck(product="Label", printer=PrinterIdentity(name=f"P{n}"), client=ClientInfo(host="ws"),
                           source_ip="10.0.0.5")
        assert server.state.apply(check, T0).ok

    async def run() -> tuple[tuple[int, int], int]:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            forgotten = await server.prune_registries()
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        await server.journal.close(server.state)
        return forgotten, peak

    try:
        forgotten, peak = asyncio.run(run())
    finally:
        server.release()
    assert forgotten == (0, 0)
    assert peak < 80_000, peak  # the 20,000 keys' list alone is 160,056 bytes; a slice of 2,000 is 16,056
