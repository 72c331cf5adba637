"""Random partitions, one-way drops, skewed and jumping clocks, kills and pauses on a triad in network namespaces.

The same clients, sampler and checker as `test_triad_random_faults` (seats never over the count, no
acknowledged lease lost, one active member per epoch, every member converges), on a triad whose
members each run in their own network namespace (harness `NetnsLab`) with libfaketime loaded into
each server process, both of its clocks faked (Debian `faketime`; the offset is read from a file
the test rewrites). The seeded schedule (LICENTIA_FAULT_SEED, printed; LICENTIA_FAULT_SECONDS,
default 40) mixes:

- isolate: one member (the active one more often than not) cut from both others, then healed;
- cut-link: one link between two members cut, then healed;
- one-way: one member drops what it receives from another (iptables INPUT in its namespace);
- clock: one member's clocks set ±1 s or ±5 s off, kept for the rest of the run;
- clock-jump: one member's clocks jump +120 s for a few seconds, then are put back (libfaketime moves
  the monotonic clock with the wall clock, so putting it back stalls that member's timers for about
  120 s, as a hang would: the run then waits for it to come back before it checks convergence);
- kill, pause: SIGKILL (then a restart on the same data and ports) or SIGSTOP/SIGCONT of one member;
- kill-all: the whole triad SIGKILLed at once and restarted in random order.

On top of the base checker, four liveness rules:

1. a primary that was isolated serves again within 5 s of the heal (unless a later fault intervenes);
2. a client that stops renewing loses its seat within its lease TTL plus one failover grace;
3. no flapping: at most two changes of the active member (a failover and a failback) per fault;
4. no stretch without an active member longer than 3.5 s while a majority is connected (a member
   killed, paused, isolated or stalled after its clock was put back does not count as connected).

The seed defaults to a fixed one, so CI runs the same short schedule each time; LICENTIA_FAULT_SEED
picks another, and LICENTIA_FAULT_SEEDS=N runs N seeds from it in a row (each a fresh triad).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import pytest
from harness import ROLES, Issuer, NetnsLab, TriadCluster
from test_triad_random_faults import (
    JSON_TYPE,
    LEASE_TTL_S,
    LICENSE_ID,
    PRODUCT,
    SEATS,
    WORKERS,
    Fault,
    Record,
    RestartReader,
    Sampler,
    Worker,
    _login,
    _signal,
    check_epochs,
    check_final_state,
    check_seat_history,
    converged_pictures,
    describe_difference,
    explain_failure,
)

SECONDS = float(os.environ.get("LICENTIA_FAULT_SECONDS", "40"))
SEEDS = int(os.environ.get("LICENTIA_FAULT_SEEDS", "1"))
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
QUIT_PRODUCT, QUIT_LICENSE = "QuitStudio", "SEATS-QUIT"
QUIT_TTL_S = 12.0
NO_ACTIVE_LIMIT_S = 3.5
HEALED_PRIMARY_LIMIT_S = 5.0
DRAIN_S = 20.0
DEFAULT_SEED = 1001
CLOCK_JUMP_RECOVERY_S = 150.0


@pytest.fixture
def faults_lab(lab: NetnsLab) -> NetnsLab:
    """The namespace lab (conftest), once libfaketime and iptables are known to be here."""
    if not FAKETIME_LIB.exists() or not _has("iptables"):
        pytest.skip("libfaketime (Debian faketime) and iptables are needed; scripts/test.sh installs them")
    return lab


def _has(tool: str) -> bool:
    return subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode == 0


class Clocks:
    """Each member's libfaketime offset file: rewriting it moves that member's clocks within a second."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.offsets = {role: 0.0 for role in ROLES}
        folder.mkdir(parents=True, exist_ok=True)
        for role in ROLES:
            self.set(role, 0.0)

    def file(self, role: str) -> Path:
        return self.folder / f"{role}.faketime"

    def env(self, role: str) -> dict[str, str]:
        return {"LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME_TIMESTAMP_FILE": str(self.file(role)),
                "FAKETIME_CACHE_DURATION": "1"}

    def set(self, role: str, offset: float) -> None:
        self.offsets[role] = offset
        tmp = self.file(role).with_suffix(".tmp")
        tmp.write_text(f"{offset:+.0f}\n")
        tmp.replace(self.file(role))


