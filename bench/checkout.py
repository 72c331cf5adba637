"""License-operation throughput and latency of a real Licentia server, against a bare Starlette echo baseline.

What it does (see bench/README.md):

1. starts `licentia serve` (tests/harness.py `ServerProcess`) on a fresh temporary data directory
   that trusts a throw-away issuer, and installs a seat license (CADStudio) and a printer license
   (LabelStudio) through the admin API;
2. starts bench/echo_app.py, a one-endpoint Starlette JSON echo served by uvicorn with the same
   settings as `licentia serve`, on another port;
3. loads each with the same aiohttp generator: N concurrent clients on one ClientSession whose
   connector limit is N. Licentia clients loop over checkout -> checkin -> print check (printer
   drawn from a pool); echo clients POST a JSON body of about the same size. Each HTTP request
   is one op and its latency is recorded;
4. SIGKILLs the server right after its load, restarts it on the same data directory and checks
   that the leases held and the usage log match what the server acknowledged;
5. prints progress on stderr and, as the last line of stdout, one JSON object with the results.

    python bench/checkout.py                 # defaults: 16 clients, 15 s per phase (~40 s in all)
    python bench/checkout.py --quick         # CI smoke run: a few seconds per phase
    python bench/checkout.py --concurrency 32 --duration 30
    python bench/checkout.py --tls           # also a second server over HTTPS (pinned certificate):
                                             # its ratio to the same echo baseline beside the plain one
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from harness import Issuer, ServerProcess, free_port  # noqa: E402

SEAT_PRODUCT = "CADStudio"
PRINTER_PRODUCT = "LabelStudio"
JSON_HEADERS = {"Content-Type": "application/json"}
# Kinds of license op; every acknowledged one writes exactly one usage-log row.
USAGE_KINDS = ("checkout", "checkin", "print")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- CPU accounting (Linux /proc; empty elsewhere) -----------------------------------------------
#
# The machine may run other work; what the host spent outside the benchmark's own processes is
# reported per phase (`other_pct`) so a noisy run can be told from a slow server. The server's CPU
# time per op is also less sensitive to that noise than ops/s.

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def host_ticks() -> dict[str, int] | None:
    """Jiffies the whole host spent since boot: in processes, in interrupts, stolen by the hypervisor, total."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return {"tasks": user + nice + system, "irq": irq + softirq, "steal": steal, "total": sum(values)}


def process_ticks(pid: int) -> int | None:
    """User + system jiffies of one process, all its threads."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


@dataclass
class CpuSample:
    at: float
    host: dict[str, int] | None
    procs: dict[str, int | None]

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSample:
        return cls(time.perf_counter(), host_ticks(), {name: process_ticks(pid) for name, pid in pids.items()})

    def usage_until(self, end: CpuSample, ops: int) -> dict[str, Any]:
        """CPU use between two samples, in % of one core, plus the server's CPU microseconds per op."""
        seconds = end.at - self.at
        if seconds <= 0 or self.host is None or end.host is None:
            return {}
        out: dict[str, Any] = {}
        ours = 0.0
        for name, before in self.procs.items():
            after = end.procs.get(name)
            if before is None or after is None:
                continue
            used = (after - before) / CLK_TCK
            ours += used
            out[f"{name}_pct"] = round(100 * used / seconds, 1)
            if name == "server" and ops:
                out["server_cpu_us_per_op"] = round(1e6 * used / ops, 1)
        spent = {key: (end.host[key] - self.host[key]) / CLK_TCK for key in end.host}
        # Other tasks: processes and kernel threads that are not ours (this includes the filesystem
        # journal thread that some fsyncs wake); interrupts: mostly loopback TCP softirqs.
        out["other_pct"] = round(max(0.0, 100 * (spent["tasks"] - ours) / seconds), 1)
        out["irq_pct"] = round(100 * spent["irq"] / seconds, 1)
        out["steal_pct"] = round(100 * spent["steal"] / seconds, 1)
        return out


