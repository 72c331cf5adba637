"""Backup pair benchmark: how far behind the main the backup runs, and how long an SDK client goes unanswered
when the main dies.

A backup pair is two `licentia serve` processes (tests/harness.py `BackupPairProcesses`) on 127.0.0.1: each
pulls its partner's changes every `interval_s` (`--interval`, 2.0 s), and a settings change on the main pokes
the backup to pull at once. What it does (see bench/README.md, "backup.py"):

1. Starts the pair on fresh data directories, installs a seat and a printer license on BOTH servers
   (`install_licenses`, 1000 printers) and waits until each says `connected` and `synchronized`.
2. Baselines, same run (the machine is shared: ratios to a baseline hold, absolute times do not):
   - a plain `GET /api/v1/admin/settings` on the backup, sequential, over the keep-alive httpx client
     that later polls the backup (bearer token, so no password hashing per request);
   - a print check on the main through the SDK client (`AsyncLicenseClient`) while healthy.
3. Settings sync lag. Each trial sleeps a random 0..interval_s (so trials land at random phases of the
   backup's own sync period), then PATCHes `printer_window_days` on the main (the value alternates, so
   every trial is a real change) and polls `GET /api/v1/admin/settings` on the backup every ~5 ms with
   one keep-alive client. Lag = from the moment the PATCH is sent to the return of the first poll that
   shows the new value (so it includes up to one polling step plus one poll round trip).
4. Usage sync lag. Each trial sleeps a random 0..interval_s, sends one print check to the main for a
   printer (and client host) of its own, and polls the backup's usage log
   (`GET /api/v1/admin/usage?kind=print&client_host=..&limit=5`) every ~5 ms. Lag = from the return of
   the granted answer on the main to the return of the first poll showing that record with
   `server == "main"` (synchronized from the main). Nothing pokes the backup here: expect ~U(0, interval).
5. Failover (SIGKILL of the main). One `AsyncLicenseClient` (its own empty cache directory, default
   timeouts) given ONLY the main's address loops print checks in this process, `--pause` (20 ms) between
   calls. Each trial waits until both flags are true on the main and the client's latest successful call
   was sent after that and answered by the main (`directory.active` is the main), waits a random
   0..0.3 s, SIGKILLs the main (`pair.main.kill()`), and measures the gap: from the kill to the return of
   the first successful call answered by the backup (granted and not an offline grace answer). Then it
   restarts the main on its port and data directory (`pair.main.start()`), waits for both flags on the
   main, and for the client's first successful call answered by the main again: `return_to_main_s`,
   measured from the moment the restarted main answers HTTP (the SDK re-probes its preferred main every
   2 s).

p50/p99 are nearest-rank percentiles over the trials (as in bench/triad.py and bench/checkout.py): with
fewer than 100 trials p99 is the largest trial. Progress goes to stderr; the last line of stdout is one
JSON object. Trials of each kind: 15 by default (`--trials`); no new trial of a kind starts once 10 are
done and its share of `--budget` (140 s; settings by 25 %, usage by 55 %, failover by 100 %, counted from
the start) is spent, so a default run stays under 3 minutes. `--quick` (CI smoke run): 3 settings, 3 usage
and 2 failover trials and short baselines, ~20 s.

Every server process is stopped by its PID in a `finally` (Ctrl-C and SIGTERM included); the temporary
directory is removed unless `--keep`. Exit status 0 only when every trial completed.

    python bench/backup.py                   # 15 trials of each kind, ~2 min (at most ~3 min)
    python bench/backup.py --quick           # CI smoke run, < 60 s
    python bench/backup.py --interval 1 --trials 20
    python bench/backup.py | tail -1 | python -m json.tool
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

# CPU accounting and the read-only commit check of the standalone benchmark (bench/checkout.py).
from checkout import CpuSample, code_version, host_busy_now, percentile  # noqa: E402
from harness import ADMIN_PASSWORD, BackupPairProcesses, Issuer, ServerProcess, install_licenses  # noqa: E402

from licentia.client import AsyncLicenseClient  # noqa: E402

PRINTS = "LabelStudio"
SETTING = "printer_window_days"
SETTING_VALUES = (8.0, 9.0)  # the default is 7: every trial changes it
POLL_S = 0.005
SETTINGS_TARGET_S = 1.0
FAILOVER_TARGET_S = 1.0
TRIAL_TIMEOUT_S = 20.0
MIN_TRIALS = 10  # the time budget never cuts a kind below this many trials
PHASE_SHARE = {"settings": 0.25, "usage": 0.55, "failover": 1.0}  # cumulative share of --budget
FAILOVER_PRINTERS = 20
IDENTITY = {"host": "bench-host", "user": "bench", "application": "backup-bench", "version": "1"}


def log(message: str) -> None:
    print(f"[backup {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def r3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def spread(values: list[float], unit: str = "s") -> dict[str, Any]:
    scale = ms if unit == "ms" else r3
    return {
        f"p50_{unit}": scale(percentile(values, 0.50)),
        f"p99_{unit}": scale(percentile(values, 0.99)),
        f"max_{unit}": scale(max(values)) if values else None,
        f"min_{unit}": scale(min(values)) if values else None,
        "n": len(values),
    }


async def in_thread(function: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


# -- talking to the servers ----------------------------------------------------------------------


class Admin:
    """One server's admin API over ONE keep-alive httpx client with a bearer token (taken again after a 401,
    e.g. when the server was restarted)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.url, timeout=5.0)

    async def login(self) -> None:
        answer = await self.http.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        answer.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {answer.json()['token']}"

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if "Authorization" not in self.http.headers:
            await self.login()
        answer = await self.http.request(method, path, **kwargs)
        if answer.status_code == 401:
            await self.login()
            answer = await self.http.request(method, path, **kwargs)
        return answer

    async def get(self, path: str, **params: Any) -> Any:
        answer = await self.request("GET", path, params=params)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path} on {self.server.url}: {answer.status_code} {answer.text[:200]}")
        return answer.json()

    async def timed_get(self, path: str, **params: Any) -> tuple[Any, float, float]:
        """The answer, when the request was sent and when it returned."""
        sent = time.monotonic()
        body = await self.get(path, **params)
        return body, sent, time.monotonic()

    async def aclose(self) -> None:
        await self.http.aclose()


