"""A large site under client load: does an administrator's console, a snapshot or a report stall licensing?

What it does (see bench/README.md, "scale.py"):

1. for each size (10k, 100k and 300k leases with 50k, 50k and 300k printers; the last with 1M usage
   rows), fills a fresh data directory through the real core and store (tests/bulk_load.py: an
   in-process `LicenseServer` executing every print check and checkout, keeping the usage rollups as a
   running server keeps them), collects the loader's garbage and writes its data out (`os.sync`), then starts
   `licentia serve` on it (tests/harness.py `ServerProcess`) and times how long it takes to answer
   (`restart_s`). Before, the server built the rollups of the million rows in the background during the
   first phases, and its first syncs waited behind the loader's writeback: both were counted as its stalls;
2. runs client load at a fixed rate with aiohttp (333 heartbeats/s of one seat lease each and 100 print
   checks/s, the load of the site measured in issue #14)
   while a probe asks `/health/live` every 10 ms; `max_stall_ms` is the longest time between two
   answers of the probe. With each answer the probe reads how long the server's loop thread has waited,
   runnable, for a processor (/proc/PID/task/PID/schedstat), so each gap is split into the machine's part
   (`stall_cpu_wait_ms_by_phase`) and the server's own (`max_stall_ms_less_cpu_wait`). The probe and the
   client load run in a process of their own (`SiteClients`), so that this process's pauses (its collector,
   its page loads) are not counted as the server's;
3. phase "idle": client load only, the baseline (`client_p99_ms_idle`);
   phase "console": a logged-in browser session (the console's session cookie) loads every console
   page, the live-refresh fragments and every admin list, one after the other, repeatedly
   (`client_p99_ms_console_open`, and each page's p95: `page_p95_ms` is the worst). The two alternate in
   windows of `--window-s` (5 s), `--phase-s` of each in all: on this shared machine the syncs' latency drifts
   over a minute, and with all the idle phase first and all the console phase after, the drift fell on one of
   them (the same code gave 1.07x to 2.1x in 30-second phases, 1.05x to 1.24x alternating);
   phase "snapshot": print checks as fast as the server takes them until the journal writes a snapshot
   (config `snapshot_every`), to see what a snapshot costs the probe;
4. then times batch heartbeats of 1000 leases, the usage report over 90 days (day buckets up to the
   end of this hour, as the console asks), and reads the server's resident memory and the data
   directory's size;
5. if bench/_scale_store.py exists (the persistence work's own figures), adds what its
   `store_figures(...)` returns under "store", and the usage report on a small site over 10k and 1M
   usage rows (`report_figures`: 2k and 20k with --quick) under "reports", with the same report over
   the last 90 days from this second, edges off the whole hours (`report_s_1m_rows_off_hour`), and that
   report computed from the rows in process as the baseline (`report_rows_s_1m_rows_off_hour`);
6. prints progress on stderr and, as the last line of stdout, one JSON object.

    python bench/scale.py --quick               # CI smoke run: a small site, a few seconds per phase
    python bench/scale.py --sizes 10k,100k      # the sizes to run (default: 10k,100k,300k)
    python bench/scale.py --phase-s 20          # seconds per phase (default 10)
    python bench/scale.py --triad --sizes 300k  # a triad instead (bench/_scale_triad.py): checkpoints,
                                                # compaction and a peer's checkpoint under the same load
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

BENCH_DIR = Path(__file__).resolve().parent
MP = multiprocessing.get_context("spawn")  # the site clients' process: a fresh interpreter, not a copy of this one
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
sys.path.insert(0, str(BENCH_DIR))

from _scale_triad import CHECKPOINT_FILE, peer_checkpoint, run_triad_size, wait_checkpoints  # noqa: E402
from bulk_load import PRINTER_PRODUCT, Site, load_site, printer_identity  # noqa: E402
from harness import ADMIN_PASSWORD, Issuer, ServerProcess  # noqa: E402

try:
    from _scale_store import report_figures, store_figures  # type: ignore[import-not-found]  # persistence figures
except ImportError:
    report_figures = store_figures = None


@dataclass(frozen=True)
class Size:
    name: str
    leases: int
    printers: int
    usage_rows: int  # at least leases + printers (one row each); more are extra print checks


SIZES = {
    "10k": Size("10k", 10_000, 50_000, 60_000),
    "100k": Size("100k", 100_000, 50_000, 150_000),
    "300k": Size("300k", 300_000, 300_000, 1_000_000),
}
QUICK = Size("quick", 2_000, 2_000, 6_000)
HEARTBEAT_LEASES = 1  # leases per heartbeat of the client load: one application, one seat

CONSOLE_PAGES = [  # and each license's details page (`browse`)
    "/console/",
    "/console/licenses",
    "/console/this-server",
    "/console/printers",
    "/console/printers?tab=permissions",
    "/console/seats",
    "/console/reports",
    "/console/redundancy",
    "/console/alerts",
    "/console/users",
]
# What an open page asks for every 2 s (its live regions and the status strip).
LIVE_REFRESH = [
    "/console/status.json",
    "/console/seats?fragment=leases",
    "/console/seats?fragment=clients",
    "/console/printers?fragment=requests",
    "/console/printers?fragment=printers",
    "/console/printers?tab=permissions&fragment=groups",
]
ADMIN_LISTS = [
    "/api/v1/admin/leases",
    "/api/v1/admin/printers",
    "/api/v1/admin/printers?recent=1",
    "/api/v1/admin/clients",
    "/api/v1/admin/usage",
    "/api/v1/admin/printer-groups",
    "/api/v1/admin/status",
]


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def rss_mb(pid: int) -> tuple[float | None, float | None]:
    """(resident now, peak resident) of a process, in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None, None
    found = {m.group(1): int(m.group(2)) / 1024 for m in re.finditer(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M)}
    return found.get("VmRSS"), found.get("VmHWM")


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


