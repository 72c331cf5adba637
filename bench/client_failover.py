"""Client SDK failover benchmark: how long an application using the SDK goes without an answer when
the triad member it is using dies (SIGKILL) or hangs (SIGSTOP).

What it does (see bench/README.md, "client_failover.py"):

1. Starts a triad of real `licentia serve` processes (tests/harness.py `TriadCluster`, default
   active-record TTL 0.8 s) and installs a printer license through the primary.
2. One `AsyncLicenseClient`, given only ONE address (the primary's by default, `--seed`) and its own
   empty cache directory, loops print checks (`--interval` pause between calls) in this process.
   Every SDK call is recorded (sent, returned, success / offline / error), and so is every HTTP
   attempt the SDK makes underneath (which member, how long, status or exception).
3. Each trial waits until the primary is active and the client's latest successful call was sent
   after that (so the client is using the primary), waits a random 0-0.3 s, then signals the primary:
   SIGKILL (kill trials) or SIGSTOP (hang trials, a host that stops answering but whose port still
   accepts connections); kill and hang trials alternate. The gap is the time from the signal to the
   return of the client's first successful SDK call whose answering HTTP request was sent after the
   signal (so a call in flight at the signal counts once it has failed over; an answer to a request
   sent before the signal does not). An offline (grace) answer is not a success.
   Then the primary is restarted (kill) or resumed with SIGCONT (hang), and the next trial waits for
   it to be active again and for the client to be back on it.
4. Progress goes to stderr; the last line of stdout is one JSON object. No new trial starts after
   `--budget` seconds (140) once 10 of each kind are done, so a default run stays under 3 minutes.

Every server process is stopped by its PID in a `finally` (SIGCONT first, then SIGKILL); Ctrl-C and
SIGTERM included. The temporary directory is removed unless `--keep`.

    python bench/client_failover.py                 # 15 kill + 15 hang trials, ~75 s (at most ~2.5 min)
    python bench/client_failover.py --quick         # CI smoke run: 2 + 2 trials, < 60 s
    python bench/client_failover.py --trials 20
    python bench/client_failover.py | tail -1 | python -m json.tool
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from harness import Issuer, TriadCluster  # noqa: E402

from licentia.client import AsyncLicenseClient  # noqa: E402

PRODUCT = "LabelStudio"
CHECK_PATH = "/api/v1/print-checks"
KILL_TARGET_S = 1.0
HANG_TARGET_S = 3.0
TRIAL_TIMEOUT_S = 20.0
MIN_TRIALS = 10  # the time budget never cuts a run below this many trials of each kind


def log(message: str) -> None:
    print(f"[client-failover {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- recording what the client does --------------------------------------------------------------


@dataclass
class Attempt:
    """One HTTP request the SDK made: to which member, when, and what came of it."""

    url: str
    path: str
    sent: float
    done: float
    outcome: str  # the status code, or the exception's class name


@dataclass
class Call:
    """One SDK call (a print check): when it was sent and returned, and how it ended."""

    sent: float
    done: float
    outcome: str  # "ok", "offline" (a grace answer), or an exception's class name
    served_by: str | None = None


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps the SDK's transport to time every attempt; changes nothing it sends or receives."""

    def __init__(self, inner: httpx.AsyncBaseTransport, attempts: list[Attempt]) -> None:
        self.inner = inner
        self.attempts = attempts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.monotonic()
        base = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        try:
            response = await self.inner.handle_async_request(request)
        except Exception as exc:
            self.attempts.append(Attempt(base, request.url.path, sent, time.monotonic(), type(exc).__name__))
            raise
        self.attempts.append(Attempt(base, request.url.path, sent, time.monotonic(), str(response.status_code)))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class ClientLoop:
    client: AsyncLicenseClient
    interval_s: float
    calls: list[Call] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    stopping: bool = False

    async def run(self) -> None:
        n = 0
        while not self.stopping:
            sent = time.monotonic()
            try:
                answer = await self.client.print_check(PRODUCT, f"bench-{n % 20}")
                outcome = "offline" if answer.get("offline") else "ok"
            except Exception as exc:  # LicenseDenied or ServerUnavailable: recorded, never fatal
                outcome = type(exc).__name__
            self.calls.append(Call(sent, time.monotonic(), outcome, self.client.directory.active))
            n += 1
            await asyncio.sleep(self.interval_s)

    def first_success_after(self, moment: float) -> Call | None:
        """The first SDK call that succeeded on an HTTP answer to a request sent at or after `moment`.

        A call already in flight at `moment` counts when it fails over and succeeds (that is what the
        application sees); an answer to a request sent before `moment` does not."""
        served = None
        for attempt in reversed(self.attempts):
            if attempt.sent < moment:
                break
            if attempt.path == CHECK_PATH and attempt.outcome.startswith("2"):
                served = attempt
        if served is None:
            return None
        for call in reversed(self.calls):
            if call.done < served.done:
                break
            if call.sent <= served.sent and call.outcome == "ok":
                return call
        return None  # its call has not returned yet

    async def wait_success_after(self, moment: float, timeout: float) -> Call | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            call = self.first_success_after(moment)
            if call is not None:
                return call
            await asyncio.sleep(0.002)
        return None


