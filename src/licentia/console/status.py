"""The status strip at the top of every console page, and the small JSON endpoint it polls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from licentia.api.auth import authenticate
from licentia.api.errors import JSON, ApiError, error_response
from licentia.api.this_server import this_server
from licentia.cluster.relationship_status import RelationshipStatus
from licentia.core.state import LicenseState
from licentia.core.views import license_status

GOOD = ("ok", "full")
GRACE = ("grace",)
BAD = ("exhausted", "expired", "not_yet_valid")


@dataclass(frozen=True)
class MainOwner:
    """On a backup pair's backup: the main server, which owns the settings, rules, alerts and printer groups."""

    pair: str
    name: str
    console_url: str


def main_owner(state: LicenseState, console_path: str) -> MainOwner | None:
    """Who owns what this server may not change (it is a backup), with where to change it; else None."""
    pair = state.pair
    if pair is None or pair.me != "backup":
        return None
    return MainOwner(pair.name, pair.main.name, pair.main.api_url.rstrip("/") + console_path.rstrip("/") + "/")


def relationship_label(relationship: RelationshipStatus | None) -> tuple[str, str, bool]:
    """(relationship, this server's role in it, whether this server serves licenses now)."""
    if relationship is None:
        return "Standalone", "", True
    kind = relationship.type.capitalize()
    name = relationship.name
    return (f"{kind} {name}" if name else kind), relationship.my_role, relationship.serving


def standing(relationship: RelationshipStatus | None, serving: bool) -> tuple[str, str]:
    """(the strip's pill text, its kind: ok | neutral | bad). A standby while another member serves is normal,
    so neutral; red only for a real problem: no member of the relationship serves."""
    if serving:
        return "Active", "ok"
    if relationship is not None and relationship.active:
        return "Standby", "neutral"
    return "No member active", "bad"


def license_counts(state: LicenseState, now: float) -> dict[str, int]:
    counts = {"ok": 0, "grace": 0, "bad": 0}
    for lic in state.licenses.values():
        status = license_status(state, lic, now)["status"]
        counts["ok" if status in GOOD else "grace" if status in GRACE else "bad"] += 1
    return counts


def status_summary(server: Any, state: LicenseState) -> dict[str, Any]:
    now = server.now()
    current = server.relationship()
    relationship, role, serving = relationship_label(current)
    name = server.own_name
    standing_text, standing_kind = standing(current, serving)
    return {
        "server": name,
        "relationship": relationship,
        "role": role,
        "active": serving,
        "standing": standing_text,
        "standing_kind": standing_kind,
        "licenses": license_counts(state, now),
        "at": now,
    }


async def status_json(request: Request) -> Response:
    """GET only, so the session cookie alone authenticates it (no CSRF value needed)."""
    try:
        user = await authenticate(request)
    except ApiError as exc:
        return error_response(exc.code, exc.message, exc.status, exc.headers)
    if user is None:
        return error_response("unauthorized", "log in to the console first")
    server = this_server(request)
    return JSON(status_summary(server, await server.read_state()), headers={"Cache-Control": "no-store"})
