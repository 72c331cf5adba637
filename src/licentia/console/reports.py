"""Usage Reports: charts of peak printers and seats in use and of denials, and CSV downloads.

The page is drawn by usage-reports.js from GET /api/v1/admin/reports/usage (charts.js
draws the SVG); the server side only says what the numbers mean (the printer
window and lease TTL in force) and which usage-log kinds can be exported.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from licentia.api.reports_api import MAX_BUCKETS
from licentia.api.this_server import this_server
from licentia.console.pages import Page
from licentia.console.sessions import ConsoleSession

# The kinds of usage-log record, for the usage-log CSV filter.
USAGE_KINDS = {"print": "Print checks", "checkout": "Seat checkouts", "checkin": "Seat releases",
               "heartbeat": "Lost heartbeats"}

# Why a request was refused, as the denials chart's legend says it (the usage log's reason codes).
REFUSAL_REASONS = {
    "access_denied": "Denied by the access rules",
    "printer_blocked": "Printer in the Blocked group",
    "no_license": "No valid license for the product",
    "limit_exceeded": "Over the license's limit",
    "lease_expired": "Seat lost: heartbeats stopped",
    "revoked": "Seat taken back by an administrator",
    "none": "No refused requests",
}


async def usage_reports(request: Request, session: ConsoleSession) -> dict[str, Any]:
    state = await this_server(request).read_state()
    return {
        "window_days": state.settings.printer_window_days,
        "lease_ttl_s": state.settings.lease_ttl_s,
        "retention_days": state.settings.usage_retention_days,
        "max_buckets": MAX_BUCKETS,
        "usage_kinds": USAGE_KINDS,
        "refusal_reasons": REFUSAL_REASONS,
    }


PAGES = [Page("usage-reports", "/reports", "Usage Reports", "usage_reports.html", usage_reports,
              script="usage-reports.js")]
