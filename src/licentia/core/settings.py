"""Server-wide settings shared by every member of a relationship.

Process-level knobs that differ per member (addresses, ports, data directory)
live in `licentia.config` instead.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    lease_ttl_s: float = 120.0
    heartbeat_interval_s: float = 30.0
    printer_window_days: float = 7.0
    client_grace_hours: float = 72.0
    usage_retention_days: float = 90.0
    default_access_policy: str = "allow"
    server_name: str = "Licentia"
    console_server_order: list[str] = []  # the console's order of license servers (keys it shows)


LIMITS: dict[str, tuple[float, float]] = {
    "lease_ttl_s": (5, 7 * 86400),
    "heartbeat_interval_s": (1, 86400),
    "printer_window_days": (1, 365),
    "client_grace_hours": (0, 30 * 24),
    "usage_retention_days": (1, 3650),
}


class SettingsError(ValueError):
    pass


def merged_settings(current: Settings, changes: dict[str, Any]) -> Settings:
    """Return `current` with `changes` applied, or raise SettingsError naming the bad field."""
    known = set(Settings.__struct_fields__)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise SettingsError(f"There is no setting called {', '.join(unknown)}.")
    data = msgspec.to_builtins(current)
    data.update(changes)
    try:
        candidate = msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(str(exc)) from None
    for name, (low, high) in LIMITS.items():
        value = getattr(candidate, name)
        if not low <= value <= high:
            raise SettingsError(f"The setting {name} must be between {low:g} and {high:g}; {value:g} is outside.")
    if candidate.heartbeat_interval_s * 2 > candidate.lease_ttl_s:
        raise SettingsError(
            "The client heartbeat interval (heartbeat_interval_s) must be at most half the seat lease time-to-live "
            "(lease_ttl_s)."
        )
    if candidate.default_access_policy not in ("allow", "deny"):
        raise SettingsError("The default access policy (default_access_policy) must be allow or deny.")
    if not 1 <= len(candidate.server_name) <= 80:
        raise SettingsError("The server name (server_name) must have 1 to 80 characters.")
    order = candidate.console_server_order
    if len(order) > 50 or len(set(order)) != len(order) or not all(1 <= len(key) <= 200 for key in order):
        raise SettingsError("console_server_order must list at most 50 different keys of 1 to 200 characters")
    return candidate
