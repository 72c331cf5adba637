"""Setting up a relationship from one server: check every member, seed, hand each member its sealed secret.

Run by the server that receives the admin request; it talks to the members
(itself included) through their admin APIs with the credentials given.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import msgspec

from licentia.cluster import network_failure
from licentia.cluster.license_pool import MemberHoldings, plan_pool
from licentia.cluster.sealing import seal
from licentia.core.state import Snapshot
from licentia.outbound_http import http_client_imported
from licentia.tls import CertificateRefused, ServerTrust, fingerprint, normalize_fingerprint, presented_certificate

if TYPE_CHECKING:
    import httpx


class SetupRefused(Exception):
    """The triad cannot be set up; `problems` says exactly what is missing where."""

    def __init__(self, code: str, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.problems = problems or []


@dataclass
class MemberSession:
    spec: dict[str, Any]
    http: httpx.AsyncClient
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["name"])


async def _address_of(api_url: str) -> str:
    host = urlparse(api_url).hostname or ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return str(infos[0][4][0]) if infos else ""


async def member_trust(spec: dict[str, Any]) -> ServerTrust:
    """How to trust a member's HTTPS certificate: the fingerprint the administrator confirmed for it.

    A member on HTTPS without one is refused before anything (no credentials) is sent to it; the refusal
    names the fingerprint it presents, for the administrator to compare with the one its console shows.
    """
    url = spec["api_url"].rstrip("/")
    if not url.startswith("https:"):
        return ServerTrust()
    given = str(spec.get("tls_fingerprint") or "")
    if given:
        try:
            spec["tls_fingerprint"] = normalize_fingerprint(given)
        except ValueError as exc:
            raise SetupRefused("invalid_relationship", f"{spec['name']}: {exc}") from None
        trust = ServerTrust([spec["tls_fingerprint"]])
        try:
            await trust.prepare(url)
        except CertificateRefused as exc:
            raise SetupRefused("member_certificate_refused", f"{spec['name']}: {exc}") from None
        return trust
    try:
        seen = fingerprint(await presented_certificate(url))
    except CertificateRefused as exc:
        raise SetupRefused("member_unreachable", f"{spec['name']} ({url}) cannot be reached: {exc}") from None
    raise SetupRefused(
        "tls_fingerprint_needed",
        f"confirm the HTTPS certificate of {spec['name']} ({url}): it presents SHA-256 fingerprint {seen}; "
        "compare it with the fingerprint shown on that server's console, then set up again with it",
        [{"server": spec["name"], "api_url": url, "tls_fingerprint": seen}],
    )


async def open_member(spec: dict[str, Any], username: str, password: str) -> MemberSession:
    await http_client_imported()  # off the loop: a standalone server loads httpx (~5 MB) only to set up a relationship
    import httpx

    trust = await member_trust(spec)
    http = httpx.AsyncClient(base_url=spec["api_url"].rstrip("/"), timeout=5.0, verify=trust.context)
    try:
        login = await http.post("/api/v1/auth/login", json={"username": username, "password": password})
    except httpx.HTTPError as exc:
        await http.aclose()
        raise SetupRefused(
            "member_unreachable",
            f"{spec['name']} ({spec['api_url']}) cannot be reached: {network_failure.describe(exc)}.",
        ) from None
    if login.status_code != 200:
        await http.aclose()
        raise SetupRefused(
            "member_login_failed", f"cannot log in to {spec['name']} ({spec['api_url']}) as {username!r}"
        )
    http.headers["Authorization"] = f"Bearer {login.json()['token']}"
    session = MemberSession(spec=spec, http=http)
    session.info = (await http.get("/api/v1/server")).json()
    return session


async def access_problems(sessions: list[MemberSession]) -> list[dict[str, Any]]:
    """For every ordered pair: does X's access rules let Y in? Say which rule is missing where."""
    problems = []
    addresses = {s.name: await _address_of(s.spec["api_url"]) for s in sessions}
    for server in sessions:
        for peer in sessions:
            if peer is server:
                continue
            probe = {"server": peer.name, "ip": addresses[peer.name], "host": urlparse(peer.spec["api_url"]).hostname}
            answer = (await server.http.post("/api/v1/admin/access-rules/test", json=probe)).json()
            if not answer.get("allowed"):
                problems.append(
                    {
                        "server": server.name,
                        "must_allow": peer.name,
                        "decided_by": answer.get("decided_by"),
                        "api_url": server.spec["api_url"],
                        "fix": f"Open the This License Server page on {server.name} and add a rule with Action allow "
                        f"and Who: License server {peer.name!r} (or From where: IP address {addresses[peer.name]}), "
                        f"placed above what decides now: {answer.get('decided_by')}.",
                    }
                )
    return problems


