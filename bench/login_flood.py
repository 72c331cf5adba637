"""What wrong admin passwords sent by a few clients cost everyone else: p50 of GET /api/v1/server, quiet vs flooded.

What it does (see bench/README.md):

1. starts `licentia serve` (tests/harness.py `ServerProcess`) on a fresh temporary data directory;
2. quiet phase: one aiohttp client requests GET /api/v1/server every 10 ms and records each latency;
3. flood phase: the same sampling while 3 aiohttp clients send GET /api/v1/admin/me with HTTP Basic
   credentials of the `admin` user and a wrong password, as fast as they are answered (the issue's
   scenario: every such request used to run scrypt on the event loop);
4. spread flood phase: the same, but each wrong request comes from another loopback source address
   (127.x.y.z) for another user name, so no failed-login lock ever applies and every request costs a
   full password check: what the worker threads alone buy;
5. prints progress on stderr and, as the last line of stdout, one JSON object: the p50/p99 of each
   phase, the ratios flooded/quiet (`ratio` is the flood phase's p50 over the quiet p50), and the
   flood's answers by status.

    python bench/login_flood.py            # 5 s per phase
    python bench/login_flood.py --quick    # CI smoke run: 2 s per phase (~10 s in all)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from harness import ServerProcess  # noqa: E402

FLOOD_CLIENTS = 3
SAMPLE_INTERVAL_S = 0.01


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def sample(url: str, seconds: float) -> list[float]:
    """Latencies (s) of GET /api/v1/server, one request every SAMPLE_INTERVAL_S for `seconds`."""
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.get(f"{url}/api/v1/server") as answer:
                await answer.read()
                assert answer.status == 200, answer.status
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(SAMPLE_INTERVAL_S)
    return latencies


async def flood_one_address(url: str, n: int, stop: asyncio.Event, statuses: Counter[int]) -> None:
    headers = basic("admin", f"wrong-password-{n}")
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(f"{url}/api/v1/admin/me", headers=headers) as answer:
                await answer.read()
                statuses[answer.status] += 1


async def flood_spread(url: str, n: int, stop: asyncio.Event, statuses: Counter[int]) -> None:
    """Each request from a new loopback address, for a new user name: no lock ever applies."""
    for i in itertools.count():
        if stop.is_set():
            return
        address = f"127.{100 + n}.{(i // 250) % 250}.{i % 250 + 1}"
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            headers = basic(f"guess-{n}-{i}", "wrong-password")
            async with session.get(f"{url}/api/v1/admin/me", headers=headers) as answer:
                await answer.read()
                statuses[answer.status] += 1


async def flooded(url: str, seconds: float, spread: bool) -> tuple[list[float], Counter[int]]:
    stop = asyncio.Event()
    statuses: Counter[int] = Counter()
    flood = flood_spread if spread else flood_one_address
    tasks = [asyncio.create_task(flood(url, n, stop, statuses)) for n in range(FLOOD_CLIENTS)]
    await asyncio.sleep(0.3)  # let the flood start
    try:
        latencies = await sample(url, seconds)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await task
    return latencies, statuses


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "samples": len(latencies),
    }


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


async def run(url: str, seconds: float) -> dict[str, Any]:
    log(f"quiet phase: GET /api/v1/server every {SAMPLE_INTERVAL_S * 1000:.0f} ms for {seconds:.0f} s")
    quiet = summary(await sample(url, seconds))
    log(f"quiet p50 {quiet['p50_ms']} ms; flood phase: {FLOOD_CLIENTS} clients with wrong Basic credentials")
    latencies, statuses = await flooded(url, seconds, spread=False)
    flood = {**summary(latencies), "answers": {str(k): v for k, v in sorted(statuses.items())}}
    log(f"flood p50 {flood['p50_ms']} ms {flood['answers']}; spread flood phase: a new address and name each time")
    latencies, statuses = await flooded(url, seconds, spread=True)
    spread = {**summary(latencies), "answers": {str(k): v for k, v in sorted(statuses.items())}}
    log(f"spread flood p50 {spread['p50_ms']} ms {spread['answers']}")
    return {
        "quiet": quiet,
        "flood": flood,
        "spread_flood": spread,
        "ratio": round(flood["p50_ms"] / quiet["p50_ms"], 2),
        "spread_ratio": round(spread["p50_ms"] / quiet["p50_ms"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s per phase (CI smoke run)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase (default 5)")
    args = parser.parse_args()
    seconds = args.duration or (2.0 if args.quick else 5.0)
    with tempfile.TemporaryDirectory(prefix="licentia-login-flood-") as work:
        server = ServerProcess(Path(work) / "server")
        server.start()
        try:
            results = asyncio.run(run(server.url, seconds))
        finally:
            server.kill()
    print(
        json.dumps(
            {
                "benchmark": "login_flood",
                "commit": commit(),
                "seconds_per_phase": seconds,
                "flood_clients": FLOOD_CLIENTS,
                **results,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
