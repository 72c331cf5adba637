"""The Starlette application: client API, admin API, OpenAPI, and JSON errors for everything else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from licentia.api import admin_api, alerts_api, client_api, peer_api, relationship_api, reports_api
from licentia.api.errors import JSON, error_response
from licentia.api.licensing_first import ClientRequests, LicensingFirst
from licentia.api.metrics import ClientLatencyMiddleware, Metrics
from licentia.api.openapi import openapi_document
from licentia.api.routing import to_route
from licentia.api.warm_up import warm_up
from licentia.console.app import console_routes
from licentia.server import LicenseServer
from licentia.store.journal import JournalFailure

log = logging.getLogger("licentia.api")

ENDPOINTS = [
    *client_api.ENDPOINTS,
    *admin_api.ENDPOINTS,
    *alerts_api.ENDPOINTS,
    *relationship_api.ENDPOINTS,
    *reports_api.ENDPOINTS,
    *peer_api.ENDPOINTS,
]
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def allowed_methods(request: Request) -> str:
    """The methods of every route at this request's path (one route per method: Starlette's own 405 names only
    the first route's), for a 405's `Allow`."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(request.url.path):
            methods |= route.methods
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "invalid_request")
    headers = {"Allow": allowed_methods(request)} if exc.status_code == 405 else None
    return error_response(code, str(exc.detail), exc.status_code, headers)


async def _journal_failure(request: Request, exc: Exception) -> Response:
    return error_response("unavailable", "the server cannot store changes right now", 503)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("Unexpected error while answering %s %s.", request.method, request.url.path)
    return error_response("internal_error", "the server hit an unexpected error; see its log", 500)


def _proxy_headers(server: LicenseServer) -> list[Middleware]:
    """Take the client's address from `X-Forwarded-For` only when a configured proxy (`forwarded_allow_ips`)
    sent the request; uvicorn's own handling is off (`licentia.cli.serving.UVICORN_OPTIONS`), so by default the
    header is ignored from everyone, loopback included."""
    trusted = server.config.forwarded_allow_ips
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=list(trusted))] if trusted else []


def create_app(server: LicenseServer, *, manage_lifecycle: bool = True,
               when_warm: Callable[[], None] | None = None) -> Starlette:
    """The server's ASGI app. `when_warm` is called in a worker thread once the app has warmed up (`api.warm_up`)."""
    document = openapi_document(ENDPOINTS)

    async def openapi(request: Request) -> Response:
        return JSON(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            await server.start()
        warming = asyncio.get_running_loop().run_in_executor(None, warm_up, when_warm)  # off the loop (`api.warm_up`)
        ticking = asyncio.create_task(metrics.loop_lateness.run(), name="loop-lateness")
        try:
            yield
        finally:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
            await warming
            if manage_lifecycle:
                await server.stop()

    # /metrics and /health/* need no login (they expose no secrets); see docs/operations.md.
    metrics = Metrics(server, client_api.ENDPOINTS)
    first = LicensingFirst()
    app = Starlette(
        routes=[
            *(to_route(e) for e in ENDPOINTS),
            Route("/openapi.json", openapi, methods=["GET"]),
            *metrics.routes(),
            *console_routes(server.config.console_path),
        ],
        middleware=[*_proxy_headers(server), Middleware(ClientRequests, first=first),
                    Middleware(ClientLatencyMiddleware, histograms=metrics.latency)],
        exception_handlers={
            HTTPException: _http_error,
            JournalFailure: _journal_failure,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.server = server
    app.state.metrics = metrics
    app.state.licensing_first = first
    return app