PHASES = ("warm-up", "idle", "console", "snapshot", "checkpoint", "away", "peer_checkpoint", "after")


@dataclass
class Recorder:
    """What a run saw, by phase. The phase is kept in shared memory (`shared_phase`) so that the site's clients,
    which run in a process of their own (`SiteClients`), file each answer under the phase it was asked in."""

    shared_phase: Any = field(default_factory=lambda: MP.Value("i", 0, lock=False))
    client: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    client_errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Each probe answer: when it came, and the server loop thread's time waiting for a processor by then (ns).
    probe_answers: dict[str, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))
    pages: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    page_bytes: dict[str, int] = field(default_factory=dict)
    writing_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # a state file being written
    # The server's own loop: its ticks (`licentia_event_loop_lateness_seconds`) by lateness bound, by phase.
    late_ticks: dict[str, dict[float, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))

    def loop_late_ms(self, phase: str) -> float | str | None:
        """The server loop's longest lateness in `phase`, as the histogram's bound (ms): the smallest bound that
        held every tick of the phase ("over 5000" past the last one; None without ticks)."""
        ticks = self.late_ticks.get(phase)
        if not ticks or not ticks.get(math.inf):
            return None
        bound = next(bound for bound in sorted(ticks) if ticks[bound] >= ticks[math.inf])
        return ms(bound) if bound != math.inf else "over 5000"

    def loop_late_over(self, phase: str, bound: float) -> int:
        """Ticks of the server's loop later than `bound` (a histogram bound) in `phase`."""
        ticks = self.late_ticks.get(phase) or {}
        return round(ticks.get(math.inf, 0) - ticks.get(bound, 0))

    @property
    def phase(self) -> str:
        return PHASES[self.shared_phase.value]

    @phase.setter
    def phase(self, phase: str) -> None:
        self.shared_phase.value = PHASES.index(phase)

    def gaps(self, phase: str) -> list[tuple[float, float]]:
        """Each time the probe waited between two answers, the later one asked during `phase` (the first answer of a
        window counts from the last of the window before): (the gap, the part of it the server's event-loop thread
        spent ready to run but waiting for a processor), in seconds."""
        answers = sorted((at, waited, name) for name, times in self.probe_answers.items() for at, waited in times)
        return [(b - a, max(0, min(b - a, (waited_b - waited_a) / 1e9)))
                for (a, waited_a, _), (b, waited_b, name) in itertools.pairwise(answers) if name == phase]

    def stall(self, phase: str) -> float | None:
        """The longest time the probe waited for an answer asked during `phase` (`gaps`)."""
        return max((gap for gap, _ in self.gaps(phase)), default=None)

    def stall_cpu_wait(self, phase: str) -> float | None:
        """Of the longest gap of `phase`, the time the server's loop thread waited for a processor."""
        return max(self.gaps(phase), default=(None, None))[1]

    def stall_less_cpu_wait(self, phase: str) -> float | None:
        """The largest, over the gaps of `phase`, of a gap less the time within it the server's loop thread waited
        for a processor: the time the server itself held its loop (running, or waiting on its own locks or the disk).
        Not always the longest gap's: a shorter gap with less of the machine's wait can leave more."""
        return max((gap - waited for gap, waited in self.gaps(phase)), default=None)


