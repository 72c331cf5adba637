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

from licentia.api.auth import log_in, log_out, new_password_hash, presented_token, session_cookie_name
from licentia.api.client_api import answer
from licentia.api.csv_export import csv_stream, iso_utc
from licentia.api.errors import ApiError
from licentia.api.lists import CLIENTS, LEASES, PRINTERS, client_page, lease_page, list_query, printer_page
from licentia.api.routing import Endpoint, ok
from licentia.api.schemas import (
    AccessRulesRequest,
    AccessTestRequest,
    GroupRequest,
    LoginRequest,
    MappingRulesRequest,
    PrinterGroupRequest,
    SettingsRequest,
    TrustIssuerRequest,
    UserRequest,
)
from licentia.api.source_address import source_address
from licentia.api.this_server import this_server as _server
from licentia.core import commands as c
from licentia.core.access import RequestOrigin, canonical_address, matching_rule
from licentia.core.model import AdminUser
from licentia.core.views import group_views, license_status
from licentia.license_file import LicenseBoundElsewhere, LicenseFileError
from licentia.store.usage_log import UsageQuery
from licentia.store.usage_rows import USAGE_FIELDS

log = logging.getLogger("licentia.api")

MAX_USAGE_ROWS = 100_000
Q = TypeVar("Q")


async def login(request: Request, body: LoginRequest) -> Response:
    session = await log_in(_server(request), body.username, body.password, source_address(request), "API login")
    if session is None:
        raise ApiError("unauthorized", "wrong username or password")
    user = session.user
    return ok({"token": session.token, "expires_at": session.expires_at, "username": user.username, "role": user.role})


async def logout(request: Request) -> Response:
    """Revoke the bearer token or console session this request came with; it answers 401 from now on."""
    server = _server(request)
    token = presented_token(request)
    if token is None:
        raise ApiError(
            "invalid_request",
            "HTTP Basic has no session to end; log out is for a bearer token or the console's session",
            400,
        )
    await log_out(server, token)
    response = ok({"logged_out": True})
    if request.headers.get("authorization") is None:
        response.delete_cookie(session_cookie_name(server), path="/", httponly=True, samesite="strict")
    return response


async def whoami(request: Request) -> Response:
    user: AdminUser = request.state.user
    return ok({"username": user.username, "role": user.role})


