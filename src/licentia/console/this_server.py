"""This License Server: server settings, the ordered allow/deny access rules, the default policy, and a rule tester.

The page's script (this-server.js) edits the list and PUTs the whole ordered list
to /api/v1/admin/access-rules, and asks /access-rules/test which rule decides a
request; the core validates every rule.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request

from licentia.api.this_server import this_server
from licentia.console.pages import Page
from licentia.console.sessions import ConsoleSession

# The settings an administrator edits here: (key, label, unit, help). Limits are the core's (core/settings.py).
SETTING_FIELDS = [
    ("lease_ttl_s", "Seat lease time-to-live", "s", "A seat not renewed within this time is reclaimed."),
    ("heartbeat_interval_s", "Client heartbeat interval", "s", "How often clients renew; at most half the TTL."),
    ("printer_window_days", "Printer in-use window", "days", "A printer counts as in use this long after a print."),
    ("client_grace_hours", "Connectivity grace", "hours", "How long clients keep working with no server."),
    ("usage_retention_days", "Usage log retention", "days", "Older usage records are deleted."),
]

WHO_KINDS = {"any": "Anyone", "user": "User", "host": "Computer", "server": "License server"}
WHERE_KINDS = {"any": "Anywhere", "ip": "IP address", "cidr": "Network (CIDR)", "hostname": "Host name"}


async def this_license_server(request: Request, session: ConsoleSession) -> dict[str, Any]:
    server = this_server(request)
    state = await server.read_state()
    return {
        "rules": msgspec.to_builtins(state.access_rules),
        "default_policy": state.settings.default_access_policy,
        "server_name": server.own_name,
        "triad_name": server.triad.config.name if server.triad is not None else "",
        "server_id": server.server_id,
        "tls_fingerprint": server.certificate.fingerprint if server.certificate else "",
        "settings": msgspec.to_builtins(state.settings),
        "settings_version": state.settings_version,
        "setting_fields": SETTING_FIELDS,
        "owned_by_main": state.pair is not None and state.pair.me == "backup",
        "who_kinds": WHO_KINDS,
        "where_kinds": WHERE_KINDS,
    }


PAGES = [
    Page("this-server", "/this-server", "This License Server", "this_server.html", this_license_server,
         script="this-server.js"),
]
