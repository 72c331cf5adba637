"""Printer Usage: recent printer-use requests, printers used inside the printer window, groups and mapping rules.

Two tabs (`?tab=activity|permissions`), rendered from the same views the admin
API answers with (`printer_views`, `group_views`, the usage log query). Changing
a printer's group, blocking it, and editing groups and mapping rules go through
the admin API from printer-usage.js and the console's declarative forms.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, get_args, get_type_hints

from starlette.requests import Request

from licentia.api.admin_api import group_views, printer_views
from licentia.console.pages import Page, can
from licentia.console.sessions import ConsoleSession
from licentia.core.model import MappingRule
from licentia.store.journal import UsageQuery

RECENT_REQUESTS = 50
MAPPING_FIELDS = get_args(get_type_hints(MappingRule)["field"])
# Why a print check was refused (or granted in grace), in words; other codes are shown as they are.
REASONS = {
    "ok": "",
    "grace": "in limited-use grace",
    "printer_blocked": "the printer is in the Blocked group",
    "no_license": "no valid printer license for the product",
    "limit_exceeded": "over the printer limit, grace period spent",
    "access_denied": "denied by the access rules",
}


async def printer_usage(request: Request, session: ConsoleSession) -> dict[str, Any]:
    server = request.app.state.server
    failed_only = request.query_params.get("failed") in ("1", "true", "on")
    state = await server.read_state()
    query = UsageQuery(kind="print", failed_only=failed_only, limit=RECENT_REQUESTS)
    printers = printer_views(state, server.now(), recent=True)
    listed = Counter(str(p["group"]) for p in printers)  # a group's count as the printer list shows it
    return {
        "tab": "permissions" if request.query_params.get("tab") == "permissions" else "activity",
        "failed_only": failed_only,
        "requests": await server.journal.query_usage(query),
        "reasons": REASONS,
        "printers": printers,
        "listed": listed,
        "window_days": state.settings.printer_window_days,
        **group_views(state),
        "fields": MAPPING_FIELDS,
        "can_edit": can(session, "manager"),
    }


PAGES = [
    Page("printer-usage", "/printers", "Printer Usage", "printer_usage.html", printer_usage, script="printer-usage.js"),
]
