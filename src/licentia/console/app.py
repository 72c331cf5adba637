"""The web Administration Console, mounted by `licentia.api.app` under the `console_path` setting.

It is thin on purpose: pages are rendered from the server's state, and every
change is made by the page's script through the JSON admin API, so roles,
validation and error messages are the API's own.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from licentia.console import alert_setup, licensing, printer_usage, redundancy, reports, seats, this_server, users
from licentia.console.pages import NAV, Page, page_route, placeholder
from licentia.console.sessions import login_page, login_submit, logout, password_page, render_refusal
from licentia.console.status import status_json
from licentia.console.views import STATIC_DIR

# Each module lists its pages in PAGES; add a module here to add its pages (see docs/console-dev.md).
PAGE_MODULES = (licensing, this_server, printer_usage, seats, reports, redundancy, alert_setup, users)


def console_pages() -> list[Page]:
    """Every page, plus a placeholder for each navigation entry no module provides yet."""
    pages = [page for module in PAGE_MODULES for page in module.PAGES]
    provided = {page.path for page in pages}
    return pages + [placeholder(entry) for entry in NAV if entry.path not in provided]


def console_routes(console_path: str) -> list[BaseRoute]:
    """The console's routes: `/` and the bare console path redirect to its overview."""

    async def to_overview(request: Request) -> Response:
        return RedirectResponse(console_path + "/", 307)

    async def unknown_page(request: Request) -> Response:
        return render_refusal(
            request, "The console has no page at this address. Use the link below or the navigation.", 404
        )

    console = Mount(
        console_path,
        routes=[
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login_submit, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/password", password_page, methods=["GET"]),
            Route("/status.json", status_json, methods=["GET"]),
            *(page_route(page) for page in console_pages()),
            Route("/{rest:path}", unknown_page, methods=["GET"]),
        ],
    )
    return [Route("/", to_overview, methods=["GET"]), Route(console_path, to_overview, methods=["GET"]), console]