def host_busy_now(seconds: float = 1.0) -> float | None:
    """% of the whole host (all cores) busy over the next `seconds`, before the benchmark loads it."""
    before = host_ticks()
    time.sleep(seconds)
    after = host_ticks()
    if before is None or after is None or after["total"] == before["total"]:
        return None
    busy = sum(after[key] - before[key] for key in ("tasks", "irq", "steal"))
    return round(100 * busy / (after["total"] - before["total"]), 1)


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1), as checkout.py, triad.py and backup.py report it; None for none."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class PhaseStats:
    name: str
    latencies: dict[str, list[float]] = field(default_factory=dict)  # seconds, per kind of request
    ok: Counter[str] = field(default_factory=Counter)  # 2xx answers per kind of request
    errors: Counter[str] = field(default_factory=Counter)  # non-2xx answers and transport errors per kind
    error_samples: list[str] = field(default_factory=list)
    leases_taken: int = 0  # checkouts acknowledged
    leases_returned: int = 0  # checkins acknowledged
    elapsed: float = 0.0
    cpu: dict[str, Any] = field(default_factory=dict)

    @property
    def ok_total(self) -> int:
        return sum(self.ok.values())

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def fail(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{kind}: {what}")

    @staticmethod
    def percentile_ms(ordered: list[float], q: float) -> float | None:
        """Nearest-rank percentile of latencies, in milliseconds."""
        value = percentile(ordered, q)
        return None if value is None else round(value * 1000, 3)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(value for values in self.latencies.values() for value in values)
        by_kind = {}
        for kind, values in sorted(self.latencies.items()):
            values = sorted(values)
            by_kind[kind] = {"ok": self.ok[kind], "errors": self.errors[kind],
                             "p50_ms": self.percentile_ms(values, 0.50), "p99_ms": self.percentile_ms(values, 0.99)}
        return {
            "ops": self.ok_total,
            "errors": self.error_total,
            "ops_per_s": round(self.ok_total / self.elapsed, 1) if self.elapsed else 0.0,
            "elapsed_s": round(self.elapsed, 3),
            "p50_ms": self.percentile_ms(ordered, 0.50),
            "p90_ms": self.percentile_ms(ordered, 0.90),
            "p99_ms": self.percentile_ms(ordered, 0.99),
            "p999_ms": self.percentile_ms(ordered, 0.999),
            "max_ms": round(ordered[-1] * 1000, 3) if ordered else None,
            "mean_ms": round(sum(ordered) / len(ordered) * 1000, 3) if ordered else None,
            "by_kind": by_kind,
            "cpu": self.cpu,
        }


# -- the load generator --------------------------------------------------------------------------


async def timed_request(
    session: aiohttp.ClientSession, stats: PhaseStats, kind: str, method: str, url: str, body: bytes | None
) -> tuple[int, bytes] | None:
    """One HTTP request; its latency is recorded. Returns (status, body) of a 2xx answer, else None."""
    started = time.perf_counter()
    try:
        async with session.request(
            method, url, data=body, headers=JSON_HEADERS if body is not None else None
        ) as response:
            payload = await response.read()
            status = response.status
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        stats.fail(kind, repr(exc))
        return None
    stats.latencies.setdefault(kind, []).append(time.perf_counter() - started)
    if 200 <= status < 300:
        stats.ok[kind] += 1
        return status, payload
    stats.fail(kind, f"HTTP {status} {payload[:200]!r}")
    return None


Worker = Callable[[aiohttp.ClientSession, PhaseStats, int, float], Awaitable[None]]


def printer_pool(size: int) -> list[dict[str, str]]:
    return [
        {
            "name": f"BENCH-PRN-{n:03d}",
            "driver": "ZDesigner ZT410-203dpi ZPL",
            "port": f"IP_10.20.{n // 250}.{n % 250 + 1}",
            "location": f"Warehouse {n % 5 + 1}",
        }
        for n in range(size)
    ]


def client_info(worker: int) -> dict[str, str]:
    return {"host": f"bench-ws-{worker:03d}", "user": f"operator{worker:03d}", "application": "licentia-bench",
            "version": "1.0.0"}


def license_worker(base_url: str, printers: list[dict[str, str]]) -> Worker:
    checkout_url = f"{base_url}/api/v1/leases"
    print_url = f"{base_url}/api/v1/print-checks"

    async def run(session: aiohttp.ClientSession, stats: PhaseStats, worker: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        client = client_info(worker)
        prefix = f"bench-{uuid.uuid4().hex[:8]}-{worker}"
        n = 0
        while loop.time() < deadline:
            body = json.dumps({"product": SEAT_PRODUCT, "client": client, "request_id": f"{prefix}-{n}"})
            answer = await timed_request(session, stats, "checkout", "POST", checkout_url, body.encode())
            if answer is not None:
                stats.leases_taken += 1
                status, payload = answer
                lease = json.loads(payload)
                if status != 201 or lease.get("repeated"):
                    stats.fail("checkout", f"unique request_id answered as a repeat: HTTP {status}")
                returned = await timed_request(
                    session, stats, "checkin", "DELETE", f"{checkout_url}/{lease['lease_id']}", None
                )
                if returned is not None:
                    stats.leases_returned += 1
            printer = printers[(worker * 7 + n) % len(printers)]
            body = json.dumps({"product": PRINTER_PRODUCT, "printer": printer, "client": client})
            await timed_request(session, stats, "print", "POST", print_url, body.encode())
            n += 1

    return run


def echo_worker(base_url: str) -> Worker:
    url = f"{base_url}/echo"

    async def run(session: aiohttp.ClientSession, stats: PhaseStats, worker: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        client = client_info(worker)
        prefix = f"bench-{uuid.uuid4().hex[:8]}-{worker}"
        n = 0
        while loop.time() < deadline:
            # The same shape and size as a checkout body.
            body = json.dumps({"product": SEAT_PRODUCT, "client": client, "request_id": f"{prefix}-{n}"})
            answer = await timed_request(session, stats, "echo", "POST", url, body.encode())
            if answer is not None and n == 0 and json.loads(answer[1]) != json.loads(body):
                stats.fail("echo", "the echo answer differs from the request body")
            n += 1

    return run


async def run_phase(
    session: aiohttp.ClientSession, name: str, worker: Worker, concurrency: int, duration: float, server_pid: int
) -> PhaseStats:
    """`concurrency` clients run `worker` until `duration` seconds have passed."""
    stats = PhaseStats(name)
    loop = asyncio.get_running_loop()
    pids = {"server": server_pid, "client": os.getpid()}
    cpu_before = CpuSample.take(pids)
    started = time.perf_counter()
    deadline = loop.time() + duration
    tasks = [asyncio.create_task(worker(session, stats, i, deadline)) for i in range(concurrency)]

    async def progress() -> None:
        last_ops, last_time = 0, started
        while True:
            await asyncio.sleep(1.0)
            now, ops = time.perf_counter(), stats.ok_total
            log(
                f"  {name}: {now - started:5.1f}s {ops:>8} ops  {(ops - last_ops) / (now - last_time):8.0f} ops/s"
                f"  errors {stats.error_total}"
            )
            last_ops, last_time = ops, now

    reporter = asyncio.create_task(progress())
    try:
        await asyncio.gather(*tasks)
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        for task in tasks:
            task.cancel()
    stats.elapsed = time.perf_counter() - started
    stats.cpu = cpu_before.usage_until(CpuSample.take(pids), stats.ok_total)
    log(f"  {name}: done, {stats.ok_total / stats.elapsed:.0f} ops/s, CPU {json.dumps(stats.cpu)}")
    return stats


async def load(
    args: argparse.Namespace,
    licentia: tuple[str, int],
    echo: tuple[str, int],
    on_license_phase: Callable[[], None] | None = None,
) -> tuple[PhaseStats, PhaseStats, list[PhaseStats]]:
    """Warm up and measure echo, then Licentia. Returns (license, echo, every Licentia phase incl. warm-up)."""
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    printers = printer_pool(args.printers)
    (licentia_url, licentia_pid), (echo_url, echo_pid) = licentia, echo
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        log(f"echo: warm-up {args.warmup:g}s")
        await run_phase(session, "echo warm-up", echo_worker(echo_url), args.concurrency, args.warmup, echo_pid)
        log(f"echo: measuring {args.duration:g}s with {args.concurrency} clients")
        echo_stats = await run_phase(
            session, "echo", echo_worker(echo_url), args.concurrency, args.duration, echo_pid
        )
        log(f"licentia: warm-up {args.warmup:g}s")
        worker = license_worker(licentia_url, printers)
        warm = await run_phase(session, "licentia warm-up", worker, args.concurrency, args.warmup, licentia_pid)
        log(f"licentia: measuring {args.duration:g}s with {args.concurrency} clients")
        if on_license_phase is not None:
            on_license_phase()
        lic = await run_phase(session, "licentia", worker, args.concurrency, args.duration, licentia_pid)
    return lic, echo_stats, [warm, lic]


async def load_tls(args: argparse.Namespace, licentia: tuple[str, int], context: ssl.SSLContext) -> PhaseStats:
    """Warm up and measure the same license work against a server that answers over HTTPS."""
    connector = aiohttp.TCPConnector(limit=args.concurrency, ssl=context)
    timeout = aiohttp.ClientTimeout(total=30)
    worker = license_worker(licentia[0], printer_pool(args.printers))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        log(f"licentia over HTTPS: warm-up {args.warmup:g}s")
        await run_phase(session, "licentia tls warm-up", worker, args.concurrency, args.warmup, licentia[1])
        log(f"licentia over HTTPS: measuring {args.duration:g}s with {args.concurrency} clients")
        return await run_phase(session, "licentia tls", worker, args.concurrency, args.duration, licentia[1])


# -- processes -----------------------------------------------------------------------------------


def start_echo(port: int, log_path: Path, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "echo_app.py"), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"echo app exited with {process.returncode}: {log_path.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=0.5).status_code == 200:
                return process
        time.sleep(0.05)
    stop_process(process)
    raise RuntimeError(f"echo app did not start in {timeout}s: {log_path.read_text()}")


def stop_process(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop one child by its PID: `sig` first, SIGKILL if it does not exit in time."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


def install_licenses(server: ServerProcess, issuer: Issuer, seats: int, printers: int) -> dict[str, str]:
    ids = {"seats": f"BENCH-SEATS-{uuid.uuid4().hex[:6]}", "printers": f"BENCH-PRN-{uuid.uuid4().hex[:6]}"}
    with server.admin() as admin:
        for unit, product, count in (("seats", SEAT_PRODUCT, seats), ("printers", PRINTER_PRODUCT, printers)):
            body = issuer.license_bytes(license_id=ids[unit], product=product, unit=unit, count=count,
                                        edition="Benchmark", customer="Bench Customer")
            answer = admin.post("/api/v1/admin/licenses", content=body, headers=JSON_HEADERS)
            if answer.status_code != 201:
                raise RuntimeError(f"installing the {unit} license failed: {answer.status_code} {answer.text}")
            log(f"installed {unit} license {ids[unit]}: {product} x {count}")
    return ids


# -- durability check ----------------------------------------------------------------------------


def durability_check(
    server: ServerProcess, license_ids: dict[str, str], phases: list[PhaseStats]
) -> dict[str, Any]:
    """Compare what a restarted server holds with what the killed one acknowledged."""
    acked = Counter[str]()
    for phase in phases:
        acked.update({kind: phase.ok[kind] for kind in USAGE_KINDS})
    leases_expected = sum(p.leases_taken - p.leases_returned for p in phases)
    acked_usage_ops = sum(acked.values())
    with server.admin() as admin:
        leases = admin.get("/api/v1/admin/leases").json()["leases"]
        status = admin.get("/api/v1/admin/status").json()
        newest = admin.get("/api/v1/admin/usage", params={"limit": 1}).json()["records"]
        seat = admin.get(f"/api/v1/admin/licenses/{license_ids['seats']}").json()
        printer = admin.get(f"/api/v1/admin/licenses/{license_ids['printers']}").json()
    # Usage ids are AUTOINCREMENT and nothing was pruned, so the newest id is the number of rows written.
    usage_rows = newest[0]["id"] if newest else 0
    # A cross-check straight from the database (read-only; WAL allows it while the server runs).
    by_kind: dict[str, int] = {}
    with contextlib.closing(sqlite3.connect(f"file:{server.data_dir / 'licentia.db'}?mode=ro", uri=True)) as db:
        by_kind = dict(db.execute("SELECT kind, count(*) FROM usage GROUP BY kind").fetchall())
    kinds_ok = all(by_kind.get(kind, 0) >= acked[kind] for kind in USAGE_KINDS)
    durable = (
        len(leases) == leases_expected
        and status["active_leases"] == leases_expected
        and seat["used"] == leases_expected
        and usage_rows >= acked_usage_ops
        and kinds_ok
    )
    return {
        "durable_check": durable,
        "durable_compared": {
            "leases_held_expected": leases_expected,
            "leases_after_restart": len(leases),
            "active_leases_status": status["active_leases"],
            "seat_license_used_after_restart": seat["used"],
            "printer_license_used_after_restart": printer["used"],
            "acked_usage_ops": acked_usage_ops,
            "usage_rows_after_restart": usage_rows,
            "acked_by_kind": dict(acked),
            "usage_rows_by_kind": by_kind,
            "journal_index": status["journal_index"],
        },
    }


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Licentia license-operation benchmark against a Starlette echo.")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients and connections (16)")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds per phase (15; --quick 3)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per phase (3; --quick 1)")
    parser.add_argument("--quick", action="store_true", help="a few seconds per phase, for a CI smoke run")
    parser.add_argument("--durability", choices=["FULL", "NORMAL", "EXTRA"], default="FULL",
                        help="the server's SQLite synchronous setting (FULL, the default)")
    parser.add_argument("--printers", type=int, default=50, help="size of the printer pool (50)")
    parser.add_argument("--seats", type=int, default=100_000, help="seat license count (100000)")
    parser.add_argument("--printer-count", type=int, default=1000, help="printer license count (1000)")
    parser.add_argument("--profile", metavar="SVG",
                        help="record the server with py-spy during the measured Licentia phase (slows it down); "
                             ".svg: flame graph, .json: speedscope, else collapsed stacks")
    parser.add_argument("--tls", action="store_true",
                        help="also measure a second server that answers over HTTPS (self-signed, pinned)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory and logs")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 3.0 if args.quick else 15.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 3.0
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0 or args.printers < 1:
        parser.error("--concurrency and --printers must be at least 1, --duration positive")
    if args.printer_count < args.printers:
        parser.error("--printer-count must cover the printer pool")
    return args


def code_version() -> dict[str, Any]:
    """The commit measured and whether src/ differs from it (read-only git: no index refresh, no locks)."""
    root = BENCH_DIR.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "--no-optional-locks", *args], cwd=root, capture_output=True,
                                  text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD")
    changes = git("status", "--porcelain", "--", "src")
    return {"commit": commit, "src_modified": bool(changes) if changes is not None else None}


def run_event_loop(coro: Awaitable[Any]) -> Any:
    """The generator runs on uvloop when it is there, like the servers, so the client side costs less CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]


def start_profiler(pid: int, svg: str, seconds: float) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    # The output format follows the file name: .svg flame graph, .json speedscope, anything else
    # collapsed stacks ("raw", one line per stack with its sample count).
    fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(Path(svg).suffix.lower(), "raw")
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--output", svg, "--format", fmt,
         "--duration", str(math.ceil(seconds)), "--rate", "250", "--threads"],
        stdout=sys.stderr, stderr=sys.stderr,
    )


def tls_figures(tls: dict[str, Any], plain: dict[str, Any], echo: dict[str, Any]) -> dict[str, Any]:
    """The HTTPS server's figures beside the plain one's, both against the same (plain) echo baseline."""
    return {
        "tls_license_ops_per_s": tls["ops_per_s"],
        "tls_ratio": round(tls["ops_per_s"] / echo["ops_per_s"], 3) if echo["ops_per_s"] else 0.0,
        "tls_vs_plain": round(tls["ops_per_s"] / plain["ops_per_s"], 3) if plain["ops_per_s"] else 0.0,
        "tls_p50_ms": tls["p50_ms"],
        "tls_p99_ms": tls["p99_ms"],
        "tls": tls,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C so that `finally` stops the child processes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    workdir = Path(tempfile.mkdtemp(prefix="licentia-bench-"))
    data_dir = workdir / "server"
    server: ServerProcess | None = None
    tls_server: ServerProcess | None = None
    restarted: ServerProcess | None = None
    echo: subprocess.Popen[bytes] | None = None
    profiler: subprocess.Popen[bytes] | None = None
    started = time.perf_counter()
    try:
        issuer = Issuer()
        issuer.trust_in(data_dir)
        extra: list[str] = []
        if args.durability != "FULL":
            config = workdir / "licentia.toml"
            config.write_text(f'[server]\ndurability = "{args.durability}"\n')
            extra = ["--config", str(config)]
        server = ServerProcess(data_dir, extra_args=extra)
        server.start()
        log(f"licentia pid {server.process.pid} on {server.url}, data {data_dir}, durability {args.durability}")
        license_ids = install_licenses(server, issuer, args.seats, args.printer_count)
        echo_port = free_port()
        echo = start_echo(echo_port, workdir / "echo.log")
        echo_url = f"http://127.0.0.1:{echo_port}"
        log(f"echo pid {echo.pid} on {echo_url}")
        targets, echo_target = (server.url, server.process.pid), (echo_url, echo.pid)
        busy_before = host_busy_now()
        log(f"host busy before the load: {busy_before}% of all cores")
        if busy_before is not None and busy_before > 10:
            log("WARNING: something else is using the CPU; the figures will be low and noisy")

        def start_py_spy() -> None:
            nonlocal profiler
            profiler = start_profiler(targets[1], args.profile, args.duration)

        lic, echo_stats, license_phases = run_event_loop(
            load(args, targets, echo_target, start_py_spy if args.profile else None)
        )
        tls_stats: PhaseStats | None = None
        if args.tls:
            tls_dir = workdir / "server-tls"
            issuer.trust_in(tls_dir)
            tls_server = ServerProcess(tls_dir, extra_args=extra, tls=True)
            tls_server.start()
            install_licenses(tls_server, issuer, args.seats, args.printer_count)
            context = tls_server.verify
            assert isinstance(context, ssl.SSLContext)
            log(f"licentia over HTTPS pid {tls_server.process.pid} on {tls_server.url}")
            tls_stats = run_event_loop(load_tls(args, (tls_server.url, tls_server.process.pid), context))
            stop_process(tls_server.process)

        # Kill at once: nothing may reach the server between its last answer and the crash.
        log(f"SIGKILL licentia pid {server.process.pid}")
        server.kill()
        stop_process(echo)
        if profiler is not None:
            profiler.wait(60)
        restarted = ServerProcess(data_dir, port=server.port, extra_args=extra)
        restarted.start()
        log(f"restarted licentia pid {restarted.process.pid} on the same data directory")
        durability = durability_check(restarted, license_ids, license_phases)
        log(f"durability: {json.dumps(durability)}")

        license_summary, echo_summary = lic.summary(), echo_stats.summary()
        errors = sum(p.error_total for p in license_phases) + (tls_stats.error_total if tls_stats else 0)
        for phase in (*license_phases, echo_stats):
            for sample in phase.error_samples:
                log(f"error sample ({phase.name}): {sample}")
        other = {"license": license_summary["cpu"].get("other_pct"), "echo": echo_summary["cpu"].get("other_pct")}
        ratio = license_summary["ops_per_s"] / echo_summary["ops_per_s"] if echo_summary["ops_per_s"] else 0.0
        result = {
            "license_ops_per_s": license_summary["ops_per_s"],
            "echo_ops_per_s": echo_summary["ops_per_s"],
            "ratio": round(ratio, 3),
            "p50_ms": license_summary["p50_ms"],
            "p99_ms": license_summary["p99_ms"],
            "echo_p50_ms": echo_summary["p50_ms"],
            "echo_p99_ms": echo_summary["p99_ms"],
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "errors": errors,
            "echo_errors": echo_stats.error_total,
            "durability": args.durability,
            **durability,
            "server_cpu_us_per_op": license_summary["cpu"].get("server_cpu_us_per_op"),
            "echo_server_cpu_us_per_op": echo_summary["cpu"].get("server_cpu_us_per_op"),
            "other_cpu_pct": other,
            # Other work on the host took more than a tenth of a core during a measured phase.
            "noisy": any(
                (phase["cpu"].get("other_pct") or 0) > 10 or (phase["cpu"].get("steal_pct") or 0) > 10
                for phase in (license_summary, echo_summary)
            ),
            "target_met": {
                "ratio_ge_0.5": ratio >= 0.5,
                "p99_lt_10ms": license_summary["p99_ms"] is not None and license_summary["p99_ms"] < 10,
            },
            "license": license_summary,
            "echo": echo_summary,
            **(tls_figures(tls_stats.summary(), license_summary, echo_summary) if tls_stats else {}),
            "host_busy_before_pct": busy_before,
            "code": code_version(),
            "profiled": bool(args.profile),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "total_s": round(time.perf_counter() - started, 1),
        }
        print(json.dumps(result), flush=True)
        return 0 if errors == 0 and durability["durable_check"] else 1
    finally:
        for process in (server.process if server else None, restarted.process if restarted else None, echo,
                        tls_server.process if tls_server else None):
            stop_process(process)
        stop_process(profiler, signal.SIGINT)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