# -- trials --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def r3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def in_thread(function: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def wait_client_on(loop: ClientLoop, url: str, since: float, timeout: float = TRIAL_TIMEOUT_S) -> None:
    """Until a successful call sent after `since` was answered by `url`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.sent >= since and c.outcome == "ok" and c.served_by == url for c in loop.calls[-50:]):
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"the client did not get back to {url} within {timeout}s")


def explain(loop: ClientLoop, victim: str, signalled: float, success: Call | None) -> dict[str, Any]:
    """Where the gap went, from the SDK's own HTTP attempts between the signal and its first success."""
    end = success.done if success else time.monotonic()
    window = [a for a in loop.attempts if a.done >= signalled and a.sent <= end]
    served = next(
        (a for a in window if a.path == CHECK_PATH and a.outcome.startswith("2") and a.sent >= signalled), None
    )
    waiting = [a for a in window if a.url != victim and a.outcome in ("307", "503")]
    outcomes = Counter(f"{'victim' if a.url == victim else 'other'}:{a.outcome}" for a in window)
    calls = [c for c in loop.calls if c.done >= signalled and c.sent <= end]
    return {
        # Waiting on the dead or hung member after the signal (a request in flight included).
        "victim_wait_s": r3(sum(min(a.done, end) - max(a.sent, signalled) for a in window if a.url == victim)),
        # From the first "not me" answer (307 to the old active, or 503: nobody active) to the request that
        # was served: the election, as the client saw it.
        "no_active_wait_s": r3(served.sent - waiting[0].sent) if served and waiting else 0.0,
        # The successful request itself (a print check is a Raft commit on the new active member).
        "served_request_s": r3(served.done - served.sent) if served else None,
        "attempts": dict(sorted(outcomes.items())),
        "offline_answers": sum(1 for c in calls if c.outcome == "offline"),
        "failed_calls": sum(1 for c in calls if c.outcome not in ("ok", "offline")),
    }


