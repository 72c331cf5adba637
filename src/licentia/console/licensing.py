"""The Licensing overview and License Setup pages: license servers, their licenses, adding and removing.

What they show comes from `core.views.license_status`, the view the admin
API answers with; adding and removing go through the admin API from the
pages' scripts (overview.js, license-setup.js).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from licentia.api.lists import LEASES, PRINTERS, lease_page, printer_page
from licentia.api.this_server import this_server
from licentia.console.pages import Page, can
from licentia.console.paging import table, table_query
from licentia.console.sessions import ConsoleSession
from licentia.console.views import PageNotFound
from licentia.core.state import DAY, LicenseState
from licentia.core.views import license_status


@dataclass
class LicenseServerView:
    """One license server as the Licensing pages show it (a triad is one, named after the triad)."""

    key: str  # what the console_server_order setting lists
    name: str
    kind: str
    here: bool  # the server this console runs on (or the triad it is a member of)
    active: bool
    licenses: list[dict[str, Any]] | None  # None: hosted by another server, not visible from here
    members: list[dict[str, Any]] = field(default_factory=list)
    api_url: str | None = None


def license_views(state: LicenseState, now: float) -> list[dict[str, Any]]:
    """Each installed license as the admin API shows it, plus the days until it expires."""
    views = []
    for lic in state.licenses.values():
        view = license_status(state, lic, now)
        view["expires_in_days"] = (view["expires"] - now) / DAY
        views.append(view)
    views.sort(key=lambda view: (view["product"], view["license_id"]))
    return views


def known_license_servers(relationship: dict[str, Any] | None, server_id: str, server_name: str,
                          licenses: list[dict[str, Any]]) -> list[LicenseServerView]:
    """The license servers this console knows: this one, or the members of its relationship.

    A triad behaves as one server, so it is one entry named after the triad; its
    licenses are listed only while one of its members is active. In any other
    relationship each member is a license server of its own, and only this
    server's licenses are visible from here.
    """
    if relationship is None or not relationship.get("type"):
        return [LicenseServerView(server_id, server_name, "Standalone", True, True, licenses)]
    members = list(relationship.get("members", []))
    if relationship["type"] == "triad":
        active = relationship.get("active") is not None
        name = str(relationship["name"])
        return [LicenseServerView(f"triad:{name}", name, "Triad", True, active, licenses if active else [], members)]
    me = relationship.get("me")
    kind = f"{relationship['type']} relationship {relationship.get('name', '')}".strip()
    views = []
    for member in members:
        here = member.get("name") == me
        views.append(
            LicenseServerView(
                key=str(member.get("name")),
                name=str(member.get("name")),
                kind=f"{str(member.get('role', 'member')).capitalize()} server, {kind}",
                here=here,
                active=here or bool(member.get("online", member.get("reachable"))),
                licenses=licenses if here else None,
                api_url=member.get("api_url"),
            )
        )
    return views


def in_console_order(servers: list[LicenseServerView], order: list[str]) -> list[LicenseServerView]:
    """Ordered as the `console_server_order` setting says; servers it does not name keep their place after."""
    rank = {key: position for position, key in enumerate(order)}
    return sorted(servers, key=lambda view: rank.get(view.key, len(rank)))


async def overview(request: Request, session: ConsoleSession) -> dict[str, Any]:
    server = this_server(request)
    state = await server.read_state()
    now = server.now()
    relationship = server.relationship()
    servers = known_license_servers(
        relationship.as_json() if relationship is not None else None,
        server.server_id,
        state.settings.server_name,
        license_views(state, now),
    )
    servers = in_console_order(servers, list(getattr(state.settings, "console_server_order", [])))
    return {"servers": servers, "can_reorder": can(session, "admin") and len(servers) > 1}


async def license_setup(request: Request, session: ConsoleSession) -> dict[str, Any]:
    server = this_server(request)
    state = await server.read_state()
    return {
        "licenses": license_views(state, server.now()),
        "max_body_bytes": server.config.max_body_bytes,
        "trusted_issuers": server.trusted.ids(),
        "server_id": server.server_id,
        "relationship_type": relationship.type if (relationship := server.relationship()) is not None else None,
    }


async def license_details(request: Request, session: ConsoleSession) -> dict[str, Any]:
    """A license's terms, its count in use, and one page of the printers or seats counted against it (paged like
    the Printer Usage and Seats pages: a license can have 300,000 printers)."""
    server = this_server(request)
    state = await server.read_state()
    now = server.now()
    license_id = request.path_params["license_id"]
    lic = state.licenses.get(license_id)
    if lic is None:
        raise PageNotFound(f"No license {license_id} is installed on this server.")
    view = license_status(state, lic, now)
    view["expires_in_days"] = (view["expires"] - now) / DAY
    context: dict[str, Any] = {"license": view, "now": now, "server_id": server.server_id}
    if lic.terms.unit == "printers":
        printers = printer_page(state, now, table_query(request, PRINTERS, "printer_"), license_id=license_id)
        context.update(printers=printers.items, printer_table=table(request, PRINTERS, "printer_", printers))
    else:
        leases = lease_page(state, now, table_query(request, LEASES, "lease_"), license_id=license_id)
        context.update(leases=leases.items, lease_table=table(request, LEASES, "lease_", leases))
    return context


PAGES = [
    Page("overview", "/", "Overview", "overview.html", overview, script="overview.js"),
    Page("license-setup", "/licenses", "License Setup", "license_setup.html", license_setup, script="license-setup.js"),
    Page("license-setup", "/licenses/{license_id:path}", "License details", "license_details.html", license_details,
         script="license-setup.js", in_slices=True),
]
