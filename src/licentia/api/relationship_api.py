"""The admin API for relationships: set up, join, watch and dissolve a triad or a backup pair."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from licentia.api.errors import ApiError
from licentia.api.routing import Endpoint, ok
from licentia.api.schemas import (
    BackupJoinRequest,
    BackupReplaceRequest,
    BackupSetupRequest,
    TriadJoinRequest,
    TriadSetupRequest,
)
from licentia.api.this_server import this_server as _server
from licentia.cluster.backup_pair import BackupLink, PeerUnreachable
from licentia.cluster.role_events import MAX_PAGE
from licentia.cluster.sealing import open_sealed
from licentia.cluster.setup import SetupRefused, setup_backup_pair, setup_triad
from licentia.cluster.triad_seam import TriadConfig
from licentia.core.access import RequestOrigin
from licentia.core.commands import DissolveTriad, FormBackupPair, SharedConfig, SwapPairRoles
from licentia.core.model import PairMember, PooledLicense, TriadMember
from licentia.tls import normalize_fingerprint

MAX_SEED_BYTES = 64 * 1024 * 1024

if TYPE_CHECKING:
    from licentia.server import LicenseServer


async def relationship_status(request: Request) -> Response:
    status = _server(request).relationship()
    return ok(status.as_json() if status is not None else {"type": None})


class EventsQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)] = 20
    before: Annotated[int, msgspec.Meta(ge=1)] | None = None  # the `next` of the previous page


async def relationship_events(request: Request) -> Response:
    """The newest role changes this server saw (failovers, members lost and regained), newest first."""
    try:
        query = msgspec.convert(dict(request.query_params), EventsQuery, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError("invalid_request", f"bad query parameter: {exc}; limit is 1 to {MAX_PAGE}") from None
    return ok(_server(request).role_events.page(query.limit, query.before).document())


async def seed_snapshot(request: Request) -> Response:
    server = _server(request)
    state = await server.read_state()
    return ok({"snapshot": state.snapshot_bytes().decode(), "server_id": server.server_id,
               "issuer_key_ids": server.trusted.ids()})


def _refusal(exc: SetupRefused) -> Response:
    """A setup refusal, with `problems` saying exactly which access rule is missing on which server."""
    status = {
        "access_check_failed": 409,
        "relationship_exists": 409,
        "join_failed": 409,
        "tls_fingerprint_needed": 409,
    }.get(exc.code, 422)
    if exc.code in ("member_unreachable", "member_login_failed", "member_certificate_refused"):
        status = 502
    return ok({"error": {"code": exc.code, "message": str(exc), "problems": exc.problems}}, status)


def _pinned(fingerprint: str) -> str:
    """A member's certificate fingerprint as stored and compared (empty: the member speaks plain HTTP)."""
    try:
        return normalize_fingerprint(fingerprint) if fingerprint else ""
    except ValueError as exc:
        raise ApiError("invalid_relationship", str(exc)) from None


def _not_in_relationship(server: Any) -> None:
    if server.triad is not None:
        raise ApiError("relationship_exists", f"this server is already in triad {server.triad.config.name!r}")
    if server.backup is not None:
        raise ApiError("relationship_exists", f"this server is already in backup pair {server.backup.pair.name!r}")


def _check_partners_allowed(server: Any, names: list[str]) -> None:
    for name in names:
        allowed, why = server.state.access_decision(RequestOrigin(server=name))
        if not allowed:
            raise ApiError("access_check_failed", f"this server's access rules do not allow {name} ({why})")


async def create_triad(request: Request, body: TriadSetupRequest) -> Response:
    server = _server(request)
    _not_in_relationship(server)
    try:
        result = await setup_triad(msgspec.to_builtins(body), server.now())
    except SetupRefused as exc:
        return _refusal(exc)
    return ok(result, 201 if not body.check_only else 200)


