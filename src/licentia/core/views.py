"""Read views of the license state that the admin API and the console both show (no I/O, nothing changes)."""

from __future__ import annotations

from typing import Any

import msgspec

from licentia.core.state import LicenseState

BUILTIN_GROUPS = ("Default", "Blocked")


def group_views(state: LicenseState) -> dict[str, Any]:
    """The printer groups (built-in ones flagged, with their printer counts) and the ordered mapping rules."""
    listings = state.listings()
    return {
        "groups": [
            {"name": name, "builtin": name in BUILTIN_GROUPS, "printers": listings.group_count(name)}
            for name in state.groups
        ],
        "mapping_rules": msgspec.to_builtins(state.mapping_rules),
    }
