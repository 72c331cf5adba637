"""Random faults on a real triad while clients contend for seats; a checker then proves the triad stayed safe.

A seeded schedule (seed from LICENTIA_FAULT_SEED, else random, and always printed; length from
LICENTIA_FAULT_SECONDS, default 60) SIGKILLs and restarts members on the same data directory and
ports, pauses them with SIGSTOP/SIGCONT, and now and then pauses two members at once, while six
client threads contend for a four-seat license. Each client knows all three API URLs, follows 307
`active_url`, retries connection errors, 503s and fencing refusals with short timeouts, reuses its
request_id until a checkout is answered (so a retry never takes a second seat), renews its lease
through whoever is active and checks it in after a short random hold. Every request is recorded
with its wall-clock times, the member asked and the answer, and a sampler asks every member for its
relationship status and (as an admin console would) its licenses all along. The checker then
asserts, over that history and the healed triad:

1. seats: never more leases held than seats: as every member reports them all along, in the final
   state of every member, and over the history (a lease is certainly held from the end of the
   answer that granted it to the start of its first check-in, unless it expired first);
2. no acknowledged lease lost: renewals never report a held lease gone, a first check-in never
   finds it gone, every lease held when the faults stop is on every member afterwards, every
   checked-in lease is gone, and no request_id got a second seat;
3. one active member per epoch, every grant came from the member active in its epoch, and nothing
   commits while two members are paused;
4. after healing the three members hold the same leases, license use and settings, and have
   written the same usage log (what each of them decided for every log entry).

Every other client asks for 12 s leases (renewed every ~0.6 s, so they never expire either) so that
lease expiry times fall inside the run: a member replaying its log after a restart then replays
leases that have expired by its clock, and reads made meanwhile must not change what it decides.

Network partitions, one-way drops and skewed or jumping clocks need network namespaces and
libfaketime: `test_triad_network_clock_faults.py` injects them with this module's clients and checker.
A SIGSTOPped member is, to the two others, a member cut off from both of them, so the fencing of a
deposed active member is exercised here too.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import ADMIN_PASSWORD, ROLES, TriadCluster, every_row

SECONDS = float(os.environ.get("LICENTIA_FAULT_SECONDS", "60"))
SEATS = 4
WORKERS = 6
PRODUCT = "LabelStudio"
LICENSE_ID = "SEATS-FAULTS"
LEASE_TTL_S = 60.0
SHORT_TTL_S = 12.0  # what every other client asks for: renewed every ~0.6 s, so it never expires either
CLIENT_TIMEOUT = httpx.Timeout(3.0, connect=0.3)
STATUS_TIMEOUT = httpx.Timeout(0.8, connect=0.3)
DRAIN_S = 20.0
CONVERGE_S = 15.0
JSON_TYPE = {"Content-Type": "application/json"}


# -- the record ---------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One HTTP request of a client: `status` None means no HTTP answer (`delivered` False: never sent)."""

    worker: int
    op: str
    member: str
    start: float
    end: float
    status: int | None
    body: Any
    delivered: bool = True
    request_id: str = ""
    lease_id: str = ""
    relationship: dict[str, Any] | None = None


@dataclass
class Sample:
    member: str
    start: float
    end: float
    active: str | None
    epoch: int
    serving: bool
    applied_index: int | None


@dataclass
class HeldLease:
    """What the clients know of one lease they were granted."""

    lease_id: str
    request_id: str
    worker: int
    member: str
    acked_at: float
    expires_at: float
    release_started: float | None = None
    released_at: float | None = None
    release_ambiguous: bool = False
    held_at_end: bool = False


@dataclass
class Fault:
    kind: str
    members: list[str]
    start: float
    end: float = 0.0