async def status(request: Request) -> Response:
    server = _server(request)
    state = await server.read_state()
    now = server.now()
    licenses = [license_status(state, lic, now) for lic in state.licenses.values()]
    return ok(
        {
            **server.info(),
            "started_at": server.started_at,
            "journal_index": server.journal.durable_index,
            "licenses": licenses,
            # A seat license's use is its leases held now (every lease belongs to one): no scan of every lease.
            "active_leases": sum(lic["used"] for lic in licenses if lic["unit"] == "seats"),
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
    return ok({"licenses": [license_status(state, lic, now) for lic in state.licenses.values()]})


async def get_license(request: Request) -> Response:
    server = _server(request)
    state = await server.read_state()
    lic = state.licenses.get(request.path_params["license_id"])
    if lic is None:
        raise ApiError("license_not_found", f"no license {request.path_params['license_id']} is installed")
    return ok(license_status(state, lic, server.now()))


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
    return ok(license_status(server.state, server.state.licenses[command.terms.license_id], server.now()), 201)


async def trust_issuer(request: Request, body: TrustIssuerRequest) -> Response:
    """Trust an issuer's public key on this server from now on (no restart); a bad key stores nothing."""
    server = _server(request)
    user: AdminUser = request.state.user
    try:
        kid, new = await server.trust_issuer(body.public_key.encode(), user.username)
    except LicenseFileError as exc:
        log.warning("Refused to trust an issuer key uploaded by %s: %s.", user.username, exc)
        raise ApiError("invalid_issuer_key", str(exc)) from None
    return ok({"key_id": kid, "new": new, "trusted_issuers": server.trusted.ids()}, 201 if new else 200)


async def remove_license(request: Request) -> Response:
    command = c.RemoveLicense(license_id=request.path_params["license_id"])
    return answer(await _server(request).execute(command))


# -- printers and groups ------------------------------------------------------------------------


async def list_printers(request: Request) -> Response:
    """One page of printers (see `licentia.api.lists`); `?group=` and `?recent=1` filter them."""
    server = _server(request)
    query = list_query(PRINTERS, request.query_params)
    state = await server.read_state()
    group = request.query_params.get("group")
    recent = request.query_params.get("recent") in ("1", "true")
    page = printer_page(state, server.now(), query, group=group, recent=recent)
    return ok({**page.answer("printers"), "window_days": state.settings.printer_window_days})


async def set_printer_group(request: Request, body: PrinterGroupRequest) -> Response:
    command = c.SetPrinterGroup(printer_id=request.path_params["printer_id"], group=body.group)
    return answer(await _server(request).execute(command))


async def block_printer(request: Request) -> Response:
    command = c.SetPrinterGroup(printer_id=request.path_params["printer_id"], group="Blocked")
    return answer(await _server(request).execute(command))


async def unblock_printer(request: Request) -> Response:
    command = c.SetPrinterGroup(printer_id=request.path_params["printer_id"], group="Default")
    return answer(await _server(request).execute(command))


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


async def list_leases(request: Request) -> Response:
    """One page of the seat leases held now (see `licentia.api.lists`)."""
    server = _server(request)
    query = list_query(LEASES, request.query_params)
    state = await server.read_state()
    return ok(lease_page(state, server.now(), query).answer("leases"))


async def revoke_lease(request: Request) -> Response:
    return answer(await _server(request).execute(c.RevokeLease(lease_id=request.path_params["lease_id"])))


async def list_clients(request: Request) -> Response:
    """One page of the client registry, most recently seen first unless sorted otherwise."""
    query = list_query(CLIENTS, request.query_params)
    return ok(client_page(await _server(request).read_state(), query).answer("clients"))


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
    if query.before is not None and not 0 <= query.before < 2**63:
        raise ApiError("invalid_request", "before must be a row id (the 'next' of the previous page)")
    return query


async def usage(request: Request) -> Response:
    server = _server(request)
    await server.journal.barrier()
    query = _usage_query(request, 100)
    records = await server.journal.query_usage(query)
    # Keyset paging: `?before=<next>` reads on from the last row without the cost of a large offset.
    following = str(records[-1]["id"]) if len(records) == query.limit else None
    return ok({"records": records, "next": following})


_AT = USAGE_FIELDS.index("at") + 1  # in a row of (id, *USAGE_FIELDS)
_GRANTED = USAGE_FIELDS.index("granted") + 1


def _usage_csv_rows(page: list[tuple[Any, ...]]) -> list[list[Any]]:
    rows = [list(row) for row in page]
    for row in rows:
        row[_AT], row[_GRANTED] = iso_utc(row[_AT]), bool(row[_GRANTED])
    return rows


async def usage_csv(request: Request) -> Response:
    """Every row matching the filters (or `limit` rows when given), streamed: no cut-off, off the loop."""
    server = _server(request)
    query = _usage_query(request, MAX_USAGE_ROWS)
    await server.journal.barrier()
    limit = query.limit if "limit" in request.query_params else None
    pages = server.journal.usage_pages(query, limit=limit)
    return csv_stream(["id", *USAGE_FIELDS], pages, _usage_csv_rows, "licentia-usage.csv")


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
    server = _server(request)
    state = await server.read_state()
    ip = canonical_address(body.ip)
    source_host = body.source_host
    if source_host is None:  # as a real request from `ip` would be judged: by the name DNS verifies for it
        uses_names = any(rule.where_kind == "hostname" for rule in state.access_rules)
        source_host = await server.host_names.name_of(ip) if uses_names and ip else ""
    origin = RequestOrigin(user=body.user, host=body.host, server=body.server, ip=ip, source_host=source_host)
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
        password_hash = await new_password_hash(server, body.password)
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
    Endpoint(
        "POST",
        "/api/v1/auth/logout",
        logout,
        "Log out: revoke the bearer token or console session sent with this request",
        role="viewer",
        tag="admin",
    ),
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
    Endpoint(
        "POST",
        f"{A}/trusted-issuers",
        trust_issuer,
        "Trust an issuer public key (PEM) on this server, without a restart",
        body=TrustIssuerRequest,
        role="admin",
        tag="admin",
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
    Endpoint(
        "GET",
        f"{A}/printers",
        list_printers,
        "A page of printers (?group=, ?recent=1, ?sort=last_used|name, ?order=, ?q=, ?limit=, ?after=)",
        role="viewer",
        tag="admin",
    ),
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
    Endpoint(
        "GET",
        f"{A}/leases",
        list_leases,
        "A page of the seat leases held now (?sort=product|user, ?order=, ?q=, ?limit=, ?after=)",
        role="viewer",
        tag="admin",
    ),
    Endpoint("POST", f"{A}/leases/{{lease_id}}/revoke", revoke_lease, "Revoke a lease", role="manager", tag="admin"),
    Endpoint(
        "GET",
        f"{A}/clients",
        list_clients,
        "A page of the client registry (?sort=last_seen|host, ?order=, ?q=, ?limit=, ?after=)",
        role="viewer",
        tag="admin",
    ),
    Endpoint(
        "GET",
        f"{A}/usage",
        usage,
        "Usage log, newest first (filters: failed_only, kind, printer_id, client_host, since, until; paging: limit, "
        "before=<next>)",
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
