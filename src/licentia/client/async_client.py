"""The asyncio client: finds the server that can answer, renews leases, and falls back on grace tokens.

It tries the active server first and fails over to the others with short
timeouts; a member that does not serve redirects it to the one that does. Seat
leases are renewed in the background and re-established with the same request
id after a failover, so a retry never takes a second seat. When no server can
be reached, the last valid signed grant keeps the application working for the
connectivity grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from licentia.client.directory import ServerDirectory
from licentia.client.errors import LicenseDenied, ServerUnavailable
from licentia.client.grant_keys import TrustedGrantKeys
from licentia.client.policy import GraceTokens, PrintCheckSchedule
from licentia.grants import unverified_key_id
from licentia.tls import CertificateRefused, ServerTrust

log = logging.getLogger("licentia.client")

RETRYABLE_STATUS = {502, 503, 504}
GRACE_WARNING_EVERY_S = 300.0


class _NoActiveYet(Exception):
    """Servers answered, but none could process the request yet (a relationship is electing)."""


@dataclass
class HeldLease:
    request_id: str
    product: str
    feature: str | None
    lease_id: str
    expires_at: float
    offline: bool = False


class AsyncLicenseClient:
    def __init__(
        self,
        servers: str | list[str],
        *,
        host: str = "",
        user: str = "",
        application: str = "",
        version: str = "",
        cache_dir: Path | None = None,
        connect_timeout: float = 0.3,
        request_timeout: float = 1.0,
        heartbeat_interval_s: float | None = None,
        clock: Callable[[], float] = time.time,
        on_grace: Callable[[str, float], None] | None = None,
        failover_wait_s: float = 3.0,
        tls_fingerprint: str | list[str] | None = None,
        grant_keys_file: Path | str | None = None,
    ) -> None:
        seeds = [servers] if isinstance(servers, str) else list(servers)
        if not seeds:
            raise ValueError("give at least one server address")
        self.directory = ServerDirectory(seeds, cache_dir)
        self.identity = {"host": host, "user": user, "application": application, "version": version}
        self.clock = clock
        self.on_grace = on_grace
        self.heartbeat_interval_s = heartbeat_interval_s
        self.failover_wait_s = failover_wait_s
        self.request_timeout = request_timeout
        self._last_grace_warning: dict[str, float] = {}
        # Grace is judged with keys from a file the administrator deployed (grant_keys_file or
        # $LICENTIA_GRANT_KEYS) and those of servers reached in this run, never keys from the cache.
        self.trusted_keys = TrustedGrantKeys.configured(grant_keys_file)
        self.grace = GraceTokens(self.directory, f"{host}/{user}/{application}")
        self.schedules: dict[tuple[str, str], PrintCheckSchedule] = {}
        self.leases: dict[str, HeldLease] = {}
        pins = [tls_fingerprint] if isinstance(tls_fingerprint, str) else list(tls_fingerprint or [])
        # HTTPS servers are trusted through the system's CAs, or, given fingerprints, exactly the pinned
        # certificates (plus those of the members a pinned server names for its relationship).
        self.trust = ServerTrust(pins)
        self._timeout = httpx.Timeout(request_timeout, connect=connect_timeout)
        self._http = httpx.AsyncClient(timeout=self._timeout, verify=self.trust.context)
        self._http_generation = self.trust.generation
        self._retired: list[httpx.AsyncClient] = []
        self._introduced: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None
        # A lease re-established under a new id: the id the application holds -> the one that replaced it.
        self._replaced: dict[str, str] = {}

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await self._http.aclose()
        for http in self._retired:
            await http.aclose()

    async def __aenter__(self) -> AsyncLicenseClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- finding a server -----------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        """The HTTP client for the certificates trusted now (a new one once another member's is pinned)."""
        if self._http_generation != self.trust.generation:
            self._retired.append(self._http)  # requests in flight finish on it; closed with the client
            self._http = httpx.AsyncClient(timeout=self._timeout, verify=self.trust.context)
            self._http_generation = self.trust.generation
        return self._http

    async def _introduce(self, url: str) -> None:
        """Learn a server's relationship and grant key the first time it answers."""
        if url in self._introduced:
            return
        try:
            await self.trust.prepare(url)
            response = await self._client().get(f"{url}/api/v1/server")
        except (httpx.HTTPError, CertificateRefused):
            return
        if response.status_code == 200:
            self._introduced.add(url)
            self._learn(url, response.json())

    def _learn(self, url: str, info: dict[str, Any]) -> None:
        """Take in a verified server's answer: its grant key, its relationship, its members' certificates."""
        relationship = info.get("relationship")
        if isinstance(relationship, dict):
            self.trust.pin(
                str(m["tls_fingerprint"]) for m in relationship.get("members", []) if m.get("tls_fingerprint")
            )
        self.trusted_keys.learn(info)
        self.directory.learn(url, info)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """Send to the server that can process it; while a relationship elects a new active server
        (members answer but none serves), keep trying for up to `failover_wait_s`."""
        deadline = time.monotonic() + self.failover_wait_s
        timed_out: dict[str, float] = {}
        while True:
            try:
                return await self._call_once(method, path, body, timed_out)
            except _NoActiveYet as exc:
                if time.monotonic() >= deadline:
                    raise ServerUnavailable(str(exc)) from None
                await asyncio.sleep(0.05)

    async def _call_once(
        self, method: str, path: str, body: dict[str, Any] | None, timed_out: dict[str, float] | None = None
    ) -> httpx.Response:
        """One pass: active first, following redirects, then the others.

        A member that timed out in an earlier pass of the same call (`timed_out`: url -> when) is left
        out for one request timeout: a hung host costs a full timeout on every try, while the others
        answer at once that the relationship is still electing."""
        timed_out = {} if timed_out is None else timed_out
        now = time.monotonic()
        queue = self.directory.candidates()
        tried = {url for url, at in timed_out.items() if now - at < self.request_timeout}
        problems = [f"{url}: timed out {now - timed_out[url]:.1f}s ago" for url in tried]
        answered = bool(tried)  # try those again once they have rested, until `failover_wait_s`
        while queue:
            url = queue.pop(0)
            if url in tried:
                continue
            tried.add(url)
            try:
                await self.trust.prepare(url)
                response = await self._client().request(method, f"{url}{path}", json=body)
            except CertificateRefused as exc:
                problems.append(str(exc))
                continue
            except httpx.HTTPError as exc:
                problems.append(self.trust.explain(url, exc) or f"{url}: {type(exc).__name__}")
                if isinstance(exc, httpx.TimeoutException):
                    timed_out[url] = time.monotonic()
                continue
            if response.status_code == 307:
                answered = True
                target = str(response.json().get("error", {}).get("active_url") or "").rstrip("/")
                if target and target not in tried:
                    self.directory.mark_active(target)
                    queue.insert(0, target)
                await self._introduce(url)
                continue
            if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
                problems.append(f"{url}: {response.status_code}")
                answered = True
                await self._introduce(url)
                continue
            self.directory.mark_active(url)
            await self._introduce(url)
            return response
        message = "no license server could process the request: " + "; ".join(problems)
        if answered:
            raise _NoActiveYet(message)
        raise ServerUnavailable(message)

    async def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self._call(method, path, body)
        data = response.json()
        if response.status_code >= 400:
            raise LicenseDenied.from_answer(response.status_code, data)
        return data

    async def _keep_grant(self, kind: str, product: str, data: dict[str, Any]) -> None:
        token = (data.get("grant") or {}).get("token")
        if not token:
            return
        if unverified_key_id(token) not in self.trusted_keys.keys and self.directory.active:
            self._introduced.discard(self.directory.active)
            await self._introduce(self.directory.active)
        self.grace.keep(kind, product, token)

    def grace_left(self, product: str, kind: str = "print") -> float:
        """Seconds of connectivity grace left for `product` (0 when there is no valid token)."""
        return self.grace.seconds_left(kind, product, self.trusted_keys, self.clock())

    def _offline(self, kind: str, product: str, cause: ServerUnavailable) -> dict[str, Any]:
        left = self.grace_left(product, kind)
        if left <= 0:
            raise cause
        if self.on_grace is not None:
            self.on_grace(product, left)
        now = time.monotonic()
        if now - self._last_grace_warning.get(product, -3600.0) >= GRACE_WARNING_EVERY_S:
            self._last_grace_warning[product] = now
            log.warning(
                "No license server reachable; %s keeps working on its grace token (%.1f hours left).",
                product,
                left / 3600,
            )
        return {"granted": True, "offline": True, "grace_seconds_left": left}

    # -- requests -------------------------------------------------------------------------------

    async def grant_key_document(self) -> dict[str, Any]:
        """The grant keys of every member of the server's relationship, for an administrator to deploy
        with applications (`grant_keys_file`) so their grace survives a restart while offline."""
        await self.server_info()
        for url in self.directory.members:
            self._introduced.discard(url)
            await self._introduce(url)
        return self.trusted_keys.document()

    async def server_info(self) -> dict[str, Any]:
        response = await self._call("GET", "/api/v1/server")
        info = response.json()
        self._learn(str(response.request.url).split("/api/")[0], info)
        return info

    async def print_check(
        self, product: str, printer: str, *, driver: str = "", port: str = "", location: str = ""
    ) -> dict[str, Any]:
        body = {
            "product": product,
            "printer": {"name": printer, "driver": driver, "port": port, "location": location},
            "client": self.identity,
        }
        try:
            data = await self._json("POST", "/api/v1/print-checks", body)
        except ServerUnavailable as exc:
            return self._offline("print", product, exc)
        await self._keep_grant("print", product, data)
        return data

    async def checkout(
        self,
        product: str,
        *,
        feature: str | None = None,
        request_id: str | None = None,
        ttl_s: float | None = None,
    ) -> dict[str, Any]:
        request_id = request_id or uuid.uuid4().hex
        body: dict[str, Any] = {"product": product, "client": self.identity, "request_id": request_id}
        if feature:
            body["feature"] = feature
        if ttl_s:
            body["ttl_s"] = ttl_s
        try:
            data = await self._json("POST", "/api/v1/leases", body)
        except ServerUnavailable as exc:
            offline = self._offline("seat", product, exc)
            lease_id = f"offline-{request_id}"
            self.leases[lease_id] = HeldLease(request_id, product, feature, lease_id, 0.0, offline=True)
            self._start_renewer()  # so the seat is taken for real once a server answers again
            return {**offline, "lease_id": lease_id}
        await self._keep_grant("seat", product, data)
        self.leases[data["lease_id"]] = HeldLease(
            request_id, product, feature, data["lease_id"], float(data["expires_at"])
        )
        self._start_renewer()
        return data

    async def heartbeat(self, *lease_ids: str) -> dict[str, Any]:
        return await self._json("POST", "/api/v1/leases/heartbeat", {"lease_ids": list(lease_ids)})

    async def checkin(self, lease_id: str) -> dict[str, Any]:
        while lease_id in self._replaced:
            lease_id = self._replaced.pop(lease_id)
        held = self.leases.pop(lease_id, None)
        if held is not None and held.offline:
            return {"lease_id": lease_id, "released": True, "offline": True}
        try:
            return await self._json("DELETE", f"/api/v1/leases/{lease_id}")
        except LicenseDenied as exc:
            if exc.code == "lease_not_found":
                return {"lease_id": lease_id, "released": False}
            raise

    # -- background renewal ---------------------------------------------------------------------

    def _start_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    async def renew_now(self) -> None:
        """Renew every held lease once; a lease the server lost is taken again with its request id."""
        online = [held for held in self.leases.values() if not held.offline]
        if online:
            try:
                data = await self.heartbeat(*(held.lease_id for held in online))
            except ServerUnavailable:
                return
            for product, grant in data.get("grants", {}).items():
                self.grace.keep("seat", product, grant["token"])
            for lease_id, expires_at in data.get("renewed", {}).items():
                if lease_id in self.leases:
                    self.leases[lease_id].expires_at = float(expires_at)
            for lease_id in data.get("expired", []):
                await self._retake(self.leases.pop(lease_id, None))
        for held in [held for held in self.leases.values() if held.offline]:
            self.leases.pop(held.lease_id, None)
            await self._retake(held)

    async def _retake(self, held: HeldLease | None) -> None:
        if held is None:
            return
        try:
            data = await self.checkout(held.product, feature=held.feature, request_id=held.request_id)
        except (LicenseDenied, ServerUnavailable) as exc:
            log.warning("Could not re-establish the %s lease: %s", held.product, exc)
            self.leases[held.lease_id] = held
            return
        if data.get("lease_id") and data["lease_id"] != held.lease_id:
            self._replaced[held.lease_id] = data["lease_id"]
        log.info("Re-established the %s lease as %s.", held.product, data.get("lease_id"))

    async def _renew_loop(self) -> None:
        while self.leases:
            interval = self.heartbeat_interval_s
            if interval is None:
                interval = 30.0
                with contextlib.suppress(LicenseDenied, ServerUnavailable, ValueError, KeyError):
                    interval = float((await self.server_info())["heartbeat_interval_s"])
                self.heartbeat_interval_s = interval
            await asyncio.sleep(interval)
            try:
                await self.renew_now()
            except LicenseDenied as exc:
                log.warning("Lease renewal refused: %s", exc)

    # -- the print-job flow ---------------------------------------------------------------------

    def print_schedule(self, product: str, printer: str) -> PrintCheckSchedule:
        return self.schedules.setdefault((product, printer), PrintCheckSchedule())

    async def _checked(self, product: str, printer: str, **where: str) -> dict[str, Any]:
        schedule = self.print_schedule(product, printer)
        try:
            result = await self.print_check(product, printer, **where)
        except (LicenseDenied, ServerUnavailable):
            schedule.record(False)
            raise
        schedule.record(not result.get("offline", False))
        return result

    async def before_job(self, product: str, printer: str, **where: str) -> dict[str, Any] | None:
        """Call before printing: checks only while recovering from a failed check (raises if refused)."""
        if not self.print_schedule(product, printer).before_jobs:
            return None
        return await self._checked(product, printer, **where)

    async def after_job(self, product: str, printer: str, **where: str) -> dict[str, Any] | None:
        """Call after printing: the normal check; a failure switches to checking before each job."""
        if self.print_schedule(product, printer).before_jobs:
            return None
        try:
            return await self._checked(product, printer, **where)
        except (LicenseDenied, ServerUnavailable):
            return None
