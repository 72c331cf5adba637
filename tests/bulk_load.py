"""Fill a data directory with many printers, leases and usage rows, fast, through the real core and store.

A large site's state is built the way a server builds it: a `LicenseServer` is
opened on the data directory in this process and every command goes through its
`execute` (the core state machine, the journal, the usage log), many at a time
so that the journal commits them in large batches. The server is then stopped
(writing its state) and the directory is ready for `ServerProcess`. Loading
50,000 printers this way takes seconds; over HTTP it would take minutes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness import Issuer

from licentia.config import Config
from licentia.core.commands import Checkout, Command, PrintCheck, UpdateSettings
from licentia.core.model import ClientInfo, PrinterIdentity
from licentia.server import LicenseServer
from licentia.store.usage_rollups import DAY

PRINTER_PRODUCT = "LabelStudio"
SEAT_PRODUCT = "CADStudio"
CHUNK = 2000


@dataclass(frozen=True)
class Site:
    """What to load: `printers` distinct printers (one print check each, then `extra_prints` more spread over
    them, each a usage row), `leases` seats held by as many clients."""

    printers: int = 0
    leases: int = 0
    extra_prints: int = 0
    lease_ttl_s: float = 3600.0
    clients: int = 500  # print checks come from this many hosts


def printer_identity(i: int) -> PrinterIdentity:
    return PrinterIdentity(
        name=f"PRN-{i:06d}",
        driver="ZDesigner ZD420",
        port=f"IP_10.{i // 65536}.{i // 256 % 256}.{i % 256}",
        location=f"Site {i % 40:02d}",
    )


def lease_client(i: int) -> ClientInfo:
    return ClientInfo(host=f"ws-{i:06d}", user=f"user{i:06d}", application="CAD Studio", version="9.1")


def print_client(i: int, clients: int) -> ClientInfo:
    return ClientInfo(host=f"print-host-{i % clients:04d}", user="printing", application="Label Studio", version="3.2")


def site_commands(site: Site) -> Iterator[Command]:
    for i in range(site.printers):
        yield PrintCheck(
            product=PRINTER_PRODUCT,
            printer=printer_identity(i),
            client=print_client(i, site.clients),
            source_ip="10.9.0.1",
        )
    for i in range(site.extra_prints):
        p = (i * 7919) % max(site.printers, 1)
        yield PrintCheck(
            product=PRINTER_PRODUCT,
            printer=printer_identity(p),
            client=print_client(i, site.clients),
            source_ip="10.9.0.1",
        )
    for i in range(site.leases):
        yield Checkout(
            request_id=f"seed-r-{i}",
            lease_id=f"seed-lease-{i:07d}",
            product=SEAT_PRODUCT,
            client=lease_client(i),
            source_ip="10.8.0.1",
        )


async def _execute_all(server: LicenseServer, commands: Iterable[Command]) -> int:
    done = 0
    chunk: list[Command] = []

    async def run(batch: list[Command]) -> int:
        outcomes = await asyncio.gather(*(server.execute(command) for command in batch))
        refused = [o for o in outcomes if not o.ok]
        if refused:
            raise RuntimeError(f"{len(refused)} commands refused while loading, e.g. {refused[0]}")
        return len(batch)

    for command in commands:
        chunk.append(command)
        if len(chunk) == CHUNK:
            done += await run(chunk)
            chunk = []
    if chunk:
        done += await run(chunk)
    return done


def load_site(data_dir: Path, issuer: Issuer, site: Site) -> int:
    """Trust `issuer`, install a printer license and a seat license big enough for `site`, then load it.
    Returns the number of commands executed. The directory must not be in use by a server."""
    data_dir.mkdir(parents=True, exist_ok=True)
    issuer.trust_in(data_dir)
    logging.getLogger("licentia").setLevel(logging.WARNING)

    async def main() -> int:
        # No snapshot while loading (each would encode the whole growing state): one when it stops.
        server = LicenseServer(Config(data_dir=data_dir, snapshot_every=10**9))
        server.open()
        await server.replication.start()
        try:
            for data in (
                issuer.license_bytes(
                    license_id="BULK-PRN", product=PRINTER_PRODUCT, unit="printers", count=max(site.printers, 1)
                ),
                issuer.license_bytes(
                    license_id="BULK-SEATS", product=SEAT_PRODUCT, unit="seats", count=max(site.leases, 1)
                ),
            ):
                outcome = await server.execute(server.verify_license(data))
                if not outcome.ok and outcome.code != "license_exists":
                    raise RuntimeError(f"could not install the bulk license: {outcome}")
            await server.execute(UpdateSettings(changes={"lease_ttl_s": site.lease_ttl_s}))
            # The usage rollups, kept as the rows are written, as a running server keeps them: a server started on a
            # directory without them builds them from every usage row in the background first (at 1M rows, half a
            # minute of a worker thread taking the interpreter's lock from its loop).
            if not await server.journal.rollups_ready(server.state.settings.printer_window_days * DAY):
                raise RuntimeError("the usage rollups could not be built before loading")
            return await _execute_all(server, site_commands(site))
        finally:
            await server.stop()

    # In a thread of its own: the caller may run an event loop already (Playwright's sync API does).
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, main()).result()
