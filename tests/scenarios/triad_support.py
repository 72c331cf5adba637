"""Helpers for the triad scenarios: licenses, a client that finds the active member, state pictures."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from harness import ADMIN_PASSWORD, ROLES, Issuer, ServerProcess, TriadCluster, every_row

JSON = {"Content-Type": "application/json"}
AUTH = ("admin", ADMIN_PASSWORD)
SEATS = "CADStudio"
PRINTS = "LabelStudio"


def install_licenses(cluster: TriadCluster, issuer: Issuer, seats: int = 5, **more: int) -> dict[str, str]:
    """A seat license (SEATS, `seats` seats) and a printer license, plus `more` seat licenses {product: count},
    installed through the active member's admin API. Returns {product: license_id}."""
    active = cluster.wait_active()
    wanted = {SEATS: ("seats", seats), PRINTS: ("printers", 5), **{p: ("seats", n) for p, n in more.items()}}
    installed = {}
    with cluster.servers[active].admin() as admin:
        for product, (unit, count) in wanted.items():
            data = issuer.license_bytes(product=product, unit=unit, count=count)
            answer = admin.post("/api/v1/admin/licenses", content=data, headers=JSON)
            assert answer.status_code == 201, answer.text
            installed[product] = answer.json()["license_id"]
    return installed


def checkout(server: ServerProcess, product: str = SEATS, request_id: str | None = None,
             timeout: float = 5.0) -> httpx.Response:
    """One checkout sent to this member only (no redirect is followed)."""
    body: dict[str, Any] = {"product": product, "client": {"host": "ws-1", "user": "ana"}}
    if request_id is not None:
        body["request_id"] = request_id
    return httpx.post(f"{server.url}/api/v1/leases", json=body, timeout=timeout)