async def wait_both_flags(admin: Admin, timeout: float = TRIAL_TIMEOUT_S) -> float:
    """Until the server says `connected` and `synchronized`; returns when it did."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await admin.get("/api/v1/admin/relationship")
            if last.get("connected") and last.get("synchronized"):
                return time.monotonic()
        except (httpx.HTTPError, RuntimeError) as exc:
            last = repr(exc)
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{admin.server.url} not connected+synchronized within {timeout}s; last: {last}")


async def wait_connected(admin: Admin, timeout: float = TRIAL_TIMEOUT_S) -> float:
    """Until the server says `connected` (it reached its partner lately); returns when it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, RuntimeError):
            if (await admin.get("/api/v1/admin/relationship")).get("connected"):
                return time.monotonic()
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{admin.server.url} not connected within {timeout}s")


# -- the SDK client loop -------------------------------------------------------------------------


@dataclass
class Call:
    sent: float
    done: float
    outcome: str  # "ok" (granted), "offline" (a grace answer), "refused", or an exception's class name
    served_by: str | None  # the server that answered a successful call


@dataclass
class ClientLoop:
    client: AsyncLicenseClient
    pause_s: float
    calls: list[Call] = field(default_factory=list)
    stopping: bool = False
    go: asyncio.Event = field(default_factory=asyncio.Event)  # cleared: the loop holds before its next call
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set: no call in flight

    async def call_once(self, printer: str) -> Call:
        sent = time.monotonic()
        try:
            answer = await self.client.print_check(PRINTS, printer)
            outcome = "offline" if answer.get("offline") else "ok" if answer.get("granted") else "refused"
        except Exception as exc:  # LicenseDenied or ServerUnavailable: recorded, never fatal
            outcome = type(exc).__name__
        return Call(sent, time.monotonic(), outcome, self.client.directory.active if outcome == "ok" else None)

    async def run(self) -> None:
        n = 0
        self.idle.set()
        while not self.stopping:
            await self.go.wait()
            if self.stopping:
                break
            self.idle.clear()
            try:
                self.calls.append(await self.call_once(f"failover-{n % FAILOVER_PRINTERS}"))
            finally:
                self.idle.set()
            n += 1
            await asyncio.sleep(self.pause_s)

    async def hold(self) -> None:
        """Stop calling (the call in flight, if any, is let finish)."""
        self.go.clear()
        await self.idle.wait()

    def resume(self) -> None:
        self.go.set()

    def stop(self) -> None:
        self.stopping = True
        self.go.set()

    def first_ok(self, url: str, done_after: float, sent_after: float | None = None) -> Call | None:
        """The first successful call answered by `url` that returned after `done_after` (and was sent after
        `sent_after`)."""
        found = None
        for call in reversed(self.calls):
            if call.done <= done_after:
                break
            if call.outcome == "ok" and call.served_by == url and (sent_after is None or call.sent >= sent_after):
                found = call
        return found

    async def wait_ok(self, url: str, done_after: float, sent_after: float | None = None,
                      timeout: float = TRIAL_TIMEOUT_S) -> Call | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            call = self.first_ok(url, done_after, sent_after)
            if call is not None:
                return call
            await asyncio.sleep(0.002)
        return None