async def run_trial(cluster: TriadCluster, loop: ClientLoop, kind: str, number: int) -> dict[str, Any]:
    primary = cluster.servers["primary"]
    await in_thread(cluster.wait_active, "primary", 30.0)
    await wait_client_on(loop, primary.url, time.monotonic())
    await asyncio.sleep(random.uniform(0.0, 0.3))
    assert primary.process is not None
    pid = primary.process.pid
    signalled = time.monotonic()
    os.kill(pid, signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
    try:
        success = await loop.wait_success_after(signalled, TRIAL_TIMEOUT_S)
        gap = success.done - signalled if success else None
        result = {
            "kind": kind,
            "trial": number,
            "gap_s": r3(gap),
            "served_by": next((r for r, s in cluster.servers.items() if success and s.url == success.served_by), None),
            **explain(loop, primary.url, signalled, success),
        }
    finally:
        if kind == "kill":
            await in_thread(primary.process.wait)
            await in_thread(primary.start)
        else:
            os.kill(pid, signal.SIGCONT)
    log(
        f"{kind} #{number}: gap {result['gap_s']}s (served by {result['served_by']}; victim wait "
        f"{result['victim_wait_s']}s, no active {result['no_active_wait_s']}s, request {result['served_request_s']}s)"
    )
    return result


def summarize(kind: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    gaps = [r["gap_s"] for r in results if r["gap_s"] is not None]

    def median(key: str) -> float | None:
        return r3(percentile([r[key] for r in results if r[key] is not None], 50))

    return {
        f"{kind}_p50_s": r3(percentile(gaps, 50)),
        f"{kind}_p99_s": r3(percentile(gaps, 99)),
        f"{kind}_max_s": r3(max(gaps)) if gaps else None,
        f"{kind}_min_s": r3(min(gaps)) if gaps else None,
        f"{kind}_mean_s": r3(sum(gaps) / len(gaps)) if gaps else None,
        f"{kind}_victim_wait_p50_s": median("victim_wait_s"),
        f"{kind}_no_active_wait_p50_s": median("no_active_wait_s"),
        f"{kind}_served_request_p50_s": median("served_request_s"),
        f"{kind}_not_recovered": len(results) - len(gaps),
        f"{kind}_offline_answers": sum(r["offline_answers"] for r in results),
        f"{kind}_failed_calls": sum(r["failed_calls"] for r in results),
        f"{kind}_gaps_s": [r["gap_s"] for r in results],
    }


def code_version() -> dict[str, Any]:
    """The commit measured and whether src/ differs from it (read-only git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "--no-optional-locks", *args],
                cwd=BENCH_DIR.parent,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    changes = git("status", "--porcelain", "--", "src")
    return {
        "commit": git("rev-parse", "--short=12", "HEAD"),
        "src_modified": bool(changes) if changes is not None else None,
    }


async def benchmark(args: argparse.Namespace, cluster: TriadCluster, workdir: Path) -> dict[str, Any]:
    issuer = args.issuer
    with cluster.servers["primary"].admin() as admin:
        answer = admin.post(
            "/api/v1/admin/licenses",
            headers={"Content-Type": "application/json"},
            content=issuer.license_bytes(product=PRODUCT, unit="printers", count=1000),
        )
        if answer.status_code != 201:
            raise RuntimeError(f"license install failed: {answer.status_code} {answer.text}")
    seed = cluster.servers[args.seed].url
    timeouts = {} if args.request_timeout is None else {"request_timeout": args.request_timeout}
    client = AsyncLicenseClient(
        seed,
        **timeouts,
        cache_dir=workdir / "client-cache",
        host="bench-host",
        user="bench",
        application="client_failover",
        version="1",
    )
    loop = ClientLoop(client, args.interval)
    client._http._transport = RecordingTransport(client._http._transport, loop.attempts)  # instrumentation only
    runner = asyncio.create_task(loop.run())
    results: dict[str, list[dict[str, Any]]] = {"kill": [], "hang": []}
    try:
        await wait_client_on(loop, cluster.servers["primary"].url, 0.0)
        learned = sorted(client.directory.candidates())
        log(f"client given {seed} ({args.seed}) knows {len(learned)} members")
        # Interleave the kinds so drift on a shared machine hits both alike.
        for number in range(1, args.trials + 1):
            if number > MIN_TRIALS and time.monotonic() - args.started > args.budget:
                log(f"time budget ({args.budget:g}s) spent: stopping after {number - 1} trials of each kind")
                break
            for kind in ("kill", "hang"):
                results[kind].append(await run_trial(cluster, loop, kind, number))
    finally:
        loop.stopping = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 10)
        await client.aclose()
    calls = Counter(c.outcome for c in loop.calls)
    kill, hang = summarize("kill", results["kill"]), summarize("hang", results["hang"])
    return {
        **kill,
        **hang,
        "trials": len(results["kill"]),
        "trials_asked": args.trials,
        "client_seed": args.seed,
        "client_knew_members": len(learned),
        "client_timeouts": {
            "connect_timeout_s": client._http.timeout.connect,
            "request_timeout_s": client._http.timeout.read,
            "failover_wait_s": client.failover_wait_s,
            "retry_pause_s": 0.05,
        },
        "loop_interval_s": args.interval,
        "active_ttl_s": cluster.active_ttl_s,
        "calls": dict(calls),
        "targets": {
            "kill_p99_lt_1s": kill["kill_p99_s"] is not None and kill["kill_p99_s"] < KILL_TARGET_S,
            "hang_p99_lt_3s": hang["hang_p99_s"] is not None and hang["hang_p99_s"] < HANG_TARGET_S,
        },
        **({"per_trial": results} if args.per_trial else {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=15, help="trials of each kind (default 15)")
    parser.add_argument(
        "--budget",
        type=float,
        default=140.0,
        help=f"start no new trial after this many seconds, once {MIN_TRIALS} of each kind are done (140)",
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 2 trials of each kind")
    parser.add_argument(
        "--seed",
        choices=("primary", "secondary", "tertiary"),
        default="primary",
        help="the one address the client is given (default: the primary, the one killed)",
    )
    parser.add_argument("--interval", type=float, default=0.01, help="pause between the client's calls (s)")
    parser.add_argument(
        "--active-ttl",
        type=float,
        default=None,
        help="the triad's active-record TTL in seconds (default: the harness's, 0.8); "
        "for exploring only, the reported figures use the default",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=None,
        help="the client's request timeout in seconds (default: the SDK's, 1.0); for exploring only",
    )
    parser.add_argument("--per-trial", action="store_true", help="add every trial's breakdown to the JSON line")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    args = parser.parse_args()
    if args.quick:
        args.trials = 2
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    args.issuer = Issuer()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    started = args.started = time.monotonic()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="licentia-client-failover-"))
    ttl = {} if args.active_ttl is None else {"active_ttl_s": args.active_ttl}
    cluster = TriadCluster(workdir / "triad", args.issuer, **ttl)
    try:
        log(f"starting a triad in {workdir}")
        cluster.start()
        result = asyncio.run(benchmark(args, cluster, workdir))
    finally:
        cluster.stop()  # every member by its PID: SIGCONT, then SIGKILL
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()
    cpus = os.cpu_count() or 1
    result.update(
        {
            "loadavg_1m": {"start": round(load_before[0], 2), "end": round(load_after[0], 2)},
            # Other work on the host competes with the triad for the CPU and stretches elections and commits.
            "noisy": max(load_before[0], load_after[0]) > 0.75 * cpus,
            "code": code_version(),
            "cpus": cpus,
            "python": platform.python_version(),
            "total_s": round(time.monotonic() - started, 1),
        }
    )
    print(json.dumps(result))
    return 0 if result["kill_not_recovered"] == 0 and result["hang_not_recovered"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
