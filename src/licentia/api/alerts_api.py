"""The admin API behind the console's Alert Setup page: recipients and thresholds, and a test alert.

Recipients and thresholds are shared license state (`SetAlertSettings`), so in a
triad they are the same on every member. The SMTP server is this process's
configuration: it is shown without its password (only whether one is set).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from licentia.api.client_api import answer
from licentia.api.errors import ApiError
from licentia.api.routing import Endpoint, ok
from licentia.api.schemas import Body
from licentia.api.this_server import this_server as _server
from licentia.core import commands as c
from licentia.core.alert_settings import ALERT_KINDS, MAX_RECIPIENTS, AlertSettings, alert_settings_problem
from licentia.core.state import LicenseState

Address = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
Recipients = Annotated[list[Address], msgspec.Meta(max_length=MAX_RECIPIENTS)]
WebhookUrl = Annotated[str, msgspec.Meta(max_length=500)]
Kind = Literal[ALERT_KINDS]  # type: ignore[valid-type]


class AlertSettingsRequest(Body):
    """The whole alert setup (PUT replaces it; a field left out takes its default)."""

    enabled: bool = True
    recipients: Recipients = []
    webhook_url: WebhookUrl = ""
    member_down_after_s: float = 30.0
    backup_unsynchronized_after_s: float = 900.0
    expiring_within_days: float = 30.0
    denials_threshold: int = 50
    denials_window_s: float = 300.0
    muted_kinds: Annotated[list[Kind], msgspec.Meta(max_length=len(ALERT_KINDS))] = []
    expected_version: int | None = None


class AlertTestRequest(Body):
    """Send a test alert to the saved recipients and webhook, or to these (to try them before saving)."""

    recipients: Recipients | None = None
    webhook_url: WebhookUrl | None = None


def alerts_view(server: Any, state: LicenseState) -> dict[str, Any]:
    """The alert setup as the API and the console show it: settings, version, SMTP (no password), activity."""
    return {
        "settings": msgspec.to_builtins(state.alert_settings),
        "version": state.alert_settings_version,
        "kinds": list(ALERT_KINDS),
        **server.alerts.status(),
    }


async def get_alerts(request: Request) -> Response:
    server = _server(request)
    return ok(alerts_view(server, await server.read_state()))


async def put_alerts(request: Request, body: AlertSettingsRequest) -> Response:
    fields = msgspec.to_builtins(body)
    expected = fields.pop("expected_version")
    command = c.SetAlertSettings(settings=msgspec.convert(fields, AlertSettings), expected_version=expected)
    answer(await _server(request).execute(command))
    return await get_alerts(request)


async def test_alert(request: Request, body: AlertTestRequest) -> Response:
    server = _server(request)
    saved = server.state.alert_settings
    recipients = saved.recipients if body.recipients is None else body.recipients
    webhook_url = saved.webhook_url if body.webhook_url is None else body.webhook_url
    problem = alert_settings_problem(AlertSettings(recipients=list(recipients), webhook_url=webhook_url))
    if problem:
        raise ApiError("invalid_alert_settings", problem, 422)
    if not recipients and not webhook_url:
        raise ApiError("no_alert_destination", "there are no recipients and no webhook to send a test alert to", 409)
    results = [msgspec.to_builtins(result) for result in await server.alerts.send_test(list(recipients), webhook_url)]
    failed = [r for r in results if not r["ok"]]
    if failed:
        message = "; ".join(f"{r['channel']} to {r['target']}: {r['error']}" for r in failed)
        return ok({"error": {"code": "alert_delivery_failed", "message": message}, "results": results}, 502)
    return ok({"sent": True, "results": results})


A = "/api/v1/admin/alerts"
ENDPOINTS = [
    Endpoint(
        "GET",
        A,
        get_alerts,
        "Alert recipients, thresholds, SMTP server (no password), open incidents, recent deliveries",
        role="viewer",
        tag="admin",
    ),
    Endpoint(
        "PUT",
        A,
        put_alerts,
        "Replace the alert recipients and thresholds",
        body=AlertSettingsRequest,
        role="admin",
        tag="admin",
    ),
    Endpoint(
        "POST",
        f"{A}/test",
        test_alert,
        "Send a test alert (to the saved destinations, or to those in the body)",
        body=AlertTestRequest,
        role="admin",
        tag="admin",
    ),
]