class Network:
    """Partitions between the members' namespaces; `heal_all` undoes every one."""

    def __init__(self, lab: NetnsLab) -> None:
        self.lab = lab
        self.cut_links: set[tuple[str, str]] = set()
        self.drops: set[tuple[str, str]] = set()

    def cut(self, a: str, b: str) -> None:
        key = tuple(sorted((a, b)))
        if key not in self.cut_links:
            self.lab.cut(*key)
            self.cut_links.add(key)  # type: ignore[arg-type]

    def heal(self, a: str, b: str) -> None:
        key = tuple(sorted((a, b)))
        if key in self.cut_links:
            self.lab.heal(*key)
            self.cut_links.discard(key)  # type: ignore[arg-type]

    def drop_from(self, at: str, source: str) -> None:
        """`at` drops every packet it receives from `source` (one way: `at` still sends to `source`)."""
        self._iptables(at, "-A", source)
        self.drops.add((at, source))

    def undrop(self, at: str, source: str) -> None:
        if (at, source) in self.drops:
            self._iptables(at, "-D", source)
            self.drops.discard((at, source))

    def _iptables(self, at: str, action: str, source: str) -> None:
        subprocess.run([*self.lab.wrapper(at), "iptables", action, "INPUT", "-s", self.lab.ip(source), "-j", "DROP"],
                       check=True, capture_output=True)

    def heal_all(self) -> None:
        for a, b in list(self.cut_links):
            self.heal(a, b)
        for at, source in list(self.drops):
            self.undrop(at, source)


@dataclass
class QuitLease:
    lease_id: str
    acked_at: float
    gone_at: float | None = None


class Quitter(threading.Thread):
    """Checks out a seat now and then and never renews it: the seat must come free within its TTL + a grace."""

    def __init__(self, urls: dict[str, str], stop: threading.Event) -> None:
        super().__init__(name="fault-quitter", daemon=True)
        self.urls, self.stop = urls, stop
        self.leases: list[QuitLease] = []

    def run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(2.0, connect=0.3), follow_redirects=True) as http:
            while not self.stop.wait(3.0):
                request_id = uuid.uuid4().hex
                body = {"product": QUIT_PRODUCT, "request_id": request_id, "ttl_s": QUIT_TTL_S,
                        "client": {"host": "quitter", "user": "gone"}}
                for _ in range(20):
                    role = random.choice(ROLES)
                    try:
                        answer = http.post(self.urls[role] + "/api/v1/leases", json=body)
                    except httpx.HTTPError:
                        time.sleep(0.2)
                        continue
                    if answer.status_code in (200, 201):
                        self.leases.append(QuitLease(answer.json()["lease_id"], time.time()))
                        break
                    time.sleep(0.2)


class QuitWatcher(threading.Thread):
    """Reads the held leases from whichever member serves, and notes when each quitter's lease is gone."""

    def __init__(self, urls: dict[str, str], tokens: dict[str, str], quitter: Quitter, stop: threading.Event) -> None:
        super().__init__(name="fault-quit-watcher", daemon=True)
        self.urls, self.tokens, self.quitter, self.stop = urls, tokens, quitter, stop

    def run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(1.0, connect=0.3)) as http:
            while not self.stop.wait(0.5):
                for role, url in self.urls.items():
                    headers = {"Authorization": f"Bearer {self.tokens[role]}"}
                    try:
                        if not http.get(f"{url}/api/v1/server").json()["relationship"]["serving"]:
                            continue
                        held = {lease["lease_id"] for lease in
                                http.get(f"{url}/api/v1/admin/leases", headers=headers).json()["leases"]}
                    except (httpx.HTTPError, ValueError, KeyError, TypeError):
                        continue
                    now = time.time()
                    for lease in list(self.quitter.leases):
                        if lease.gone_at is None and lease.lease_id not in held and now > lease.acked_at + 1:
                            lease.gone_at = now
                    break