def runqueue_ns(pid: int) -> int:
    """How long the main thread of process `pid` (a server's event loop) has waited, runnable, for a processor:
    the second field of /proc/PID/task/PID/schedstat, in ns (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as stat:
            return int(stat.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


async def probe(url: str, server_pid: int, recorder: Recorder, stop: asyncio.Event) -> None:
    """GET /health/live every 10 ms (each on its own, so a stalled answer does not delay the next asks). With each
    answer, how long the server's loop thread has waited for a processor so far (`runqueue_ns`): the part of a gap
    that was the machine's other processes, not the server (on this two-processor machine a triad's three members
    and etcds, the clients and the bench share the processors that a site's machines each have to themselves)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> None:
            phase = recorder.phase
            try:
                async with session.get(f"{url}/health/live", timeout=aiohttp.ClientTimeout(total=60)) as answer:
                    await answer.read()
                recorder.probe_answers[phase].append((time.perf_counter(), runqueue_ns(server_pid)))
            except (TimeoutError, aiohttp.ClientError):
                pass

        tasks: set[asyncio.Task[None]] = set()
        next_at = time.perf_counter()
        while not stop.is_set():
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += 0.010
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        if tasks:
            await asyncio.wait(tasks, timeout=60)


# What the server writes its state to while it writes it (`store.private_file.write_private`'s temporary file; a
# triad member's checkpoint taken from another member arrives in `.taking`).
WRITING = (".licentia.snapshot.tmp", f".{CHECKPOINT_FILE}.tmp", f".{CHECKPOINT_FILE}.taking")


async def state_writes(data_dir: Path, recorder: Recorder, stop: asyncio.Event) -> None:
    """How long, in each phase, the server was writing a snapshot or checkpoint (seen every 20 ms): one falls in
    whichever phase it falls in, and raises that phase's client p99."""
    paths = [data_dir / name for name in WRITING]
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.02)
        now = time.perf_counter()
        if await asyncio.to_thread(lambda: any(path.exists() for path in paths)):
            recorder.writing_s[recorder.phase] += now - last
        last = now


