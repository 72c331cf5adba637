"""The Seats and Clients page: seat leases held now (a manager can revoke one) and the client registry."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from licentia.api.admin_api import client_views, lease_views
from licentia.console.pages import Page
from licentia.console.sessions import ConsoleSession


async def seats_and_clients(request: Request, session: ConsoleSession) -> dict[str, Any]:
    server = request.app.state.server
    state = await server.read_state()
    leases = sorted(lease_views(state, server.now()), key=lambda lease: (lease["product"], lease["granted_at"]))
    return {"leases": leases, "clients": client_views(state)}


PAGES = [Page("seats", "/seats", "Seats and Clients", "seats.html", seats_and_clients)]