def heartbeat(server: ServerProcess, lease_ids: list[str]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/leases/heartbeat", json={"lease_ids": lease_ids}, timeout=5)


def admin_get(server: ServerProcess, path: str, timeout: float = 5.0) -> Any:
    answer = httpx.get(f"{server.url}{path}", auth=AUTH, timeout=timeout)
    assert answer.status_code == 200, answer.text
    return answer.json()


def admin_rows(server: ServerProcess, path: str, name: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Every row of a paged admin list of this member."""
    with httpx.Client(base_url=server.url, auth=AUTH, timeout=timeout) as client:
        return every_row(client, path, name)


def held_leases(server: ServerProcess) -> dict[str, dict[str, Any]]:
    """The leases this member's copy of the state holds now, by lease id (clock-dependent fields dropped)."""
    leases = admin_rows(server, "/api/v1/admin/leases", "leases")
    return {
        lease["lease_id"]: {k: v for k, v in lease.items() if k not in ("expires_in_s", "expires_at")}
        for lease in leases
    }


def licenses(server: ServerProcess) -> dict[str, dict[str, Any]]:
    return {lic["license_id"]: lic for lic in admin_get(server, "/api/v1/admin/licenses")["licenses"]}


def state_picture(server: ServerProcess) -> dict[str, Any]:
    """What every member must agree on once replication has caught up (read locally from that member)."""
    printers = admin_rows(server, "/api/v1/admin/printers", "printers")
    return {
        "leases": held_leases(server),
        "licenses": licenses(server),
        "printers": sorted((p["printer_id"], p["license_id"], p["group"]) for p in printers),
        "clients": sorted(c["client_id"] for c in admin_rows(server, "/api/v1/admin/clients", "clients")),
        "settings": admin_get(server, "/api/v1/admin/settings"),
        "access_rules": admin_get(server, "/api/v1/admin/access-rules"),
    }


def wait_for(condition, timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


def wait_same_state(cluster: TriadCluster, roles: tuple[str, ...] = ROLES, timeout: float = 10.0) -> dict:
    """Wait until every listed member's local copy of the state is the same; return it."""

    def same() -> dict | None:
        pictures = [state_picture(cluster.servers[role]) for role in roles]
        return pictures[0] if all(p == pictures[0] for p in pictures[1:]) else None

    return wait_for(same, timeout, 0.1, "the same state on " + ", ".join(roles))


def base_url(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Grant:
    request_id: str
    lease_id: str
    answered_by: str
    status: int


@dataclass
class TriadClient:
    """A license client: sends to the member it believes active, follows 307, tries the next member on
    503 or no answer, and retries one request id until it is granted (so no grant is ever unknown)."""

    cluster: TriadCluster
    product: str = SEATS
    timeout: float = 0.5
    grants: list[Grant] = field(default_factory=list)
    refusals: list[tuple[str, int, str]] = field(default_factory=list)
    _target: str = ""

    def __post_init__(self) -> None:
        self._urls = {server.url: role for role, server in self.cluster.servers.items()}
        self._target = self.cluster.servers["primary"].url
        self._http = httpx.Client(timeout=self.timeout)

    def close(self) -> None:
        self._http.close()

    def checkout(self, request_id: str | None = None, deadline_s: float = 20.0) -> Grant:
        request_id = request_id or uuid.uuid4().hex
        body = {"product": self.product, "request_id": request_id, "client": {"host": "ws-2", "user": "bo"}}
        deadline = time.monotonic() + deadline_s
        order = list(self._urls)
        while time.monotonic() < deadline:
            try:
                answer = self._http.post(f"{self._target}/api/v1/leases", json=body)
            except httpx.HTTPError:
                self._target = order[(order.index(self._target) + 1) % len(order)]
                continue
            if answer.status_code in (200, 201):
                grant = Grant(request_id, answer.json()["lease_id"], self._urls[self._target], answer.status_code)
                self.grants.append(grant)
                return grant
            if answer.status_code == 307:
                self._target = base_url(answer.headers["location"])
                continue
            self.refusals.append((self._urls[self._target], answer.status_code, answer.text))
            if answer.status_code == 503:
                self._target = order[(order.index(self._target) + 1) % len(order)]
                time.sleep(0.05)
                continue
            raise AssertionError(f"checkout {request_id} refused: {answer.status_code} {answer.text}")
        raise AssertionError(f"checkout {request_id} was not granted within {deadline_s}s")


class Background:
    """Run `step` over and over in a thread until `stop()`; an exception in it is re-raised by `stop()`."""

    def __init__(self, step) -> None:
        self._step = step
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
        except BaseException as exc:  # handed to the test thread by stop()
            self._error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the background client did not stop"
        if self._error is not None:
            raise self._error


class ServingSampler:
    """Polls every live member's relationship status; records (time, {role: (serving, epoch, active)})."""

    def __init__(self, cluster: TriadCluster, interval: float = 0.05) -> None:
        self.cluster = cluster
        self.samples: list[tuple[float, dict[str, tuple[bool, int, str | None] | None]]] = []
        self._interval = interval
        self._http = httpx.Client(auth=AUTH, timeout=0.3)
        self._background = Background(self._sample)

    def _sample(self) -> None:
        row: dict[str, tuple[bool, int, str | None] | None] = {}
        for role, server in self.cluster.servers.items():
            row[role] = None
            if server.process is None or server.process.poll() is not None:
                continue
            try:
                status = self._http.get(f"{server.url}/api/v1/admin/relationship").json()
            except (httpx.HTTPError, ValueError):
                continue
            if status.get("type") == "triad":
                row[role] = (bool(status["serving"]), int(status["epoch"]), status["active"])
        self.samples.append((time.monotonic(), row))
        time.sleep(self._interval)

    def stop(self) -> None:
        self._background.stop()
        self._http.close()

    def named_active(self) -> set[str]:
        """Every member some member's status named as active."""
        return {seen[2] for _, row in self.samples for seen in row.values() if seen is not None and seen[2]}

    def served_epochs(self, since: float = 0.0) -> dict[str, set[int]]:
        """For each member, the epochs it was seen serving in (in samples taken from `since` on, monotonic)."""
        served: dict[str, set[int]] = {role: set() for role in self.cluster.servers}
        for at, row in self.samples:
            if at < since:
                continue
            for role, seen in row.items():
                if seen is not None and seen[0]:
                    served[role].add(seen[1])
        return served

    def assert_no_epoch_served_by_two(self) -> None:
        """No epoch was served by two members, and the tertiary never served.

        (Two members may both *believe* they serve for a moment during a failback: the
        primary's new epoch fences the secondary's commands even before it has heard.)
        """
        assert self.samples, "the sampler took no sample"
        served = self.served_epochs()
        for role, epochs in served.items():
            for other, other_epochs in served.items():
                both = epochs & other_epochs
                assert other == role or not both, f"{role} and {other} both served in epochs {both}"
        assert not served["tertiary"], f"the tertiary served in epochs {served['tertiary']}"
