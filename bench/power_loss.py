"""Power cuts against real Licentia servers: is every acknowledged change still there after the power comes back?

What it does (see bench/README.md, "Power loss"):

1. each server's data directory is its own lazy file system (tests/powerloss/lazyfs.py `LazyMount`): written
   data stays in memory until fsync, and `cut()` drops everything not synced, as a power cut does;
2. a trial starts fresh servers (a triad, one standalone server, or a backup pair), installs a 4-seat license
   (CADStudio), a large seat license (LoadStudio) and a printer license (LabelStudio), sets a long lease TTL,
   and runs a load with aiohttp: clients contending for the 4 seats (checkout, heartbeats, checkin), clients
   taking seats of the large license, print checks, and an admin change every ~2 s (a settings change or a
   license install). Every acknowledged (2xx) operation is recorded;
3. at a random moment it cuts the power of 1, 2 or 3 triad members (or of the standalone server, or of both
   servers of a backup pair): SIGKILL of the server (and of any etcd running from that mount), then
   `cut()`, then a restart on the same data directory and port, in random order. The load goes on through
   the cut and for a little while after a member serves again;
4. it waits until the members agree (triad) and checks: no acknowledged checkout lost, no acknowledged
   checkin undone, no acknowledged settings change undone, no acknowledged license install lost, no
   acknowledged printer forgotten, never more than 4 seats of the 4-seat license in use, every member
   started again, the members converged;
5. prints progress on stderr and, as the last line of stdout, one JSON object with the results.

    python bench/power_loss.py                 # 20 triad, 3 standalone, 3 backup pair trials (< 10 min)
    python bench/power_loss.py --quick         # CI smoke run: 3 triad, 1 standalone, 1 backup pair trial
    python bench/power_loss.py --seed 1234     # replay the same choices (cut moments, members, orders)

The exit status is 0 when every trial ran, whatever it found; it is 1 on a harness error.
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
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from harness import ADMIN_PASSWORD, ROLES, BackupPairProcesses, Issuer, ServerProcess, TriadCluster  # noqa: E402
from powerloss.lazyfs import LazyMount  # noqa: E402

CONTENDED = "CADStudio"  # 4 seats, 6 clients want them
CONTENDED_SEATS = 4
LARGE = "LoadStudio"
LARGE_SEATS = 100_000
PRINTS = "LabelStudio"
ADDON = "AddOnStudio"  # the licenses the admin client installs during the load
JSON_HEADERS = {"Content-Type": "application/json"}
LEASE_TTL_S = 86_400.0  # nothing expires during a trial
RETENTION_SETTING = "usage_retention_days"


def log(message: str) -> None:
    print(f"[power-loss {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def base_url(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}"


# -- what was acknowledged -----------------------------------------------------------------------


@dataclass
class Ledger:
    """Every operation a server acknowledged (2xx) during one trial."""

    checkouts: dict[str, dict[str, Any]] = field(default_factory=dict)  # lease_id -> request_id, product, at
    checkins: dict[str, float] = field(default_factory=dict)  # lease_id -> acknowledged at
    checkins_sent: set[str] = field(default_factory=set)  # leases a checkin was sent for (acknowledged or not)
    settings: list[tuple[float, float]] = field(default_factory=list)  # (acknowledged at, value)
    installs: dict[str, float] = field(default_factory=dict)  # license_id -> acknowledged at
    printers: dict[str, float] = field(default_factory=dict)  # printer name -> first acknowledged check
    print_checks: int = 0
    heartbeats: int = 0
    refusals: Counter[str] = field(default_factory=Counter)  # non-2xx answers that end an operation
    gave_up: Counter[str] = field(default_factory=Counter)  # operations still unanswered when the load stopped
    heartbeat_lost: list[str] = field(default_factory=list)  # acked, not checked in, but "not held" on heartbeat
    used_samples: int = 0
    used_max: int = 0
    over_allocation_samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def acked(self) -> int:
        return len(self.checkouts) + len(self.checkins) + len(self.settings) + len(self.installs) + len(
            self.printers)


# -- HTTP: follow the active member, retry -------------------------------------------------------


class Tokens:
    """Admin bearer tokens per member URL (a login per member: each signs its own tokens)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.by_url: dict[str, str] = {}

    async def get(self, url: str) -> str | None:
        token = self.by_url.get(url)
        if token is not None:
            return token
        body = json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode()
        try:
            async with self.session.post(f"{url}/api/v1/auth/login", data=body, headers=JSON_HEADERS,
                                         timeout=aiohttp.ClientTimeout(total=5)) as answer:
                if answer.status != 200:
                    return None
                token = (await answer.json())["token"]
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError, KeyError):
            return None
        self.by_url[url] = token
        return token

    def drop(self, url: str) -> None:
        self.by_url.pop(url, None)


