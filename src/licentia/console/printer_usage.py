"""Printer Usage: recent printer-use requests, printers used inside the printer window, groups and mapping rules.

Two tabs (`?tab=activity|permissions`), rendered from the same views the admin
API answers with (`printer_page`, `group_views`, the usage log query). The
printers table is paged (`licentia.console.paging`), and each self-refreshing
region (`?fragment=requests|printers|groups|rules`) computes only what it shows. Changing
a printer's group, blocking it, and editing groups and mapping rules go through
the admin API from printer-usage.js and the console's declarative forms.
"""

from __future__ import annotations

from typing import Any, get_args, get_type_hints

from starlette.requests import Request

from licentia.api.licensing_first import licensing_first
from licentia.api.lists import PRINTERS, printer_page
from licentia.api.this_server import this_server
from licentia.console.pages import Page, can
from licentia.console.paging import table, table_query
from licentia.console.sessions import ConsoleSession
from licentia.core.model import MappingRule
from licentia.core.state import DAY
from licentia.core.views import group_views
from licentia.store.usage_log import UsageQuery

RECENT_REQUESTS = 50
PRINTER_SORTS = {"last_used": "last used", "name": "name"}
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
    """What the tab shows; a live refresh (`?fragment=NAME`) computes only what its region shows."""
    server = this_server(request)
    fragment = request.query_params.get("fragment")
    failed_only = request.query_params.get("failed") in ("1", "true", "on")
    tab = "permissions" if request.query_params.get("tab") == "permissions" else "activity"
    printer_query = table_query(request, PRINTERS, "printer_")
    state = await server.read_state()
    context: dict[str, Any] = {
        "tab": tab,
        "failed_only": failed_only,
        "reasons": REASONS,
        "window_days": state.settings.printer_window_days,
        "fields": MAPPING_FIELDS,
        "can_edit": can(session, "manager") and not (state.pair is not None and state.pair.me == "backup"),
        "printer_sorts": PRINTER_SORTS,
        "groups": [{"name": name} for name in state.groups],
        "mapping_rules": list(state.mapping_rules),
    }
    if tab == "activity" and fragment in (None, "requests"):
        query = UsageQuery(kind="print", failed_only=failed_only, limit=RECENT_REQUESTS)
        context["requests"] = await server.journal.query_usage(query)
    if tab == "activity" and fragment in (None, "printers"):
        await licensing_first(request).turn()
        state = await server.read_state()
        printers = printer_page(state, server.now(), printer_query, recent=True)
        context.update(printers=printers.items, printer_table=table(request, PRINTERS, "printer_", printers))
    if tab == "permissions" and fragment in (None, "groups"):
        context.update(group_views(state))
        # A group's count as the printer list shows it (used inside the window), beside all it knows.
        window_start = -(server.now() - state.settings.printer_window_days * DAY)
        by_group = state.listings().printers_by_group
        context["listed"] = {name: by_group.count((name,), (name, window_start)) for name in state.groups}
    return context


PAGES = [
    Page(
        "printer-usage",
        "/printers",
        "Printer Usage",
        "printer_usage.html",
        printer_usage,
        script="printer-usage.js",
        in_slices=True,
    ),
]