def inject(cluster: TriadCluster, lab: NetnsLab, network: Network, clocks: Clocks, rng: random.Random,
           record: Record, tokens: dict[str, str], seconds: float) -> None:
    end = time.time() + seconds
    kinds = ["isolate", "cut-link", "one-way", "clock", "clock-jump", "kill", "pause", "kill-all"]
    weights = [3, 1, 1, 1, 1, 2, 2, 0.6]
    while True:
        gap = rng.uniform(1.0, 2.5)
        kind = rng.choices(kinds, weights=weights)[0]
        duration = rng.uniform(1.0, 4.0)
        if time.time() + gap + duration + 3 > end:
            break
        time.sleep(gap)
        target = rng.choice(ROLES)
        if kind in ("isolate", "kill", "pause") and rng.random() < 0.6:
            target = cluster.active() or target
        other = rng.choice([r for r in ROLES if r != target])
        fault = Fault(kind, [target] if kind not in ("cut-link", "one-way") else [target, other], time.time())
        record.faults.append(fault)
        if kind == "isolate":
            for peer in ROLES:
                if peer != target:
                    network.cut(target, peer)
            time.sleep(duration)
            for peer in ROLES:
                if peer != target:
                    network.heal(target, peer)
        elif kind == "cut-link":
            network.cut(target, other)
            time.sleep(duration)
            network.heal(target, other)
        elif kind == "one-way":
            network.drop_from(target, other)
            time.sleep(duration)
            network.undrop(target, other)
        elif kind == "clock":
            clocks.set(target, rng.choice([-5.0, -1.0, 1.0, 5.0]))
        elif kind == "clock-jump":
            before = clocks.offsets[target]
            clocks.set(target, before + 120.0)
            time.sleep(duration + 2)
            clocks.set(target, before)
        elif kind == "kill":
            server = cluster.servers[target]
            server.kill()
            time.sleep(min(duration, 2.5))
            reader = RestartReader(target, server.url, tokens[target], record)
            reader.start()
            try:
                server.start(timeout=40)
            finally:
                reader.until = time.time() + 1.5
        elif kind == "pause":
            _signal(cluster, target, signal.SIGSTOP)
            time.sleep(duration)
            _signal(cluster, target, signal.SIGCONT)
        elif kind == "kill-all":
            for role in ROLES:
                cluster.servers[role].process.kill()  # type: ignore[union-attr]
            for role in ROLES:
                cluster.servers[role].kill()
            fault.members = list(ROLES)
            order = list(ROLES)
            rng.shuffle(order)
            starters = [threading.Thread(target=cluster.servers[role].start, kwargs={"timeout": 60}) for role in order]
            for starter in starters:
                starter.start()
                time.sleep(rng.uniform(0.0, 0.5))
            for starter in starters:
                starter.join()
        fault.end = time.time()


# -- liveness rules -----------------------------------------------------------------------------


def serving_times(record: Record) -> list[float]:
    return sorted(s.end for s in record.samples if s.serving)


def check_healed_primary_serves(record: Record) -> list[str]:
    problems = []
    stalled_windows = clock_stall_windows(record)
    serving_primary = sorted(s.end for s in record.samples if s.serving and s.member == "primary")
    starts = sorted(f.start for f in record.faults)
    for fault in record.faults:
        if fault.kind != "isolate" or fault.members != ["primary"]:
            continue
        window_end = fault.end + HEALED_PRIMARY_LIMIT_S
        if any(fault.end < start < window_end for start in starts):
            continue  # another fault began before the primary had its chance
        if any(w0 <= fault.end <= w1 for w0, w1 in stalled_windows.get("primary", [])):
            continue  # its clock was put back by 120 s: its timers are stalled (rule 4's windows), as in a hang
        if not any(fault.end <= t <= window_end for t in serving_primary):
            problems.append(f"the primary isolated at {fault.start:.3f} did not serve within "
                            f"{HEALED_PRIMARY_LIMIT_S:g}s of the heal at {fault.end:.3f}")
    return problems


def check_quitters(quitter: Quitter, checked_until: float, fault_starts: list[float]) -> list[str]:
    problems = []
    for lease in quitter.leases:
        grace = 4.0  # the reclaim loop's interval and a sampling period
        if any(lease.acked_at - 5 < t < lease.acked_at + QUIT_TTL_S + 5 for t in fault_starts):
            grace += QUIT_TTL_S + 5.0  # one failover: the new active member honours the lease one more TTL
        due = lease.acked_at + QUIT_TTL_S + grace
        if due > checked_until:
            continue
        if lease.gone_at is None or lease.gone_at > due:
            problems.append(f"the quitter's lease {lease.lease_id} (granted at {lease.acked_at:.3f}, TTL "
                            f"{QUIT_TTL_S:g}s) was still held at {lease.gone_at or checked_until:.3f}")
    return problems


def check_no_flapping(members_in: dict[int, set[str]], faults: int) -> list[str]:
    epochs = [e for e, members in members_in.items() if members]
    changes = max(epochs) - min(epochs) if epochs else 0
    if changes > 2 * faults:
        return [f"{changes} changes of the active member for {faults} faults (at most a failover and a failback each)"]
    return []