async def client_load(
    url: str, size: Size, recorder: Recorder, stop: asyncio.Event, rates: tuple[float, float]
) -> None:
    """Heartbeats (`HEARTBEAT_LEASES` leases each) and print checks, each at a fixed rate, latencies by phase."""
    heartbeat_rate, print_rate = rates
    rng = random.Random(7)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one(kind: str, path: str, body: dict[str, Any]) -> None:
            phase = recorder.phase
            started = time.perf_counter()
            try:
                async with session.post(url + path, json=body, timeout=aiohttp.ClientTimeout(total=60)) as answer:
                    await answer.read()
                    ok = answer.status == 200
            except (TimeoutError, aiohttp.ClientError):
                ok = False
            if ok:
                recorder.client[phase].append(time.perf_counter() - started)
            else:
                recorder.client_errors[f"{phase}:{kind}"] += 1

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        sent = {"heartbeat": 0, "print": 0}
        while not stop.is_set():
            now = time.perf_counter() - start
            while sent["heartbeat"] < now * heartbeat_rate:
                ids = [f"seed-lease-{rng.randrange(size.leases):07d}" for _ in range(HEARTBEAT_LEASES)]
                tasks.add(asyncio.create_task(one("heartbeat", "/api/v1/leases/heartbeat", {"lease_ids": ids})))
                sent["heartbeat"] += 1
            while sent["print"] < now * print_rate:
                printer = printer_identity(rng.randrange(size.printers))
                body = {"product": PRINTER_PRODUCT, "printer": {"name": printer.name, "driver": printer.driver,
                                                                "port": printer.port, "location": printer.location}}
                tasks.add(asyncio.create_task(one("print", "/api/v1/print-checks", body)))
                sent["print"] += 1
            tasks = {t for t in tasks if not t.done()}
            await asyncio.sleep(0.002)
        if tasks:
            await asyncio.wait(tasks, timeout=60)


def _site_clients(url: str, server_pid: int, leases: int, printers: int, rates: tuple[float, float],
                  shared_phase: Any, ready: Any, stop: Any, results: Any) -> None:
    """The child process of `SiteClients`: the probe and the client load until `stop` is set, then what they saw."""
    gc.freeze()  # what the imports left: this process's collector passes stay small
    recorder = Recorder(shared_phase=shared_phase)

    async def run() -> None:
        done = asyncio.Event()
        size = Size("clients", leases, printers, 0)
        tasks = [asyncio.create_task(probe(url, server_pid, recorder, done)),
                 asyncio.create_task(client_load(url, size, recorder, done, rates))]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        done.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    results.send((dict(recorder.client), dict(recorder.client_errors), dict(recorder.probe_answers)))
    results.close()


class SiteClients:
    """The probe and the client load, in a process of their own, as the site's clients are on machines of their own.

    In the bench's process they shared one event loop with the console's session and with the loader's hundreds
    of megabytes of objects: a full pass of that process's cycle collector (73-93 ms at 300k) or a `stat` of the
    state files that waited on the disk (51-71 ms, `state_writes`) stopped the probe, and was counted as the
    server's stall (2026-12-07, bench/README). The server's own lateness is read from its `/metrics` for each phase."""

    def __init__(self, url: str, server_pid: int, size: Size, recorder: Recorder, rates: tuple[float, float]) -> None:
        self.recorder = recorder
        self._stop = MP.Event()
        self.ready = MP.Event()
        self._results, child_end = MP.Pipe(duplex=False)
        self._process = MP.Process(target=_site_clients, name="site-clients", daemon=True,
                                   args=(url, server_pid, size.leases, size.printers, rates, recorder.shared_phase,
                                         self.ready, self._stop, child_end))
        self._process.start()
        child_end.close()

    async def stop(self) -> None:
        """Stop them and file what they saw in the recorder."""
        self._stop.set()
        client, errors, answers = await asyncio.to_thread(self._results.recv)
        await asyncio.to_thread(self._process.join, 60)
        for phase, times in client.items():
            self.recorder.client[phase].extend(times)
        for key, count in errors.items():
            self.recorder.client_errors[key] += count
        for phase, times in answers.items():
            self.recorder.probe_answers[phase].extend(times)

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
            self._process.join(10)


async def loop_lateness(session: aiohttp.ClientSession, url: str) -> dict[float, float]:
    """The server's `licentia_event_loop_lateness_seconds` histogram: ticks up to each bound (cumulative)."""
    async with session.get(f"{url}/metrics") as answer:
        text = await answer.text()
    return {float(sample.labels["le"]): sample.value for family in text_string_to_metric_families(text)
            if family.name == "licentia_event_loop_lateness_seconds"
            for sample in family.samples if sample.name.endswith("_bucket")}