class Api:
    """One client's view: it sends to the member it believes serves, follows 307 to the active member, and on
    503 or no answer waits 50 ms and tries the next member, resending the same body (same request_id)."""

    def __init__(self, session: aiohttp.ClientSession, tokens: Tokens, urls: list[str],
                 stopped: Callable[[], bool]) -> None:
        self.session = session
        self.tokens = tokens
        self.urls = urls
        self.target = urls[0]
        self.stopped = stopped

    def _next(self, url: str) -> None:
        index = self.urls.index(url) if url in self.urls else -1
        self.target = self.urls[(index + 1) % len(self.urls)]

    async def call(self, method: str, path: str, body: Any = None, *, admin: bool = False,
                   raw: bytes | None = None) -> tuple[int, Any] | None:
        """(status, decoded body) of the first answer that is not 307/503; None if the load stopped first."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        while not self.stopped():
            url = self.target
            headers = dict(JSON_HEADERS) if data is not None else {}
            if admin:
                token = await self.tokens.get(url)
                if token is None:
                    self._next(url)
                    await asyncio.sleep(0.05)
                    continue
                headers["Authorization"] = f"Bearer {token}"
            try:
                async with self.session.request(method, url + path, data=data, headers=headers,
                                                allow_redirects=False) as answer:
                    status = answer.status
                    location = answer.headers.get("Location")
                    payload = await answer.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                self._next(url)
                await asyncio.sleep(0.05)
                continue
            if status == 307 and location:
                self.target = base_url(location)
                continue
            if status == 503:
                self._next(url)
                await asyncio.sleep(0.05)
                continue
            if status == 401 and admin:
                self.tokens.drop(url)
                await asyncio.sleep(0.05)
                continue
            try:
                decoded = json.loads(payload) if payload else None
            except ValueError:
                decoded = payload[:200].decode(errors="replace")
            return status, decoded
        return None


def error_code(decoded: Any) -> str:
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
        return str(decoded["error"].get("code"))
    return "unknown"


# -- the load ------------------------------------------------------------------------------------


@dataclass
class Load:
    session: aiohttp.ClientSession
    tokens: Tokens
    urls: list[str]
    ledger: Ledger
    issuer: Issuer
    contended_license: str
    rng: random.Random
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    settings_value: int = 0

    def api(self) -> Api:
        return Api(self.session, self.tokens, list(self.urls), self.stop.is_set)

    async def pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def checkout(self, api: Api, product: str, client: dict[str, str]) -> str | None:
        request_id = uuid.uuid4().hex
        answer = await api.call("POST", "/api/v1/leases", {"product": product, "client": client,
                                                           "request_id": request_id})
        if answer is None:
            self.ledger.gave_up["checkout"] += 1
            return None
        status, decoded = answer
        if status in (200, 201):
            lease_id = decoded["lease_id"]
            self.ledger.checkouts[lease_id] = {"request_id": request_id, "product": product, "at": time.time()}
            return lease_id
        self.ledger.refusals[f"checkout:{error_code(decoded)}"] += 1
        return None

    async def checkin(self, api: Api, lease_id: str) -> None:
        self.ledger.checkins_sent.add(lease_id)
        answer = await api.call("DELETE", f"/api/v1/leases/{lease_id}")
        if answer is None:
            self.ledger.gave_up["checkin"] += 1
        elif 200 <= answer[0] < 300:
            self.ledger.checkins[lease_id] = time.time()
        else:
            self.ledger.refusals[f"checkin:{error_code(answer[1])}"] += 1

    async def contended_client(self, n: int) -> None:
        """Checkout of the 4-seat license, a few heartbeats while it holds the seat, checkin."""
        api = self.api()
        client = {"host": f"pl-cad-{n}", "user": f"cad{n}", "application": "power-loss"}
        while not self.stop.is_set():
            lease_id = await self.checkout(api, CONTENDED, client)
            if lease_id is None:
                await self.pause(self.rng.uniform(0.03, 0.1))
                continue
            for _ in range(self.rng.randint(1, 3)):
                await self.pause(self.rng.uniform(0.05, 0.2))
                answer = await api.call("POST", f"/api/v1/leases/{lease_id}/heartbeat", {})
                if answer is None:
                    break
                if 200 <= answer[0] < 300:
                    self.ledger.heartbeats += 1
                else:
                    self.ledger.refusals[f"heartbeat:{error_code(answer[1])}"] += 1
                    if lease_id not in self.ledger.checkins:
                        self.ledger.heartbeat_lost.append(lease_id)
                    break
            if self.stop.is_set():
                break
            await self.checkin(api, lease_id)

    async def large_client(self, n: int) -> None:
        """Checkouts of the large license; about half are checked in again at once, the rest stay held."""
        api = self.api()
        client = {"host": f"pl-load-{n}", "user": f"load{n}", "application": "power-loss"}
        while not self.stop.is_set():
            lease_id = await self.checkout(api, LARGE, client)
            if lease_id is not None and self.rng.random() < 0.5 and not self.stop.is_set():
                await self.checkin(api, lease_id)
            await self.pause(self.rng.uniform(0.0, 0.03))

    async def print_client(self, n: int) -> None:
        api = self.api()
        client = {"host": f"pl-print-{n}", "user": f"print{n}", "application": "power-loss"}
        k = 0
        while not self.stop.is_set():
            name = f"PL-PRN-{n}-{k % 40:02d}"
            printer = {"name": name, "driver": "ZDesigner ZT410", "port": f"IP_10.9.{n}.{k % 40 + 1}",
                       "location": "Power loss lab"}
            answer = await api.call("POST", "/api/v1/print-checks", {"product": PRINTS, "printer": printer,
                                                                     "client": client})
            if answer is None:
                self.ledger.gave_up["print"] += 1
            elif 200 <= answer[0] < 300 and (not isinstance(answer[1], dict) or answer[1].get("allowed", True)):
                self.ledger.print_checks += 1
                self.ledger.printers.setdefault(name, time.time())
            else:
                self.ledger.refusals[f"print:{error_code(answer[1])}"] += 1
            k += 1
            await self.pause(self.rng.uniform(0.02, 0.06))

    async def admin_client(self) -> None:
        """Every ~2 s, alternately: a settings change (an ever larger retention value) or a license install."""
        api = self.api()
        turn = 0
        while not self.stop.is_set():
            await self.pause(self.rng.uniform(1.5, 2.5))
            if self.stop.is_set():
                break
            if turn % 2 == 0:
                self.settings_value += 1
                value = self.settings_value
                answer = await api.call("PATCH", "/api/v1/admin/settings",
                                        {"changes": {RETENTION_SETTING: value}}, admin=True)
                if answer is None:
                    self.ledger.gave_up["settings"] += 1
                elif 200 <= answer[0] < 300:
                    self.ledger.settings.append((time.time(), float(value)))
                else:
                    self.ledger.refusals[f"settings:{error_code(answer[1])}"] += 1
            else:
                license_id = f"PL-ADDON-{uuid.uuid4().hex[:10]}"
                data = self.issuer.license_bytes(license_id=license_id, product=ADDON, unit="seats", count=1)
                answer = await api.call("POST", "/api/v1/admin/licenses", raw=data, admin=True)
                if answer is None:
                    self.ledger.gave_up["install"] += 1
                elif 200 <= answer[0] < 300:
                    self.ledger.installs[license_id] = time.time()
                else:
                    self.ledger.refusals[f"install:{error_code(answer[1])}"] += 1
            turn += 1

    async def sampler(self, member_urls: list[str]) -> None:
        """`used` of the 4-seat license, read from every member that answers, every ~0.25 s."""
        while not self.stop.is_set():
            for url in member_urls:
                used = await read_used(self.session, self.tokens, url, self.contended_license)
                if used is None:
                    continue
                self.ledger.used_samples += 1
                self.ledger.used_max = max(self.ledger.used_max, used)
                if used > CONTENDED_SEATS and len(self.ledger.over_allocation_samples) < 20:
                    self.ledger.over_allocation_samples.append({"member": url, "used": used, "at": time.time()})
            await self.pause(0.25)

    def tasks(self, member_urls: list[str], contended: int, large: int, printers: int) -> list[asyncio.Task[None]]:
        coroutines = [self.contended_client(n) for n in range(contended)]
        coroutines += [self.large_client(n) for n in range(large)]
        coroutines += [self.print_client(n) for n in range(printers)]
        coroutines += [self.admin_client(), self.sampler(member_urls)]
        return [asyncio.create_task(coroutine) for coroutine in coroutines]


async def admin_get(session: aiohttp.ClientSession, tokens: Tokens, url: str, path: str) -> Any:
    """A GET answered by this member itself (no redirect followed); None if it does not answer 200."""
    token = await tokens.get(url)
    if token is None:
        return None
    try:
        async with session.get(url + path, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=5)) as answer:
            if answer.status == 401:
                tokens.drop(url)
            if answer.status != 200:
                return None
            return await answer.json()
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
        return None


async def read_used(session: aiohttp.ClientSession, tokens: Tokens, url: str, license_id: str) -> int | None:
    listing = await admin_get(session, tokens, url, "/api/v1/admin/licenses")
    if not listing:
        return None
    for lic in listing.get("licenses", []):
        if lic.get("license_id") == license_id:
            return int(lic.get("used", 0))
    return None


async def state_picture(session: aiohttp.ClientSession, tokens: Tokens, url: str) -> dict[str, Any] | None:
    """What every member must agree on, read locally from one member (as tests/scenarios/triad_support.py)."""
    parts = {}
    # The lists answer a page at a time (docs/paged-lists.md); these sites hold far fewer than 500 of each.
    for key, path in (("leases", "/api/v1/admin/leases?limit=500"), ("licenses", "/api/v1/admin/licenses"),
                      ("printers", "/api/v1/admin/printers?limit=500"), ("settings", "/api/v1/admin/settings"),
                      ("access_rules", "/api/v1/admin/access-rules")):
        answer = await admin_get(session, tokens, url, path)
        if answer is None:
            return None
        parts[key] = answer
    return {
        "leases": {lease["lease_id"]: {k: v for k, v in lease.items() if k not in ("expires_in_s", "expires_at")}
                   for lease in parts["leases"]["leases"]},
        "licenses": {lic["license_id"]: lic for lic in parts["licenses"]["licenses"]},
        "printers": sorted((p["printer_id"], p["identity"]["name"], p["license_id"], p["group"])
                           for p in parts["printers"]["printers"]),
        "settings": parts["settings"],
        "access_rules": parts["access_rules"],
    }


def comparable(picture: dict[str, Any]) -> dict[str, Any]:
    """The picture without what each member computes at its own clock (status, grace days)."""
    licenses = {lid: {k: v for k, v in lic.items() if k not in ("grace_days_left", "status")}
                for lid, lic in picture["licenses"].items()}
    return {**picture, "licenses": licenses}


# -- processes and power -------------------------------------------------------------------------


def etcd_pids_under(path: Path) -> list[int]:
    """etcd processes whose command line names a directory under `path` (never anyone else's etcd)."""
    found = []
    marker = str(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "etcd" in command.split(" ", 1)[0] and marker in command:
            found.append(int(entry.name))
    return found


def kill_pids(pids: list[int], timeout: float = 5.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.01)


def power_off(server: ServerProcess) -> None:
    """SIGKILL the server by its PID, and any etcd still running from its data directory."""
    server.kill()
    kill_pids(etcd_pids_under(server.data_dir))


def settle(root: Path) -> None:
    """fsync every file and directory under `root`, as the kernel's writeback would after ~30 s of calm."""
    for directory, _, files in os.walk(root):
        for name in [*files, "."]:
            path = os.path.join(directory, name)
            flags = os.O_RDONLY | (os.O_DIRECTORY if name == "." else 0)
            with contextlib.suppress(OSError):
                descriptor = os.open(path, flags | os.O_NOFOLLOW)
                try:
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)


def log_tail(server: ServerProcess, lines: int = 25) -> str:
    try:
        return "\n".join(server.log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def restart(servers: dict[str, ServerProcess], order: list[str], rng: random.Random,
                  timeout: float = 30.0) -> tuple[dict[str, float], dict[str, str]]:
    """Start the servers again, in `order`, each a random 0-0.5 s after the one before; all wait together.
    Returns ({role: seconds to answer}, {role: why it did not start})."""
    started: dict[str, float] = {}
    failed: dict[str, str] = {}
    delays, at = {}, 0.0
    for role in order:
        delays[role] = at
        at += rng.uniform(0.0, 0.5)

    async def one(role: str) -> None:
        await asyncio.sleep(delays[role])
        began = time.perf_counter()
        try:
            await asyncio.to_thread(servers[role].start, timeout)
        except RuntimeError as exc:
            failed[role] = str(exc)[-3000:]
            return
        started[role] = round(time.perf_counter() - began, 3)

    await asyncio.gather(*(one(role) for role in order))
    return started, failed


async def wait_serving(session: aiohttp.ClientSession, urls: list[str], timeout: float) -> str | None:
    """The URL of a member that says it serves (or a standalone server that answers), within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for url in urls:
            try:
                async with session.get(f"{url}/api/v1/server", timeout=aiohttp.ClientTimeout(total=1)) as answer:
                    info = await answer.json()
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
                continue
            relationship = info.get("relationship") or {}
            if relationship.get("type", "triad") != "triad" or "serving" not in relationship:
                return url
            if relationship.get("serving"):
                return url
        await asyncio.sleep(0.1)
    return None


async def wait_converged(session: aiohttp.ClientSession, tokens: Tokens, urls: list[str],
                         timeout: float) -> tuple[bool, dict[str, dict[str, Any] | None]]:
    deadline = time.monotonic() + timeout
    pictures: dict[str, dict[str, Any] | None] = {}
    while True:
        pictures = {url: await state_picture(session, tokens, url) for url in urls}
        seen = [comparable(p) for p in pictures.values() if p is not None]
        if len(seen) == len(urls) and all(p == seen[0] for p in seen[1:]):
            return True, pictures
        if time.monotonic() >= deadline:
            return False, pictures
        await asyncio.sleep(0.2)


# -- checks --------------------------------------------------------------------------------------


def check(ledger: Ledger, picture: dict[str, Any], contended_license: str) -> dict[str, Any]:
    """What the final state lost of what was acknowledged."""
    leases = picture["leases"]
    # A lease whose checkin was sent but not answered (the cut came first) may rightly be gone.
    lost_checkouts = [lid for lid in ledger.checkouts if lid not in ledger.checkins_sent and lid not in leases]
    gone_after_unanswered_checkin = [lid for lid in ledger.checkouts if lid in ledger.checkins_sent
                                     and lid not in ledger.checkins and lid not in leases]
    undone_checkins = [lid for lid in ledger.checkins if lid in leases]
    final_value = float(picture["settings"]["settings"][RETENTION_SETTING])
    last_acked = max((value for _, value in ledger.settings), default=None)
    settings_undone = last_acked is not None and final_value < last_acked
    lost_installs = [lid for lid in ledger.installs if lid not in picture["licenses"]]
    printer_names = {name for _, name, _, _ in picture["printers"]}
    lost_printers = [name for name in ledger.printers if name not in printer_names]
    contended_used = picture["licenses"].get(contended_license, {}).get("used", 0)
    contended_leases = sum(1 for lease in leases.values() if lease.get("product") == CONTENDED)
    unknown_leases = [lid for lid in leases if lid not in ledger.checkouts]
    lost = len(lost_checkouts) + len(undone_checkins) + int(settings_undone) + len(lost_installs) + len(
        lost_printers)
    return {
        "acked_lost": lost,
        "lost_checkouts": len(lost_checkouts),
        "undone_checkins": len(undone_checkins),
        "settings_undone": settings_undone,
        "settings_final": final_value,
        "settings_last_acked": last_acked,
        "lost_installs": len(lost_installs),
        "lost_printers": len(lost_printers),
        "lost_samples": {"checkouts": lost_checkouts[:5], "checkins": undone_checkins[:5],
                         "installs": lost_installs[:5], "printers": lost_printers[:5]},
        "lost_checkouts_by_product": dict(Counter(ledger.checkouts[lid]["product"] for lid in lost_checkouts)),
        "contended_used_final": contended_used,
        "contended_leases_final": contended_leases,
        "final_over_allocated": contended_used > CONTENDED_SEATS or contended_leases > CONTENDED_SEATS,
        "unacknowledged_leases_held": len(unknown_leases),
        "gone_after_unanswered_checkin": len(gone_after_unanswered_checkin),
    }


# -- one trial -----------------------------------------------------------------------------------


@dataclass
class Cluster:
    """The servers of one trial and where the load goes."""

    kind: str
    servers: dict[str, ServerProcess]
    load_urls: list[str]  # where clients send (triad: all members; backup pair: the main)
    check_roles: list[str]  # whose state is checked (and must agree)
    mounts: dict[str, LazyMount]


def install_setup(url_server: ServerProcess, issuer: Issuer) -> dict[str, str]:
    """The three licenses and the long lease TTL, through the admin API (setup, not timed)."""
    ids = {}
    with url_server.admin() as admin:
        for product, unit, count in ((CONTENDED, "seats", CONTENDED_SEATS), (LARGE, "seats", LARGE_SEATS),
                                     (PRINTS, "printers", 1000)):
            answer = admin.post("/api/v1/admin/licenses", headers=JSON_HEADERS,
                                content=issuer.license_bytes(product=product, unit=unit, count=count))
            if answer.status_code != 201:
                raise RuntimeError(f"Installing the {product} license failed: {answer.status_code} {answer.text}")
            ids[product] = answer.json()["license_id"]
        answer = admin.patch("/api/v1/admin/settings", json={"changes": {"lease_ttl_s": LEASE_TTL_S}})
        if answer.status_code != 200:
            raise RuntimeError(f"Setting lease_ttl_s failed: {answer.status_code} {answer.text}")
    return ids


def build(kind: str, base: Path, issuer: Issuer, stack: contextlib.ExitStack) -> Cluster:
    """Mount a lazy file system at each data directory, then start and join the servers."""
    roles = {"triad": list(ROLES), "standalone": ["server"], "backup_pair": ["main", "backup"]}[kind]
    mounts = {}
    for role in roles:
        backing = base / f"{role}-backing"
        issuer.trust_in(backing)  # written durably before the mount: the harness's own copy is no server data
        mount = LazyMount(backing, base / role)
        stack.enter_context(mount)
        mounts[role] = mount
    # Exit order (last in, first out): the servers, then any etcd left from this trial, then the mounts.
    stack.callback(lambda: kill_pids(etcd_pids_under(base)))
    if kind == "triad":
        cluster = TriadCluster(base, issuer)
        stack.callback(cluster.stop)
        cluster.start(timeout=60)
        return Cluster(kind, cluster.servers, [s.url for s in cluster.servers.values()], list(ROLES), mounts)
    if kind == "standalone":
        server = ServerProcess(base / "server")
        stack.callback(server.kill)
        server.start(timeout=30)
        return Cluster(kind, {"server": server}, [server.url], ["server"], mounts)
    pair = BackupPairProcesses(base, issuer)
    stack.callback(pair.stop)
    pair.start(join=False)
    pair.join()
    pair.wait(lambda status: status.get("connected"), timeout=30)
    return Cluster(kind, pair.servers, [pair.main.url], ["main"], mounts)


async def run_trial(kind: str, index: int, cut_count: int, rng: random.Random, args: argparse.Namespace,
                    workdir: Path) -> dict[str, Any]:
    base = workdir / f"{kind}-{index:02d}"
    base.mkdir(parents=True)
    issuer = Issuer()
    record: dict[str, Any] = {"kind": kind, "trial": index}
    began = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            cluster = await asyncio.to_thread(build, kind, base, issuer, stack)
            first = cluster.servers[cluster.check_roles[0]]
            if kind == "triad":
                active_url = await wait_serving_url(cluster)
                first = next(server for server in cluster.servers.values() if server.url == active_url)
            ids = await asyncio.to_thread(install_setup, first, issuer)
            if args.settle_setup:
                for mount in cluster.mounts.values():
                    await asyncio.to_thread(settle, mount.mountpoint)
        except Exception as exc:  # reported as a setup failure of this trial
            record.update(setup_failed=f"{type(exc).__name__}: {exc}"[-3000:], total_s=round(
                time.perf_counter() - began, 1))
            log(f"{kind} trial {index}: the setup failed: {record['setup_failed'][:500]}")
            return record
        record["setup_s"] = round(time.perf_counter() - began, 2)
        ledger = Ledger()
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
            tokens = Tokens(session)
            load = Load(session, tokens, cluster.load_urls, ledger, issuer, ids[CONTENDED], rng)
            member_urls = [cluster.servers[r].url for r in cluster.check_roles]
            tasks = load.tasks(member_urls, args.contended_clients, args.large_clients, args.print_clients)
            load_began = time.perf_counter()
            cut_after = rng.uniform(args.cut_min, args.cut_max)
            await asyncio.sleep(cut_after)
            roles = list(cluster.servers)
            victims = sorted(rng.sample(roles, cut_count)) if kind == "triad" else roles
            acked_before_cut = ledger.acked
            # The cut: every victim dies first, then each mount loses what was not synced.
            for role in victims:
                power_off(cluster.servers[role])
            dropped = {}
            for role in victims:
                dropped[role] = await asyncio.to_thread(cluster.mounts[role].cut)
            cut_at = time.perf_counter()
            log(f"{kind} trial {index}: cut the power of {', '.join(victims)} after {cut_after:.1f} s of load "
                f"({acked_before_cut} operations acknowledged so far)")
            order = victims[:]
            rng.shuffle(order)
            started, failed = await restart(cluster.servers, order, rng, args.start_timeout)
            for role, why in failed.items():
                log(f"{kind} trial {index}: {role} did not start again: {why[-800:]}")
            live_urls = [s.url for r, s in cluster.servers.items() if r not in failed and s.url in cluster.load_urls]
            # A triad needs two members up to serve; a standalone server or a pair's main must be up itself.
            can_serve = len(live_urls) >= 2 if kind == "triad" else bool(live_urls)
            serving = await wait_serving(session, live_urls, args.converge_timeout) if can_serve else None
            serving_s = round(time.perf_counter() - cut_at, 2) if serving else None
            await asyncio.sleep(args.after_s)
            load.stop.set()
            done, pending = await asyncio.wait(tasks, timeout=15)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            load_s = round(time.perf_counter() - load_began, 2)
            converge_began = time.perf_counter()
            check_urls = [cluster.servers[r].url for r in cluster.check_roles if r not in failed]
            converged: bool | None = None
            pictures: dict[str, dict[str, Any] | None] = {}
            # Only a serving triad answers for the state: a member without a quorum may lag behind what was
            # committed, so its copy is neither checked nor compared.
            if check_urls and serving is not None:
                converged, pictures = await wait_converged(session, tokens, check_urls, args.converge_timeout)
            converge_s = round(time.perf_counter() - converge_began, 2)
            picture = pictures.get(serving) if serving in pictures else None
            if picture is None:
                picture = next((p for p in pictures.values() if p is not None), None)
            if picture is not None:
                for sample_url, sample in pictures.items():
                    if sample is not None:
                        used = sample["licenses"].get(ids[CONTENDED], {}).get("used", 0)
                        ledger.used_max = max(ledger.used_max, used)
                        if used > CONTENDED_SEATS:
                            ledger.over_allocation_samples.append({"member": sample_url, "used": used, "final": True})
        record.update(
            members_cut=len(victims), victims=victims, cut_after_s=round(cut_after, 2), restart_order=order,
            restart_s=started, failed_to_start=sorted(failed), failed_to_start_logs={
                role: log_tail(cluster.servers[role], 6) for role in failed},
            serving_after_cut_s=serving_s, converged=converged, converge_s=converge_s, load_s=load_s,
            acked=ledger.acked, acked_before_cut=acked_before_cut,
            acked_by_kind={"checkouts": len(ledger.checkouts), "checkins": len(ledger.checkins),
                           "settings": len(ledger.settings), "installs": len(ledger.installs),
                           "printers": len(ledger.printers)},
            print_checks=ledger.print_checks, heartbeats=ledger.heartbeats,
            refusals=dict(ledger.refusals), gave_up=dict(ledger.gave_up),
            heartbeat_said_lost=len(ledger.heartbeat_lost),
            contended_used_max=ledger.used_max, used_samples=ledger.used_samples,
            over_allocations=len(ledger.over_allocation_samples),
            over_allocation_samples=ledger.over_allocation_samples[:5],
            lazyfs_dropped=dropped,
        )
        if picture is None:
            record["no_state"] = True
            record["acked_lost"] = None
        else:
            record.update(check(ledger, picture, ids[CONTENDED]))
            if record["final_over_allocated"] and not record["over_allocations"]:
                record["over_allocations"] = 1
        if converged is False:
            record["not_converged_differences"] = differences(pictures)
        if converged is False or record.get("acked_lost"):
            record["server_logs"] = {role: log_tail(server, 8) for role, server in cluster.servers.items()}
        if args.keep:
            record["base"] = str(base)
    record["total_s"] = round(time.perf_counter() - began, 1)
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return record


async def wait_serving_url(cluster: Cluster) -> str:
    async with aiohttp.ClientSession() as session:
        url = await wait_serving(session, cluster.load_urls, 30)
    if url is None:
        raise RuntimeError("No triad member serves after the setup.")
    return url


def differences(pictures: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """Which parts of the state the members disagree on, in a few words each."""
    out: dict[str, Any] = {}
    present = {url: comparable(p) for url, p in pictures.items() if p is not None}
    out["no_answer"] = [url for url, p in pictures.items() if p is None]
    if present:
        first = next(iter(present.values()))
        for key in first:
            if any(p[key] != first[key] for p in present.values()):
                if key == "leases":
                    out[key] = {url: len(p[key]) for url, p in present.items()}
                elif key == "settings":
                    out[key] = {url: p[key].get("version") for url, p in present.items()}
                else:
                    out[key] = {url: len(p[key]) for url, p in present.items()}
    return out


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Acknowledged means durable: power cuts against real Licentia "
                                                 "servers on a file system that loses unsynced data.")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 3 triad, 1 standalone, 1 pair trial")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a random seed)")
    parser.add_argument("--triad-trials", type=int, default=None, help="triad trials (20; --quick 3)")
    parser.add_argument("--standalone-trials", type=int, default=None, help="standalone trials (3; --quick 1)")
    parser.add_argument("--pair-trials", type=int, default=None, help="backup pair trials (3; --quick 1)")
    parser.add_argument("--cut-min", type=float, default=None, help="earliest cut, s of load (2; --quick 1.5)")
    parser.add_argument("--cut-max", type=float, default=None, help="latest cut, s of load (6; --quick 3)")
    parser.add_argument("--after-s", type=float, default=1.5, help="load after a member serves again (1.5 s)")
    parser.add_argument("--contended-clients", type=int, default=6, help="clients for the 4 seats (6)")
    parser.add_argument("--large-clients", type=int, default=4, help="clients of the large license (4)")
    parser.add_argument("--print-clients", type=int, default=2, help="print-check clients (2)")
    parser.add_argument("--start-timeout", type=float, default=30.0, help="a restarted member must answer (30 s)")
    parser.add_argument("--converge-timeout", type=float, default=60.0, help="members must agree (60 s)")
    parser.add_argument("--budget", type=float, default=None,
                        help="start no new trial after this many seconds (570; --quick 150)")
    parser.add_argument("--settle-setup", action="store_true",
                        help="fsync every file of the data directories once the setup is done (models the kernel "
                             "writing back files that the server never synced; off by default)")
    parser.add_argument("--per-trial", action="store_true", help="every trial's record in the JSON line")
    parser.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    args = parser.parse_args(argv)
    defaults = {"triad_trials": (20, 3), "standalone_trials": (3, 1), "pair_trials": (3, 1), "cut_min": (2.0, 1.5),
                "cut_max": (6.0, 3.0), "budget": (570.0, 150.0)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.cut_min <= 0 or args.cut_max < args.cut_min:
        parser.error("--cut-min must be positive and at most --cut-max")
    return args


def code_version() -> dict[str, Any]:
    def git(*command: str) -> str | None:
        try:
            done = subprocess.run(["git", "--no-optional-locks", *command], cwd=BENCH_DIR.parent,
                                  capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    changes = git("status", "--porcelain", "--", "src")
    return {"commit": git("rev-parse", "--short=12", "HEAD"),
            "src_modified": bool(changes) if changes is not None else None}


def percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, -(-int(q * 100) * len(ordered) // 100) - 1))
    return ordered[index]


def summarize(records: list[dict[str, Any]], seed: int, total_s: float, args: argparse.Namespace,
              harness_errors: list[str]) -> dict[str, Any]:
    triad = [r for r in records if r["kind"] == "triad"]
    ran = [r for r in records if "setup_failed" not in r]

    def lost(kind: str) -> int:
        return sum(r.get("acked_lost") or 0 for r in records if r["kind"] == kind)

    cuts: dict[int, int] = {1: 0, 2: 0, 3: 0}
    lost_by_cut: dict[int, int] = {1: 0, 2: 0, 3: 0}
    trials_losing_by_cut: dict[int, int] = {1: 0, 2: 0, 3: 0}
    for r in triad:
        if "members_cut" in r:
            cuts[r["members_cut"]] += 1
            lost_by_cut[r["members_cut"]] += r.get("acked_lost") or 0
            trials_losing_by_cut[r["members_cut"]] += int(bool(r.get("acked_lost")))
    by_kind = Counter(r["kind"] for r in ran)
    durations = [r["total_s"] for r in ran]
    result: dict[str, Any] = {
        "trials": len(ran),
        "trials_by_kind": dict(by_kind),
        "setup_failures": [f"{r['kind']} {r['trial']}: {r['setup_failed'][:300]}" for r in records
                           if "setup_failed" in r],
        "acked": sum(r.get("acked", 0) for r in ran),
        "acked_lost": sum(r.get("acked_lost") or 0 for r in ran),
        "triad_acked_lost": lost("triad"),
        "standalone_acked_lost": lost("standalone"),
        "backup_pair_acked_lost": lost("backup_pair"),
        "lost_checkouts": sum(r.get("lost_checkouts", 0) for r in ran),
        "undone_checkins": sum(r.get("undone_checkins", 0) for r in ran),
        "settings_undone": sum(int(bool(r.get("settings_undone"))) for r in ran),
        "lost_installs": sum(r.get("lost_installs", 0) for r in ran),
        "lost_printers": sum(r.get("lost_printers", 0) for r in ran),
        "trials_with_losses": sum(1 for r in ran if r.get("acked_lost")),
        "over_allocations": sum(r.get("over_allocations", 0) for r in ran),
        "contended_used_max": max((r.get("contended_used_max", 0) for r in ran), default=0),
        "members_failed_to_start": sum(len(r.get("failed_to_start", [])) for r in ran),
        "not_converged": sum(1 for r in ran if r.get("converged") is False),
        "no_state_after_restart": sum(1 for r in ran if r.get("no_state")),
        "cuts_by_members": cuts,
        "acked_lost_by_members_cut": lost_by_cut,
        "trials_with_losses_by_members_cut": trials_losing_by_cut,
        "serving_after_cut_p50_s": percentile([r["serving_after_cut_s"] for r in ran
                                               if r.get("serving_after_cut_s") is not None], 0.5),
        "serving_after_cut_max_s": max((r["serving_after_cut_s"] for r in ran
                                        if r.get("serving_after_cut_s") is not None), default=None),
        "trial_p50_s": percentile(durations, 0.5),
        "trial_max_s": max(durations, default=None),
        "seconds_by_kind": {kind: round(sum(r["total_s"] for r in records if r["kind"] == kind), 1)
                            for kind in ("triad", "standalone", "backup_pair")},
        "seed": seed,
        "quick": args.quick,
        "settle_setup": args.settle_setup,
        "harness_errors": harness_errors,
        "code": code_version(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "total_s": round(total_s, 1),
    }
    problems = [r for r in records if r.get("acked_lost") or r.get("failed_to_start") or r.get("converged") is False
                or r.get("over_allocations") or "setup_failed" in r or r.get("no_state")]
    result["problem_trials"] = problems if not args.per_trial else [r["kind"] + str(r["trial"]) for r in problems]
    if args.per_trial:
        result["per_trial"] = records
    return result


def cut_counts(rng: random.Random, trials: int) -> list[int]:
    """1, 2 and 3 members in turn, each block of three shuffled: every count is covered early."""
    counts: list[int] = []
    while len(counts) < trials:
        block = [1, 2, 3]
        rng.shuffle(block)
        counts += block
    return counts[:trials]


async def run_all(args: argparse.Namespace, seed: int, workdir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    rng = random.Random(seed)
    started = time.perf_counter()
    plan: list[tuple[str, int, int]] = [("triad", i, c) for i, c in enumerate(cut_counts(rng, args.triad_trials))]
    plan += [("standalone", i, 1) for i in range(args.standalone_trials)]
    plan += [("backup_pair", i, 2) for i in range(args.pair_trials)]
    # Keep some of each kind early enough to stay within the budget: interleave the others into the triad runs.
    others = [p for p in plan if p[0] != "triad"]
    triads = [p for p in plan if p[0] == "triad"]
    ordered: list[tuple[str, int, int]] = []
    step = max(1, len(triads) // max(1, len(others))) if others else 0
    for i, trial in enumerate(triads):
        ordered.append(trial)
        if others and step and (i + 1) % step == 0:
            ordered.append(others.pop(0))
    ordered += others
    records: list[dict[str, Any]] = []
    errors: list[str] = []
    for kind, index, count in ordered:
        if time.perf_counter() - started > args.budget:
            log(f"The budget of {args.budget:g} s is spent; the remaining trials are skipped.")
            break
        trial_rng = random.Random(rng.getrandbits(64))
        try:
            record = await run_trial(kind, index, count, trial_rng, args, workdir)
        except Exception as exc:  # a harness error: reported, and the exit status says so
            errors.append(f"{kind} trial {index}: {type(exc).__name__}: {exc}")
            log(f"{kind} trial {index}: harness error:\n{traceback.format_exc()}")
            continue
        records.append(record)
        if "setup_failed" not in record:
            log(f"{kind} trial {index}: {record.get('members_cut')} cut, acked {record['acked']}, lost "
                f"{record.get('acked_lost')}, over-allocations {record['over_allocations']}, failed to start "
                f"{record['failed_to_start']}, converged {record['converged']}, serving again after "
                f"{record['serving_after_cut_s']} s, {record['total_s']} s")
    return records, errors


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        log("This benchmark needs FUSE (/dev/fuse and fusermount3).")
        return 1
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    log(f"seed {seed} (replay with --seed {seed})")
    workdir = Path(tempfile.mkdtemp(prefix="licentia-power-"))
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        records, errors = asyncio.run(run_all(args, seed, workdir))
    finally:
        kill_pids(etcd_pids_under(workdir))
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result = summarize(records, seed, time.perf_counter() - started, args, errors)
    print(json.dumps(result), flush=True)
    setup_failed = all("setup_failed" in r for r in records)
    return 1 if errors or not records or setup_failed else 0


if __name__ == "__main__":
    sys.exit(main())