def clock_stall_windows(record: Record) -> dict[str, list[tuple[float, float]]]:
    """When each member's timers stood still after its clocks were put back by 120 s (libfaketime moves
    the monotonic clock too, which a real clock never does: the member waits out the 120 s like a hang)."""
    windows: dict[str, list[tuple[float, float]]] = {role: [] for role in ROLES}
    for fault in record.faults:
        if fault.kind == "clock-jump":
            windows[fault.members[0]].append((fault.start, fault.end + 125.0))
    return windows


def impaired_windows(record: Record) -> dict[str, list[tuple[float, float]]]:
    """When each member could not take part (killed, paused, isolated, or, after its clock was put back by
    120 s, with its timers stalled for about as long), each window stretched by a recovery allowance."""
    windows: dict[str, list[tuple[float, float]]] = {role: [] for role in ROLES}
    for fault in record.faults:
        if fault.kind in ("kill", "pause", "isolate", "kill-all"):
            for role in fault.members:
                windows[role].append((fault.start, fault.end + 2.0))
    for role, stalls in clock_stall_windows(record).items():
        windows[role].extend(stalls)
    return windows


def majority_impaired_during(windows: dict[str, list[tuple[float, float]]], start: float, stop: float) -> bool:
    """At some moment between `start` and `stop`, two members or more could not take part."""
    moments = [start] + [w0 for spans in windows.values() for w0, _ in spans if start <= w0 <= stop]
    for moment in moments:
        down = sum(1 for spans in windows.values() if any(w0 <= moment <= w1 for w0, w1 in spans))
        if down >= 2:
            return True
    return False


def check_no_long_gap(record: Record, began: float, ended: float) -> list[str]:
    problems = []
    windows = impaired_windows(record)
    times = [began, *serving_times(record), ended]
    for earlier, later in itertools.pairwise(times):
        if later - earlier <= NO_ACTIVE_LIMIT_S or majority_impaired_during(windows, earlier, later):
            continue
        problems.append(f"no member served from {earlier:.3f} to {later:.3f} ({later - earlier:.1f}s) while a "
                        "majority was connected")
    return problems


def without_quitters(picture: dict) -> dict:
    """The quitter's leases and usage are checked by rule 2, not by the base checker (it never asked for them)."""
    if not picture:
        return picture
    return {
        **picture,
        "leases": [lease for lease in picture["leases"] if lease["license_id"] != QUIT_LICENSE],
        "licenses": [lic for lic in picture["licenses"] if lic["license_id"] != QUIT_LICENSE],
        "usage": [row for row in picture["usage"] if row.get("product") != QUIT_PRODUCT],
    }


# -- the test -----------------------------------------------------------------------------------


