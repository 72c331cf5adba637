"""The license server a request is answered by, typed: handlers reach it through `this_server(request)`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

if TYPE_CHECKING:
    from licentia.server import LicenseServer


def this_server(request: Request) -> LicenseServer:
    """The server the app was made for (`api.app.make_app` sets it)."""
    server: LicenseServer = request.app.state.server
    return server
