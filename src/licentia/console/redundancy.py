"""The Redundancy page: set up a backup pair or a triad, watch it live, and manage or remove it.

The page draws everything from GET /api/v1/admin/relationship, which its script
polls every second (so a failover shows without a reload); the context only
hands over the first answer and what the setup wizard prefills. Every change
(setup, sync, swap, replace, remove) is a call to the relationship admin API.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from licentia.api.this_server import this_server
from licentia.cluster.role_events import KEEP
from licentia.console.pages import Page, can
from licentia.console.sessions import ConsoleSession

# The member-name pattern of the relationship API (licentia.api.schemas.MemberName).
MEMBER_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


async def redundancy(request: Request, session: ConsoleSession) -> dict[str, Any]:
    server = this_server(request)
    state = await server.read_state()
    current = server.relationship()
    status = current.as_json() if current is not None else {"type": None}
    name = state.settings.server_name
    owners = state.triad.license_owners(sorted(state.licenses)) if state.triad is not None else {}
    return {
        "license_owners": [(state.licenses[i], member) for i, member in owners.items()],
        "relationship": status,
        "relationship_json": json.dumps(status),
        # Prefilled as this server's member name only when the API would accept it.
        "member_name": name if MEMBER_NAME.match(name) else "",
        "tls_fingerprint": server.certificate.fingerprint if server.certificate else "",
        "can_setup": can(session, "admin"),
        "can_sync": can(session, "manager"),
        "events_kept": KEEP,
    }


PAGES = [Page("redundancy", "/redundancy", "Redundancy", "redundancy.html", redundancy, script="redundancy.js")]