async def console_session(url: str) -> aiohttp.ClientSession:
    """A browser's session: the console's login form (its CSRF value and cookie), then the session cookie."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(f"{url}/console/login") as form:
        html = await form.text()
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    if match is None:
        raise RuntimeError("the console's login form has no CSRF value")
    data = {"username": "admin", "password": ADMIN_PASSWORD, "csrf": match.group(1), "next": "/console/"}
    async with session.post(f"{url}/console/login", data=data, allow_redirects=False) as answer:
        if answer.status != 303:
            raise RuntimeError(f"console login answered {answer.status}")
    return session


async def browse(session: aiohttp.ClientSession, url: str, recorder: Recorder, until: float) -> None:
    """Every console page, live fragment and admin list in turn, until `until` (at least one round)."""
    async with session.get(f"{url}/api/v1/admin/licenses") as answer:
        licenses = (await answer.json())["licenses"]
    details = [f"/console/licenses/{lic['license_id']}" for lic in licenses]  # each license's details page
    rounds = 0
    while rounds == 0 or time.perf_counter() < until:
        for path in CONSOLE_PAGES + details + LIVE_REFRESH + ADMIN_LISTS:
            started = time.perf_counter()
            async with session.get(url + path, timeout=aiohttp.ClientTimeout(total=600)) as answer:
                body = await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"{path} answered {answer.status}: {body[:300]!r}")
            recorder.pages[path].append(time.perf_counter() - started)
            recorder.page_bytes[path] = len(body)
        rounds += 1


async def force_snapshot(url: str, size: Size, snapshot_every: int) -> float:
    """Print checks, 32 at a time, until the journal has taken more than `snapshot_every` commands."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        started = time.perf_counter()
        queue = iter(range(snapshot_every + 200))

        async def worker() -> None:
            for i in queue:
                printer = printer_identity(i % size.printers)
                body = {"product": PRINTER_PRODUCT, "printer": {"name": printer.name, "driver": printer.driver,
                                                                "port": printer.port, "location": printer.location}}
                async with session.post(f"{url}/api/v1/print-checks", json=body) as answer:
                    await answer.read()

        await asyncio.gather(*(worker() for _ in range(32)))
        return time.perf_counter() - started


async def heartbeat_batches(url: str, size: Size, batches: int) -> float:
    """Leases renewed per second by batch heartbeats of 1000 leases each, one batch at a time (100 batches, about
    a second: 20 before 2026-12-07, a fifth of a second, moved by any pause of the machine)."""
    per_batch = min(1000, size.leases)
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        for b in range(batches):
            ids = [f"seed-lease-{(b * per_batch + i) % size.leases:07d}" for i in range(per_batch)]
            async with session.post(f"{url}/api/v1/leases/heartbeat", json={"lease_ids": ids}) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"batch heartbeat answered {answer.status}")
        return batches * per_batch / (time.perf_counter() - started)


