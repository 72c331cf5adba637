"""The Seats and Clients page: seat leases held now (a manager can revoke one) and the client registry.

Both tables are paged (`licentia.console.paging`): the page shows the counts and
one page of each, and a live refresh (`?fragment=leases|clients`) reads that
table's page on screen only.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from licentia.api.licensing_first import licensing_first
from licentia.api.lists import CLIENTS, LEASES, client_page, lease_page
from licentia.api.this_server import this_server
from licentia.console.pages import Page
from licentia.console.paging import table, table_query
from licentia.console.sessions import ConsoleSession

LEASE_SORTS = {"product": "product", "user": "user"}
CLIENT_SORTS = {"last_seen": "last seen", "host": "host"}


async def seats_and_clients(request: Request, session: ConsoleSession) -> dict[str, Any]:
    server = this_server(request)
    fragment = request.query_params.get("fragment")
    context: dict[str, Any] = {"lease_sorts": LEASE_SORTS, "client_sorts": CLIENT_SORTS}
    lease_query = table_query(request, LEASES, "lease_")
    client_query = table_query(request, CLIENTS, "client_")
    state = await server.read_state()
    if fragment in (None, "leases"):
        leases = lease_page(state, server.now(), lease_query)
        context.update(leases=leases.items, lease_table=table(request, LEASES, "lease_", leases))
    if fragment in (None, "clients"):
        await licensing_first(request).turn()
        state = await server.read_state()
        clients = client_page(state, client_query)
        context.update(clients=clients.items, client_table=table(request, CLIENTS, "client_", clients))
    return context


PAGES = [Page("seats", "/seats", "Seats and Clients", "seats.html", seats_and_clients, in_slices=True)]