def run_seed(seed: int, lab: NetnsLab, base: Path, issuer: Issuer) -> list[str]:
    print(f"\nLICENTIA_FAULT_SEED={seed} LICENTIA_FAULT_SECONDS={SECONDS:g}")
    rng = random.Random(seed)
    began = time.time()
    clocks = Clocks(base / "clocks")
    network = Network(lab)
    cluster = TriadCluster(base / "triad", issuer, netns=lab)
    for role in ROLES:
        cluster.servers[role].extra_env = clocks.env(role)
    record = Record()
    stop_clients, stop_sampling = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []
    try:
        cluster.start(timeout=60)
        urls = {role: server.url for role, server in cluster.servers.items()}
        tokens = {role: _login(url) for role, url in urls.items()}
        with cluster.servers["primary"].admin() as admin:
            for license_id, product, count in ((LICENSE_ID, PRODUCT, SEATS), (QUIT_LICENSE, QUIT_PRODUCT, 1000)):
                lic = issuer.license_bytes(license_id=license_id, unit="seats", count=count, product=product)
                assert admin.post("/api/v1/admin/licenses", content=lic, headers=JSON_TYPE).status_code == 201
            changes = {"lease_ttl_s": LEASE_TTL_S, "heartbeat_interval_s": 10}
            assert admin.patch("/api/v1/admin/settings", json={"changes": changes}).status_code == 200
        samplers = [Sampler(role, urls[role], tokens[role], record, stop_sampling) for role in ROLES]
        workers = [Worker(i, urls, tokens, record, stop_clients, rng.randrange(2**32)) for i in range(WORKERS)]
        quitter = Quitter(urls, stop_clients)
        watcher = QuitWatcher(urls, tokens, quitter, stop_sampling)
        threads = [*samplers, *workers, quitter, watcher]
        for thread in threads:
            thread.start()
        faults_began = time.time()
        try:
            inject(cluster, lab, network, clocks, random.Random(rng.randrange(2**32)), record, tokens, SECONDS)
        finally:
            faults_over = time.time()
            network.heal_all()
            for role in ROLES:
                clocks.set(role, clocks.offsets[role] if abs(clocks.offsets[role]) < 100 else 0.0)
                _signal(cluster, role, signal.SIGCONT)
                server = cluster.servers[role]
                if server.process is None or server.process.poll() is not None:
                    server.start(timeout=60)
            stop_clients.set()
            hard_stop = time.time() + DRAIN_S
            for worker in workers:
                worker.hard_stop = hard_stop
            for worker in workers:
                worker.join(timeout=DRAIN_S + 10)
        clients_over = time.time()
        # A member whose clocks were put back waits out ~120 s of stalled timers (seed 4022: the primary and the
        # secondary both, so nothing could serve until the first of them came back).
        stalls_end = max((end for spans in clock_stall_windows(record).values() for _, end in spans), default=0.0)
        cluster.wait_active(timeout=max(30.0, stalls_end - time.time() + 30.0))
        # Let every quitter lease run out (TTL + grace), so rule 2 is checked on all of them.
        time.sleep(QUIT_TTL_S + 6)
        recovery = CLOCK_JUMP_RECOVERY_S if any(f.kind == "clock-jump" for f in record.faults) else 0.0
        same, pictures = converged_pictures(urls, tokens)
        while not same and time.time() < clients_over + recovery:
            same, pictures = converged_pictures(urls, tokens)
        pictures = {role: without_quitters(picture) for role, picture in pictures.items()}
        checked_at = time.time()
    except BaseException:
        cluster.stop()
        raise
    finally:
        stop_clients.set()
        stop_sampling.set()
        for thread in threads:
            thread.join(timeout=5)
        network.heal_all()

    problems = list(record.violations)
    seat_problems, most_held = check_seat_history(record, SEATS, clients_over)
    problems += seat_problems
    epoch_problems, members_in = check_epochs(record)
    problems += epoch_problems
    final_problems, orphans = check_final_state(record, pictures, checked_at)
    problems += final_problems
    if not same:
        problems.append(f"the members did not converge: {describe_difference(pictures)}")
    problems += check_healed_primary_serves(record)
    problems += check_quitters(quitter, checked_at, [f.start for f in record.faults])
    problems += check_no_flapping(members_in, len(record.faults))
    problems += check_no_long_gap(record, faults_began + 1.0, faults_over)

    history = base / "fault-history.json"
    history.write_text(json.dumps({
        "seed": seed, "faults": [asdict(f) for f in record.faults], "violations": problems,
        "quit_leases": [asdict(q) for q in quitter.leases], "samples": [asdict(s) for s in record.samples],
        "errors": record.errors,
    }, default=str))
    statuses = Counter((a.op, a.status) for a in record.attempts)
    kinds = Counter(f.kind for f in record.faults)
    print(f"seed {seed}: {sum(kinds.values())} faults {dict(kinds)} in {faults_over - faults_began:.1f}s, "
          f"{time.time() - began:.1f}s in all; {statuses['checkout', 201]} grants, at most {most_held} held; "
          f"{len(quitter.leases)} quitter leases; epochs up to {max(members_in, default=0)}; {orphans} orphaned; "
          f"{len(problems)} violation(s); history in {history}")
    print("faults:", ", ".join(f"{f.kind} {'+'.join(f.members)} {f.end - f.start:.1f}s" for f in record.faults))
    for problem in problems[:30]:
        print("VIOLATION:", problem)
    if problems or record.errors:
        explain_failure(cluster, began)
    cluster.stop()
    if statuses["checkout", 201] < 10:
        problems.append(f"too few grants to mean anything: {statuses}")
    return problems + [f"client error: {e}" for e in record.errors]


def test_triad_partitions_clocks_and_kills(faults_lab: NetnsLab, issuer: Issuer, tmp_path: Path) -> None:
    first = int(os.environ.get("LICENTIA_FAULT_SEED") or DEFAULT_SEED)
    failed: dict[int, list[str]] = {}
    for n in range(SEEDS):
        seed = first + n
        problems = run_seed(seed, faults_lab, tmp_path / f"seed-{seed}", issuer)
        if problems:
            failed[seed] = problems
    assert not failed, {seed: problems[:5] for seed, problems in failed.items()}