def member_login(request: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str]:
    """The administrator account to log in to this member with: its own (`credentials` by member name), else
    the shared `username` and `password`; refused in a sentence when the request gives neither."""
    own = (request.get("credentials") or {}).get(spec["name"])
    if own:
        return own["username"], own["password"]
    if request.get("username") and request.get("password"):
        return request["username"], request["password"]
    raise SetupRefused(
        "invalid_relationship",
        f"give the administrator username and password for {spec['name']}: its own (credentials) or one shared "
        "set (username and password) for every server",
    )


@contextlib.asynccontextmanager
async def checked_members(
    specs: list[dict[str, Any]], request: dict[str, Any], *, replacing: str | None = None
) -> AsyncIterator[list[MemberSession]]:
    """Logged-in sessions to every member, once each is free of other relationships (`replacing` may be
    in one) and every member's access rules let the others in; closed on the way out."""
    sessions: list[MemberSession] = []
    strangers = set(request.get("credentials") or {}) - {spec["name"] for spec in specs}
    if strangers:
        raise SetupRefused("invalid_relationship", f"credentials are given for {', '.join(sorted(strangers))}, "
                           "which is not a server of this relationship")
    logins = [member_login(request, spec) for spec in specs]
    try:
        unconfirmed: list[dict[str, Any]] = []
        for spec in specs:
            try:
                await member_trust(spec)
            except SetupRefused as exc:
                if exc.code != "tls_fingerprint_needed":
                    raise
                unconfirmed += exc.problems
        if unconfirmed:
            raise SetupRefused(
                "tls_fingerprint_needed",
                "confirm the HTTPS certificates: "
                + "; ".join(f"{p['server']} presents {p['tls_fingerprint']}" for p in unconfirmed)
                + " (compare each with the fingerprint its console shows, then set up again with them)",
                unconfirmed,
            )
        for spec, (username, password) in zip(specs, logins, strict=True):
            sessions.append(await open_member(spec, username, password))
        busy = [s.name for s in sessions if s.info.get("relationship") and s.name != replacing]
        if busy:
            raise SetupRefused("relationship_exists", f"already in a relationship: {', '.join(busy)}")
        problems = await access_problems(sessions)
        if problems:
            raise SetupRefused(
                "access_check_failed",
                "; ".join(f"{p['server']} does not allow {p['must_allow']} ({p['decided_by']})" for p in problems),
                problems,
            )
        yield sessions
    finally:
        for session in sessions:
            await session.http.aclose()


def _checked(sessions: list[MemberSession]) -> dict[str, Any]:
    return {"checked": True, "members": [s.name for s in sessions], "problems": []}


