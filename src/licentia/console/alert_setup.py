"""Alert Setup: who is told about what and when, how mail leaves this server, and a test alert.

Recipients, webhook and thresholds are shared license state, read here with the
admin API's own view (`alerts_view`) and saved by alert-setup.js with PUT
/api/v1/admin/alerts and its version guard. The SMTP server is this process's
configuration file, so the page shows it (never its password) and says where to
change it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from licentia.api.alerts_api import alerts_view
from licentia.api.this_server import this_server
from licentia.console.pages import Page, can
from licentia.console.sessions import ConsoleSession
from licentia.core.alert_settings import ALERT_KINDS, LIMITS, MAX_RECIPIENTS

# What each alert kind is about, in the words of the page's "Send alerts about" checkboxes.
KIND_LABELS = {
    "member_down": "a member of a relationship stops answering",
    "no_active_member": "no member of the triad is active",
    "failover": "failover and failback",
    "backup_unsynchronized": "a backup server falls behind",
    "license_grace": "a license goes over its limit (limited-use grace)",
    "license_expiring": "a license expires soon",
    "denials": "many requests are refused",
}
assert set(KIND_LABELS) == set(ALERT_KINDS), "every alert kind needs a label on the Alert Setup page"


async def alert_setup(request: Request, session: ConsoleSession) -> dict[str, Any]:
    server = this_server(request)
    state = await server.read_state()
    view = alerts_view(server, state)
    return {
        **view,
        "kind_labels": KIND_LABELS,
        "limits": LIMITS,
        "max_recipients": MAX_RECIPIENTS,
        "can_edit": can(session, "admin") and not (state.pair is not None and state.pair.me == "backup"),
    }


PAGES = [Page("alert-setup", "/alerts", "Alert Setup", "alert_setup.html", alert_setup, script="alert-setup.js")]