async def report_seconds(session: aiohttp.ClientSession, url: str, tries: int = 3) -> float:
    """The usage report over the last 90 days (the console's session), median of `tries`."""
    now = time.time()
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        until = math.ceil(now / 3600) * 3600
        params = {"since": str(until - 90 * 86400), "until": str(until), "bucket": "day"}
        async with session.get(f"{url}/api/v1/admin/reports/usage", params=params) as answer:
            await answer.read()
            if answer.status != 200:
                raise RuntimeError(f"usage report answered {answer.status}")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def measure(server: ServerProcess, size: Size, phase_s: float, rates: tuple[float, float],
                  snapshot_every: int, quick: bool, cluster: Any = None, window_s: float = 0.0) -> dict[str, Any]:
    """The phases against `server`; with `cluster` (a triad, `server` its active member), the snapshot phase
    is a checkpoint phase and a member is made to fetch a peer's checkpoint (bench/_scale_triad.py). With
    `window_s`, the idle and console phases alternate in windows of about that long, `phase_s` of each in all."""
    recorder = Recorder()
    triad: dict[str, Any] = {}
    stop = asyncio.Event()
    url = server.url
    session = await console_session(url)
    assert server.process is not None
    clients = SiteClients(url, server.process.pid, size, recorder, rates)
    try:
        background = [asyncio.create_task(state_writes(server.data_dir, recorder, stop))]
        if not await asyncio.to_thread(clients.ready.wait, 120):
            raise RuntimeError("the site clients' process did not start")
        await asyncio.sleep(1.0)  # warm up: filed under "warm-up", not counted
        recorder.writing_s.clear()
        ticks = await loop_lateness(session, url)
        entered = recorder.phase

        async def enter(phase: str) -> None:
            """Leave the phase entered last (filing the server loop's ticks since under it), enter `phase`."""
            nonlocal ticks, entered
            now = await loop_lateness(session, url)
            for bound, count in now.items():
                recorder.late_ticks[entered][bound] += count - ticks.get(bound, 0)
            ticks, entered = now, phase
            recorder.phase = phase
        windows = max(1, round(phase_s / window_s)) if window_s > 0 else 1
        each_s = phase_s / windows
        log(f"{size.name}: idle and console phases (the console: every page, fragment and admin list, repeatedly), "
            f"{windows} window(s) of {each_s:.0f} s each, alternating")
        for _ in range(windows):
            await enter("idle")
            await asyncio.sleep(each_s)
            await enter("console")
            await browse(session, url, recorder, time.perf_counter() + each_s)
        if cluster is None:
            log(f"{size.name}: snapshot phase")
            await enter("snapshot")
            snapshot_load_s = await force_snapshot(url, size, snapshot_every)
        else:
            log(f"{size.name}: checkpoint phase (until the active member wrote two checkpoints)")
            await enter("checkpoint")
            started = time.perf_counter()
            triad["checkpoints_seen"] = await wait_checkpoints(server.data_dir / CHECKPOINT_FILE, 2, 120)
            snapshot_load_s = time.perf_counter() - started
            log(f"{size.name}: peer checkpoint phase (the tertiary away past a compaction, then back)")
            await enter("away")
            triad.update(await peer_checkpoint(cluster, recorder))
        await enter("after")
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*background)
        await clients.stop()
        leases_per_s = await heartbeat_batches(url, size, 5 if quick else 100)
        report_s = await report_seconds(session, url)
    finally:
        clients.kill()
        await session.close()
    pages = {
        path: {"p95_ms": ms(percentile(times, 0.95)), "n": len(times), "kb": round(recorder.page_bytes[path] / 1024, 1)}
        for path, times in recorder.pages.items()
    }
    phases = ("idle", "console", "snapshot") if cluster is None else ("idle", "console", "checkpoint", "away",
                                                                       "peer_checkpoint")
    stalls = {phase: ms(recorder.stall(phase)) for phase in phases}
    own_stalls = {phase: ms(recorder.stall_less_cpu_wait(phase)) for phase in phases}
    loop_phases = [phase for phase in phases if phase != "peer_checkpoint"]  # filed under "away", entered before it
    return {
        "leases": size.leases,
        "printers": size.printers,
        "usage_rows": size.usage_rows,
        "client_p99_ms_idle": ms(percentile(recorder.client["idle"], 0.99)),
        "client_p99_ms_console_open": ms(percentile(recorder.client["console"], 0.99)),
        "client_max_ms_console_open": ms(max(recorder.client["console"], default=None)),
        "client_requests": {phase: len(v) for phase, v in recorder.client.items()},
        "client_errors": dict(recorder.client_errors),
        "max_stall_ms": max((s for s in stalls.values() if s is not None), default=None),
        "stall_ms_by_phase": stalls,
        # Of the longest gap of each phase, the time the server's loop thread was ready to run and waited for a
        # processor (its /proc schedstat, read by the probe with each answer); and the longest gap less that wait,
        # the time the server itself held its loop. On this machine the clients, the bench and (--triad) the other
        # members and the etcds share two processors; on a site each has its own.
        "stall_cpu_wait_ms_by_phase": {phase: ms(recorder.stall_cpu_wait(phase)) for phase in phases},
        "stall_less_cpu_wait_ms_by_phase": own_stalls,
        "max_stall_ms_less_cpu_wait": max((s for s in own_stalls.values() if s is not None), default=None),
        # The server's own event loop (`licentia_event_loop_lateness_seconds`): by phase, the histogram bound that
        # held its latest tick, and how many ticks were over 50 ms. A probe gap with no late tick is not the loop.
        "server_loop_late_ms_by_phase": {phase: recorder.loop_late_ms(phase) for phase in loop_phases},
        "server_loop_ticks_over_50ms_by_phase": {phase: recorder.loop_late_over(phase, 0.05) for phase in loop_phases},
        "state_written_s_by_phase": {phase: round(recorder.writing_s[phase], 1) for phase in phases},
        "page_p95_ms": max((p["p95_ms"] for p in pages.values() if p["p95_ms"] is not None), default=None),
        "worst_page": max(pages, key=lambda path: pages[path]["p95_ms"] or 0) if pages else None,
        "pages": pages,
        "snapshot_phase_s": round(snapshot_load_s, 2),
        "heartbeat_batch_leases_per_s": round(leases_per_s),
        "report_s": round(report_s, 3),
        **({"triad": triad, "client_p99_ms_by_phase": {phase: ms(percentile(recorder.client[phase], 0.99))
                                                       for phase in phases}} if cluster is not None else {}),
    }


