"""The Users page (admin): who may use the console and the admin API, with which role.

Adding, changing and deleting go through /api/v1/admin/users from the page; the
core refuses to remove or demote the last admin, and the page shows its message.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from licentia.api.auth import ROLE_RANK
from licentia.api.this_server import this_server
from licentia.console.pages import Page
from licentia.console.sessions import ConsoleSession

ROLE_HELP = {
    "viewer": "sees every page, changes nothing",
    "manager": "also adds and removes licenses, revokes seats, manages printers",
    "admin": "also edits access rules, settings, alerts and users",
}


async def users_page(request: Request, session: ConsoleSession) -> dict[str, Any]:
    state = await this_server(request).read_state()
    users = sorted(state.users.values(), key=lambda user: (-ROLE_RANK[user.role], user.username))
    return {"users": users, "roles": list(ROLE_RANK), "role_help": ROLE_HELP, "me": session.user.username}


PAGES = [Page("users", "/users", "Users", "users.html", users_page, role="admin", script="users.js")]
