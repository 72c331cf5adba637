"""The admin API for relationships: set up, join, watch and dissolve a triad."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from licentia.api.errors import ApiError
from licentia.api.routing import Endpoint, ok
from licentia.api.schemas import TriadJoinRequest, TriadSetupRequest
from licentia.cluster.sealing import open_sealed
from licentia.cluster.setup import SetupRefused, setup_triad
from licentia.cluster.triad import TriadConfig
from licentia.core.access import RequestOrigin
from licentia.core.commands import DissolveTriad
from licentia.core.model import TriadMember

MAX_SEED_BYTES = 64 * 1024 * 1024


def _server(request: Request) -> Any:
    return request.app.state.server


async def relationship_status(request: Request) -> Response:
    status = _server(request).relationship()
    return ok(status if status is not None else {"type": None})


async def seed_snapshot(request: Request) -> Response:
    state = await _server(request).read_state()
    return ok({"snapshot": state.snapshot_bytes().decode()})


async def create_triad(request: Request, body: TriadSetupRequest) -> Response:
    server = _server(request)
    if server.triad is not None:
        raise ApiError("relationship_exists", f"this server is already in triad {server.triad.config.name!r}")
    try:
        result = await setup_triad(msgspec.to_builtins(body), server.now())
    except SetupRefused as exc:
        status = 409 if exc.code in ("access_check_failed", "relationship_exists", "join_failed") else 422
        return ok({"error": {"code": exc.code, "message": str(exc), "problems": exc.problems}}, status)
    return ok(result, 201 if not body.check_only else 200)


async def join_triad(request: Request, body: TriadJoinRequest) -> Response:
    server = _server(request)
    if server.triad is not None:
        raise ApiError("relationship_exists", f"this server is already in triad {server.triad.config.name!r}")
    if body.me not in {m.name for m in body.members}:
        raise ApiError("invalid_relationship", f"{body.me!r} is not one of the members")
    for member in body.members:
        if member.name == body.me:
            continue
        allowed, why = server.state.access_decision(RequestOrigin(server=member.name))
        if not allowed:
            raise ApiError("access_check_failed", f"this server's access rules do not allow {member.name} ({why})")
    try:
        secret = open_sealed(body.sealed_secret, server.peer_key)
    except ValueError as exc:
        raise ApiError("invalid_relationship", str(exc)) from None
    config = TriadConfig(
        name=body.name,
        me=body.me,
        members=[msgspec.convert(msgspec.to_builtins(m), TriadMember) for m in body.members],
        secret=secret,
        origin=body.origin,
        active_ttl_s=body.active_ttl_s,
    )
    try:
        await server.join_triad(config, body.seed_snapshot.encode(), body.formed_at)
    except (ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ApiError("invalid_relationship", f"cannot join: {exc}") from None
    return ok({"joined": body.name, "me": body.me})


async def dissolve(request: Request) -> Response:
    server = _server(request)
    if server.triad is None:
        raise ApiError("no_relationship", "this server is not in a relationship")
    outcome = await server.triad.propose(DissolveTriad())
    if not outcome.ok:
        raise ApiError(outcome.code, outcome.message)
    return ok({"dissolved": outcome.data.get("dissolved")})


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
        "Dissolve the triad; the primary keeps the licenses",
        role="admin",
        tag="relationship",
    ),
]
