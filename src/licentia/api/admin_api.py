"""The admin API: licenses, printers and groups, leases, clients, usage, settings, access rules, users.

Every endpoint needs a login; reading needs the viewer role, day-to-day
changes the manager role, and access rules, settings and users the admin role.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from licentia.api.auth import log_in
from licentia.api.client_api import answer
from licentia.api.csv_export import csv_response, iso_utc
from licentia.api.errors import ApiError
from licentia.api.passwords import hash_password
from licentia.api.routing import Endpoint, ok
from licentia.api.schemas import (
    AccessRulesRequest,
    AccessTestRequest,
    GroupRequest,
    LoginRequest,
    MappingRulesRequest,
    PrinterGroupRequest,
    SettingsRequest,
    UserRequest,
)
from licentia.core import commands as c
from licentia.core.access import RequestOrigin, matching_rule
from licentia.core.model import AdminUser
from licentia.core.state import LicenseState
from licentia.license_file import LicenseBoundElsewhere, LicenseFileError
from licentia.store.journal import USAGE_FIELDS, UsageQuery

log = logging.getLogger("licentia.api")

MAX_USAGE_ROWS = 100_000
Q = TypeVar("Q")


def _server(request: Request) -> Any:
    return request.app.state.server


async def login(request: Request, body: LoginRequest) -> Response:
    session = log_in(_server(request), body.username, body.password)
    if session is None:
        raise ApiError("unauthorized", "wrong username or password")
    user = session.user
    return ok({"token": session.token, "expires_at": session.expires_at, "username": user.username, "role": user.role})


async def whoami(request: Request) -> Response:
    user: AdminUser = request.state.user
    return ok({"username": user.username, "role": user.role})


async def status(request: Request) -> Response:
    server = _server(request)
    state = await server.read_state()
    now = server.now()
    return ok(
        {
            **server.info(),
            "started_at": server.started_at,
            "journal_index": server.journal.durable_index,
            "licenses": [state.license_status(lic, now) for lic in state.licenses.values()],
            "active_leases": sum(1 for lease in state.leases.values() if lease.expires_at > now),
            "printers": len(state.printers),
            "clients": len(state.clients),
            "trusted_issuers": server.trusted.ids(),
        }
    )


# -- licenses -----------------------------------------------------------------------------------


async def list_licenses(request: Request) -> Response:
    server = _server(request)
    state = await server.read_state()
    now = server.now()
    return ok({"licenses": [state.license_status(lic, now) for lic in state.licenses.values()]})


async def get_license(request: Request) -> Response:
    server = _server(request)
    state = await server.read_state()
    lic = state.licenses.get(request.path_params["license_id"])
    if lic is None:
        raise ApiError("license_not_found", f"no license {request.path_params['license_id']} is installed")
    return ok(state.license_status(lic, server.now()))


async def add_license(request: Request, data: bytes) -> Response:
    server = _server(request)
    try:
        command = server.verify_license(data)
    except LicenseBoundElsewhere as exc:
        log.warning("Refused a license bound to another server: %s.", exc)
        raise ApiError("license_bound_elsewhere", str(exc), 403) from None
    except LicenseFileError as exc:
        raise ApiError("invalid_license", str(exc)) from None
    outcome = await server.execute(command)
    answer(outcome)
    return ok(server.state.license_status(server.state.licenses[command.terms.license_id], server.now()), 201)


async def remove_license(request: Request) -> Response:
    command = c.RemoveLicense(license_id=request.path_params["license_id"])
    return answer(await _server(request).execute(command))


# -- printers and groups ------------------------------------------------------------------------


def printer_views(
    state: LicenseState, now: float, group: str | None = None, recent: bool = False
) -> list[dict[str, Any]]:
    """Printers (of `group`; only those used inside the printer window when `recent`), last used first."""
    printers = [state.printer_view(p, now) for p in state.printers.values() if group in (None, p.group)]
    if recent:
        printers = [p for p in printers if p["in_window"]]
    printers.sort(key=lambda p: -p["last_used"])
    return printers


async def list_printers(request: Request) -> Response:
    server = _server(request)
    state = await server.read_state()
    group = request.query_params.get("group")
    recent = request.query_params.get("recent") in ("1", "true")
    printers = printer_views(state, server.now(), group, recent)
    return ok({"printers": printers, "window_days": state.settings.printer_window_days})


async def set_printer_group(request: Request, body: PrinterGroupRequest) -> Response:
    command = c.SetPrinterGroup(printer_id=request.path_params["printer_id"], group=body.group)
    return answer(await _server(request).execute(command))


async def block_printer(request: Request) -> Response:
    command = c.SetPrinterGroup(printer_id=request.path_params["printer_id"], group="Blocked")
    return answer(await _server(request).execute(command))


async def unblock_printer(request: Request) -> Response:
    command = c.SetPrinterGroup(printer_id=request.path_params["printer_id"], group="Default")
    return answer(await _server(request).execute(command))


def group_views(state: LicenseState) -> dict[str, Any]:
    """The printer groups (built-in ones flagged, with their printer counts) and the ordered mapping rules."""
    counts = {name: 0 for name in state.groups}
    for printer in state.printers.values():
        counts[printer.group] = counts.get(printer.group, 0) + 1
    return {
        "groups": [
            {"name": name, "builtin": name in ("Default", "Blocked"), "printers": counts[name]} for name in state.groups
        ],
        "mapping_rules": msgspec.to_builtins(state.mapping_rules),
    }


async def list_groups(request: Request) -> Response:
    return ok(group_views(await _server(request).read_state()))


async def create_group(request: Request, body: GroupRequest) -> Response:
    return answer(await _server(request).execute(c.CreatePrinterGroup(name=body.name)), 201)


async def rename_group(request: Request, body: GroupRequest) -> Response:
    command = c.RenamePrinterGroup(name=request.path_params["name"], new_name=body.name)
    return answer(await _server(request).execute(command))


async def delete_group(request: Request) -> Response:
    return answer(await _server(request).execute(c.DeletePrinterGroup(name=request.path_params["name"])))


async def set_mapping_rules(request: Request, body: MappingRulesRequest) -> Response:
    return answer(await _server(request).execute(c.SetMappingRules(rules=body.rules)))


# -- leases and clients -------------------------------------------------------------------------


def lease_views(state: LicenseState, now: float) -> list[dict[str, Any]]:
    """The seat leases held now, as the API and the console show them."""
    return [
        {**msgspec.to_builtins(lease), "expires_in_s": round(lease.expires_at - now, 1)}
        for lease in state.leases.values()
        if lease.expires_at > now
    ]


def client_views(state: LicenseState) -> list[dict[str, Any]]:
    """The client registry, most recently seen first."""
    return msgspec.to_builtins(sorted(state.clients.values(), key=lambda client: -client.last_seen))


async def list_leases(request: Request) -> Response:
    server = _server(request)
    state = await server.read_state()
    return ok({"leases": lease_views(state, server.now())})


async def revoke_lease(request: Request) -> Response:
    return answer(await _server(request).execute(c.RevokeLease(lease_id=request.path_params["lease_id"])))


async def list_clients(request: Request) -> Response:
    return ok({"clients": client_views(await _server(request).read_state())})


# -- usage log ----------------------------------------------------------------------------------


def query_params(request: Request, query_type: type[Q], **defaults: str) -> Q:
    """The query string as `query_type` (a msgspec struct), or a 422 naming the bad parameter."""
    try:
        return msgspec.convert({**defaults, **request.query_params}, query_type, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError("invalid_request", f"bad query parameter: {exc}") from None


def _usage_query(request: Request, default_limit: int) -> UsageQuery:
    query = query_params(request, UsageQuery, limit=str(default_limit))
    if not 1 <= query.limit <= MAX_USAGE_ROWS or not 0 <= query.offset < 2**63:  # SQLite integers are 64-bit
        raise ApiError("invalid_request", f"limit must be 1-{MAX_USAGE_ROWS} and offset 0 to 2^63-1")
    return query


async def usage(request: Request) -> Response:
    server = _server(request)
    await server.journal.barrier()
    return ok({"records": await server.journal.query_usage(_usage_query(request, 100))})


async def usage_csv(request: Request) -> Response:
    server = _server(request)
    await server.journal.barrier()
    rows = await server.journal.query_usage(_usage_query(request, MAX_USAGE_ROWS))
    lines = ([row["id"], *(iso_utc(row[name]) if name == "at" else row[name] for name in USAGE_FIELDS)] for row in rows)
    return csv_response(["id", *USAGE_FIELDS], lines, "licentia-usage.csv")


# -- settings, access rules, users --------------------------------------------------------------


async def get_settings(request: Request) -> Response:
    state = await _server(request).read_state()
    return ok(
        {
            "settings": msgspec.to_builtins(state.settings),
            "version": state.settings_version,
            "history": state.settings_history,
        }
    )


async def update_settings(request: Request, body: SettingsRequest) -> Response:
    command = c.UpdateSettings(changes=body.changes, expected_version=body.expected_version)
    outcome = await _server(request).execute(command)
    answer(outcome)
    return await get_settings(request)


async def get_access_rules(request: Request) -> Response:
    state = await _server(request).read_state()
    return ok(
        {
            "rules": msgspec.to_builtins(state.access_rules),
            "default_policy": state.settings.default_access_policy,
            "version": state.access_rules_version,
        }
    )


async def set_access_rules(request: Request, body: AccessRulesRequest) -> Response:
    outcome = await _server(request).execute(c.SetAccessRules(rules=body.rules, default_policy=body.default_policy))
    answer(outcome)
    return await get_access_rules(request)


async def test_access(request: Request, body: AccessTestRequest) -> Response:
    state = await _server(request).read_state()
    origin = RequestOrigin(user=body.user, host=body.host, server=body.server, ip=body.ip)
    allowed, why = state.access_decision(origin)
    rule = matching_rule(state.access_rules, origin)
    return ok({"allowed": allowed, "decided_by": why, "rule_id": rule.rule_id if rule else None})


async def list_users(request: Request) -> Response:
    state = await _server(request).read_state()
    return ok({"users": [{"username": u.username, "role": u.role} for u in state.users.values()]})


USERNAME_FORBIDDEN = frozenset("/?#%")
USERNAME_RULE = "A username has 1 to 64 characters, none of them / ? # or %."


async def put_user(request: Request, body: UserRequest) -> Response:
    server = _server(request)
    username = request.path_params["username"]
    if not 1 <= len(username) <= 64 or any(ch in USERNAME_FORBIDDEN for ch in username):
        raise ApiError("invalid_request", f"{username!r} cannot be a username. {USERNAME_RULE}")
    if body.password is not None:
        password_hash = hash_password(body.password)
    elif username in server.state.users:
        password_hash = server.state.users[username].password_hash
    else:
        raise ApiError("invalid_request", f"{username!r} is a new user: send a password (8 characters or more)")
    user = AdminUser(username, password_hash, body.role)
    return answer(await server.execute(c.PutAdminUser(user=user)))


async def delete_user(request: Request) -> Response:
    return answer(await _server(request).execute(c.DeleteAdminUser(username=request.path_params["username"])))


A = "/api/v1/admin"
ENDPOINTS = [
    Endpoint("POST", "/api/v1/auth/login", login, "Log in; returns a bearer token", body=LoginRequest, tag="admin"),
    Endpoint("GET", f"{A}/me", whoami, "The logged-in user", role="viewer", tag="admin"),
    Endpoint("GET", f"{A}/status", status, "Server status and license summary", role="viewer", tag="admin"),
    Endpoint(
        "GET",
        f"{A}/licenses",
        list_licenses,
        "Installed licenses with use and status",
        role="viewer",
        tag="admin",
    ),
    Endpoint(
        "POST",
        f"{A}/licenses",
        add_license,
        "Install a signed license file (the file is the body)",
        role="manager",
        tag="admin",
        raw_body=True,
    ),
    # `:path`: a license id an earlier version let in with a '/' (sent as %2F) can still be read and removed.
    Endpoint("GET", f"{A}/licenses/{{license_id:path}}", get_license, "One license", role="viewer", tag="admin"),
    Endpoint(
        "DELETE",
        f"{A}/licenses/{{license_id:path}}",
        remove_license,
        "Remove a license",
        role="manager",
        tag="admin",
    ),
    Endpoint("GET", f"{A}/printers", list_printers, "Printers (?group=, ?recent=1)", role="viewer", tag="admin"),
    Endpoint(
        "PUT",
        f"{A}/printers/{{printer_id}}/group",
        set_printer_group,
        "Change a printer's group",
        body=PrinterGroupRequest,
        role="manager",
        tag="admin",
    ),
    Endpoint(
        "POST",
        f"{A}/printers/{{printer_id}}/block",
        block_printer,
        "Block a printer",
        role="manager",
        tag="admin",
    ),
    Endpoint(
        "POST",
        f"{A}/printers/{{printer_id}}/unblock",
        unblock_printer,
        "Unblock a printer",
        role="manager",
        tag="admin",
    ),
    Endpoint(
        "GET",
        f"{A}/printer-groups",
        list_groups,
        "Printer groups and mapping rules",
        role="viewer",
        tag="admin",
    ),
    Endpoint(
        "POST",
        f"{A}/printer-groups",
        create_group,
        "Create a printer group",
        body=GroupRequest,
        role="manager",
        tag="admin",
    ),
    Endpoint(
        "PUT",
        f"{A}/printer-groups/{{name}}",
        rename_group,
        "Rename a printer group",
        body=GroupRequest,
        role="manager",
        tag="admin",
    ),
    Endpoint(
        "DELETE",
        f"{A}/printer-groups/{{name}}",
        delete_group,
        "Delete a printer group",
        role="manager",
        tag="admin",
    ),
    Endpoint(
        "PUT",
        f"{A}/printer-mapping-rules",
        set_mapping_rules,
        "Replace the ordered mapping rules",
        body=MappingRulesRequest,
        role="manager",
        tag="admin",
    ),
    Endpoint("GET", f"{A}/leases", list_leases, "Seat leases held now", role="viewer", tag="admin"),
    Endpoint("POST", f"{A}/leases/{{lease_id}}/revoke", revoke_lease, "Revoke a lease", role="manager", tag="admin"),
    Endpoint("GET", f"{A}/clients", list_clients, "The client registry", role="viewer", tag="admin"),
    Endpoint(
        "GET",
        f"{A}/usage",
        usage,
        "Usage log (filters: failed_only, kind, printer_id, client_host, since, until, limit, offset)",
        role="viewer",
        tag="admin",
    ),
    Endpoint("GET", f"{A}/usage.csv", usage_csv, "Usage log as CSV (same filters)", role="viewer", tag="admin"),
    Endpoint("GET", f"{A}/settings", get_settings, "Settings, version and history", role="viewer", tag="admin"),
    Endpoint(
        "PATCH",
        f"{A}/settings",
        update_settings,
        "Change settings",
        body=SettingsRequest,
        role="admin",
        tag="admin",
    ),
    Endpoint(
        "GET",
        f"{A}/access-rules",
        get_access_rules,
        "This License Server access rules",
        role="viewer",
        tag="admin",
    ),
    Endpoint(
        "PUT",
        f"{A}/access-rules",
        set_access_rules,
        "Replace the ordered access rules",
        body=AccessRulesRequest,
        role="admin",
        tag="admin",
    ),
    Endpoint(
        "POST",
        f"{A}/access-rules/test",
        test_access,
        "Which rule would decide this request?",
        body=AccessTestRequest,
        role="viewer",
        tag="admin",
    ),
    Endpoint("GET", f"{A}/users", list_users, "Console and API users", role="admin", tag="admin"),
    Endpoint(
        "PUT",
        f"{A}/users/{{username:path}}",
        put_user,
        "Create a user, or set its role and (optionally) password",
        body=UserRequest,
        role="admin",
        tag="admin",
    ),
    Endpoint("DELETE", f"{A}/users/{{username:path}}", delete_user, "Delete a user", role="admin", tag="admin"),
]
