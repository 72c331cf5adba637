"""The license state's data, declared once.

`StateData` names every field of the state, its type and its default. From that one declaration come the
snapshot's type (`Snapshot`: the same fields in the same order, a registry written as the list of its
records), the snapshot of a state (`snapshot_of`), its restore (`StateData.restore`) and the state's
equality (two states are equal when every declared field is). A field added here is therefore in every
one of them; indexes derived from the fields are not declared here (see `licentia.core.indexed_state`).

The snapshot's encoding is the one written before this declaration existed: data directories and triad
checkpoints written by earlier versions load unchanged (`tests/core/test_state_fields.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import field
from operator import attrgetter
from typing import TYPE_CHECKING, Any, get_args, get_type_hints

import msgspec

from licentia.core.alert_settings import AlertSettings
from licentia.core.model import (
    BUILTIN_GROUPS,
    AccessRule,
    ActiveRecord,
    AdminUser,
    BackupPair,
    Client,
    Lease,
    License,
    MappingRule,
    Printer,
    RemovedLicense,
    Triad,
)
from licentia.core.settings import Settings


def built_in_groups() -> list[str]:
    return list(BUILTIN_GROUPS)


@dataclasses.dataclass(eq=True, repr=False)
class StateData:
    """Every field of the license state, in the snapshot's order.

    A registry (`metadata` "key": an attribute of its records) holds its records by that key; the snapshot
    holds the list of them."""

    licenses: dict[str, License] = field(default_factory=dict, metadata={"key": "id"})
    printers: dict[str, Printer] = field(default_factory=dict, metadata={"key": "printer_id"})
    leases: dict[str, Lease] = field(default_factory=dict, metadata={"key": "lease_id"})
    clients: dict[str, Client] = field(default_factory=dict, metadata={"key": "client_id"})
    groups: list[str] = field(default_factory=built_in_groups)
    mapping_rules: list[MappingRule] = field(default_factory=list)
    access_rules: list[AccessRule] = field(default_factory=list)
    access_rules_version: int = 1
    settings: Settings = field(default_factory=Settings)
    settings_version: int = 1
    settings_history: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, AdminUser] = field(default_factory=dict, metadata={"key": "username"})
    triad: Triad | None = None
    active: ActiveRecord | None = None
    liveness: dict[str, float] = field(default_factory=dict)
    last_epoch: int = 0
    time_floor: float = 0.0
    alert_settings: AlertSettings = field(default_factory=AlertSettings)
    alert_settings_version: int = 1
    pair: BackupPair | None = None
    # Change sequence for what a backup pair shares; `own_change_seq` is the last change made here.
    change_seq: int = 0
    own_change_seq: int = 0
    config_seq: int = 0
    config_via: str = ""
    removed_licenses: dict[str, RemovedLicense] = field(default_factory=dict, metadata={"key": "license_id"})

    def restore(self, snapshot: Snapshot) -> None:
        """Set every field from `snapshot`: registries keyed again, other containers copied."""
        for name, key in _FIELDS:
            value = getattr(snapshot, name)
            if key is not None:
                value = {key(record): record for record in value}
            elif isinstance(value, list | dict):
                value = type(value)(value)
            setattr(self, name, value)


def state_fields() -> tuple[str, ...]:
    """The names of the state's fields, in the snapshot's order."""
    return tuple(name for name, _ in _FIELDS)


def snapshot_of(data: StateData) -> Snapshot:
    """The whole state as a `Snapshot` that shares the state's records (encode it before changing them)."""
    return Snapshot(
        **{name: list(getattr(data, name).values()) if key else getattr(data, name) for name, key in _FIELDS}
    )


_FIELDS: tuple[tuple[str, Callable[[Any], str] | None], ...] = tuple(
    (declared.name, attrgetter(declared.metadata["key"]) if "key" in declared.metadata else None)
    for declared in dataclasses.fields(StateData)
)


def _snapshot_fields() -> list[tuple[str, Any, Any]]:
    hints = get_type_hints(StateData)
    fields: list[tuple[str, Any, Any]] = []
    for declared in dataclasses.fields(StateData):
        kind: Any = hints[declared.name]
        default: Any
        if "key" in declared.metadata:
            kind, default = list.__class_getitem__(get_args(kind)[1]), msgspec.field(default_factory=list)
        elif declared.default_factory is not dataclasses.MISSING:
            default = msgspec.field(default_factory=declared.default_factory)
        else:
            default = msgspec.field(default=declared.default)
        fields.append((declared.name, kind, default))
    return fields


if TYPE_CHECKING:

    class Snapshot(msgspec.Struct):
        """The encoded state: `StateData`'s fields (made at run time from the declaration)."""

        def __init__(self, **fields: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

else:
    Snapshot = msgspec.defstruct("Snapshot", _snapshot_fields(), module=__name__)
