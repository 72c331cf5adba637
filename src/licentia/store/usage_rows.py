"""The usage table's rows: their fields, how a batch of them is inserted, and refusals coalesced.

A usage row is the tuple (origin, idx, seq, *USAGE_FIELDS): where in a log the usage record was made
(the journal's own index, or a triad's log entry and its origin), then the record's fields. The journal
writes its own rows through `RefusalCoalescer`, a triad member's rows as they are (`unwritten` leaves out
what a replay would write twice).
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Any

from licentia.core.model import UsageRecord
from licentia.store.usage_rollups import ROLLUP_COLUMNS, RollupRow

USAGE_FIELDS = tuple(UsageRecord.__struct_fields__)
_INSERT_USAGE = (
    f"INSERT OR IGNORE INTO usage (origin, idx, seq, {', '.join(USAGE_FIELDS)}) "
    f"VALUES (?, ?, ?{', ?' * len(USAGE_FIELDS)})"
)

_USAGE_ROWS_PER_INSERT = 256  # rows per INSERT statement (SQLite allows 32766 parameters)
COALESCE_WINDOW_S = 300.0  # a client's repeated refusals within this time of the first share one usage row
_COALESCE_OPEN_ROWS = 10_000  # rows kept open for coalescing at most (the oldest are closed first)


@functools.cache
def _insert_usage(rows: int) -> str:
    return _INSERT_USAGE + f", (?, ?, ?{', ?' * len(USAGE_FIELDS)})" * (rows - 1)


def insert_usage_rows(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int | None:
    """Insert usage rows a few hundred per statement (one SQLite step each, not one per row);
    the rowid of the last row inserted, if any."""
    last = None
    for start in range(0, len(rows), _USAGE_ROWS_PER_INSERT):
        chunk = rows[start : start + _USAGE_ROWS_PER_INSERT]
        last = conn.execute(_insert_usage(len(chunk)), [v for row in chunk for v in row]).lastrowid
    return last


def unwritten(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows not in the usage table yet (by their place in the log: origin, idx, seq)."""
    by_origin: dict[str, list[int]] = {}
    for origin, idx, _, *_ in rows:
        by_origin.setdefault(origin, []).append(idx)
    written = {
        (origin, idx, seq)
        for origin, indexes in by_origin.items()
        for idx, seq in conn.execute(
            "SELECT idx, seq FROM usage WHERE origin = ? AND idx BETWEEN ? AND ?", (origin, min(indexes), max(indexes))
        )
    }
    return [row for row in rows if (row[0], row[1], row[2]) not in written] if written else rows


FIELD_AT = {name: position for position, name in enumerate(USAGE_FIELDS, start=3)}  # in a usage_rows() tuple
_REFUSAL_KEY = tuple(
    FIELD_AT[name] for name in ("kind", "reason", "product", "client_host", "client_user", "application", "source_ip")
)
_ROLLUP_FIELDS = tuple(FIELD_AT[name] for name in ROLLUP_COLUMNS)


def rollup_row(row: tuple[Any, ...], at: float | None = None) -> RollupRow:
    """What the rollups count of a usage row (at `at` instead of the row's own time, if given)."""
    values = tuple(row[i] for i in _ROLLUP_FIELDS)
    return values if at is None else (at, *values[1:])  # type: ignore[return-value]


class RefusalCoalescer:
    """Writes usage rows so that a client's repeated refusals share one row with a count.

    A refused request whose kind, reason, product, declared client and source address match a refusal
    this server recorded less than COALESCE_WINDOW_S before adds its count to that row instead of
    adding a row; the row keeps the first request's time (and printer, lease). So a client retrying a
    refused request in a loop writes about one row per window, not one per request. Granted requests,
    lease end records (each ends its own lease, which the usage report needs) and rows taken from a
    backup partner are written as they are. A row already handed to a backup
    partner (`shared_up_to`) is not grown any more: the partner would never see the new count.
    """

    def __init__(self, window_s: float = COALESCE_WINDOW_S) -> None:
        self.window_s = window_s
        self.shared_up_to = 0
        self._open: dict[tuple[Any, ...], tuple[int, float]] = {}  # refusal key -> (row id, first time)
        self.grown: list[tuple[tuple[Any, ...], float]] = []  # rows `write` added to an earlier row, at its time

    def write(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int | None:
        """Insert or coalesce `rows` in order on `conn` (inside the caller's transaction); the id of the
        last of `rows` if it was inserted as a row of its own, else None."""
        last = None
        plain: list[tuple[Any, ...]] = []
        for row in rows:
            if row[FIELD_AT["granted"]] or row[FIELD_AT["server"]] or row[FIELD_AT["kind"]] == "checkin":
                plain.append(row)
                continue
            key = tuple(row[i] for i in _REFUSAL_KEY)
            at = row[FIELD_AT["at"]]
            opened = self._open.get(key)
            if opened is not None and opened[0] > self.shared_up_to and 0 <= at - opened[1] < self.window_s:
                grown = conn.execute(
                    "UPDATE usage SET count = count + ? WHERE id = ?", (row[FIELD_AT["count"]], opened[0])
                ).rowcount
                if grown:
                    self.grown.append((row, opened[1]))
                    last = None
                    continue
            insert_usage_rows(conn, plain)
            plain = []
            cursor = conn.execute(_insert_usage(1), row)
            last = cursor.lastrowid if cursor.rowcount else None
            if last:
                self._open[key] = (last, at)
                if len(self._open) > _COALESCE_OPEN_ROWS:
                    self._close_oldest()
        return insert_usage_rows(conn, plain) if plain else last

    def _close_oldest(self) -> None:
        by_age = sorted(self._open.items(), key=lambda item: item[1][1])
        self._open = dict(by_age[len(by_age) // 2 :])


def usage_rows(origin: str, idx: int, usage: list[UsageRecord]) -> list[tuple[Any, ...]]:
    """The rows of the usage records one log entry (`idx` of `origin`) made, in order."""
    return [(origin, idx, seq, *(getattr(record, name) for name in USAGE_FIELDS)) for seq, record in enumerate(usage)]


def usage_record(values: tuple[Any, ...]) -> UsageRecord:
    """The usage record of a row's USAGE_FIELDS values (as read from the table)."""
    fields = dict(zip(USAGE_FIELDS, values, strict=True))
    fields["granted"] = bool(fields["granted"])
    present: dict[str, Any] = {name: value if value is not None else "" for name, value in fields.items()}
    return UsageRecord(**present)
