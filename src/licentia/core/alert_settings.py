"""Alert recipients and thresholds: shared license state, so every member of a relationship has the same.

They change only through the `SetAlertSettings` command (a whole replacement,
validated by `alert_settings_problem`), are versioned, and replicate with the
rest of the state. How mail leaves a server (SMTP host, credentials) is process
configuration instead (`licentia.config.AlertConfig`): it may differ per member
and holds a password that never enters the license state.
"""

from __future__ import annotations

import re

import msgspec

ALERT_KINDS = (
    "member_down",
    "no_active_member",
    "failover",
    "backup_unsynchronized",
    "license_grace",
    "license_expiring",
    "denials",
)
MAX_RECIPIENTS = 20
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$")
WEBHOOK = re.compile(r"^https?://[^\s/?#]+(?:/[^\s]*)?$")

LIMITS: dict[str, tuple[float, float]] = {
    "member_down_after_s": (1, 86400),
    "backup_unsynchronized_after_s": (10, 30 * 86400),
    "expiring_within_days": (0, 365),
    "denials_threshold": (0, 1_000_000),
    "denials_window_s": (10, 86400),
}


class AlertSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Who is told about what, and when a condition counts as an incident.

    `expiring_within_days` = 0 or `denials_threshold` = 0 switch that alert off;
    `muted_kinds` switches any kind off.
    """

    enabled: bool = True
    recipients: list[str] = []
    webhook_url: str = ""
    member_down_after_s: float = 30.0
    backup_unsynchronized_after_s: float = 900.0
    expiring_within_days: float = 30.0
    denials_threshold: int = 50
    denials_window_s: float = 300.0
    muted_kinds: list[str] = []


def alert_settings_problem(settings: AlertSettings) -> str | None:
    """What is wrong with these settings, as one sentence for the admin; None when they are valid."""
    if len(settings.recipients) > MAX_RECIPIENTS:
        return f"at most {MAX_RECIPIENTS} recipients"
    seen: set[str] = set()
    for address in settings.recipients:
        if len(address) > 254 or not EMAIL.match(address):
            return f"{address[:80]!r} is not an email address"
        if address.casefold() in seen:
            return f"{address!r} is listed twice"
        seen.add(address.casefold())
    if settings.webhook_url and (len(settings.webhook_url) > 500 or not WEBHOOK.match(settings.webhook_url)):
        return "webhook_url must be an http:// or https:// URL (at most 500 characters), or empty"
    for name, (low, high) in LIMITS.items():
        value = getattr(settings, name)
        if not low <= value <= high:
            return f"{name} must be between {low:g} and {high:g}, got {value:g}"
    unknown = sorted(set(settings.muted_kinds) - set(ALERT_KINDS))
    if unknown:
        return f"unknown alert kind(s) in muted_kinds: {', '.join(unknown)}; known: {', '.join(ALERT_KINDS)}"
    return None
