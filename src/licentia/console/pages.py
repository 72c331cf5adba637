"""The console's pages: the navigation, and how a page is declared, guarded and rendered.

A page module declares `PAGES = [Page(...)]`; `licentia.console.app` turns each
into a route under the console path. A page's `context` reads the server's
state (with the same view functions the admin API answers with) and returns
what its template needs; the template shows it, and the page's script makes
every change through the admin API. See docs/console-dev.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from licentia.api.auth import ROLE_RANK
from licentia.api.licensing_first import licensing_first
from licentia.api.this_server import this_server
from licentia.console.sessions import (
    ConsoleSession,
    console_path,
    current_session,
    must_set_password,
    render_refusal,
    to_login,
)
from licentia.console.status import main_owner, status_summary
from licentia.console.views import PageNotFound, render, static_url
from licentia.core.model import Role

API = "/api/v1/admin"


@dataclass(frozen=True)
class NavEntry:
    key: str
    label: str
    path: str
    section: str
    role: Role = "viewer"


NAV: tuple[NavEntry, ...] = (
    NavEntry("overview", "Overview", "/", "Licensing"),
    NavEntry("license-setup", "License Setup", "/licenses", "Licensing"),
    NavEntry("this-server", "This License Server", "/this-server", "Licensing"),
    NavEntry("printer-usage", "Printer Usage", "/printers", "Licensing"),
    NavEntry("seats", "Seats and Clients", "/seats", "Licensing"),
    NavEntry("usage-reports", "Usage Reports", "/reports", "Licensing"),
    NavEntry("redundancy", "Redundancy", "/redundancy", "Licensing"),
    NavEntry("alert-setup", "Alert Setup", "/alerts", "Administration"),
    NavEntry("users", "Users", "/users", "Administration", role="admin"),
)
NAV_BY_KEY = {entry.key: entry for entry in NAV}

PageContext = Callable[[Request, ConsoleSession], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Page:
    """One console page: `nav` names its NAV entry (highlighted), `path` is under the console path."""

    nav: str
    path: str
    title: str
    template: str
    context: PageContext
    role: Role = "viewer"
    script: str | None = None  # a file in console/static loaded after console.js
    in_slices: bool = False  # rendered a slice at a time (see views.render): for large tables of copied rows


def can(session: ConsoleSession, role: Role) -> bool:
    return ROLE_RANK[session.user.role] >= ROLE_RANK[role]


def nav_sections(session: ConsoleSession) -> list[tuple[str, list[NavEntry]]]:
    sections: dict[str, list[NavEntry]] = {}
    for entry in NAV:
        if can(session, entry.role):
            sections.setdefault(entry.section, []).append(entry)
    return list(sections.items())


async def common_context(request: Request, session: ConsoleSession, page: Page) -> dict[str, Any]:
    """What base.html needs: who is logged in, the navigation, the CSRF value and the first status."""
    base = console_path(request)
    server = this_server(request)
    state = await server.read_state()
    return {
        "console": base,
        "api": API,
        "static": lambda name: static_url(base, name),
        "user": session.user,
        "csrf": session.csrf,
        "can": lambda role: can(session, role),
        "nav": nav_sections(session),
        "current": page.nav,
        "page": page.nav,
        "title": page.title,
        "script": page.script,
        "status": status_summary(server, state),
        "server_name": server.own_name,
        "main_owner": main_owner(state, server.config.console_path),
    }


def page_route(page: Page) -> Route:
    """The route of a page: logged-in users of the page's role only; the forced password change first."""

    async def endpoint(request: Request) -> Response:
        session = current_session(request)
        if session is None:
            return to_login(request)
        if await must_set_password(request, session):
            return RedirectResponse(console_path(request) + "/password", 303)
        if not can(session, page.role):
            return render_refusal(request, f"The {page.title} page needs the {page.role} role.")
        first = licensing_first(request)  # each step after client requests in flight were answered
        await first.turn()
        try:
            context = await page.context(request, session)
        except PageNotFound as exc:
            return render_refusal(request, str(exc), 404)
        await first.turn()
        full = {**await common_context(request, session, page), **context}
        await first.turn()
        return render(request, page.template, full, in_slices=page.in_slices)

    return Route(page.path, endpoint, methods=["GET"], name=f"console:{page.nav}:{page.path}")


async def _no_context(request: Request, session: ConsoleSession) -> dict[str, Any]:
    return {}


def placeholder(entry: NavEntry) -> Page:
    """A page in the navigation that this version does not have yet."""
    return Page(entry.key, entry.path, entry.label, "placeholder.html", _no_context, role=entry.role)