def run_size(size: Size, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    data_dir = workdir / size.name / "server"
    issuer = Issuer()
    log(f"{size.name}: loading {size.leases} leases, {size.printers} printers, ~{size.usage_rows} usage rows")
    started = time.perf_counter()
    extra = max(0, size.usage_rows - size.leases - size.printers)
    commands = load_site(data_dir, issuer, Site(printers=size.printers, leases=size.leases, extra_prints=extra,
                                                 clients=1000, lease_ttl_s=7 * 86400))
    load_s = time.perf_counter() - started
    # The site was built in this process: the loader's state is garbage in reference cycles now, and the
    # collector's first full pass over it would stop this process (its probe and its clients) for a second
    # in the middle of a phase, counted as the server's stall. Collected here, before anything is measured.
    gc.collect()
    gc.freeze()  # what is left (the loader's modules and caches): this process's full passes would stop its pages
    # The loader's hundreds of megabytes are still being written back to the disk: the server's first syncs would
    # wait behind them (ext4 commits them with its journal), counted as the server's stall. Written out first.
    os.sync()
    log(f"{size.name}: {commands} commands loaded in {load_s:.1f} s; starting the server")
    config = workdir / size.name / "licentia.toml"
    config.write_text(f"[server]\nsnapshot_every = {args.snapshot_every}\n")
    server = ServerProcess(data_dir, extra_args=["--config", str(config)])
    started = time.perf_counter()
    server.start(timeout=900)
    restart_s = time.perf_counter() - started
    try:
        result = asyncio.run(measure(server, size, args.phase_s, (args.heartbeat_rate, args.print_rate),
                                     args.snapshot_every, args.quick, window_s=args.window_s))
        assert server.process is not None
        rss, peak = rss_mb(server.process.pid)
    finally:
        server.stop(timeout=120)
    result.update(
        load_s=round(load_s, 1),
        restart_s=round(restart_s, 2),
        rss_mb=None if rss is None else round(rss),
        peak_rss_mb=None if peak is None else round(peak),
        data_dir_mb=round(dir_mb(data_dir)),
    )
    if store_figures is not None:
        result["store"] = store_figures(workdir / size.name / "store", size.leases, size.printers, size.usage_rows,
                                        args.quick)
    log(f"{size.name}: {json.dumps({k: v for k, v in result.items() if k != 'pages'})}")
    return result


async def triad_phases(server: ServerProcess, size: Size, args: argparse.Namespace, cluster: Any) -> dict[str, Any]:
    """`measure` against a triad's active member (`run_triad_size` builds and starts the triad)."""
    return await measure(server, size, args.phase_s, (args.heartbeat_rate, args.print_rate), args.snapshot_every,
                         args.quick, cluster, window_s=args.window_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small site and short phases (CI smoke run)")
    parser.add_argument("--sizes", default="10k,100k,300k", help=f"comma-separated, of: {', '.join(SIZES)}")
    parser.add_argument("--phase-s", type=float, default=10.0, help="seconds of the idle and console phases")
    parser.add_argument("--window-s", type=float, default=5.0,
                        help="the idle and console phases alternate in windows of about this many seconds, so "
                        "that the machine's drift over a run falls on both alike; 0: all the idle phase, then all "
                        "the console phase (before 2026-12-07)")
    parser.add_argument("--heartbeat-rate", type=float, default=333.0, help="heartbeat requests/s (one lease each)")
    parser.add_argument("--print-rate", type=float, default=100.0, help="print checks/s")
    parser.add_argument("--snapshot-every", type=int, default=10_000, help="the server's snapshot_every")
    parser.add_argument("--workdir", type=Path, help="keep the data directories here (default: a temporary one)")
    parser.add_argument("--triad", action="store_true", help="a triad of three servers instead of one "
                        "(bench/_scale_triad.py): checkpoints, compaction and a peer's checkpoint under load")
    parser.add_argument("--checkpoint-after-s", type=float, default=None,
                        help="with --triad: each member's seconds between checkpoints (default 4, a stress; "
                        "the product's default is 20)")
    args = parser.parse_args()
    if args.quick:
        sizes = [QUICK]
        args.phase_s, args.snapshot_every = min(args.phase_s, 2.0), min(args.snapshot_every, 500)
    else:
        sizes = [SIZES[name.strip()] for name in args.sizes.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="licentia-scale-"))
    results: dict[str, Any] = {}
    reports: dict[str, Any] = {}
    try:
        for size in sizes:
            if args.triad:
                results[size.name] = run_triad_size(size, workdir, args, triad_phases)
            else:
                results[size.name] = run_size(size, workdir, args)
        if report_figures is not None and not args.triad:
            reports = report_figures(workdir / "reports", [2_000, 20_000] if args.quick else [10_000, 1_000_000])
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    def figure(name: str, key: str) -> Any:
        return results.get(name, {}).get(key)

    largest = sizes[-1].name
    summary = {
        "max_stall_ms": max((r["max_stall_ms"] for r in results.values() if r["max_stall_ms"] is not None),
                            default=None),
        "max_stall_ms_less_cpu_wait": max((r["max_stall_ms_less_cpu_wait"] for r in results.values()
                                           if r["max_stall_ms_less_cpu_wait"] is not None), default=None),
        "stall_cpu_wait_ms_by_phase": figure(largest, "stall_cpu_wait_ms_by_phase"),
        "stall_less_cpu_wait_ms_by_phase": figure(largest, "stall_less_cpu_wait_ms_by_phase"),
        "client_p99_ms_idle": figure(largest, "client_p99_ms_idle"),
        "client_p99_ms_console_open": figure(largest, "client_p99_ms_console_open"),
        "page_p95_ms": max((r["page_p95_ms"] for r in results.values() if r["page_p95_ms"] is not None), default=None),
        "rss_mb_300k": figure("300k", "rss_mb"),
        "data_dir_mb_300k": figure("300k", "data_dir_mb"),
        "restart_s_300k": figure("300k", "restart_s"),
        "report_s_1m_rows": figure("300k", "report_s") or reports.get("1000000_rows", {}).get("report_s"),
        "report_s_10k_rows": reports.get("10000_rows", {}).get("report_s"),
        "report_s_1m_rows_off_hour": reports.get("1000000_rows", {}).get("report_off_hour_s"),
        "report_rows_s_1m_rows_off_hour": reports.get("1000000_rows", {}).get("report_rows_s"),
        "reports": reports,
        "heartbeat_batch_leases_per_s": figure(largest, "heartbeat_batch_leases_per_s"),
        "server_loop_late_ms_by_phase": figure(largest, "server_loop_late_ms_by_phase"),
        "server_loop_ticks_over_50ms_by_phase": figure(largest, "server_loop_ticks_over_50ms_by_phase"),
        "largest_size": largest,
        "quick": args.quick,
        "triad": args.triad,
        "cpus": os.cpu_count(),
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "sizes": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
