"""The client API: what applications call before they print or run.

It needs no login; the "This License Server" access rules, evaluated inside
the core, decide who may use it: every print check, checkout, heartbeat and
check-in is judged by the client's declared names, its source address and the
host name DNS verifies for that address (looked up only while a rule needs it).
"""

from __future__ import annotations

import logging
import secrets

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from licentia.api.errors import ApiError
from licentia.api.routing import Endpoint, ok
from licentia.api.schemas import CheckoutRequest, HeartbeatRequest, PrintCheckRequest
from licentia.api.source_address import source_address
from licentia.api.this_server import this_server
from licentia.core import commands as c
from licentia.core.model import ClientInfo
from licentia.core.outcomes import Applied, Outcome, R

log = logging.getLogger("licentia.api")


async def _origin(request: Request) -> tuple[str, str]:
    """(source address, its verified host name); the name is looked up only while a host name rule exists."""
    server = this_server(request)
    address = source_address(request)
    if not any(rule.where_kind == "hostname" for rule in server.state.access_rules):
        return address, ""
    return address, await server.host_names.name_of(address)


def applied(outcome: Outcome[R]) -> Applied[R]:
    """The applied outcome; a refused one is answered with its code (`ApiError`)."""
    if not outcome.ok:
        raise ApiError(outcome.code, outcome.message)
    return outcome


def answer(outcome: Outcome[R], status: int = 200) -> Response:
    """The command's result as the answer, or its refusal."""
    return ok(applied(outcome).result, status)


async def server_info(request: Request) -> Response:
    return ok(this_server(request).info())


def _subject(client: ClientInfo) -> str:
    return f"{client.host}/{client.user}/{client.application}"


async def print_check(request: Request, body: PrintCheckRequest) -> Response:
    server = this_server(request)
    address, host = await _origin(request)
    command = c.PrintCheck(
        product=body.product, printer=body.printer, client=body.client, source_ip=address, source_host=host
    )
    granted = applied(await server.execute(command)).result
    grant = server.grant_token("print", body.product, _subject(body.client))
    return ok({**msgspec.structs.asdict(granted), "grant": grant})


async def checkout(request: Request, body: CheckoutRequest) -> Response:
    address, host = await _origin(request)
    command = c.Checkout(
        request_id=body.request_id or secrets.token_hex(16),
        lease_id=secrets.token_hex(16),
        product=body.product,
        feature=body.feature,
        client=body.client,
        source_ip=address,
        source_host=host,
        ttl_s=body.ttl_s,
    )
    server = this_server(request)
    lease = applied(await server.execute(command)).result
    grant = server.grant_token("seat", body.product, _subject(body.client))
    if lease.repeated:
        log.info(
            "Checkout request %s from %s (%s) was a repeat; answered with the lease it was granted before.",
            command.request_id,
            _subject(body.client),
            address,
        )
    return ok({**msgspec.structs.asdict(lease), "grant": grant}, 200 if lease.repeated else 201)


def _log_denied(denied: dict[str, str], address: str) -> None:
    if denied:
        lease_id, why = next(iter(denied.items()))
        more = f" and {len(denied) - 1} other lease(s)" if len(denied) > 1 else ""
        log.warning("Heartbeat from %s for lease %s%s refused: %s.", address, lease_id, more, why)


async def heartbeat(request: Request, body: HeartbeatRequest) -> Response:
    """Renew the leases named. Leases the access rules now deny are listed under `denied` and not renewed
    (see `licentia.core.seats.Seats._heartbeat` for when one is also released); if every lease named was
    denied the answer is 403 access_denied."""
    server = this_server(request)
    address, host = await _origin(request)
    renewals = applied(await server.heartbeats.renew(body.lease_ids, address, host)).result
    denied = renewals.denied
    _log_denied(denied, address)
    if denied and not renewals.renewed and len(denied) == len(set(body.lease_ids)):
        raise ApiError("access_denied", next(iter(denied.values())))
    # One grant per product, for the last renewed lease of that product (as the answer always had):
    # signing is most of a batch's cost, so no grant is signed only to be overwritten.
    leases = server.state.leases
    by_product = {lease.product: lease for lease in (leases.get(i) for i in renewals.renewed) if lease}
    grants = {
        product: server.grant_token("seat", product, _subject(lease.client)) for product, lease in by_product.items()
    }
    return ok({**msgspec.structs.asdict(renewals), "grants": grants})


async def heartbeat_one(request: Request) -> Response:
    lease_id = request.path_params["lease_id"]
    address, host = await _origin(request)
    renewals = applied(await this_server(request).heartbeats.renew([lease_id], address, host)).result
    _log_denied(renewals.denied, address)
    if lease_id in renewals.denied:
        raise ApiError("access_denied", renewals.denied[lease_id])
    if lease_id not in renewals.renewed:
        raise ApiError("lease_expired", f"lease {lease_id} is not held any more; check out again")
    return ok({"lease_id": lease_id, "expires_at": renewals.renewed[lease_id]})


async def checkin(request: Request) -> Response:
    address, host = await _origin(request)
    lease_id = request.path_params["lease_id"]
    outcome = await this_server(request).execute(c.Checkin(lease_id=lease_id, source_ip=address, source_host=host))
    if outcome.code == "access_denied":
        log.warning("Check-in of lease %s from %s refused: %s.", lease_id, address, outcome.message)
    return answer(outcome)


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
        "Check out a seat (a retry with the same request_id by the same client gets the same lease)",
        body=CheckoutRequest,
    ),
    Endpoint(
        "POST",
        "/api/v1/leases/heartbeat",
        heartbeat,
        "Renew several leases at once (leases the access rules deny are listed under denied; 403 if all are)",
        body=HeartbeatRequest,
    ),
    Endpoint("POST", "/api/v1/leases/{lease_id}/heartbeat", heartbeat_one, "Renew one lease (403: rules deny it)"),
    Endpoint("DELETE", "/api/v1/leases/{lease_id}", checkin, "Check a seat back in"),
]
