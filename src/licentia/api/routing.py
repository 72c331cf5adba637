"""Endpoints declared once: the same table builds the Starlette routes and the OpenAPI document.

Each endpoint names its request body type (a msgspec struct); the body is read
with a size limit, decoded and validated before the handler runs, so a handler
only ever sees well-formed input.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from licentia.api.auth import require_role
from licentia.api.errors import JSON, ApiError, error_response
from licentia.api.licensing_first import licensing_first
from licentia.api.this_server import this_server
from licentia.api.validation_messages import explain
from licentia.cluster.triad_forward import FORWARDED_HEADER, ForwardedChange, ForwardFailed, encode, forward
from licentia.cluster.triad_seam import CommitFailed, NotActive
from licentia.core.model import AdminUser, Role

Handler = Callable[..., Awaitable[Response]]
Tag = Literal["client", "admin", "relationship", "peer"]  # the OpenAPI document's groups


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type | None = None
    role: Role | None = None
    tag: Tag = "client"
    raw_body: bool = False
    max_body: int | None = None


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The request body, refused with 413 as soon as it passes the configured limit."""
    limit = limit or this_server(request).config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError("invalid_request", "Content-Length is not a number", 400)
        if int(declared) > limit:
            raise ApiError("body_too_large", f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError("body_too_large", f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_decoders: dict[type, msgspec.json.Decoder[Any]] = {}


def decode_body(data: bytes, body_type: type) -> Any:
    decoder = _decoders.get(body_type)
    if decoder is None:
        decoder = _decoders[body_type] = msgspec.json.Decoder(body_type)
    if not data.strip():
        raise ApiError("invalid_json", "The request body is empty; a JSON object is expected.")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ApiError("invalid_request", explain(str(exc))) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ApiError("invalid_json", f"The request body is not valid JSON ({exc}).") from None
    except RecursionError:
        raise ApiError("invalid_json", "The request body is nested too deeply to be read.") from None


def _content_type_ok(request: Request) -> bool:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    return content_type in ("application/json", "")


def to_route(endpoint: Endpoint) -> Route:
    async def run(request: Request) -> Response:
        user: AdminUser | None = None
        data = b""
        try:
            user = await require_role(request, endpoint.role) if endpoint.role else None
            if user is not None:  # admin work waits while client requests are in flight
                await licensing_first(request).turn()
            args: list[Any] = [request]
            if endpoint.body is not None or endpoint.raw_body:
                if not _content_type_ok(request):
                    raise ApiError("unsupported_media_type", "send the body as application/json")
                data = await read_body(request, endpoint.max_body)
                args.append(data if endpoint.raw_body else decode_body(data, endpoint.body))  # type: ignore[arg-type]
            if user is not None:
                request.state.user = user
            return await endpoint.handler(*args)
        except ApiError as exc:
            return error_response(exc.code, exc.message, exc.status, exc.headers)
        except NotActive as exc:
            if user is not None and FORWARDED_HEADER not in request.headers:
                return await forward_to_active(request, user, data, exc)
            return not_active_response(request, exc)
        except CommitFailed as exc:
            return error_response("unavailable", str(exc), 503)

    return Route(endpoint.path, run, methods=[endpoint.method], name=endpoint.handler.__name__)


async def forward_to_active(request: Request, user: AdminUser, body: bytes, exc: NotActive) -> Response:
    """An administrator's change on a triad member that does not serve now: made on the active member (the
    console's pages may only talk to their own server), or refused with a sentence naming who is active."""
    server = this_server(request)
    node = server.triad
    if node is None:
        return not_active_response(request, exc)
    config = node.config
    active = next((m for m in config.others() if exc.active_url and m.api_url == exc.active_url), None)
    if active is None:
        return _cannot_forward(
            f"This change cannot be made right now: {exc}. Try again once the Redundancy page shows an active "
            "member.", None, 503,
        )
    change = ForwardedChange(
        method=request.method, path=request.url.path, query=request.url.query, body=encode(body),
        content_type=request.headers.get("content-type", ""), username=user.username, role=user.role,
    )
    try:
        answer = await forward(config, active, change, server.now(), node.peer_trust.of(active))
    except ForwardFailed as failed:
        console = active.api_url.rstrip("/") + server.config.console_path.rstrip("/") + "/"
        return _cannot_forward(
            f"{active.name} is the active member of triad {config.name}, but {failed.message}, so the change was "
            f"not made. Make it on {active.name}'s console ({console}) or try again.", console, 502,
        )
    return Response(answer.body_bytes(), status_code=answer.status, media_type=answer.content_type)


def _cannot_forward(message: str, console_url: str | None, status: int) -> Response:
    error: dict[str, Any] = {"code": "no_active_server", "message": message}
    if console_url:
        error["console_url"] = console_url
    return JSON({"error": error}, status_code=status)


def not_active_response(request: Request, exc: NotActive) -> Response:
    """A member that does not serve now: 307 to the active member (same method and body), or 503."""
    if exc.active_url is None:
        return error_response("no_active_server", str(exc), 503)
    location = exc.active_url.rstrip("/") + request.url.path
    if request.url.query:
        location += "?" + request.url.query
    body = {"error": {"code": "not_active", "message": str(exc), "active_url": exc.active_url}}
    return JSON(body, status_code=307, headers={"Location": location})


def ok(content: Any, status: int = 200) -> JSON:
    return JSON(content, status_code=status)
