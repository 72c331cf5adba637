"""Read views of the license state that the admin API and the console both show (no I/O, nothing changes)."""

from __future__ import annotations

from typing import Any

import msgspec

from licentia.core.indexed_state import DAY, IndexedState
from licentia.core.model import BUILTIN_GROUPS, License, Printer


def group_views(state: IndexedState) -> dict[str, Any]:
    """The printer groups (built-in ones flagged, with their printer counts) and the ordered mapping rules."""
    listings = state.listings()
    return {
        "groups": [
            {"name": name, "builtin": name in BUILTIN_GROUPS, "printers": listings.group_count(name)}
            for name in state.groups
        ],
        "mapping_rules": msgspec.to_builtins(state.mapping_rules),
    }


def license_status(state: IndexedState, lic: License, now: float) -> dict[str, Any]:
    """A license's terms with how many printers or seats count against it at `now` and its status."""
    used = state.counted_at(lic.id, now)
    if now >= lic.terms.expires:
        status = "expired"
    elif now < lic.terms.not_before:
        status = "not_yet_valid"
    elif used > lic.terms.count:
        status = "grace" if lic.grace_seconds_left(now) > 0 else "exhausted"
    elif lic.terms.unit == "seats" and used >= lic.terms.count:
        status = "full"
    else:
        status = "ok"
    return {
        **msgspec.to_builtins(lic.terms),
        "key_id": lic.key_id,
        "installed_at": lic.installed_at,
        "used": used,
        "status": status,
        "grace_started_at": lic.grace_started_at,
        "grace_days_left": round(lic.grace_seconds_left(now) / DAY, 2),
    }


def printer_view(state: IndexedState, printer: Printer, now: float) -> dict[str, Any]:
    """A printer's record, whether it was used within the printer window and whether it counts now."""
    window = state.settings.printer_window_days * DAY
    return {
        **msgspec.to_builtins(printer),
        "in_window": max(printer.last_used, printer.peer_last_used) + window > now,
        "counted": state.counts_against(printer.license_id, printer.printer_id) and printer.last_used + window > now,
    }
