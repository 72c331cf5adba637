"""What each operation answers: its success statuses with their bodies and content types, the refusals
particular to it, and its query parameters. `licentia.api.openapi` adds the statuses every operation of a
kind can answer (a body's 400/413/415/422, a login's 401/403/429, a triad's 307/502/503) and builds the
document; an endpoint without an entry here stops the server from starting (and fails the tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from licentia.api import responses as r
from licentia.api.lists import CLIENTS, DEFAULT_LIMIT, LEASES, MAX_LIMIT, PRINTERS, ListKind
from licentia.cluster.backup_pair import PeerChanges
from licentia.cluster.relationship_status import BackupPairStatus, TriadStatus
from licentia.cluster.role_events import MAX_PAGE as ROLE_EVENTS_PAGE
from licentia.cluster.role_events import RoleEventPage
from licentia.cluster.triad_forward import ForwardedAnswer
from licentia.cluster.triad_seam import CHECKPOINT_MEDIA_TYPE
from licentia.core.commands import SharedConfig
from licentia.store.usage_log import UsageQuery
from licentia.store.usage_report import UsageReport

JSON = "application/json"
CSV = "text/csv"
CHECKPOINT = CHECKPOINT_MEDIA_TYPE


@dataclass(frozen=True)
class OneOf:
    """A body that is one of these types, told apart by their `type` field."""

    types: tuple[type, ...]


@dataclass(frozen=True)
class Success:
    status: int
    body: Any  # a type msgspec describes (a struct or dataclass), or a OneOf of them; None: text
    description: str = "OK"
    media_type: str = JSON


@dataclass(frozen=True)
class QueryParameter:
    name: str
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Contract:
    answers: tuple[Success, ...]
    refusals: tuple[int, ...] = ()  # statuses this operation's own checks answer (see STATUS_MEANINGS)
    query: tuple[QueryParameter, ...] = ()


def ok(body: Any, status: int = 200, description: str = "OK") -> Success:
    return Success(status, body, description)


def csv(description: str) -> Success:
    return Success(200, None, description, CSV)


def list_parameters(kind: ListKind) -> tuple[QueryParameter, ...]:
    """A paged list's `sort`, `order`, `q`, `limit` and `after` (see licentia.api.lists)."""
    return (
        QueryParameter("sort", {"type": "string", "enum": list(kind.sorts), "default": kind.default_sort},
                       "The order of the rows."),
        QueryParameter("order", {"type": "string", "enum": ["asc", "desc"]},
                       f"Ascending or descending (default {kind.default_order} for {kind.default_sort}, else asc)."),
        QueryParameter("q", {"type": "string", "maxLength": 200},
                       f"Only rows whose {kind.search_sort} starts with this (any case), in that column's order."),
        QueryParameter("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                       "Rows per page."),
        QueryParameter("after", {"type": "string"}, "The `next` cursor of the previous page."),
    )


def struct_parameters(query_type: type, descriptions: dict[str, str],
                      overrides: dict[str, dict[str, Any]] | None = None) -> tuple[QueryParameter, ...]:
    """A query-string struct's fields as query parameters (a nullable field is simply left out)."""
    _, components = msgspec.json.schema_components([query_type])
    fields = components[query_type.__name__]["properties"]
    parameters = []
    for name, field_schema in fields.items():
        choices = [s for s in field_schema.get("anyOf", [field_schema]) if s.get("type") != "null"]
        shown = {**choices[0], **{k: v for k, v in field_schema.items() if k not in ("anyOf", "default")}}
        if field_schema.get("default") is not None:
            shown["default"] = field_schema["default"]
        shown.update((overrides or {}).get(name, {}))
        shown = {key: value for key, value in shown.items() if value is not None}  # an override's None: left out
        parameters.append(QueryParameter(name, shown, descriptions.get(name, "")))
    return tuple(parameters)


_USAGE_FILTERS = {
    "failed_only": "Only refused requests.",
    "kind": "Only this kind of request: print, checkout, heartbeat, checkin.",
    "printer_id": "Only this printer's requests.",
    "client_host": "Only this client host's requests.",
    "since": "From this Unix time on.",
    "until": "Before this Unix time.",
    "limit": "Rows per page (1 to 100000).",
    "offset": "Rows to skip.",
    "before": "Rows older than this id: the `next` of the previous page.",
}
USAGE_PARAMETERS = struct_parameters(UsageQuery, _USAGE_FILTERS, {"limit": {"minimum": 1, "maximum": 100_000}})
USAGE_CSV_PARAMETERS = struct_parameters(
    UsageQuery, {**_USAGE_FILTERS, "limit": "At most this many rows (default: every matching row)."},
    {"limit": {"minimum": 1, "maximum": 100_000, "default": None}},
)
REPORT_PARAMETERS = (
    QueryParameter("bucket", {"title": "BucketLength", "type": "string", "enum": ["hour", "day"], "default": "hour"},
                   "Bucket length."),
    QueryParameter("since", {"type": "number", "minimum": 0}, "Start (Unix time); the first bucket starts here."),
    QueryParameter("until", {"type": "number", "minimum": 0}, "End (Unix time); default now, on a bucket boundary."),
)
PRINTER_PARAMETERS = (
    *list_parameters(PRINTERS),
    QueryParameter("group", {"type": "string"}, "Only this printer group's printers."),
    QueryParameter("recent", {"type": "boolean"}, "Only printers used inside the printer window."),
)

A = "/api/v1/admin"
R = f"{A}/relationship"
P = "/api/v1/peer"
CONTRACTS: dict[tuple[str, str], Contract] = {
    # the client API
    ("GET", "/api/v1/server"): Contract((ok(r.ServerInfo),)),
    ("POST", "/api/v1/print-checks"): Contract((ok(r.PrintCheckAnswer, description="Granted"),), (404, 409)),
    ("POST", "/api/v1/leases"): Contract(
        (ok(r.CheckoutAnswer, 201, "A lease granted"),
         ok(r.CheckoutAnswer, description="A retry (same request_id): the lease granted before")),
        (404, 409),
    ),
    ("POST", "/api/v1/leases/heartbeat"): Contract((ok(r.HeartbeatAnswer),)),
    ("POST", "/api/v1/leases/{lease_id}/heartbeat"): Contract((ok(r.LeaseRenewal),), (410,)),
    ("DELETE", "/api/v1/leases/{lease_id}"): Contract((ok(r.Checkin),), (404,)),
    # logging in and out
    ("POST", "/api/v1/auth/login"): Contract((ok(r.LoginAnswer),), (401, 429)),
    ("POST", "/api/v1/auth/logout"): Contract((ok(r.LogoutAnswer),), (400,)),
    # the admin API
    ("GET", f"{A}/me"): Contract((ok(r.UserView),)),
    ("GET", f"{A}/status"): Contract((ok(r.ServerStatus),)),
    ("GET", f"{A}/licenses"): Contract((ok(r.LicenseList),)),
    ("POST", f"{A}/licenses"): Contract((ok(r.LicenseView, 201, "Installed"),), (409,)),
    ("GET", f"{A}/licenses/{{license_id:path}}"): Contract((ok(r.LicenseView),), (404,)),
    ("DELETE", f"{A}/licenses/{{license_id:path}}"): Contract((ok(r.LicenseRemoved),), (404,)),
    ("POST", f"{A}/trusted-issuers"): Contract(
        (ok(r.IssuerTrusted, 201, "Trusted from now on"), ok(r.IssuerTrusted, description="Already trusted")),
    ),
    ("GET", f"{A}/printers"): Contract((ok(r.PrinterPage),), query=PRINTER_PARAMETERS),
    ("PUT", f"{A}/printers/{{printer_id}}/group"): Contract((ok(r.PrinterGroupChange),), (404,)),
    ("POST", f"{A}/printers/{{printer_id}}/block"): Contract((ok(r.PrinterGroupChange),), (404,)),
    ("POST", f"{A}/printers/{{printer_id}}/unblock"): Contract((ok(r.PrinterGroupChange),), (404,)),
    ("GET", f"{A}/printer-groups"): Contract((ok(r.PrinterGroups),)),
    ("POST", f"{A}/printer-groups"): Contract((ok(r.GroupName, 201, "Created"),), (409,)),
    ("PUT", f"{A}/printer-groups/{{name}}"): Contract((ok(r.GroupName),), (404, 409)),
    ("DELETE", f"{A}/printer-groups/{{name}}"): Contract((ok(r.GroupName),), (404, 409)),
    ("PUT", f"{A}/printer-mapping-rules"): Contract((ok(r.MappingRulesSaved),), (404,)),
    ("GET", f"{A}/leases"): Contract((ok(r.LeasePage),), query=list_parameters(LEASES)),
    ("POST", f"{A}/leases/{{lease_id}}/revoke"): Contract((ok(r.LeaseRevoked),), (404,)),
    ("GET", f"{A}/clients"): Contract((ok(r.ClientPage),), query=list_parameters(CLIENTS)),
    ("GET", f"{A}/usage"): Contract((ok(r.UsagePage),), query=USAGE_PARAMETERS),
    ("GET", f"{A}/usage.csv"): Contract((csv("The usage log's rows, newest first"),), query=USAGE_CSV_PARAMETERS),
    ("GET", f"{A}/reports/usage"): Contract((ok(UsageReport),), query=REPORT_PARAMETERS),
    ("GET", f"{A}/reports/usage.csv"): Contract((csv("One row per bucket"),), query=REPORT_PARAMETERS),
    ("GET", f"{A}/settings"): Contract((ok(r.SettingsView),)),
    ("PATCH", f"{A}/settings"): Contract((ok(r.SettingsView),), (409,)),
    ("GET", f"{A}/access-rules"): Contract((ok(r.AccessRulesView),)),
    ("PUT", f"{A}/access-rules"): Contract((ok(r.AccessRulesView),), (409,)),
    ("POST", f"{A}/access-rules/test"): Contract((ok(r.AccessDecision),)),
    ("GET", f"{A}/users"): Contract((ok(r.UserList),)),
    ("PUT", f"{A}/users/{{username:path}}"): Contract((ok(r.UserView),), (409,)),
    ("DELETE", f"{A}/users/{{username:path}}"): Contract((ok(r.UserRemoved),), (404, 409)),
    ("GET", f"{A}/alerts"): Contract((ok(r.AlertsView),)),
    ("PUT", f"{A}/alerts"): Contract((ok(r.AlertsView),), (409,)),
    ("POST", f"{A}/alerts/test"): Contract((ok(r.AlertTestSent, description="Delivered"),), (409,)),
    # relationships
    ("GET", R): Contract((ok(OneOf((TriadStatus, BackupPairStatus, r.NoRelationship))),)),
    ("GET", f"{R}/events"): Contract(
        (ok(RoleEventPage),),
        query=(
            QueryParameter("limit", {"type": "integer", "minimum": 1, "maximum": ROLE_EVENTS_PAGE, "default": 20},
                           "Events per page, newest first."),
            QueryParameter("before", {"type": "integer", "minimum": 1}, "The `next` of the previous page."),
        ),
    ),
    ("POST", f"{R}/triad"): Contract(
        (ok(r.TriadFormed, 201, "Formed"), ok(r.SetupChecked, description="check_only: every check passed")),
        (409,),
    ),
    ("POST", f"{R}/join"): Contract((ok(r.Joined),), (409,)),
    ("GET", f"{R}/seed"): Contract((ok(r.SeedSnapshot),)),
    ("POST", f"{R}/dissolve"): Contract((ok(r.Dissolved),), (404, 409)),
    ("POST", f"{R}/backup"): Contract(
        (ok(r.BackupPairFormed, 201, "Formed"), ok(r.SetupChecked, description="check_only: every check passed")),
        (409,),
    ),
    ("POST", f"{R}/backup/join"): Contract((ok(r.Joined),), (409,)),
    ("GET", f"{R}/shared-config"): Contract((ok(SharedConfig),)),
    ("POST", f"{R}/sync"): Contract((ok(r.SyncNow),), (404,)),
    ("POST", f"{R}/swap"): Contract((ok(BackupPairStatus),), (404, 409)),
    ("POST", f"{R}/backup/replace"): Contract((ok(r.BackupReplaced),), (404, 409)),
    # between the servers of a relationship (signed with the relationship's secret)
    ("POST", f"{P}/changes"): Contract((ok(PeerChanges, description="What changed since the cursor"),)),
    ("POST", f"{P}/poke"): Contract((ok(r.PeerSyncing),)),
    ("POST", f"{P}/swap"): Contract((ok(r.PeerSwapped),), (409,)),
    ("POST", f"{P}/leave"): Contract((ok(r.PeerLeft),)),
    ("POST", f"{P}/triad/forward"): Contract((ok(ForwardedAnswer),)),
    ("POST", f"{P}/triad/checkpoint"): Contract((Success(200, None, "This member's checkpoint (the state snapshot "
                                                          "format, see cluster.triad_checkpoint)", CHECKPOINT),)),
}

STATUS_MEANINGS = {
    200: "OK",
    201: "Created",
    307: "This triad member does not serve now: the same request, to the active member named in Location",
    400: "The body is not JSON, or a header is malformed",
    401: "Not logged in, or the login is wrong",
    403: "The access rules deny it, or the user's role does not allow it",
    404: "Nothing by that name",
    409: "Refused in the present state (a limit reached, a name taken, a version changed, ...)",
    410: "The lease is not held any more: check out again",
    413: "The body is larger than the server takes",
    415: "The body is not application/json",
    422: "A field or query parameter is not valid",
    429: "Locked after failed logins; see Retry-After",
    502: "A server this one had to ask (the partner, the active member, a mail server) did not answer",
    503: "The server cannot take changes now (no active triad member, storage failing); see Retry-After if sent",
}
