"""Storage figures of a large site: restart time, data directory size, RSS, the stall a snapshot causes,
a 90-day usage report and batch heartbeats, measured on a real `licentia serve` process.

`store_figures(workdir, leases, printers, usage_rows, quick)` builds a server data directory of that
size, then starts `licentia serve` on it and measures. Building is the fastest honest way: the commands
a real site would have sent (checkouts with a one-day TTL, a print check per printer) are applied to the
core's `LicenseState` in this process and written the way the server writes its state on shutdown
(`SqliteJournal.close(state)`, i.e. a snapshot), and `usage_rows` usage-log rows spread over the last
90 days are inserted into the usage table in bulk (a third print checks, a third checkouts with their
checkins, the rest refusals). The server then loads that data directory like any other.

Measured, each on the real server process:

- `restart_s`: from starting the process to `/api/v1/server` answering (a second start, after the
  first start wrote its own snapshot on shutdown);
- `rss_mb`: the server's resident memory once loaded and after the load below (`rss_mb_loaded`: right
  after the restart, before any request: the loaded state's own share);
- `snapshot_stall_ms`: the longest gap between answers of a `/health/live` probe sent every 10 ms
  while checkouts force a snapshot (the configuration sets `snapshot_every` low for this run), and
  `probe_gap_no_snapshot_ms`, the same during as many checkouts with no snapshot due (the baseline);
- `data_dir_mb`: the data directory's size at the end, the server still running (its WAL included);
- `report_s`: the 90-day usage report (day buckets) over the usage rows;
- `heartbeat_batch_leases_per_s`: leases renewed per second by batch heartbeats of 1000 leases.

bench/scale.py imports `store_figures`; run alone:

    python bench/_scale_store.py --quick            # 2,000 leases, 2,000 printers, 20,000 usage rows
    python bench/_scale_store.py --leases 100000 --printers 100000 --usage-rows 1000000

The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from harness import ADMIN_PASSWORD, Issuer, free_port  # noqa: E402

from licentia.api.passwords import hash_password  # noqa: E402
from licentia.core import commands as c  # noqa: E402
from licentia.core.model import AdminUser, ClientInfo, PrinterIdentity  # noqa: E402
from licentia.store.journal import SqliteJournal  # noqa: E402
from licentia.store.usage_report import usage_report  # noqa: E402
from licentia.store.usage_rows import USAGE_FIELDS  # noqa: E402

DAY = 86400.0
SEATS = "CADStudio"
LABELS = "LabelStudio"
SNAPSHOT_EVERY = 2000  # low, so that the probe phase forces snapshots
BATCH = 1000


def _log(message: str) -> None:
    print(f"[scale-store] {message}", file=sys.stderr, flush=True)


def build_data_dir(data: Path, leases: int, printers: int, usage_rows: int) -> None:
    """A data directory holding `leases` leases, `printers` printers and `usage_rows` usage rows."""
    issuer = Issuer()
    now = time.time()
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    journal = SqliteJournal(data / "licentia.db")
    state = journal.load()

    async def write() -> None:
        async def run(command: c.Command) -> None:
            outcome = state.apply(command, now)
            assert outcome.ok, outcome.message
            await journal.append(command, now, outcome.usage)

        await run(c.PutAdminUser(user=AdminUser("admin", hash_password(ADMIN_PASSWORD), "admin")))
        await run(c.UpdateSettings(changes={"lease_ttl_s": DAY}))  # the leases outlast the run, however slow
        for product, unit, count in ((SEATS, "seats", leases + 100_000), (LABELS, "printers", printers + 1000)):
            terms = issuer.terms(license_id=f"BENCH-{unit}", product=product, unit=unit, count=count,
                                 not_before=now - 100 * DAY, expires=now + 365 * DAY)
            await run(c.AddLicense(terms=terms, key_id="bench", signature="YmVuY2g="))
        # The bulk of the state is applied to the core only: the snapshot written on close holds it,
        # as it would after the server compacted a journal of these commands.
        for n in range(leases):
            client = ClientInfo(host=f"ws-{n % 20000}", user=f"user-{n}", application="CAD", version="1.0")
            outcome = state.apply(c.Checkout(request_id=f"req-{n}", lease_id=f"lease-{n:08d}", product=SEATS,
                                             client=client, source_ip="10.0.0.1", ttl_s=DAY), now)
            assert outcome.ok, outcome.message
        for n in range(printers):
            client = ClientInfo(host=f"pc-{n % 20000}", user="label", application="Labels")
            outcome = state.apply(c.PrintCheck(product=LABELS, printer=PrinterIdentity(name=f"printer-{n}"),
                                               client=client, source_ip="10.0.0.2"), now)
            assert outcome.ok, outcome.message
        journal.last_index += 1  # so that close writes the snapshot
        await journal.close(state)

    asyncio.run(write())
    columns = ("origin", "idx", "seq", *USAGE_FIELDS)
    sql = f"INSERT INTO usage ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    rng = random.Random(14)
    with sqlite3.connect(data / "licentia.db") as conn:
        chunk: list[tuple[object, ...]] = []
        for n in range(usage_rows):
            at = now - rng.random() * 90 * DAY
            kind = n % 3
            if kind == 0:
                record = {"at": at, "kind": "print", "granted": 1, "reason": "ok", "product": LABELS,
                          "printer_id": f"p{n % max(printers, 1)}", "printer_name": "printer", "client_host": "pc"}
            elif kind == 1:
                lease = f"old-{n}"
                record = {"at": at, "kind": "checkout", "granted": 1, "reason": "ok", "product": SEATS,
                          "lease_id": lease, "client_host": "ws"}
                chunk.append(("bench", n, 1, *({"count": 1, **record, "at": at + 3600, "kind": "checkin"}.get(f, "")
                                               for f in USAGE_FIELDS)))
            else:
                record = {"at": at, "kind": "print", "granted": 0, "reason": "limit_exceeded", "product": LABELS}
            chunk.append(("bench", n, 0, *({"count": 1, **record}.get(f, "") for f in USAGE_FIELDS)))
            if len(chunk) >= 50_000:
                conn.executemany(sql, chunk)
                chunk.clear()
        conn.executemany(sql, chunk)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


class Server:
    def __init__(self, data: Path, config: Path) -> None:
        self.data, self.config, self.port = data, config, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, session: aiohttp.ClientSession) -> float:
        env = {**os.environ, "LICENTIA_ADMIN_PASSWORD": ADMIN_PASSWORD}
        log = (self.data.parent / "server.log").open("ab")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "licentia", "serve", "--data", str(self.data), "--port", str(self.port),
             "--log-level", "warning", "--tls", "off", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        while time.perf_counter() - started < 300:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            try:
                async with session.get(f"{self.url}/api/v1/server") as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(300)


async def _probe_gaps(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> float:
    """The longest time between two answers of /health/live, asked every 10 ms."""
    longest, last = 0.0, time.perf_counter()
    while not stop.is_set():
        async with session.get(f"{url}/health/live") as answer:
            await answer.read()
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
        await asyncio.sleep(0.01)
    return longest * 1000


async def _measure(data: Path, config: Path, leases: int, quick: bool) -> dict[str, float]:
    figures: dict[str, float] = {}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=32)) as session:
        server = Server(data, config)
        await server.start(session)  # the first start after building
        server.stop()
        server = Server(data, config)
        figures["restart_s"] = round(await server.start(session), 3)
        _log(f"restarted in {figures['restart_s']:.2f} s")
        assert server.process is not None
        figures["rss_mb_loaded"] = round(_rss_mb(server.process.pid), 1)  # the state alone, before any request
        _log(f"resident memory once loaded: {figures['rss_mb_loaded']} MB")
        try:
            async with session.post(f"{server.url}/api/v1/auth/login",
                                    json={"username": "admin", "password": ADMIN_PASSWORD}) as answer:
                token = (await answer.json())["token"]
            admin = {"Authorization": f"Bearer {token}"}

            # Checkouts with the probe running: first fewer than snapshot_every of them (the baseline gap, no
            # snapshot due), then enough to force a snapshot.
            async def checkouts(first: int, last: int) -> float:
                stop = asyncio.Event()
                probe = asyncio.create_task(_probe_gaps(session, server.url, stop))

                async def worker(start: int) -> None:
                    for n in range(start, last, 8):
                        body = {"product": SEATS, "client": {"host": f"probe-{n}", "user": "u", "application": "a"}}
                        async with session.post(f"{server.url}/api/v1/leases", json=body) as answer:
                            assert answer.status == 201, await answer.text()

                await asyncio.gather(*(worker(first + w) for w in range(8)))
                await asyncio.sleep(3.0 if leases > 50_000 else 1.0)  # a snapshot started last finishes
                stop.set()
                return round(await probe, 1)

            figures["probe_gap_no_snapshot_ms"] = await checkouts(0, SNAPSHOT_EVERY - 500)
            figures["snapshot_stall_ms"] = await checkouts(SNAPSHOT_EVERY - 500, SNAPSHOT_EVERY + 500)
            _log(f"longest probe gap: {figures['probe_gap_no_snapshot_ms']} ms without a snapshot, "
                 f"{figures['snapshot_stall_ms']} ms while a snapshot was taken")

            figures.update(await _report_times(session, server, admin))
            _log(f"resident memory {_rss_mb(server.process.pid):.1f} MB after the reports")

            ids = [f"lease-{n:08d}" for n in range(min(leases, 200_000))]
            batches = [ids[i : i + BATCH] for i in range(0, len(ids) - BATCH + 1, BATCH)] or [ids]
            renewed, deadline = 0, time.perf_counter() + (2.0 if quick else 5.0)
            started = time.perf_counter()

            async def heartbeats(worker: int) -> None:
                nonlocal renewed
                n = worker
                while time.perf_counter() < deadline:
                    batch = batches[n % len(batches)]
                    async with session.post(f"{server.url}/api/v1/leases/heartbeat",
                                            json={"lease_ids": batch}) as answer:
                        assert answer.status == 200, await answer.text()
                        renewed += len((await answer.json())["renewed"])
                    n += 4

            await asyncio.gather(*(heartbeats(w) for w in range(4)))
            figures["heartbeat_batch_leases_per_s"] = round(renewed / (time.perf_counter() - started))
            _log(f"batch heartbeats: {figures['heartbeat_batch_leases_per_s']} leases/s")
            figures["rss_mb"] = round(_rss_mb(server.process.pid), 1)
            figures["data_dir_mb"] = round(_dir_mb(data), 1)  # while it runs: with its write-ahead log
            _log("data directory: " + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in data.iterdir()
                                                  if p.is_file() and p.stat().st_size > 100_000))
        finally:
            server.stop()
    return figures


ZONE_S = 5.5 * 3600  # a time zone 5 h 30 min from UTC (India): its midnights fall inside UTC hours


def _report_params(up_to: Literal["hour", "now", "zone"]) -> dict[str, str]:
    """The last 90 days in day buckets: up to the end of this hour, as the console asks, or up to this very
    second (edges not on whole hours, as an API caller asking for "the last 90 days" usually sends), or
    from a local midnight to tomorrow's in a zone 5 h 30 min from UTC, as the console there asks (edges on
    quarter hours inside the hours)."""
    now = time.time()
    if up_to == "zone":
        until = math.floor((now + ZONE_S) / DAY) * DAY + DAY - ZONE_S
    else:
        until = math.ceil(now / 3600) * 3600 if up_to == "hour" else now
    return {"bucket": "day", "since": str(until - 90 * DAY), "until": str(until)}


async def _report_seconds(
    session: aiohttp.ClientSession, url: str, admin: dict[str, str], up_to: Literal["hour", "now", "zone"]
) -> float:
    started = time.perf_counter()
    async with session.get(f"{url}/api/v1/admin/reports/usage", params=_report_params(up_to),
                           headers=admin) as answer:
        assert answer.status == 200, await answer.text()
        await answer.read()
    return time.perf_counter() - started


async def _report_times(session: aiohttp.ClientSession, server: Server, admin: dict[str, str]) -> dict[str, float]:
    """`report_first_s`: the first report after the start (it waits for the rollups if they are still being
    built); `report_s`: the median of 3 more (from the rollups); `report_off_hour_s`: the median of 3 of the
    same report over the last 90 days from this very second (edges off the whole hours: the rollups for the
    whole hours, the rows of the hours its edges cut); `report_zone_s`: the median of 3 of the console's
    90-day report in a zone 5 h 30 min from UTC (edges inside the hours, on quarter hours)."""
    first = await _report_seconds(session, server.url, admin, "hour")
    times = sorted([await _report_seconds(session, server.url, admin, "hour") for _ in range(3)])
    off_hour = sorted([await _report_seconds(session, server.url, admin, "now") for _ in range(3)])
    zone = sorted([await _report_seconds(session, server.url, admin, "zone") for _ in range(3)])
    figures = {"report_first_s": round(first, 3), "report_s": round(times[1], 3),
               "report_off_hour_s": round(off_hour[1], 3), "report_zone_s": round(zone[1], 3)}
    built = re.findall(r"rollups from (\d+) usage rows in ([\d.]+) s", (server.data.parent / "server.log").read_text())
    if built:
        figures["rollup_build_s"] = float(built[-1][1])
    _log(f"90-day report: {figures}")
    return figures


def _rows_report_seconds(data: Path) -> float:
    """The baseline: the off-hour 90-day report computed from the usage rows, in this process, the way the
    server computed every report before the rollups (`report_inputs`, then `usage_report`)."""

    async def run() -> float:
        journal = SqliteJournal(data / "licentia.db")
        journal.load()
        try:
            params = _report_params("now")
            since, until = float(params["since"]), float(params["until"])
            started = time.perf_counter()
            records, denials = await journal.report_inputs(since, until, DAY, 7 * DAY)
            usage_report(records, denials, [], since=since, until=until, bucket="day", as_of=until,
                         printer_window_s=7 * DAY, lease_ttl_s=DAY)
            return time.perf_counter() - started
        finally:
            await journal.close()

    seconds = asyncio.run(run())
    _log(f"the same report from the rows: {seconds:.3f} s")
    return seconds


async def _report_only(data: Path, config: Path) -> dict[str, float]:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        server = Server(data, config)
        restart_s = await server.start(session)
        try:
            async with session.post(f"{server.url}/api/v1/auth/login",
                                    json={"username": "admin", "password": ADMIN_PASSWORD}) as answer:
                admin = {"Authorization": f"Bearer {(await answer.json())['token']}"}
            return {"first_start_s": round(restart_s, 3), **await _report_times(session, server, admin)}
        finally:
            server.stop()


def report_figures(workdir: Path, usage_rows: list[int]) -> dict[str, dict[str, float]]:
    """The 90-day usage report on a real server over logs of each of `usage_rows` rows (a small site
    otherwise), started on a database written without rollups (as by an earlier version): the first start
    builds them. A report from the rollups costs the same whatever the rows; `report_rows_s` (the same
    off-hour report computed from the rows, once the server has stopped) grows with them."""
    results = {}
    for rows in usage_rows:
        data = workdir / f"report-{rows}"
        shutil.rmtree(data, ignore_errors=True)
        build_data_dir(data, 100, 100, rows)
        config = workdir / "scale-report.toml"
        config.write_text("[server]\n")
        results[f"{rows}_rows"] = asyncio.run(_report_only(data, config))
        results[f"{rows}_rows"]["report_rows_s"] = round(_rows_report_seconds(data), 3)
        shutil.rmtree(data, ignore_errors=True)
    return results


def store_figures(workdir: Path, leases: int, printers: int, usage_rows: int, quick: bool) -> dict[str, float]:
    """Build a data directory of this size under `workdir` and measure a real server on it."""
    data = workdir / f"store-{leases}"
    shutil.rmtree(data, ignore_errors=True)
    started = time.perf_counter()
    build_data_dir(data, leases, printers, usage_rows)
    _log(f"built {leases} leases, {printers} printers, {usage_rows} usage rows in "
         f"{time.perf_counter() - started:.1f} s ({_dir_mb(data):.1f} MB)")
    config = workdir / "scale-store.toml"
    config.write_text(f"[server]\nsnapshot_every = {SNAPSHOT_EVERY}\n")
    return asyncio.run(_measure(data, config, leases, quick))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--leases", type=int, default=10_000)
    parser.add_argument("--printers", type=int, default=10_000)
    parser.add_argument("--usage-rows", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, help="keep the data directory here (default: a temporary one)")
    parser.add_argument("--report-rows", help="only the usage report, over logs of these many rows (e.g. "
                        "10000,1000000), a small site otherwise")
    args = parser.parse_args()
    if args.quick:
        args.leases, args.printers, args.usage_rows = 2000, 2000, 20_000
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="licentia-scale-store-"))
    try:
        if args.report_rows:
            reports = report_figures(workdir, [int(rows) for rows in args.report_rows.split(",")])
            print(json.dumps({"reports": reports}))
            return
        figures = store_figures(workdir, args.leases, args.printers, args.usage_rows, args.quick)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"leases": args.leases, "printers": args.printers, "usage_rows": args.usage_rows,
                      **figures}))


if __name__ == "__main__":
    main()
