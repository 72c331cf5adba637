"""Triad benchmark: committed-checkout throughput against a standalone server, and the failover gap clients see.

What it does (see bench/README.md, "Triad"):

1. Throughput. Starts a standalone `licentia serve` and measures committed checkouts + checkins
   through it with the load generator of bench/checkout.py (N concurrent aiohttp clients on one
   session, connector limit N); stops it; starts a triad (tests/harness.py `TriadCluster`, three
   `licentia serve` processes joined through the setup API) and runs the same generator, same
   concurrency and duration, against its active member (the primary). Each HTTP request is one op.
2. Failover gap. A few aiohttp clients that know all three member URLs loop over checkout ->
   heartbeats -> checkin with a short per-request timeout; a 307 is followed to its `active_url`
   (unless that member just failed), a 503, a timeout or a refused connection moves to the next
   member. Each trial SIGKILLs (or SIGSTOPs, to model a hung host) the active member; the gap is
   the time from the signal to the end of each client's first successful request sent after it.
   The member is restarted (or SIGCONTed) and the primary is waited for between trials.
3. Seats across failover. Before each trial N leases are taken through the active member; once
   every client is served again, the new active member's /api/v1/admin/leases must list all of
   them and a heartbeat on them must renew all of them. `seats_lost` counts the ones that did not.

Progress goes to stderr; the last line of stdout is one JSON object with the results.

    python bench/triad.py                    # defaults: 16 clients, 15 s per throughput phase, 12+12 trials
    python bench/triad.py --quick            # CI smoke run (< 60 s)
    python bench/triad.py --trials 20 --duration 30 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import math
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

# The load generator, statistics and CPU accounting of the standalone benchmark (bench/checkout.py).
from checkout import (  # noqa: E402
    JSON_HEADERS,
    SEAT_PRODUCT,
    CpuSample,
    PhaseStats,
    Worker,
    client_info,
    code_version,
    host_busy_now,
    install_licenses,
    log,
    percentile,
    run_event_loop,
    run_phase,
    start_profiler,
    stop_process,
    timed_request,
)
from harness import ADMIN_PASSWORD, ROLES, Issuer, ServerProcess, TriadCluster  # noqa: E402

SETTLED_LAG = 20  # etcd revisions a peer may be behind (as it last reported) and still count as caught up

# -- throughput ----------------------------------------------------------------------------------


def seat_worker(base_url: str) -> Worker:
    """One client: check a seat out (a unique request_id), check it back in, repeat."""
    leases_url = f"{base_url}/api/v1/leases"

    async def run(session: aiohttp.ClientSession, stats: PhaseStats, worker: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        client = client_info(worker)
        prefix = f"triad-{uuid.uuid4().hex[:8]}-{worker}"
        n = 0
        while loop.time() < deadline:
            body = json.dumps({"product": SEAT_PRODUCT, "client": client, "request_id": f"{prefix}-{n}"})
            answer = await timed_request(session, stats, "checkout", "POST", leases_url, body.encode())
            n += 1
            if answer is None:
                await asyncio.sleep(0.01)  # do not spin on a failing server
                continue
            stats.leases_taken += 1
            lease_id = json.loads(answer[1])["lease_id"]
            if await timed_request(session, stats, "checkin", "DELETE", f"{leases_url}/{lease_id}", None):
                stats.leases_returned += 1

    return run


async def measure(
    args: argparse.Namespace, name: str, url: str, server_pid: int, member_pids: dict[str, int] | None = None,
    on_measure: Any = None,
) -> tuple[PhaseStats, dict[str, Any]]:
    """Warm up, then measure `args.duration` seconds. Returns the stats and the CPU use of every member."""
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    worker = seat_worker(url)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        log(f"{name}: warm-up {args.warmup:g}s")
        await run_phase(session, f"{name} warm-up", worker, args.concurrency, args.warmup, server_pid)
        log(f"{name}: measuring {args.duration:g}s with {args.concurrency} clients")
        if on_measure is not None:
            on_measure()
        pids = {**(member_pids or {}), "client": os.getpid()}
        before = CpuSample.take(pids)
        stats = await run_phase(session, name, worker, args.concurrency, args.duration, server_pid)
        members_cpu = before.usage_until(CpuSample.take(pids), stats.ok_total) if member_pids else {}
    return stats, members_cpu


def phase_result(stats: PhaseStats) -> dict[str, Any]:
    summary = stats.summary()
    checkout = summary["by_kind"].get("checkout", {})
    return {
        "ops_per_s": summary["ops_per_s"],
        "checkouts_per_s": round(stats.ok["checkout"] / stats.elapsed, 1) if stats.elapsed else 0.0,
        "checkout_p50_ms": checkout.get("p50_ms"),
        "checkout_p99_ms": checkout.get("p99_ms"),
        "all_ops_p50_ms": summary["p50_ms"],
        "all_ops_p99_ms": summary["p99_ms"],
        "max_ms": summary["max_ms"],
        "errors": summary["errors"],
        "error_samples": stats.error_samples[:3],
        "by_kind": summary["by_kind"],
        "cpu": summary["cpu"],
    }


# -- failover: clients that know every member ----------------------------------------------------


class FailoverClient:
    """A license client given the URLs of all three members.

    It sends to the member it last got an answer from. A 307 names the active member: it goes
    there (unless that member failed in the last `avoid_s`); a 503 (no member active, or no
    quorum), a 409 `not_active` (its command was fenced by a newer epoch), a timeout or a
    connection error move it to the next member, with a short pause after each full round.
    """

    def __init__(self, index: int, urls: list[str], timeout_s: float, pause_s: float, backoff_s: float,
                 avoid_s: float, headers: dict[str, str] | None = None) -> None:
        self.index = index
        self.urls = urls
        self.current = 0
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.pause_s = pause_s
        self.backoff_s = backoff_s
        self.avoid_s = avoid_s
        self.headers = headers or {}
        self.failed_at: dict[str, float] = {}
        # Every successful request: when it was sent, when its answer came, which member answered.
        self.sent: list[float] = []
        self.answered: list[float] = []
        self.served_by: list[int] = []
        self.failures: list[float] = []  # when each 503, fenced 409, timeout or connection error came back
        self.attempts: Counter[str] = Counter()
        self.leases_lost = 0  # a heartbeat said the client's own lease was gone
        self.stopping = False
        self.session: aiohttp.ClientSession | None = None

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None
                      ) -> tuple[int, dict[str, Any]] | None:
        """Send until a member answers 2xx or an application 4xx; None only when stopping."""
        assert self.session is not None
        data = json.dumps(body).encode() if body is not None else None
        headers = {**self.headers, **(JSON_HEADERS if data is not None else {})}
        misses = 0
        while not self.stopping:
            url = self.urls[self.current]
            sent = time.perf_counter()
            status, payload = None, b""
            try:
                async with self.session.request(method, url + path, data=data, headers=headers,
                                                allow_redirects=False, timeout=self.timeout) as response:
                    payload = await response.read()
                    status = response.status
            except TimeoutError:
                self.attempts["timeout"] += 1
            except (aiohttp.ClientError, OSError):
                self.attempts["connection_error"] += 1
            answered = time.perf_counter()
            answer: dict[str, Any] = {}
            if payload:
                with contextlib.suppress(ValueError):
                    answer = json.loads(payload)
            if status is not None and 200 <= status < 300:
                self.attempts["ok"] += 1
                self.sent.append(sent)
                self.answered.append(answered)
                self.served_by.append(self.current)
                return status, answer
            code = (answer.get("error") or {}).get("code") if isinstance(answer, dict) else None
            if status == 307:
                self.attempts["redirect"] += 1
                target = str((answer.get("error") or {}).get("active_url", "")).rstrip("/")
                if target in self.urls and answered - self.failed_at.get(target, -math.inf) > self.avoid_s:
                    self.current = self.urls.index(target)
                    continue
            elif status == 503:
                self.attempts["unavailable"] += 1
                self.failures.append(answered)
            elif status == 409 and code == "not_active":
                self.attempts["fenced_409"] += 1
                self.failures.append(answered)
            elif status is not None:
                self.attempts[f"http_{status}"] += 1
                return status, answer
            else:
                self.failed_at[url] = answered
                self.failures.append(answered)
            self.current = (self.current + 1) % len(self.urls)
            misses += 1
            if misses % len(self.urls) == 0:
                await asyncio.sleep(self.backoff_s)
        return None

    async def run(self) -> None:
        """Check out a seat, heartbeat it, check it in every tenth round; continuously."""
        identity = client_info(900 + self.index)
        prefix = f"failover-{uuid.uuid4().hex[:8]}-{self.index}"
        lease: str | None = None
        n = 0
        async with aiohttp.ClientSession() as self.session:
            while not self.stopping:
                n += 1
                if lease is None:
                    body = {"product": SEAT_PRODUCT, "client": identity, "request_id": f"{prefix}-{n}"}
                    answer = await self.request("POST", "/api/v1/leases", body)
                    if answer is not None and answer[0] in (200, 201):
                        lease = answer[1]["lease_id"]
                elif n % 10 == 0:
                    await self.request("DELETE", f"/api/v1/leases/{lease}")
                    lease = None
                else:
                    answer = await self.request("POST", f"/api/v1/leases/{lease}/heartbeat")
                    if answer is not None and answer[0] >= 400:
                        self.leases_lost += 1
                        log(f"  client {self.index}: its lease {lease} is gone: {answer}")
                        lease = None
                await asyncio.sleep(self.pause_s)

    def last_failure_between(self, start: float, end: float) -> float | None:
        at = bisect.bisect_right(self.failures, end)
        return self.failures[at - 1] if at and self.failures[at - 1] >= start else None

    def first_success_after(self, moment: float) -> tuple[float, int] | None:
        """(answered, member index) of the first successful request sent at or after `moment`."""
        at = bisect.bisect_left(self.sent, moment)
        if at >= len(self.sent):
            return None
        return self.answered[at], self.served_by[at]


# -- failover trials -----------------------------------------------------------------------------


@dataclass
class Trial:
    kind: str  # "kill" (SIGKILL) or "hang" (SIGSTOP ... SIGCONT)
    number: int
    signalled_member: str = ""
    gap_s: float | None = None  # signal -> every client served again (the slowest client)
    first_client_gap_s: float | None = None  # signal -> the first client served again
    # signal -> the last failed request of any client within `--observe` s after all were served again
    # (a later blip, e.g. Raft leadership moving to the new active member, shows here, not in gap_s)
    disrupted_s: float | None = None
    client_gaps_s: list[float | None] = field(default_factory=list)
    new_active: str | None = None
    seats_held: int = 0
    seats_listed: int = 0
    seats_renewed: int = 0
    seats_lost: int = 0
    verify_retries: int = 0  # 503s answered to the heartbeat on the held seats before it succeeded
    server_reported_active_at_s: float | None = None  # when a member first said it served, after the signal
    recovery_s: float | None = None  # restart/SIGCONT -> the primary active again
    failback_gap_s: float | None = None  # primary active again -> every client served again
    error: str | None = None


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


class FailoverBench:
    def __init__(self, args: argparse.Namespace, cluster: TriadCluster) -> None:
        self.args = args
        self.cluster = cluster
        self.urls = [cluster.servers[role].url for role in ROLES]
        self.clients = [
            FailoverClient(i, self.urls, args.client_timeout, args.client_pause, args.client_backoff,
                           args.client_avoid) for i in range(args.failover_clients)
        ]
        self.tokens: dict[str, str] = {}
        self.hold_retries = 0  # 503s while taking the held seats on the active member
        self.http: aiohttp.ClientSession | None = None

    # -- admin helpers (a plain session, no failover logic: these ask one member on purpose) --

    async def admin_get(self, role: str, path: str) -> Any:
        assert self.http is not None
        url = self.cluster.servers[role].url
        for _ in range(2):
            if role not in self.tokens:
                async with self.http.post(f"{url}/api/v1/auth/login",
                                          json={"username": "admin", "password": ADMIN_PASSWORD}) as response:
                    self.tokens[role] = (await response.json())["token"]
            async with self.http.get(url + path, headers={"Authorization": f"Bearer {self.tokens[role]}"}) as response:
                if response.status == 401:
                    self.tokens.pop(role)
                    continue
                response.raise_for_status()
                return await response.json()
        raise RuntimeError(f"cannot log in to {role}")

    async def serving_member(self, skip: str | None = None) -> str | None:
        """The member that says it serves now (asks every live one but `skip`, in parallel, briefly)."""
        assert self.http is not None

        async def ask(role: str) -> str | None:
            server = self.cluster.servers[role]
            if server.process is None or server.process.poll() is not None:
                return None
            try:
                async with self.http.get(f"{server.url}/api/v1/server",
                                         timeout=aiohttp.ClientTimeout(total=0.2)) as response:
                    info = await response.json()
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
                return None
            return role if (info.get("relationship") or {}).get("serving") else None

        found = [role for role in await asyncio.gather(*(ask(role) for role in ROLES if role != skip)) if role]
        return found[0] if found else None

    async def wait_primary(self, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if await self.serving_member() == "primary":
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the primary was not active again within {timeout}s")

    async def answers_live(self, role: str) -> bool:
        """Whether `role`'s server answers `/health/live` within a second: a member whose process is stuck still
        accepts connections (its kernel does), which is all the primary's `reachable` checks."""
        assert self.http is not None
        try:
            async with self.http.get(f"{self.cluster.servers[role].url}/health/live",
                                     timeout=aiohttp.ClientTimeout(total=1.0)) as answer:
                return answer.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    async def wait_settled(self, timeout: float) -> None:
        """The primary active, every member reachable, answering and caught up."""
        deadline = time.perf_counter() + timeout
        silent: list[str] = []
        while time.perf_counter() < deadline:
            try:
                status = await self.admin_get("primary", "/api/v1/admin/relationship")
            except (aiohttp.ClientError, OSError, RuntimeError):
                status = {}
            members = status.get("members") or []
            # Peers report how far they have applied twice a second, so under the failover clients' load a
            # caught-up peer shows a few revisions behind.
            if (status.get("serving") and len(members) == 3
                    and all(m["reachable"] and (m["log_behind"] or 0) <= SETTLED_LAG for m in members)):
                answers = await asyncio.gather(*(self.answers_live(role) for role in self.cluster.servers))
                silent = [role for role, answered in zip(self.cluster.servers, answers, strict=True) if not answered]
                if not silent:
                    return
            await asyncio.sleep(0.1)
        not_answering = f"; not answering /health/live: {', '.join(silent)}" if silent else ""
        raise TimeoutError(f"the triad did not settle within {timeout}s (last seen: {status}){not_answering}")

    async def wait_clients_served(self, since: float, timeout: float) -> list[tuple[float, int] | None]:
        deadline = time.perf_counter() + timeout
        while True:
            firsts = [client.first_success_after(since) for client in self.clients]
            if all(firsts) or time.perf_counter() > deadline:
                return firsts
            await asyncio.sleep(0.01)

    async def take_seats(self, role: str, count: int) -> list[str]:
        """`count` leases checked out through `role`, concurrently; a 503 is retried with the same request_id."""
        assert self.http is not None
        url = self.cluster.servers[role].url
        identity = {"host": "failover-holder", "user": "holder", "application": "licentia-bench", "version": "1"}

        async def one() -> str:
            body = {"product": SEAT_PRODUCT, "client": identity, "request_id": uuid.uuid4().hex}
            for attempt in range(50):
                async with self.http.post(f"{url}/api/v1/leases", json=body) as response:
                    if response.status in (200, 201):
                        return str((await response.json())["lease_id"])
                    text = await response.text()
                # 503: the commit failed (e.g. Raft leadership still moving to the active member).
                if response.status != 503 or attempt == 49:
                    raise RuntimeError(f"holding a seat on {role} failed: {response.status} {text}")
                self.hold_retries += 1
                await asyncio.sleep(0.05)
            raise AssertionError("unreachable")

        return list(await asyncio.gather(*(one() for _ in range(count))))

    # -- one trial ---------------------------------------------------------------------------

    async def trial(self, kind: str, number: int) -> Trial:
        args = self.args
        result = Trial(kind=kind, number=number)
        await self.wait_settled(30)
        # Every client served by the primary before the trial begins.
        await self.wait_clients_served(time.perf_counter(), 10)
        active = await self.serving_member()
        if active is None:
            raise RuntimeError("no active member before the trial")
        result.signalled_member = active
        server = self.cluster.servers[active]
        assert server.process is not None
        held = await self.take_seats(active, args.seats)
        result.seats_held = len(held)
        # A random moment relative to the active record's renewals and the clients' requests.
        await asyncio.sleep(random.uniform(0.2, 0.6))

        pid = server.process.pid
        log_offsets = {role: member_log_size(s.log_path) for role, s in self.cluster.servers.items()}
        signalled = time.perf_counter()
        os.kill(pid, signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
        try:
            watcher = asyncio.create_task(self.watch_active(signalled, exclude=active))
            firsts = await self.wait_clients_served(signalled, args.gap_timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(watcher), 1.0)
            if watcher.done():
                result.server_reported_active_at_s = rounded(watcher.result())
            else:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            gaps = [None if first is None else first[0] - signalled for first in firsts]
            result.client_gaps_s = [rounded(gap) for gap in gaps]
            known = [gap for gap in gaps if gap is not None]
            result.first_client_gap_s = rounded(min(known)) if known else None
            if len(known) == len(gaps):
                result.gap_s = rounded(max(known))
            else:
                result.error = f"{len(gaps) - len(known)} client(s) not served within {args.gap_timeout}s"
            served = [first for first in firsts if first is not None]
            if result.gap_s is not None:
                window_end = signalled + result.gap_s + args.observe
                await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
                lasts = [c.last_failure_between(signalled, window_end) for c in self.clients]
                last = max((moment for moment in lasts if moment is not None), default=signalled)
                result.disrupted_s = rounded(max(result.gap_s, last - signalled))
            new_active = ROLES[min(served)[1]] if served else await self.serving_member()
            result.new_active = new_active
            if new_active is not None and new_active != active:
                await self.check_seats(new_active, held, result)
            else:
                result.seats_lost = len(held)
                result.error = (result.error or "") + f" no new active member (saw {new_active})"
        finally:
            recovering = time.perf_counter()
            if kind == "hang":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            else:
                server.process.wait()
                await asyncio.to_thread(server.start)
        await self.wait_primary(30)
        back = time.perf_counter()
        result.recovery_s = rounded(back - recovering)
        firsts = await self.wait_clients_served(back, args.gap_timeout)
        if all(firsts):
            result.failback_gap_s = rounded(max(first[0] for first in firsts if first) - back)
        log(f"  {kind} #{number}: gap {result.gap_s}s (first client {result.first_client_gap_s}s, a member served "
            f"after {result.server_reported_active_at_s}s, last failure {result.disrupted_s}s), new active "
            f"{result.new_active}, seats lost {result.seats_lost}/{result.seats_held} (heartbeat retries "
            f"{result.verify_retries}), primary back in {result.recovery_s}s, failback gap {result.failback_gap_s}s"
            + (f", ERROR {result.error}" if result.error else ""))
        if result.error:
            # What the members said about it: enough to tell a stuck election from a stuck apply loop in CI.
            for role, member in self.cluster.servers.items():
                for line in member_log_sentences(member.log_path, log_offsets[role]):
                    log(f"    {role}: {line}")
        return result

    async def watch_active(self, since: float, exclude: str) -> float | None:
        """Seconds from `since` until a member other than `exclude` says it serves."""
        while True:
            member = await self.serving_member(skip=exclude)
            if member is not None:
                return time.perf_counter() - since
            await asyncio.sleep(0.02)

    async def check_seats(self, role: str, held: list[str], result: Trial) -> None:
        """Are the leases taken before the failover held by the new active member, and renewable there?"""
        assert self.http is not None
        listed = {lease["lease_id"] for lease in (await self.admin_get(role, "/api/v1/admin/leases"))["leases"]}
        result.seats_listed = sum(lease in listed for lease in held)
        url = self.cluster.servers[role].url
        renewed: dict[str, float] = {}
        deadline = time.perf_counter() + 5.0
        while True:
            async with self.http.post(f"{url}/api/v1/leases/heartbeat", json={"lease_ids": held}) as response:
                answer = await response.json()
            if response.status == 200:
                renewed = answer.get("renewed", {})
                break
            # A 503 right after a failover: the commit found no Raft leader (leadership moving to the
            # new active member). A client would retry; so does this check, and counts it.
            result.verify_retries += 1
            if response.status != 503 or time.perf_counter() > deadline:
                log(f"  heartbeat on the held seats answered {response.status}: {answer}")
                break
            await asyncio.sleep(0.05)
        result.seats_renewed = sum(lease in renewed for lease in held)
        result.seats_lost = sum(lease not in listed or lease not in renewed for lease in held)
        # Give the seats back so the license does not fill over many trials.
        for lease in held:
            async with self.http.delete(f"{url}/api/v1/leases/{lease}") as response:
                await response.read()

    # -- all trials ---------------------------------------------------------------------------

    async def run(self) -> list[Trial]:
        trials: list[Trial] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as self.http:
            tasks = [asyncio.create_task(client.run()) for client in self.clients]
            try:
                kinds = [kind for _ in range(self.args.trials) for kind in ("kill", "hang")]
                for number, kind in enumerate(kinds):
                    log(f"failover trial {number + 1}/{len(kinds)}: SIG{'KILL' if kind == 'kill' else 'STOP'} "
                        "the active member")
                    trials.append(await self.trial(kind, number // 2 + 1))
            finally:
                for client in self.clients:
                    client.stopping = True
                await asyncio.wait(tasks, timeout=5)
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        return trials


def failover_summary(trials: list[Trial], kind: str) -> dict[str, Any]:
    mine = [t for t in trials if t.kind == kind]
    gaps = [t.gap_s for t in mine if t.gap_s is not None]
    firsts = [t.first_client_gap_s for t in mine if t.first_client_gap_s is not None]
    reported = [t.server_reported_active_at_s for t in mine if t.server_reported_active_at_s is not None]
    return {
        "trials": len(mine),
        "failed_trials": sum(t.gap_s is None for t in mine),
        "gap_p50_s": rounded(percentile(gaps, 0.50)),
        "gap_p99_s": rounded(percentile(gaps, 0.99)),
        "gap_max_s": rounded(max(gaps)) if gaps else None,
        "gap_min_s": rounded(min(gaps)) if gaps else None,
        "first_client_gap_p50_s": rounded(percentile(firsts, 0.50)),
        "disrupted_p50_s": rounded(percentile([t.disrupted_s for t in mine if t.disrupted_s is not None], 0.50)),
        "disrupted_p99_s": rounded(percentile([t.disrupted_s for t in mine if t.disrupted_s is not None], 0.99)),
        "verify_retries": sum(t.verify_retries for t in mine),
        "server_active_p50_s": rounded(percentile(reported, 0.50)),
        "server_active_p99_s": rounded(percentile(reported, 0.99)),
        "seats_lost": sum(t.seats_lost for t in mine),
        "recovery_p50_s": rounded(percentile([t.recovery_s for t in mine if t.recovery_s is not None], 0.5)),
        "failback_gap_p50_s": rounded(percentile([t.failback_gap_s for t in mine if t.failback_gap_s], 0.5)),
        "failback_gap_max_s": rounded(max([t.failback_gap_s for t in mine if t.failback_gap_s] or [0.0])),
    }


def member_log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def member_log_sentences(path: Path, offset: int, limit: int = 40) -> list[str]:
    """The warnings and errors a member logged after `offset` (its access log lines left out), the last `limit`."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            text = file.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    said = [line[:300] for line in text.splitlines() if " WARNING " in line or " ERROR " in line]
    return said[-limit:]


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Licentia triad benchmark: throughput vs standalone, failover gap.")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients in the throughput phases (16)")
    parser.add_argument("--duration", type=float, default=None,
                        help="measured seconds per throughput phase (15; --quick 2)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="warm-up seconds per throughput phase (3; --quick 0.5)")
    parser.add_argument("--trials", type=int, default=None,
                        help="failover trials of each kind, kill and hang (12; --quick 2)")
    parser.add_argument("--quick", action="store_true", help="a tiny run for a CI smoke test (< 60 s)")
    parser.add_argument("--seats", type=int, default=20, help="leases held across each failover (20)")
    parser.add_argument("--failover-clients", type=int, default=3, help="clients looping during failover (3)")
    parser.add_argument("--client-timeout", type=float, default=0.3, help="failover clients' request timeout (0.3)")
    parser.add_argument("--client-pause", type=float, default=0.01,
                        help="pause between a failover client's requests (0.01)")
    parser.add_argument("--client-backoff", type=float, default=0.05,
                        help="pause after a round of all members failed (0.05)")
    parser.add_argument("--client-avoid", type=float, default=0.5,
                        help="do not follow a 307 to a member that failed this many seconds ago (0.5)")
    parser.add_argument("--observe", type=float, default=None,
                        help="after every client is served again, watch this long for more failures (1.0; --quick 0.5)")
    parser.add_argument("--gap-timeout", type=float, default=20.0,
                        help="a trial fails if a client is not served within this many seconds (20)")
    parser.add_argument("--active-ttl", type=float, default=0.8, help="the triad's active_ttl_s (0.8, the default)")
    parser.add_argument("--skip-throughput", action="store_true", help="only the failover trials")
    parser.add_argument("--skip-failover", action="store_true", help="only the throughput phases")
    parser.add_argument("--profile", metavar="FILE",
                        help="py-spy record the triad's active member during its measured phase (slows it down)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories and logs")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 2.0 if args.quick else 15.0
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 3.0
    if args.observe is None:
        args.observe = 0.5 if args.quick else 1.0
    if args.trials is None:
        args.trials = 2 if args.quick else 12
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0 or args.trials < 0:
        parser.error("--concurrency must be at least 1, --duration positive, --trials not negative")
    if args.failover_clients < 1 or args.seats < 0:
        parser.error("--failover-clients must be at least 1, --seats not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C so that `finally` stops the child processes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    workdir = Path(tempfile.mkdtemp(prefix="licentia-triad-bench-"))
    started = time.perf_counter()
    issuer = Issuer()
    standalone: ServerProcess | None = None
    cluster: TriadCluster | None = None
    profiler = None
    result: dict[str, Any] = {}
    try:
        busy_before = host_busy_now()
        log(f"host busy before the load: {busy_before}% of all cores ({os.cpu_count()} cores)")
        if busy_before is not None and busy_before > 10:
            log("WARNING: something else is using the CPU; the figures will be low and noisy")
        seat_count = 1_000_000  # never the limit

        solo: dict[str, Any] = {}
        if not args.skip_throughput:
            issuer.trust_in(workdir / "standalone")
            standalone = ServerProcess(workdir / "standalone").start()
            log(f"standalone pid {standalone.process.pid} on {standalone.url}")
            install_licenses(standalone, issuer, seat_count, 10)
            stats, _ = run_event_loop(measure(args, "standalone", standalone.url, standalone.process.pid))
            solo = phase_result(stats)
            stop_process(standalone.process)

        cluster = TriadCluster(workdir / "triad", issuer, name="BENCH", active_ttl_s=args.active_ttl)
        log(f"starting a triad (active_ttl_s {args.active_ttl:g})")
        cluster.start()
        pids = {role: server.process.pid for role, server in cluster.servers.items() if server.process}
        log("triad up: " + ", ".join(f"{role} pid {pid} on {cluster.servers[role].url}" for role, pid in pids.items()))
        install_licenses(cluster.servers["primary"], issuer, seat_count, 10)

        triad: dict[str, Any] = {}
        members_cpu: dict[str, Any] = {}
        if not args.skip_throughput:
            def start_py_spy() -> None:
                nonlocal profiler
                profiler = start_profiler(pids["primary"], args.profile, args.duration)

            stats, members_cpu = run_event_loop(
                measure(args, "triad", cluster.servers["primary"].url, pids["primary"], pids,
                        start_py_spy if args.profile else None)
            )
            triad = phase_result(stats)
            if profiler is not None:
                profiler.wait(60)

        trials: list[Trial] = []
        clients: list[FailoverClient] = []
        hold_retries = 0
        if not args.skip_failover and args.trials:
            bench = FailoverBench(args, cluster)
            clients = bench.clients
            trials = run_event_loop(bench.run())
            hold_retries = bench.hold_retries

        kill, hang = failover_summary(trials, "kill"), failover_summary(trials, "hang")
        ratio = triad["ops_per_s"] / solo["ops_per_s"] if triad and solo and solo["ops_per_s"] else None
        seats_lost = sum(t.seats_lost for t in trials)
        result = {
            "triad_ops_per_s": triad.get("ops_per_s"),
            "standalone_ops_per_s": solo.get("ops_per_s"),
            "ratio": rounded(ratio),
            "p50_ms": triad.get("checkout_p50_ms"),
            "p99_ms": triad.get("checkout_p99_ms"),
            "standalone_p50_ms": solo.get("checkout_p50_ms"),
            "standalone_p99_ms": solo.get("checkout_p99_ms"),
            "failover_kill_p50_s": kill["gap_p50_s"],
            "failover_kill_p99_s": kill["gap_p99_s"],
            "failover_hang_p50_s": hang["gap_p50_s"],
            "failover_hang_p99_s": hang["gap_p99_s"],
            "seats_lost": seats_lost,
            "seats_held_per_trial": args.seats,
            # CPU time per op: the standalone server; the three triad members together.
            "standalone_cpu_us_per_op": (solo.get("cpu") or {}).get("server_cpu_us_per_op"),
            "triad_cpu_us_per_op": round(
                sum(members_cpu.get(f"{role}_pct", 0.0) for role in ROLES) * 1e4 / triad["ops_per_s"], 1
            ) if triad.get("ops_per_s") and members_cpu else None,
            "trials": args.trials,
            "failed_trials": kill["failed_trials"] + hang["failed_trials"],
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            # Other work on the host took more than a tenth of a core during a measured phase.
            "noisy": any((cpu.get("other_pct") or 0) > 10 or (cpu.get("steal_pct") or 0) > 10
                         for cpu in (solo.get("cpu") or {}, members_cpu)),
            "other_cpu_pct": {"standalone": (solo.get("cpu") or {}).get("other_pct"),
                              "triad": members_cpu.get("other_pct")},
            "target_met": {
                "ratio_ge_0.3": ratio is not None and ratio >= 0.3,
                "p99_lt_25ms": triad.get("checkout_p99_ms") is not None and triad["checkout_p99_ms"] < 25.0,
                "kill_p99_lt_1s": kill["gap_p99_s"] is not None and kill["gap_p99_s"] < 1.0,
                "hang_p99_lt_3s": hang["gap_p99_s"] is not None and hang["gap_p99_s"] < 3.0,
                "seats_lost_0": seats_lost == 0 and bool(trials),
            },
            "triad": {**triad, "members_cpu": members_cpu},
            "standalone": solo,
            "failover": {
                "kill": kill,
                "hang": hang,
                "gap_definition": "signal -> end of the first successful request each client sent after it; "
                                  "per trial the slowest client",
                "clients": args.failover_clients,
                "client_timeout_s": args.client_timeout,
                "client_attempts": dict(sum((c.attempts for c in clients), Counter())),
                "client_leases_lost": sum(c.leases_lost for c in clients),
                "held_seat_retries": hold_retries,
                "trials": [asdict(t) for t in trials],
            },
            "active_ttl_s": args.active_ttl,
            "host_busy_before_pct": busy_before,
            "code": code_version(),
            "profiled": bool(args.profile),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "total_s": round(time.perf_counter() - started, 1),
        }
        log("summary: " + json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))
        print(json.dumps(result), flush=True)
        errors = (triad.get("errors") or 0) + (solo.get("errors") or 0)
        return 0 if errors == 0 and seats_lost == 0 and result["failed_trials"] == 0 else 1
    finally:
        if cluster is not None:
            for server in cluster.servers.values():
                if server.process is not None and server.process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(server.process.pid, signal.SIGCONT)
                stop_process(server.process)
        if standalone is not None:
            stop_process(standalone.process)
        stop_process(profiler, signal.SIGINT)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