@dataclass
class Record:
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempts: list[Attempt] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    leases: dict[str, HeldLease] = field(default_factory=dict)
    lease_of_request: dict[str, str] = field(default_factory=dict)
    pending_requests: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seats_seen: set[tuple[str, str, int]] = field(default_factory=set)

    def add_attempt(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)

    def add_sample(self, sample: Sample) -> None:
        with self.lock:
            self.samples.append(sample)

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)

    def granted(self, attempt: Attempt, expires_at: float) -> HeldLease:
        with self.lock:
            lease_id, request_id = attempt.lease_id, attempt.request_id
            known = self.lease_of_request.get(request_id)
            if known is not None and known != lease_id:
                self.violations.append(
                    f"request_id {request_id} was answered with two leases: {known} and {lease_id}"
                )
            self.lease_of_request[request_id] = lease_id
            held = self.leases.get(lease_id)
            if held is None:
                held = self.leases[lease_id] = HeldLease(
                    lease_id, request_id, attempt.worker, attempt.member, attempt.end, expires_at
                )
            elif held.request_id != request_id:
                self.violations.append(
                    f"lease {lease_id} was granted for request_ids {held.request_id} and {request_id}"
                )
            held.expires_at = max(held.expires_at, expires_at)
            return held


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def _code(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code", ""))
    return ""


def _login(url: str) -> str:
    answer = httpx.post(f"{url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=10)
    answer.raise_for_status()
    return answer.json()["token"]


def _relationship(http: httpx.Client, url: str, token: str) -> dict[str, Any] | None:
    try:
        answer = http.get(
            f"{url}/api/v1/admin/relationship", headers={"Authorization": f"Bearer {token}"}, timeout=STATUS_TIMEOUT
        )
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


# -- clients and the sampler --------------------------------------------------------------------


class Worker(threading.Thread):
    """A license client: check out (same request_id on every retry), renew, check in, repeat."""

    def __init__(self, index: int, urls: dict[str, str], tokens: dict[str, str], record: Record,
                 stop: threading.Event, seed: int) -> None:
        super().__init__(name=f"fault-worker-{index}", daemon=True)
        self.index = index
        self.urls = urls
        self.tokens = tokens
        self.record = record
        self.stop = stop
        self.hard_stop = float("inf")
        self.rng = random.Random(seed)
        self.role_of_url = {url.rstrip("/"): role for role, url in urls.items()}
        self.hint = "primary"
        # Short leases put expiry times inside the run, so a member replaying its log after a restart
        # replays leases that expired meanwhile by its clock; long ones are kept at the end and checked.
        self.ttl_s = SHORT_TTL_S if index % 2 else None

    def run(self) -> None:
        with httpx.Client(timeout=CLIENT_TIMEOUT) as http:
            self.http = http
            try:
                self._work()
            except Exception as exc:
                with self.record.lock:
                    self.record.errors.append(f"worker {self.index} crashed: {exc!r}")

    def _next(self, role: str) -> str:
        return ROLES[(ROLES.index(role) + 1) % len(ROLES)]

    def send(self, op: str, method: str, path: str, body: Any, deadline: float, *, stops: bool,
             request_id: str = "", lease_id: str = "") -> tuple[Attempt | None, bool]:
        """Ask whoever serves until an answer that decides; (attempt, an earlier attempt may have taken effect)."""
        maybe_applied = False
        redirects = 0
        while time.time() < min(deadline, self.hard_stop) and not (stops and self.stop.is_set()):
            role = self.hint
            start = time.time()
            try:
                response = self.http.request(method, self.urls[role] + path, json=body)
            except httpx.HTTPError as exc:
                delivered = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                maybe_applied |= delivered
                self.record.add_attempt(Attempt(self.index, op, role, start, time.time(), None, repr(exc),
                                                delivered, request_id, lease_id))
                self.hint = self._next(role)
                time.sleep(0.05)
                continue
            data = _body(response)
            attempt = Attempt(self.index, op, role, start, time.time(), response.status_code, data, True,
                              request_id, lease_id)
            self.record.add_attempt(attempt)
            code = _code(data)
            if response.status_code == 307:
                active_url = str(data["error"]["active_url"]).rstrip("/")
                self.hint = self.role_of_url.get(active_url, self._next(role))
                redirects += 1
                if redirects % 3 == 0:
                    time.sleep(0.1)
                continue
            if response.status_code == 503 or code == "not_active":
                # "unavailable" is a commit that timed out: it may still be committed later.
                maybe_applied |= code == "unavailable"
                self.hint = self._next(role)
                time.sleep(0.1)
                continue
            return attempt, maybe_applied
        return None, maybe_applied

    def _work(self) -> None:
        request_id = uuid.uuid4().hex
        client = {"host": f"host-{self.index}", "user": f"user-{self.index}", "application": "faults"}
        while not self.stop.is_set():
            body = {"product": PRODUCT, "request_id": request_id, "client": client, "ttl_s": self.ttl_s}
            attempt, _ = self.send("checkout", "POST", "/api/v1/leases", body, float("inf"), stops=True,
                                   request_id=request_id)
            if attempt is None:
                break
            if attempt.status not in (200, 201):
                if _code(attempt.body) != "limit_exceeded":
                    with self.record.lock:
                        self.record.errors.append(f"worker {self.index}: unexpected checkout answer "
                                                  f"{attempt.status} {attempt.body}")
                self.stop.wait(self.rng.uniform(0.1, 0.4))
                continue  # the same request_id again: an earlier attempt may still be committed
            attempt.lease_id = attempt.body["lease_id"]
            attempt.relationship = _relationship(self.http, self.urls[attempt.member], self.tokens[attempt.member])
            held = self.record.granted(attempt, float(attempt.body["expires_at"]))
            if not self._hold(held):
                if self.ttl_s is not None:
                    self._check_in(held)
                    return
                with self.record.lock:
                    held.held_at_end = True
                return
            self._check_in(held)
            request_id = uuid.uuid4().hex
        with self.record.lock:
            if request_id not in self.record.lease_of_request:
                self.record.pending_requests.add(request_id)

    def _hold(self, held: HeldLease) -> bool:
        """Renew now and then until the hold is over (True), or until the faults stop (False)."""
        until = time.time() + self.rng.uniform(0.3, 2.5)
        while time.time() < until:
            if self.stop.wait(min(0.6, max(0.0, until - time.time()))):
                return False
            attempt, _ = self.send("heartbeat", "POST", "/api/v1/leases/heartbeat", {"lease_ids": [held.lease_id]},
                                   time.time() + 3.0, stops=True, lease_id=held.lease_id)
            if attempt is None:
                continue
            if attempt.status != 200:
                with self.record.lock:
                    self.record.errors.append(f"worker {self.index}: renewal answered {attempt.status} {attempt.body}")
                continue
            renewed = attempt.body.get("renewed", {})
            if held.lease_id in renewed:
                with self.record.lock:
                    held.expires_at = max(held.expires_at, float(renewed[held.lease_id]))
            elif held.lease_id in attempt.body.get("expired", []) and attempt.start < held.expires_at:
                self.record.violation(
                    f"renewal by worker {self.index} via {attempt.member} at {attempt.start:.3f} reports lease "
                    f"{held.lease_id} gone, though it was acknowledged at {held.acked_at:.3f} and held until "
                    f"{held.expires_at:.3f}"
                )
        return not self.stop.is_set()

    def _check_in(self, held: HeldLease) -> None:
        with self.record.lock:
            held.release_started = time.time()
        attempt, maybe_applied = self.send("checkin", "DELETE", f"/api/v1/leases/{held.lease_id}", None,
                                           float("inf"), stops=False, lease_id=held.lease_id)
        if attempt is None:
            with self.record.lock:
                self.record.errors.append(f"worker {self.index}: check-in of {held.lease_id} never answered")
            return
        if attempt.status == 200:
            with self.record.lock:
                held.released_at = attempt.end
            return
        if attempt.status == 404 and _code(attempt.body) == "lease_not_found":
            with self.record.lock:
                held.released_at = attempt.end
                held.release_ambiguous = True
            if not maybe_applied and attempt.start < held.expires_at:
                self.record.violation(
                    f"first check-in of lease {held.lease_id} (acknowledged at {held.acked_at:.3f}, worker "
                    f"{self.index}) via {attempt.member} at {attempt.start:.3f} found it gone"
                )
            return
        with self.record.lock:
            self.record.errors.append(f"worker {self.index}: check-in answered {attempt.status} {attempt.body}")


class Sampler(threading.Thread):
    """Asks one member for its relationship status about ten times a second, and for its licenses half as often.

    The license reads are what an admin console, metrics or alerts do all along; they must change
    nothing, even on a member that is still replaying its log after a restart.
    """

    def __init__(self, role: str, url: str, token: str, record: Record, stop: threading.Event) -> None:
        super().__init__(name=f"fault-sampler-{role}", daemon=True)
        self.role, self.url, self.token, self.record, self.stop = role, url, token, record, stop

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=STATUS_TIMEOUT, headers=headers) as http:
            rounds = 0
            while not self.stop.is_set():
                start = time.time()
                status = _relationship(http, self.url, self.token)
                if status is not None:
                    self.record.add_sample(Sample(self.role, start, time.time(), status.get("active"),
                                                  int(status.get("epoch") or 0), bool(status.get("serving")),
                                                  status.get("applied_index")))
                rounds += 1
                if rounds % 2 == 0:
                    read_licenses(http, self.url, self.role, self.record)
                self.stop.wait(0.1)


def read_licenses(http: httpx.Client, url: str, role: str, record: Record) -> bool:
    """Read a member's licenses as an admin console does; a seat count above the license count is a violation."""
    start = time.time()
    try:
        licenses = http.get(f"{url}/api/v1/admin/licenses").json()["licenses"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    for lic in licenses:
        seen = (role, lic["license_id"], lic["used"])
        if lic["used"] > lic["count"] and seen not in record.seats_seen:  # each reading once, not every read
            record.seats_seen.add(seen)
            record.violation(f"{role} reported {lic['used']} seats of {lic['count']} of {lic['license_id']} "
                             f"in use at {start:.3f}")
    return True


class RestartReader(threading.Thread):
    """Reads a restarting member's licenses as fast as it answers, from before it is up until `until`.

    Like a console reconnecting to a member that comes back; the member is then replaying its log,
    and what it decides while replaying must not depend on these reads.
    """

    def __init__(self, role: str, url: str, token: str, record: Record) -> None:
        super().__init__(name=f"fault-reader-{role}", daemon=True)
        self.role, self.url, self.token, self.record = role, url, token, record
        self.until = float("inf")
        self.reads = 0

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=STATUS_TIMEOUT, headers=headers) as http:
            while time.time() < self.until:
                if read_licenses(http, self.url, self.role, self.record):
                    self.reads += 1
                else:
                    time.sleep(0.005)


# -- faults -------------------------------------------------------------------------------------


def _signal(cluster: TriadCluster, role: str, signum: int, with_etcd: bool = False) -> None:
    """Signal a member's server process; `with_etcd` also its etcd member (its child), so that the
    member is gone from the consensus store as well."""
    process = cluster.servers[role].process
    if process is not None and process.poll() is None:
        pids = [process.pid]
        if with_etcd:
            pids = [*_children(process.pid), process.pid] if signum == signal.SIGSTOP else [
                process.pid, *_children(process.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            children += [int(child) for child in (task / "children").read_text().split()]
    return children


def inject_faults(cluster: TriadCluster, rng: random.Random, record: Record, seconds: float,
                  tokens: dict[str, str]) -> None:
    """Faults one after the other, so at most one member is down at a time except in the 'pause-two' windows."""
    end = time.time() + seconds
    kinds = ["kill", "pause", "pause-two"]
    while True:
        gap = rng.uniform(0.7, 2.5)
        kind = rng.choices(kinds, weights=[4, 4, 1])[0]
        aim_at_active = rng.random() < 0.6
        picked = rng.sample(ROLES, 2)
        duration = rng.uniform(0.2, 2.5) if kind == "kill" else rng.uniform(1.0, 3.0)
        if time.time() + gap + duration > end:
            break
        time.sleep(gap)
        target = picked[0]
        if aim_at_active and kind != "pause-two":
            target = cluster.active() or target
        fault = Fault(kind, picked if kind == "pause-two" else [target], time.time())
        record.faults.append(fault)
        if kind == "kill":
            server = cluster.servers[target]
            server.kill()
            time.sleep(duration)
            reader = RestartReader(target, server.url, tokens[target], record)
            reader.start()
            try:
                server.start()
            finally:
                reader.until = time.time() + 1.5
        else:
            # Two members paused whole (server and etcd): the third has no majority. One member paused
            # is its server only: its etcd stays, its lease lapses because the server stops renewing it.
            whole = kind == "pause-two"
            for role in fault.members:
                _signal(cluster, role, signal.SIGSTOP, with_etcd=whole)
            fault.start = time.time()
            time.sleep(duration)
            fault.end = time.time()
            for role in fault.members:
                _signal(cluster, role, signal.SIGCONT, with_etcd=whole)
        fault.end = fault.end or time.time()


# -- the checker --------------------------------------------------------------------------------


def check_seat_history(record: Record, count: int, until: float) -> tuple[list[str], int]:
    """At no instant more than `count` leases certainly held; returns (violations, the most held at once)."""
    events: list[tuple[float, int, str]] = []
    for held in record.leases.values():
        end = min(held.release_started or until, held.expires_at)
        if end > held.acked_at:
            events.append((held.acked_at, 1, held.lease_id))
            events.append((end, -1, held.lease_id))
    events.sort(key=lambda event: (event[0], event[1]))
    holding: set[str] = set()
    most, problems = 0, []
    for at, step, lease_id in events:
        if step < 0:
            holding.discard(lease_id)
            continue
        holding.add(lease_id)
        most = max(most, len(holding))
        if len(holding) > count:
            problems.append(f"at {at:.3f} {len(holding)} acknowledged leases were held at once "
                            f"(license count {count}): {sorted(holding)}")
    return problems, most


def check_epochs(record: Record) -> tuple[list[str], dict[int, set[str]]]:
    """One active member per epoch, and every grant from the member active in its epoch."""
    problems: list[str] = []
    members_in: dict[int, set[str]] = defaultdict(set)
    for sample in record.samples:
        if sample.active is not None:
            members_in[sample.epoch].add(sample.active)
    grants = [a for a in record.attempts if a.op == "checkout" and a.status in (200, 201)]
    for attempt in grants:
        status = attempt.relationship
        if status is not None and status.get("active") is not None:
            members_in[int(status["epoch"])].add(status["active"])
    for epoch, members in sorted(members_in.items()):
        if len(members) > 1:
            problems.append(f"epoch {epoch} had more than one active member: {sorted(members)}")
    samples = sorted(record.samples, key=lambda s: s.end)
    kills = [f for f in record.faults if f.kind == "kill"]
    granting: dict[int, set[str]] = defaultdict(set)
    for attempt in grants:
        status = attempt.relationship
        if status is None or any(f.members[0] == attempt.member and f.start < attempt.end + 1.0 and
                                 f.end > attempt.end for f in kills):
            continue
        # Every sampled state is a committed prefix of the log and the grant was appended after every
        # entry committed before its request started: its epoch is at least any epoch sampled before.
        low = max((s.epoch for s in samples if s.end < attempt.start), default=0)
        # The answering member had applied the grant before answering, so its status right after is later.
        high = int(status["epoch"])
        if high < low:
            problems.append(f"grant of {attempt.lease_id} by {attempt.member}: epoch went back from {low} to {high}")
            continue
        if low == high:
            granting[low].add(attempt.member)
        span = range(low, high + 1)
        if all(members_in.get(e) for e in span) and not any(attempt.member in members_in[e] for e in span):
            problems.append(
                f"lease {attempt.lease_id} was granted by {attempt.member} at {attempt.end:.3f} in epoch "
                f"{low}..{high}, where the active members were {[sorted(members_in[e]) for e in span]}"
            )
    for epoch, members in sorted(granting.items()):
        if len(members) > 1:
            problems.append(f"in epoch {epoch} more than one member granted seats: {sorted(members)}")
    return problems, members_in


def check_no_progress_without_quorum(record: Record) -> list[str]:
    """While two members are paused, the third cannot commit: nothing asked then may be answered as done."""
    problems = []
    for fault in record.faults:
        if fault.kind != "pause-two":
            continue
        for attempt in record.attempts:
            done = attempt.status in (200, 201) and attempt.op in ("checkout", "heartbeat", "checkin")
            if done and attempt.start > fault.start + 0.05 and attempt.end < fault.end:
                problems.append(
                    f"{attempt.op} by worker {attempt.worker} answered {attempt.status} by {attempt.member} at "
                    f"{attempt.end:.3f} while {fault.members} were paused ({fault.start:.3f}-{fault.end:.3f})"
                )
    return problems


def member_picture(url: str, token: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=5) as admin:
        leases = every_row(admin, "/api/v1/admin/leases", "leases")
        licenses = admin.get("/api/v1/admin/licenses").json()["licenses"]
        settings = admin.get("/api/v1/admin/settings").json()
        usage = admin.get("/api/v1/admin/usage", params={"limit": 100_000}).json()["records"]
    for record in usage:
        record.pop("id")  # the row number of this member's database
    for lease in leases:
        lease.pop("expires_in_s", None)
    return {
        "leases": sorted(leases, key=lambda lease: lease["lease_id"]),
        "licenses": sorted(
            ({key: lic[key] for key in ("license_id", "count", "used", "status", "grace_started_at")}
             for lic in licenses),
            key=lambda lic: lic["license_id"],
        ),
        "settings": settings,
        # Each member writes the usage of every log entry it applies; the same log must give the same rows.
        "usage": sorted(usage, key=lambda record: json.dumps(record, sort_keys=True)),
    }


def converged_pictures(urls: dict[str, str], tokens: dict[str, str]) -> tuple[bool, dict[str, dict[str, Any]]]:
    deadline = time.time() + CONVERGE_S
    pictures: dict[str, dict[str, Any]] = {}
    while True:
        try:
            pictures = {role: member_picture(urls[role], tokens[role]) for role in ROLES}
        except (httpx.HTTPError, KeyError, ValueError):
            pictures = {}
        if pictures and all(pictures[role] == pictures["primary"] for role in ROLES):
            return True, pictures
        if time.time() > deadline:
            return False, pictures
        time.sleep(0.25)


def describe_difference(pictures: dict[str, dict[str, Any]]) -> str:
    """What each member holds that the primary does not, and the other way round, part by part."""
    if set(pictures) != set(ROLES):
        return f"only {sorted(pictures)} answered"
    lines = []
    for part in pictures["primary"]:
        base = [json.dumps(item, sort_keys=True) for item in _items(pictures["primary"][part])]
        for role in ROLES[1:]:
            other = [json.dumps(item, sort_keys=True) for item in _items(pictures[role][part])]
            if other != base:
                only_primary = [item for item in base if item not in other][:3]
                only_other = [item for item in other if item not in base][:3]
                lines.append(f"{part}: primary {len(base)} vs {role} {len(other)}; only on primary {only_primary}; "
                             f"only on {role} {only_other}")
    return "; ".join(lines)[:6000]


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def check_final_state(record: Record, pictures: dict[str, dict[str, Any]], checked_at: float) -> tuple[list[str], int]:
    """Seats and leases after healing, on every member; returns (violations, orphan leases)."""
    problems: list[str] = []
    orphans = 0
    for role, picture in pictures.items():
        for lic in picture["licenses"]:
            held = sum(1 for lease in picture["leases"] if lease["license_id"] == lic["license_id"])
            if lic["used"] > lic["count"] or held > lic["count"]:
                problems.append(f"{role}: license {lic['license_id']} has {lic['used']} used and {held} leases "
                                f"for {lic['count']} seats")
        present = {lease["lease_id"]: lease for lease in picture["leases"]}
        for held in record.leases.values():
            if held.released_at is not None:
                if held.lease_id in present:
                    problems.append(f"{role}: lease {held.lease_id} is still held after its check-in was answered")
            elif held.release_started is None and held.lease_id not in present and checked_at < held.expires_at:
                problems.append(f"{role}: acknowledged lease {held.lease_id} (worker {held.worker}, granted by "
                                f"{held.member} at {held.acked_at:.3f}, never checked in) is lost")
        for lease_id, lease in present.items():
            if lease_id in record.leases:
                continue
            if lease["request_id"] in record.pending_requests:
                orphans += role == "primary"
                continue
            if lease["request_id"] in record.lease_of_request:
                problems.append(
                    f"{role}: lease {lease_id} is a second seat for request_id {lease['request_id']}, which was "
                    f"answered with lease {record.lease_of_request[lease['request_id']]}"
                )
            else:
                problems.append(f"{role}: lease {lease_id} (request_id {lease['request_id']}) was never asked for")
    return problems, orphans


def heal(cluster: TriadCluster) -> None:
    """Every member running and none paused."""
    for role in ROLES:
        _signal(cluster, role, signal.SIGCONT, with_etcd=True)
        server = cluster.servers[role]
        if server.process is None or server.process.poll() is not None:
            server.start()


def explain_failure(cluster: TriadCluster, began: float) -> None:
    """Print what helps to tell a triad bug from a broken run: server tracebacks, code changed meanwhile."""
    for role, server in cluster.servers.items():
        text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
        for block in text.split("Traceback (most recent call last):")[1:3]:
            print(f"--- {role} traceback:\nTraceback (most recent call last):{block[:3000]}")
    source = Path(__file__).resolve().parents[2] / "src"
    changed = sorted(str(path.relative_to(source)) for path in source.rglob("*.py") if path.stat().st_mtime > began)
    if changed:
        print(f"NOTE: {changed} changed during the run; members restarted meanwhile ran the new code")


# -- the test -----------------------------------------------------------------------------------


def test_triad_random_faults(start_triad, issuer, tmp_path: Path) -> None:
    seed = int(os.environ.get("LICENTIA_FAULT_SEED") or random.SystemRandom().randrange(1, 10**9))
    print(f"\nLICENTIA_FAULT_SEED={seed} LICENTIA_FAULT_SECONDS={SECONDS:g}")
    rng = random.Random(seed)
    began = time.time()
    cluster = start_triad()
    urls = {role: server.url for role, server in cluster.servers.items()}
    tokens = {role: _login(url) for role, url in urls.items()}
    with cluster.servers["primary"].admin() as admin:
        lic = issuer.license_bytes(license_id=LICENSE_ID, unit="seats", count=SEATS, product=PRODUCT)
        assert admin.post("/api/v1/admin/licenses", content=lic, headers=JSON_TYPE).status_code == 201
        changes = {"lease_ttl_s": LEASE_TTL_S, "heartbeat_interval_s": 10}
        assert admin.patch("/api/v1/admin/settings", json={"changes": changes}).status_code == 200
    same, pictures = converged_pictures(urls, tokens)
    assert same and pictures["tertiary"]["settings"]["settings"]["lease_ttl_s"] == LEASE_TTL_S, pictures

    record = Record()
    stop_clients, stop_sampling = threading.Event(), threading.Event()
    samplers = [Sampler(role, urls[role], tokens[role], record, stop_sampling) for role in ROLES]
    workers = [Worker(i, urls, tokens, record, stop_clients, rng.randrange(2**32)) for i in range(WORKERS)]
    faults_seed = rng.randrange(2**32)
    for thread in [*samplers, *workers]:
        thread.start()
    faults_began = time.time()
    try:
        try:
            inject_faults(cluster, random.Random(faults_seed), record, SECONDS, tokens)
        finally:
            faults_over = time.time()
            stop_clients.set()
            hard_stop = time.time() + DRAIN_S
            for worker in workers:
                worker.hard_stop = hard_stop
            heal(cluster)
            for worker in workers:
                worker.join(timeout=DRAIN_S + 10)
        clients_over = time.time()
        active = cluster.wait_active(timeout=30)
        same, pictures = converged_pictures(urls, tokens)
        checked_at = time.time()
    finally:
        stop_clients.set()
        stop_sampling.set()
        for sampler in samplers:
            sampler.join(timeout=5)

    problems = list(record.violations)
    seat_problems, most_held = check_seat_history(record, SEATS, clients_over)
    problems += seat_problems
    epoch_problems, members_in = check_epochs(record)
    problems += epoch_problems
    problems += check_no_progress_without_quorum(record)
    final_problems, orphans = check_final_state(record, pictures, checked_at)
    problems += final_problems
    if not same:
        problems.append(f"the members did not converge within {CONVERGE_S:g}s: {describe_difference(pictures)}")

    history = tmp_path / "fault-history.json"
    history.write_text(json.dumps({
        "seed": seed,
        "faults": [asdict(f) for f in record.faults],
        "attempts": [asdict(a) for a in record.attempts],
        "samples": [asdict(s) for s in record.samples],
        "leases": [asdict(held) for held in record.leases.values()],
        "pending_requests": sorted(record.pending_requests),
        "final": pictures,
        "violations": problems,
        "errors": record.errors,
    }, default=str))

    statuses = Counter((a.op, a.status) for a in record.attempts)
    fault_kinds = Counter(f.kind for f in record.faults)
    print(
        f"seed {seed}: {sum(fault_kinds.values())} faults {dict(fault_kinds)} in {faults_over - faults_began:.1f}s, "
        f"{time.time() - began:.1f}s in all; {len(record.attempts)} requests, {statuses['checkout', 201]} grants "
        f"(+{statuses['checkout', 200]} repeated), {statuses['checkout', 409]} denials, "
        f"{sum(n for (_, s), n in statuses.items() if s == 307)} redirects, "
        f"{sum(n for (_, s), n in statuses.items() if s == 503)} unavailable, "
        f"{sum(n for (_, s), n in statuses.items() if s is None)} without answer; "
        f"{len(record.leases)} leases, at most {most_held} held at once, "
        f"{sum(1 for h in record.leases.values() if h.held_at_end)} held at the end, {orphans} orphaned; "
        f"epochs up to {max(members_in, default=0)}, now {active} active; "
        f"{len(problems)} violation(s); history in {history}"
    )
    print("faults:", ", ".join(f"{f.kind} {'+'.join(f.members)} {f.end - f.start:.1f}s" for f in record.faults))
    for problem in problems[:50]:
        print("VIOLATION:", problem)
    for error in record.errors[:20]:
        print("client error:", error)
    if problems or record.errors:
        explain_failure(cluster, began)

    assert not problems, f"seed {seed}: {len(problems)} invariant violation(s), first: {problems[:5]}"
    assert not record.errors, f"seed {seed}: client errors: {record.errors[:5]}"
    assert statuses["checkout", 201] >= 10, f"seed {seed}: too few grants to mean anything: {statuses}"