async def join_triad(request: Request, body: TriadJoinRequest) -> Response:
    server = _server(request)
    _not_in_relationship(server)
    if body.me not in {m.name for m in body.members}:
        raise ApiError("invalid_relationship", f"{body.me!r} is not one of the members")
    _check_partners_allowed(server, [m.name for m in body.members if m.name != body.me])
    try:
        secret = open_sealed(body.sealed_secret, server.peer_key)
    except ValueError as exc:
        raise ApiError("invalid_relationship", str(exc)) from None
    members = [msgspec.convert(msgspec.to_builtins(m), TriadMember) for m in body.members]
    for member in members:
        member.tls_fingerprint = _pinned(member.tls_fingerprint)
    config = TriadConfig(
        name=body.name,
        me=body.me,
        members=members,
        secret=secret,
        origin=body.origin,
        active_ttl_s=body.active_ttl_s,
    )
    try:
        pooled = msgspec.json.decode(body.pooled_licenses, type=list[PooledLicense])
        await server.join_triad(config, body.seed_snapshot.encode(), body.formed_at, body.seed, pooled)
    except (ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ApiError("invalid_relationship", f"cannot join: {exc}") from None
    return ok({"joined": body.name, "me": body.me})


async def create_backup_pair(request: Request, body: BackupSetupRequest) -> Response:
    _not_in_relationship(_server(request))
    try:
        result = await setup_backup_pair(msgspec.to_builtins(body))
    except SetupRefused as exc:
        return _refusal(exc)
    return ok(result, 201 if not body.check_only else 200)


async def join_backup_pair(request: Request, body: BackupJoinRequest) -> Response:
    server = _server(request)
    _not_in_relationship(server)
    partner = body.backup if body.me == "main" else body.main
    _check_partners_allowed(server, [partner.name])
    try:
        secret = open_sealed(body.sealed_secret, server.peer_key)
        config = msgspec.convert(body.config, SharedConfig) if body.config is not None else None
        form = FormBackupPair(
            name=body.name,
            main=PairMember(body.main.name, body.main.api_url.rstrip("/"), _pinned(body.main.tls_fingerprint)),
            backup=PairMember(
                body.backup.name, body.backup.api_url.rstrip("/"), _pinned(body.backup.tls_fingerprint)
            ),
            me=body.me,
            interval_s=body.interval_s,
            config=config,
        )
        await server.join_backup_pair(form, secret)
    except (ValueError, msgspec.ValidationError) as exc:
        raise ApiError("invalid_relationship", f"cannot join: {exc}") from None
    return ok({"joined": body.name, "me": body.me})


def _link(request: Request) -> BackupLink:
    link = _server(request).backup
    if link is None:
        raise ApiError("no_relationship", "this server is not in a backup pair")
    return link


async def shared_config(request: Request) -> Response:
    state = await _server(request).read_state()
    return ok(msgspec.to_builtins(state.shared_config()))


async def sync_now(request: Request) -> Response:
    link = _link(request)
    reached = await link.sync_once()
    if reached:
        try:
            await link.call("/api/v1/peer/poke")
        except PeerUnreachable:
            reached = False
    return ok({"reached": reached, **link.status().as_json()})


async def swap_roles(request: Request) -> Response:
    link = _link(request)
    try:
        await link.call("/api/v1/peer/swap")
    except PeerUnreachable as exc:
        raise ApiError("partner_unreachable", f"both servers must agree to swap roles: {exc}") from None
    outcome = await _server(request).execute(SwapPairRoles())
    if not outcome.ok:
        raise ApiError(outcome.code, outcome.message)
    link.wake()
    return ok(link.status().as_json())


async def _leave_pair(server: LicenseServer, link: BackupLink) -> dict[str, Any]:
    """Remove the pair here, and on the partner when it can be reached (else it must be removed there too)."""
    partner = link.pair.partner.name
    try:
        await link.call("/api/v1/peer/leave")
        partner_left = True
    except PeerUnreachable:
        partner_left = False
    name = await server.leave_backup_pair()
    return {"dissolved": name, "partner": partner, "partner_left": partner_left}


async def replace_backup(request: Request, body: BackupReplaceRequest) -> Response:
    link = _link(request)
    pair = link.pair
    if pair.me != "main":
        raise ApiError("owned_by_main", f"replace the backup from the main {pair.main.name} ({pair.main.api_url})")
    setup = {
        "name": pair.name,
        "main": {"name": pair.main.name, "api_url": pair.main.api_url, "tls_fingerprint": pair.main.tls_fingerprint},
        "backup": msgspec.to_builtins(body.backup),
        "username": body.username,
        "password": body.password,
        "interval_s": body.interval_s or pair.interval_s,
        "settings_from": "main",
    }
    try:
        await setup_backup_pair({**setup, "check_only": True}, replacing=pair.main.name)
        left = await _leave_pair(_server(request), link)
        result = await setup_backup_pair(setup)
    except SetupRefused as exc:
        return _refusal(exc)
    return ok({**result, "replaced": left["partner"], "replaced_partner_left": left["partner_left"]})


async def dissolve(request: Request) -> Response:
    server = _server(request)
    if server.backup is not None:
        return ok(await _leave_pair(server, server.backup))
    if server.triad is None:
        raise ApiError("no_relationship", "this server is not in a relationship")
    outcome = await server.triad.propose(DissolveTriad())
    if not outcome.ok:
        raise ApiError(outcome.code, outcome.message)
    return ok(outcome.result)


R = "/api/v1/admin/relationship"
ENDPOINTS = [
    Endpoint(
        "GET",
        R,
        relationship_status,
        "The relationship: members, roles, active, reachability, lag",
        role="viewer",
        tag="relationship",
    ),
    Endpoint(
        "GET",
        f"{R}/events",
        relationship_events,
        "The relationship's timeline: failovers and members lost or regained, newest first (?limit=, ?before=)",
        role="viewer",
        tag="relationship",
    ),
    Endpoint(
        "POST",
        f"{R}/triad",
        create_triad,
        "Set up a triad (checks access rules first; check_only to dry-run)",
        body=TriadSetupRequest,
        role="admin",
        tag="relationship",
    ),
    Endpoint(
        "POST",
        f"{R}/join",
        join_triad,
        "Join a triad (called by the server that sets it up)",
        body=TriadJoinRequest,
        role="admin",
        tag="relationship",
        max_body=MAX_SEED_BYTES,
    ),
    Endpoint(
        "GET",
        f"{R}/seed",
        seed_snapshot,
        "This server's state, to seed a relationship",
        role="admin",
        tag="relationship",
    ),
    Endpoint(
        "POST",
        f"{R}/dissolve",
        dissolve,
        "Dissolve the triad (the primary keeps the licenses) or remove the backup pair (both keep theirs)",
        role="admin",
        tag="relationship",
    ),
    Endpoint(
        "POST",
        f"{R}/backup",
        create_backup_pair,
        "Set up a backup pair from either server (checks access rules first; check_only to dry-run)",
        body=BackupSetupRequest,
        role="admin",
        tag="relationship",
    ),
    Endpoint(
        "POST",
        f"{R}/backup/join",
        join_backup_pair,
        "Join a backup pair (called by the server that sets it up)",
        body=BackupJoinRequest,
        role="admin",
        tag="relationship",
    ),
    Endpoint(
        "GET",
        f"{R}/shared-config",
        shared_config,
        "The settings and rules a backup pair shares, to seed one",
        role="admin",
        tag="relationship",
    ),
    Endpoint("POST", f"{R}/sync", sync_now, "Backup pair: synchronize now", role="manager", tag="relationship"),
    Endpoint("POST", f"{R}/swap", swap_roles, "Backup pair: swap main and backup", role="admin", tag="relationship"),
    Endpoint(
        "POST",
        f"{R}/backup/replace",
        replace_backup,
        "Backup pair: replace the backup by another server (run on the main)",
        body=BackupReplaceRequest,
        role="admin",
        tag="relationship",
    ),
]
