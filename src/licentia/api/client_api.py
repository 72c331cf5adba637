"""The client API: what applications call before they print or run.

It needs no login; the "This License Server" access rules, evaluated inside
the core, decide who may use it.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from licentia.api.errors import ApiError
from licentia.api.routing import Endpoint, ok
from licentia.api.schemas import CheckoutRequest, HeartbeatRequest, PrintCheckRequest
from licentia.core import commands as c
from licentia.core.model import ClientInfo
from licentia.core.state import Outcome


def _source_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def answer(outcome: Outcome, status: int = 200) -> Response:
    if not outcome.ok:
        raise ApiError(outcome.code, outcome.message)
    return ok(outcome.data, status)


async def server_info(request: Request) -> Response:
    return ok(request.app.state.server.info())


def _subject(client: ClientInfo) -> str:
    return f"{client.host}/{client.user}/{client.application}"


async def print_check(request: Request, body: PrintCheckRequest) -> Response:
    server = request.app.state.server
    command = c.PrintCheck(
        product=body.product, printer=body.printer, client=body.client, source_ip=_source_ip(request)
    )
    outcome = await server.execute(command)
    if outcome.ok:
        outcome.data["grant"] = server.grant_token("print", body.product, _subject(body.client))
    return answer(outcome)


async def checkout(request: Request, body: CheckoutRequest) -> Response:
    command = c.Checkout(
        request_id=body.request_id or secrets.token_hex(16),
        lease_id=secrets.token_hex(16),
        product=body.product,
        feature=body.feature,
        client=body.client,
        source_ip=_source_ip(request),
        ttl_s=body.ttl_s,
    )
    server = request.app.state.server
    outcome = await server.execute(command)
    if outcome.ok:
        outcome.data["grant"] = server.grant_token("seat", body.product, _subject(body.client))
    return answer(outcome, 200 if outcome.data.get("repeated") else 201)


async def heartbeat(request: Request, body: HeartbeatRequest) -> Response:
    server = request.app.state.server
    outcome = await server.heartbeats.renew(body.lease_ids)
    if outcome.ok:
        # One grant per product, for the last renewed lease of that product (as the answer always had):
        # signing is most of a batch's cost, so no grant is signed only to be overwritten.
        leases = server.state.leases
        by_product = {lease.product: lease for lease in (leases.get(i) for i in outcome.data["renewed"]) if lease}
        outcome.data["grants"] = {
            product: server.grant_token("seat", product, _subject(lease.client))
            for product, lease in by_product.items()
        }
    return answer(outcome)


async def heartbeat_one(request: Request) -> Response:
    lease_id = request.path_params["lease_id"]
    outcome = await request.app.state.server.heartbeats.renew([lease_id])
    if not outcome.ok:
        raise ApiError(outcome.code, outcome.message)
    if lease_id not in outcome.data["renewed"]:
        raise ApiError("lease_expired", f"lease {lease_id} is not held any more; check out again")
    return ok({"lease_id": lease_id, "expires_at": outcome.data["renewed"][lease_id]})


async def checkin(request: Request) -> Response:
    return answer(await request.app.state.server.execute(c.Checkin(lease_id=request.path_params["lease_id"])))


ENDPOINTS = [
    Endpoint("GET", "/api/v1/server", server_info, "Who this server is and the timing clients should use"),
    Endpoint(
        "POST",
        "/api/v1/print-checks",
        print_check,
        "May this client print to this printer?",
        body=PrintCheckRequest,
    ),
    Endpoint(
        "POST",
        "/api/v1/leases",
        checkout,
        "Check out a seat (idempotent per request_id)",
        body=CheckoutRequest,
    ),
    Endpoint("POST", "/api/v1/leases/heartbeat", heartbeat, "Renew several leases at once", body=HeartbeatRequest),
    Endpoint("POST", "/api/v1/leases/{lease_id}/heartbeat", heartbeat_one, "Renew one lease"),
    Endpoint("DELETE", "/api/v1/leases/{lease_id}", checkin, "Check a seat back in"),
]
