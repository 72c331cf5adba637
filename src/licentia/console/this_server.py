"""This License Server: the ordered allow/deny access rules, the default policy, and a rule tester.

The page's script (this-server.js) edits the list and PUTs the whole ordered list
to /api/v1/admin/access-rules, and asks /access-rules/test which rule decides a
request; the core validates every rule.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request

from licentia.console.pages import Page
from licentia.console.sessions import ConsoleSession

WHO_KINDS = {"any": "Anyone", "user": "User", "host": "Computer", "server": "License server"}
WHERE_KINDS = {"any": "Anywhere", "ip": "IP address", "cidr": "Network (CIDR)", "hostname": "Host name"}


async def this_license_server(request: Request, session: ConsoleSession) -> dict[str, Any]:
    server = request.app.state.server
    state = await server.read_state()
    return {
        "rules": msgspec.to_builtins(state.access_rules),
        "default_policy": state.settings.default_access_policy,
        "server_name": state.settings.server_name,
        "server_id": server.server_id,
        "who_kinds": WHO_KINDS,
        "where_kinds": WHERE_KINDS,
    }


PAGES = [
    Page("this-server", "/this-server", "This License Server", "this_server.html", this_license_server,
         script="this-server.js"),
]