# -- the benchmark -------------------------------------------------------------------------------


class BackupBench:
    def __init__(self, args: argparse.Namespace, pair: BackupPairProcesses, workdir: Path) -> None:
        self.args = args
        self.pair = pair
        self.workdir = workdir
        self.main_admin = Admin(pair.main)
        self.backup_poller = Admin(pair.backup)  # the one keep-alive client that polls the backup
        self.main_http = httpx.AsyncClient(base_url=pair.main.url, timeout=5.0)
        self.cpu: dict[str, dict[str, Any]] = {}
        self.tag = os.urandom(3).hex()

    def pids(self) -> dict[str, int]:
        pids = {"client": os.getpid()}
        for role in ("main", "backup"):
            process = self.pair.servers[role].process
            if process is not None:
                pids[role] = process.pid
        return pids

    def phase_over(self, kind: str, done: int) -> bool:
        if done >= self.args.trials_by_kind[kind]:
            return True
        spent = time.monotonic() - self.args.started
        if done >= MIN_TRIALS and spent > self.args.budget * PHASE_SHARE[kind]:
            log(f"{kind}: time budget share spent ({spent:.0f}s): stopping after {done} trials")
            return True
        return False

    # -- baselines --------------------------------------------------------------------------------

    async def baselines(self, client: AsyncLicenseClient) -> dict[str, Any]:
        n = self.args.baseline_samples
        before = CpuSample.take(self.pids())
        gets = []
        for _ in range(n):
            _, sent, done = await self.backup_poller.timed_get("/api/v1/admin/settings")
            gets.append(done - sent)
            await asyncio.sleep(POLL_S)
        loop = ClientLoop(client, 0.0)
        checks, failed = [], 0
        for i in range(n):
            call = await loop.call_once(f"failover-{i % FAILOVER_PRINTERS}")
            if call.outcome == "ok" and call.served_by == self.pair.main.url:
                checks.append(call.done - call.sent)
            else:
                failed += 1
            await asyncio.sleep(POLL_S)
        self.cpu["baseline"] = before.usage_until(CpuSample.take(self.pids()), 0)
        get_spread, check_spread = spread(gets, "ms"), spread(checks, "ms")
        log(f"baseline: GET settings on the backup p50 {get_spread['p50_ms']} ms p99 {get_spread['p99_ms']} ms; "
            f"SDK print check on the main p50 {check_spread['p50_ms']} ms p99 {check_spread['p99_ms']} ms")
        return {"backup_get_settings": get_spread, "sdk_print_check_main": {**check_spread, "failed": failed}}

    # -- settings sync lag ------------------------------------------------------------------------

    async def settings_trial(self, number: int) -> dict[str, Any]:
        await asyncio.sleep(random.uniform(0.0, self.args.interval))
        body, _, _ = await self.backup_poller.timed_get("/api/v1/admin/settings")
        current = body["settings"][SETTING]
        value = SETTING_VALUES[number % 2]
        if value == current:
            value = SETTING_VALUES[(number + 1) % 2]
        patch: dict[str, Any] = {}

        async def send_patch() -> None:
            patch["sent"] = time.monotonic()
            answer = await self.main_admin.request("PATCH", "/api/v1/admin/settings",
                                                   json={"changes": {SETTING: value}})
            patch["done"] = time.monotonic()
            patch["status"] = answer.status_code

        patcher = asyncio.create_task(send_patch())
        await asyncio.sleep(0)  # the PATCH is on its way (its send time is taken in the task)
        seen: tuple[float, float] | None = None
        polls: list[float] = []
        deadline = time.monotonic() + TRIAL_TIMEOUT_S
        while time.monotonic() < deadline:
            body, sent, done = await self.backup_poller.timed_get("/api/v1/admin/settings")
            polls.append(done - sent)
            if body["settings"][SETTING] == value:
                seen = (sent, done)
                break
            await asyncio.sleep(max(0.0, POLL_S - (time.monotonic() - sent)))
        await patcher
        if patch.get("status") != 200:
            raise RuntimeError(f"PATCH settings on the main answered {patch.get('status')}")
        lag = seen[1] - patch["sent"] if seen else None
        result = {
            "trial": number,
            "lag_s": r3(lag),
            # The last poll sent before the value showed: the change landed between it and `lag_s`.
            "seen_poll_sent_s": r3(seen[0] - patch["sent"]) if seen else None,
            "patch_rtt_s": r3(patch["done"] - patch["sent"]),
            "polls": len(polls),
            "poll_rtt_p50_ms": ms(percentile(polls, 0.5)),
        }
        log(f"settings #{number}: lag {result['lag_s']}s (PATCH answered after {result['patch_rtt_s']}s, "
            f"{len(polls)} polls)")
        return result

    # -- usage sync lag ---------------------------------------------------------------------------

    async def usage_trial(self, number: int) -> dict[str, Any]:
        await asyncio.sleep(random.uniform(0.0, self.args.interval))
        printer = f"usage-{self.tag}-{number}"
        host = f"usage-host-{self.tag}-{number}"
        sent = time.monotonic()
        answer = await self.main_http.post(
            "/api/v1/print-checks",
            json={"product": PRINTS, "printer": {"name": printer}, "client": {**IDENTITY, "host": host}},
        )
        granted_at = time.monotonic()
        if answer.status_code != 200 or not answer.json().get("granted"):
            raise RuntimeError(f"print check on the main: {answer.status_code} {answer.text[:200]}")
        seen: float | None = None
        polls = 0
        while time.monotonic() < granted_at + 3 * self.args.interval + 5.0:
            body, poll_sent, done = await self.backup_poller.timed_get(
                "/api/v1/admin/usage", kind="print", client_host=host, limit=5
            )
            polls += 1
            if any(r["printer_name"] == printer and r["server"] == "main" for r in body["records"]):
                seen = done
                break
            await asyncio.sleep(max(0.0, POLL_S - (time.monotonic() - poll_sent)))
        result = {
            "trial": number,
            "lag_s": r3(seen - granted_at) if seen else None,
            "print_check_rtt_s": r3(granted_at - sent),
            "polls": polls,
        }
        log(f"usage #{number}: lag {result['lag_s']}s ({polls} polls)")
        return result

    # -- failover ---------------------------------------------------------------------------------

    async def failover_trial(self, loop: ClientLoop, number: int) -> dict[str, Any]:
        main, backup = self.pair.main, self.pair.backup
        # Both flags on the main, then the client served by the main after that. The client holds meanwhile:
        # while it prints (every `--pause`) the main always has changes the backup has not pulled yet, so
        # `synchronized` stays false (see bench/README.md).
        held = time.monotonic()
        await loop.hold()
        ready = await wait_both_flags(self.main_admin)
        loop.resume()
        if await loop.wait_ok(main.url, ready, sent_after=ready) is None:
            raise TimeoutError(f"the client was not served by the main within {TRIAL_TIMEOUT_S}s")
        if loop.client.directory.active != main.url:
            raise RuntimeError(f"the client's active server is {loop.client.directory.active}, not the main")
        await asyncio.sleep(random.uniform(0.0, 0.3))
        assert main.process is not None
        old_pid = main.process.pid

        def kill() -> float:
            at = time.monotonic()
            main.kill()  # SIGKILL by PID, then reaped
            return at

        killed = await in_thread(kill)
        served = await loop.wait_ok(backup.url, killed, timeout=TRIAL_TIMEOUT_S)
        gap = served.done - killed if served else None
        window = [c for c in loop.calls if c.done > killed and (served is None or c.done <= served.done)]
        outcomes = Counter(c.outcome if c.outcome != "ok" else f"ok:{'backup' if c.served_by == backup.url else 'main'}"
                           for c in window)
        in_flight = next((c for c in window if c.sent < killed), None)

        restart_began = time.monotonic()
        await in_thread(main.start)  # same port and data directory; returns once it answers HTTP
        main_up = time.monotonic()
        connected_at = await wait_connected(self.main_admin)
        back = await loop.wait_ok(main.url, main_up, sent_after=main_up)
        # Both flags are waited for (client held) at the start of the next trial: its `flags_wait_s`.
        result = {
            "trial": number,
            "gap_s": r3(gap),
            "calls_in_gap": dict(sorted(outcomes.items())),
            "call_in_flight_at_kill": in_flight is not None,
            "restart_s": r3(main_up - restart_began),
            "connected_after_restart_s": r3(connected_at - main_up),
            "return_to_main_s": r3(back.done - main_up) if back else None,
            "flags_wait_s": r3(ready - held),
            "killed_pid": old_pid,
        }
        log(f"failover #{number}: gap {result['gap_s']}s (calls {result['calls_in_gap']}); main answered again "
            f"{result['restart_s']}s after the restart began, connected +{result['connected_after_restart_s']}s, "
            f"client back on the main +{result['return_to_main_s']}s")
        return result

    # -- all of it --------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        args, pair = self.args, self.pair
        await wait_both_flags(self.main_admin)
        await wait_both_flags(self.backup_poller)
        client = AsyncLicenseClient(pair.main.url, cache_dir=self.workdir / "client-cache", **IDENTITY)
        results: dict[str, list[dict[str, Any]]] = {"settings": [], "usage": [], "failover": []}
        loop = ClientLoop(client, args.pause)
        runner: asyncio.Task[None] | None = None
        try:
            baseline = await self.baselines(client)
            log(f"client given {pair.main.url} knows {sorted(client.directory.candidates())}")

            for kind, trial in (("settings", self.settings_trial), ("usage", self.usage_trial)):
                before = CpuSample.take(self.pids())
                while not self.phase_over(kind, len(results[kind])):
                    results[kind].append(await trial(len(results[kind]) + 1))
                self.cpu[kind] = before.usage_until(CpuSample.take(self.pids()), 0)

            runner = asyncio.create_task(loop.run())
            while not self.phase_over("failover", len(results["failover"])):
                results["failover"].append(await self.failover_trial(loop, len(results["failover"]) + 1))
        finally:
            loop.stop()
            if runner is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runner, 10)
            await client.aclose()
            for http in (self.main_admin, self.backup_poller):
                await http.aclose()
            await self.main_http.aclose()
        return self.summary(baseline, results, loop)

    def summary(self, baseline: dict[str, Any], results: dict[str, list[dict[str, Any]]],
                loop: ClientLoop) -> dict[str, Any]:
        args = self.args

        def values(kind: str, key: str) -> list[float]:
            return [r[key] for r in results[kind] if r[key] is not None]

        settings_lags, usage_lags = values("settings", "lag_s"), values("usage", "lag_s")
        gaps, returns = values("failover", "gap_s"), values("failover", "return_to_main_s")
        settings, usage, failover = spread(settings_lags), spread(usage_lags), spread(gaps)
        back = spread(returns)
        get_p50_ms = baseline["backup_get_settings"]["p50_ms"]
        check_p50_ms = baseline["sdk_print_check_main"]["p50_ms"]
        trials_by_kind = {kind: len(items) for kind, items in results.items()}
        failed = {
            "settings": len(results["settings"]) - len(settings_lags),
            "usage": len(results["usage"]) - len(usage_lags),
            "failover": len(results["failover"]) - len(gaps),
            "return_to_main": len(results["failover"]) - len(returns),
        }

        def ratio(numerator_s: float | None, denominator_ms: float | None) -> float | None:
            if numerator_s is None or not denominator_ms:
                return None
            return round(numerator_s * 1000 / denominator_ms, 1)

        def under(value: float | None, limit: float) -> bool:
            return value is not None and value < limit

        noisy_phases = {k: v.get("other_pct") for k, v in self.cpu.items()}
        return {
            "settings_sync_lag_p50_s": settings["p50_s"],
            "settings_sync_lag_p99_s": settings["p99_s"],
            "settings_sync_lag_max_s": settings["max_s"],
            "usage_sync_lag_p50_s": usage["p50_s"],
            "usage_sync_lag_p99_s": usage["p99_s"],
            "usage_sync_lag_max_s": usage["max_s"],
            "usage_sync_lag_min_s": usage["min_s"],
            "sync_interval_s": args.interval,
            "failover_kill_p50_s": failover["p50_s"],
            "failover_kill_p99_s": failover["p99_s"],
            "failover_kill_max_s": failover["max_s"],
            "return_to_main_p50_s": back["p50_s"],
            "return_to_main_max_s": back["max_s"],
            "trials": min(trials_by_kind.values()),
            "trials_by_kind": trials_by_kind,
            "failed_trials": failed,
            "baseline_get_settings_p50_ms": get_p50_ms,
            "baseline_get_settings_p99_ms": baseline["backup_get_settings"]["p99_ms"],
            "baseline_print_check_p50_ms": check_p50_ms,
            "baseline_print_check_p99_ms": baseline["sdk_print_check_main"]["p99_ms"],
            "baseline": baseline,
            "ratios": {
                "settings_sync_lag_p50_over_get_settings_p50": ratio(settings["p50_s"], get_p50_ms),
                "failover_kill_p50_over_print_check_p50": ratio(failover["p50_s"], check_p50_ms),
                "usage_sync_lag_p50_over_interval": round(usage["p50_s"] / args.interval, 3)
                if usage["p50_s"] is not None else None,
            },
            "targets": {
                "settings_sync_lag_p99_lt_1s": under(settings["p99_s"], SETTINGS_TARGET_S),
                "usage_sync_lag_p99_lt_interval": under(usage["p99_s"], args.interval),
                "failover_kill_p99_lt_1s": under(failover["p99_s"], FAILOVER_TARGET_S),
            },
            "settings": {
                "lags_s": [r["lag_s"] for r in results["settings"]],
                "seen_poll_sent_p50_s": r3(percentile(values("settings", "seen_poll_sent_s"), 0.5)),
                "patch_rtt_p50_s": r3(percentile(values("settings", "patch_rtt_s"), 0.5)),
                "patch_rtt_max_s": r3(max(values("settings", "patch_rtt_s"), default=None)),
                "poll_rtt_p50_ms": ms(percentile([r["poll_rtt_p50_ms"] / 1000 for r in results["settings"]
                                                  if r["poll_rtt_p50_ms"] is not None], 0.5)),
                "polled_setting": SETTING,
            },
            "usage": {
                "lags_s": [r["lag_s"] for r in results["usage"]],
                "print_check_rtt_p50_s": r3(percentile(values("usage", "print_check_rtt_s"), 0.5)),
            },
            "failover": {
                "gaps_s": [r["gap_s"] for r in results["failover"]],
                "return_to_main_s": [r["return_to_main_s"] for r in results["failover"]],
                "restart_p50_s": r3(percentile(values("failover", "restart_s"), 0.5)),
                "connected_after_restart_p50_s": r3(percentile(values("failover", "connected_after_restart_s"), 0.5)),
                "connected_after_restart_max_s": r3(max(values("failover", "connected_after_restart_s"), default=None)),
                # Before each trial, client held: until both flags were true on the main (trials after the
                # first follow a restart of the main).
                "flags_wait_p50_s": r3(percentile(values("failover", "flags_wait_s"), 0.5)),
                "flags_wait_max_s": r3(max(values("failover", "flags_wait_s"), default=None)),
                "calls_in_gaps": dict(sum((Counter(r["calls_in_gap"]) for r in results["failover"]), Counter())),
                "client_calls": dict(Counter(c.outcome for c in loop.calls)),
                "client_pause_s": args.pause,
                "client_timeouts": {
                    "connect_timeout_s": loop.client._http.timeout.connect,
                    "request_timeout_s": loop.client._http.timeout.read,
                },
            },
            "other_cpu_pct": noisy_phases,
            "cpu": self.cpu,
            **({"per_trial": results} if args.per_trial else {}),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=15, help="trials of each kind (default 15)")
    parser.add_argument("--interval", type=float, default=2.0, help="the pair's sync interval_s (default 2.0)")
    parser.add_argument("--budget", type=float, default=140.0,
                        help=f"seconds; a kind starts no new trial once {MIN_TRIALS} are done and its share is spent")
    parser.add_argument("--pause", type=float, default=0.02, help="pause between the SDK client's calls (s)")
    parser.add_argument("--baseline-samples", type=int, default=200, help="requests per baseline (200)")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 3 settings, 3 usage, 2 failover trials")
    parser.add_argument("--per-trial", action="store_true", help="add every trial's record to the JSON line")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    args = parser.parse_args()
    if args.trials < 1 or args.interval <= 0:
        parser.error("--trials must be at least 1 and --interval positive")
    args.trials_by_kind = {"settings": args.trials, "usage": args.trials, "failover": args.trials}
    if args.quick:
        args.trials_by_kind = {"settings": 3, "usage": 3, "failover": 2}
        args.baseline_samples = min(args.baseline_samples, 40)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    started = args.started = time.monotonic()
    load_before = os.getloadavg()
    busy_before = host_busy_now(0.5)
    workdir = Path(tempfile.mkdtemp(prefix="licentia-backup-bench-"))
    issuer = Issuer()
    pair = BackupPairProcesses(workdir / "pair", issuer, name="BENCH", interval_s=args.interval)
    try:
        log(f"starting a backup pair (interval_s {args.interval:g}) in {workdir}")
        pair.start()
        log(f"main pid {pair.main.process.pid} on {pair.main.url}, "  # type: ignore[union-attr]
            f"backup pid {pair.backup.process.pid} on {pair.backup.url}")  # type: ignore[union-attr]
        for server in (pair.main, pair.backup):
            install_licenses(server, issuer, seats=5, printers=1000)
        bench = BackupBench(args, pair, workdir)
        result = asyncio.run(bench.run())
    finally:
        pair.stop()  # both servers by their PIDs (SIGKILL), whatever happened
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()
    cpus = os.cpu_count() or 1
    other = [v for v in result["other_cpu_pct"].values() if v is not None]
    result.update(
        {
            "host_busy_before_pct": busy_before,
            "loadavg_1m": {"start": round(load_before[0], 2), "end": round(load_after[0], 2)},
            # Another task used more than a tenth of a core during a measured phase (or before the run).
            "noisy": bool((busy_before or 0) > 10 or any(v > 10 for v in other)),
            "code": code_version(),
            "cpus": cpus,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "total_s": round(time.monotonic() - started, 1),
        }
    )
    print(json.dumps(result))
    return 0 if not any(result["failed_trials"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