async def setup_triad(request: dict[str, Any], now: float) -> dict[str, Any]:
    members = request["members"]
    if sorted(m["role"] for m in members) != ["primary", "secondary", "tertiary"]:
        raise SetupRefused("invalid_relationship", "a triad has one primary, one secondary and one tertiary")
    if len({m["name"] for m in members}) != 3 or len({m["raft_address"] for m in members}) != 3:
        raise SetupRefused("invalid_relationship", "member names and Raft addresses must be distinct")
    if request["seed"] not in {m["name"] for m in members}:
        raise SetupRefused("invalid_relationship", f"the seed {request['seed']!r} is not one of the members")
    async with checked_members(members, request) as sessions:
        seeds = {s.name: (await s.http.get("/api/v1/admin/relationship/seed", timeout=30)).json() for s in sessions}
        plan = plan_pool(request["seed"], [_holdings(name, seed) for name, seed in seeds.items()])
        license_pool = msgspec.to_builtins(plan.members)
        if request.get("check_only"):
            return {**_checked(sessions), "license_pool": license_pool}
        snapshot = seeds[request["seed"]]["snapshot"]
        pooled = msgspec.json.encode(plan.pooled).decode()
        secret = secrets.token_urlsafe(32)
        origin = f"triad:{request['name']}:{uuid.uuid4().hex[:8]}"
        joined: list[str] = []
        for session in sessions:
            body = {
                "name": request["name"],
                "me": session.name,
                "members": members,
                "sealed_secret": seal(secret, session.info["peer_public_key"]),
                "seed_snapshot": snapshot,
                "formed_at": now,
                "origin": origin,
                "active_ttl_s": request.get("active_ttl_s", 0.8),
                "seed": request["seed"],
                "pooled_licenses": pooled,
            }
            answer = await session.http.post("/api/v1/admin/relationship/join", json=body, timeout=30)
            if answer.status_code != 200:
                raise SetupRefused(
                    "join_failed", f"{session.name} refused to join: {answer.text}", [{"joined": joined}]
                )
            joined.append(session.name)
        return {"triad": request["name"], "members": joined, "seeded_from": request["seed"],
                "license_pool": license_pool}


def _holdings(name: str, seed: dict[str, Any]) -> MemberHoldings:
    """A member's licenses (from its state) and what it trusts, for planning the triad's license pool."""
    snapshot = msgspec.json.decode(seed["snapshot"].encode(), type=Snapshot)
    return MemberHoldings(name=name, server_id=str(seed.get("server_id", "")),
                          issuer_key_ids=list(seed.get("issuer_key_ids", [])), licenses=snapshot.licenses)


async def setup_backup_pair(request: dict[str, Any], *, replacing: str | None = None) -> dict[str, Any]:
    """Create a backup pair: both servers reachable, each one's access rules letting the other in; then
    each joins with the secret sealed for it, the main first. `replacing` names a main that may already
    be in the pair whose backup is being replaced."""
    main, backup = request["main"], request["backup"]
    if main["name"] == backup["name"] or main["api_url"].rstrip("/") == backup["api_url"].rstrip("/"):
        raise SetupRefused("invalid_relationship", "the main and the backup must be two different servers")
    specs = [main, backup]
    async with checked_members(specs, request, replacing=replacing) as sessions:
        if request.get("check_only"):
            return _checked(sessions)
        main_session, backup_session = sessions
        config = None
        if request.get("settings_from") == "backup":
            config = (await backup_session.http.get("/api/v1/admin/relationship/shared-config")).json()
        secret = secrets.token_urlsafe(32)
        joined: list[str] = []
        for session, me in ((main_session, "main"), (backup_session, "backup")):
            body = {
                "name": request["name"],
                "me": me,
                "main": main,
                "backup": backup,
                "sealed_secret": seal(secret, session.info["peer_public_key"]),
                "interval_s": request.get("interval_s", 5.0),
                "config": config if me == "main" else None,
            }
            answer = await session.http.post("/api/v1/admin/relationship/backup/join", json=body, timeout=30)
            if answer.status_code != 200:
                for done in sessions[: len(joined)]:
                    await done.http.post("/api/v1/admin/relationship/dissolve", json={})
                raise SetupRefused("join_failed", f"{session.name} refused to join: {answer.text}")
            joined.append(session.name)
        return {
            "backup_pair": request["name"],
            "main": main["name"],
            "backup": backup["name"],
            "settings_from": request.get("settings_from", "main"),
        }
