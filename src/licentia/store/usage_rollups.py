"""Quarter-hour, hourly and daily rollups of the usage log, kept up to date as its rows are written.

A usage report over 90 days reads a few thousand rollup rows, not the log: its cost is the same at
10k and at 10M usage rows. Each rollup row (a "cell") is one series in one quarter hour (`usage_quarter`),
hour (`usage_hourly`) or UTC day (`usage_daily`):

- `printers`: printers in use. A printer's use starts with a granted print check when it was not in
  use, and ends a printer window after its last granted print check (the window is a setting; the
  rollups remember the one they were built with and are rebuilt when it changes);
- `seats` (one per product) and `seats_total`: seat leases held, from a granted checkout to the lease's
  end record (kind "checkin": checked in, revoked, reclaimed after expiry, license removed);
- `denials` (one per reason): refused print checks and checkouts, with their coalesced counts.

A cell holds `net`, the change of the count over its hour or day, and `peak`, the highest the count
rose above its value at the cell's start (at equal times ends count before starts, as in
`usage_report.peaks`). So the count at any whole hour is the sum of the `net` of every cell before it,
and a bucket's peak is the highest "count at a cell's start + its peak" of the cells in it. For this to
be exact, the events of a series must reach its cells in time order: rows are applied in the order of
their times, and a row older than the newest applied (`through`) marks the rollups stale from that
day on (`dirty_since`); the next report rebuilds them from that day (`RollupRebuild`) before it reads
them. Printer ends are not rows: the printers in use and their last grant are kept in `printer_use`,
and an end is applied once a later print check, or a report, passes it.

Reports read whole hours (or days); an hour a bucket's edge cuts is read as its four quarter hours, so
that a report in a time zone 30 or 45 minutes from UTC (every zone's offset is a multiple of 15 minutes)
reads no usage rows, and only a quarter hour an edge cuts (a range from "now") is read from its rows.
Rollups of an earlier version have no quarter hours: they are rebuilt once from the first day their rows
determine (`RollupState.quarters_from` says from when the quarter hours are complete).

Everything here runs inside the caller's SQLite transaction (the journal's usage writing paths and
the rebuild), so the rollups always agree with the rows written.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from licentia.core.model import Lease
from licentia.store.usage_report import BUCKET_SECONDS, UsageReport, assemble_report, bucket_count

QUARTER = 900.0
HOUR = 3600.0
DAY = 86400.0
GRAINS = (("usage_quarter", QUARTER), ("usage_hourly", HOUR), ("usage_daily", DAY))
PRINTERS, SEATS, SEATS_TOTAL, DENIALS = "printers", "seats", "seats_total", "denials"
DENIAL_KINDS = ("print", "checkout")  # refused requests that count as denials (not lost heartbeats)
LEASE_LOOKBACK_S = 7 * 86400.0  # a product is listed when one of its leases started or ended this long before

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage_quarter (start REAL NOT NULL, series TEXT NOT NULL, key TEXT NOT NULL,
    net INTEGER NOT NULL, peak INTEGER NOT NULL, PRIMARY KEY (start, series, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage_hourly (start REAL NOT NULL, series TEXT NOT NULL, key TEXT NOT NULL,
    net INTEGER NOT NULL, peak INTEGER NOT NULL, PRIMARY KEY (start, series, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage_daily (start REAL NOT NULL, series TEXT NOT NULL, key TEXT NOT NULL,
    net INTEGER NOT NULL, peak INTEGER NOT NULL, PRIMARY KEY (start, series, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS printer_use (printer_id TEXT PRIMARY KEY, last_at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS printer_use_last ON printer_use (last_at);
"""

# The columns of a usage row the rollups read, in this order (a `RollupRow`).
ROLLUP_COLUMNS = ("at", "kind", "granted", "reason", "product", "printer_id", "lease_id", "count")
RollupRow = tuple[float, str, int, str, str, str, str, int]
Event = tuple[float, int, str, str]  # (time, change, series, key)
CellKey = tuple[str, float, str, str]  # (table, start, series, key)


def cell_start(at: float, grain: float) -> float:
    return math.floor(at / grain) * grain


@dataclass
class RollupState:
    """Where the rollups stand; changed only under the journal's write lock, saved in `meta`."""

    window_s: float | None = None  # the printer window they were built with; None: never built
    through: float = -math.inf  # the newest row time applied
    dirty_since: float | None = None  # a row older than `through` was written: stale from this time on
    rebuild_from: float | None = None  # a rebuild from this time is under way (saved: a restart redoes it)
    rebuild_cursor: tuple[float, int] | None = None  # the rebuild has applied the rows up to (at, id)
    # The quarter-hour cells are complete for the hours from this time on (-inf: all; a database of an earlier
    # version gets them from a rebuild, `adding_quarters` meanwhile).
    quarters_from: float = math.inf
    adding_quarters: bool = False
    # The cells written last, as the database has them (the current hour and day): a write reads no cell
    # back that it wrote itself. A rollback starts from a state loaded anew, with none.
    cells: dict[CellKey, list[int]] = field(default_factory=dict, repr=False)
    _saved: tuple[object, ...] = field(default=(), repr=False)

    @classmethod
    def load(cls, conn: sqlite3.Connection) -> RollupState:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'usage_rollup_%'").fetchall())
        window = meta.get("usage_rollup_window_s")
        state = cls(window_s=float(window) if window is not None else None,
                    through=float(meta.get("usage_rollup_through", "-inf")))
        for name in ("usage_rollup_dirty_since", "usage_rollup_rebuild_from"):  # an unfinished rebuild is redone
            if name in meta:
                state.mark_dirty(float(meta[name]))
        quarters = meta.get("usage_rollup_quarters_from")
        if quarters is not None:
            state.quarters_from = float(quarters)
        unfinished = "usage_rollup_rebuild_from" in meta
        state._saved = () if unfinished else (state.window_s, state.dirty_since, None, state.quarters_from)
        if quarters is None and state.window_s is not None:
            state._plan_quarters(conn)
        return state

    def _plan_quarters(self, conn: sqlite3.Connection) -> None:
        """Rollups of an earlier version, without quarter hours: rebuild them from the first day the rows
        determine exactly (a printer window after the oldest row: older rows may have been pruned, and the
        cells before that day are kept as they are); a log shorter than that gets them from the next hour on."""
        assert self.window_s is not None
        (oldest,) = conn.execute("SELECT MIN(at) FROM usage").fetchone()
        if oldest is None or not math.isfinite(self.through):
            self.quarters_from = cell_start(self.through, HOUR) + HOUR if math.isfinite(self.through) else -math.inf
            return
        since = cell_start(oldest + self.window_s, DAY) + DAY
        if since <= cell_start(self.through, DAY):
            self.mark_dirty(since)
            self.adding_quarters = True
        else:
            self.quarters_from = cell_start(self.through, HOUR) + HOUR

    def save(self, conn: sqlite3.Connection) -> None:
        saved = (self.window_s, self.dirty_since, self.rebuild_from, self.quarters_from)
        if saved == self._saved:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('usage_rollup_through', ?)",
                         (repr(self.through),))
            return
        self._saved = saved
        values = {"usage_rollup_through": repr(self.through)}
        if self.window_s is not None:
            values["usage_rollup_window_s"] = repr(self.window_s)
            values["usage_rollup_quarters_from"] = repr(self.quarters_from)
        for name, value in (("usage_rollup_dirty_since", self.dirty_since),
                            ("usage_rollup_rebuild_from", self.rebuild_from)):
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (name,))
            else:
                values[name] = repr(value)
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())

    def mark_dirty(self, at: float) -> None:
        self.dirty_since = at if self.dirty_since is None else min(self.dirty_since, at)

    def current(self, window_s: float) -> bool:
        """Whether reports may read the rollups as they are for this printer window."""
        return self.window_s == window_s and self.dirty_since is None and self.rebuild_from is None


class _Cells:
    """The cells a transaction changes, read once from the database and written back by `flush`."""

    def __init__(self, conn: sqlite3.Connection, known: dict[CellKey, list[int]]) -> None:
        self.conn = conn
        self.known = known  # cells as the database has them before this transaction (`RollupState.cells`)
        self.cells: dict[CellKey, list[int]] = {}

    def add(self, at: float, change: int, series: str, key: str) -> None:
        for table, grain in GRAINS:
            start = cell_start(at, grain)
            name = (table, start, series, key)
            cell = self.cells.get(name)
            if cell is None:
                row = self.known.get(name) or self.conn.execute(
                    f"SELECT net, peak FROM {table} WHERE start = ? AND series = ? AND key = ?", (start, series, key)
                ).fetchone()
                cell = self.cells[name] = list(row) if row else [0, 0]
            add_event(cell, at == start, change)

    def flush(self) -> None:
        """Write the changed cells; they are what `known` holds next (the newest ones only: the current hour
        and day are the ones the next writes change)."""
        for table, _ in GRAINS:
            rows = [(start, series, key, *cell) for (t, start, series, key), cell in self.cells.items() if t == table]
            if rows:
                self.conn.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?)", rows)
        if len(self.known) + len(self.cells) > 384:
            self.known.clear()
        self.known.update((name, list(cell)) for name, cell in self.cells.items())


def add_event(cell: list[int], at_start: bool, change: int) -> None:
    """Apply one event to a cell [net, peak]: events at the cell's very start come first and are all
    applied before the count is first looked at, so they set the peak; later ones can only raise it."""
    cell[0] += change
    if at_start or cell[0] > cell[1]:
        cell[1] = cell[0]


class _PrinterUse:
    """Printers in use (`printer_use`) as a transaction changes them, with the ends it passes."""

    def __init__(self, conn: sqlite3.Connection, window_s: float, horizon: float) -> None:
        self.conn, self.window_s = conn, window_s
        self.last: dict[str, float | None] = {}  # changed in this transaction; None: no longer in use
        self.ends = [
            (last + window_s, printer)
            for printer, last in conn.execute(
                "SELECT printer_id, last_at FROM printer_use WHERE last_at < ?", (horizon - window_s,)
            )
        ]
        heapq.heapify(self.ends)

    def _last_of(self, printer: str) -> float | None:
        if printer in self.last:
            return self.last[printer]
        row = self.conn.execute("SELECT last_at FROM printer_use WHERE printer_id = ?", (printer,)).fetchone()
        return float(row[0]) if row else None

    def grant(self, at: float, printer: str, events: list[Event]) -> None:
        """A granted print check: the ends before it happen first; then the printer starts or extends its use."""
        while self.ends and self.ends[0][0] < at:
            end, other = heapq.heappop(self.ends)
            last = self._last_of(other)
            if last is not None and last + self.window_s == end:
                events.append((end, -1, PRINTERS, ""))
                self.last[other] = None
        last = self._last_of(printer)
        if last is None:
            events.append((at, 1, PRINTERS, ""))
        elif at < last:  # an older grant of a printer in use changes nothing (rows are applied in order)
            return
        self.last[printer] = at
        heapq.heappush(self.ends, (at + self.window_s, printer))

    def flush(self) -> None:
        gone = [(printer,) for printer, last in self.last.items() if last is None]
        kept = [(printer, last) for printer, last in self.last.items() if last is not None]
        if gone:
            self.conn.executemany("DELETE FROM printer_use WHERE printer_id = ?", gone)
        if kept:
            self.conn.executemany("INSERT OR REPLACE INTO printer_use VALUES (?, ?)", kept)


def apply_rows(
    conn: sqlite3.Connection, state: RollupState, rows: Sequence[RollupRow], *, counts_only: Sequence[RollupRow] = ()
) -> None:
    """Bring the rollups up to date with usage rows just written on `conn` (in the same transaction).

    `counts_only` are refusals whose count was added to a row written earlier (coalesced): only their
    denial counts change. Rows older than the newest applied mark the rollups stale (see the module's
    docstring); while a rebuild runs it applies the rows itself, and rows it has passed mark them stale.
    """
    if state.window_s is None:
        return
    if state.rebuild_from is not None:
        assert state.rebuild_cursor is not None
        older = [row[0] for row in (*rows, *counts_only) if row[0] < state.rebuild_cursor[0]]
        if older:
            state.mark_dirty(min(older))
        return
    cells = _Cells(conn, state.cells)
    for row in counts_only:
        _count_denial(cells, row)
    ordered = sorted(rows, key=lambda row: row[0])
    late = [row for row in ordered if row[0] < state.through]
    if late:
        state.mark_dirty(late[0][0])
    _apply_in_order(conn, state, cells, [row for row in ordered if row[0] >= state.through], late)
    cells.flush()
    state.save(conn)


def _count_denial(cells: _Cells, row: RollupRow) -> None:
    at, kind, granted, reason, _, _, _, count = row
    if not granted and kind in DENIAL_KINDS:
        cells.add(at, count, DENIALS, reason)


def _apply_in_order(
    conn: sqlite3.Connection, state: RollupState, cells: _Cells, rows: Sequence[RollupRow],
    late: Sequence[RollupRow] = (),
) -> None:
    """Apply rows sorted by time, none older than `state.through` (the late ones only add their denials)."""
    assert state.window_s is not None
    for row in late:
        _count_denial(cells, row)
    if not rows:
        return
    events: list[Event] = []
    printers = _PrinterUse(conn, state.window_s, rows[-1][0])
    for row in rows:
        at, kind, granted, _, product, printer_id, lease_id, _ = row
        if kind == "print" and granted:
            printers.grant(at, printer_id, events)
        elif lease_id and kind == "checkout" and granted:
            events += [(at, 1, SEATS, product), (at, 1, SEATS_TOTAL, "")]
        elif lease_id and kind == "checkin":
            events += [(at, -1, SEATS, product), (at, -1, SEATS_TOTAL, "")]
        _count_denial(cells, row)
    events.sort(key=lambda event: (event[0], event[1]))
    for at, change, series, key in events:
        cells.add(at, change, series, key)
    printers.flush()
    state.through = max(state.through, rows[-1][0])


# -- rebuilding ----------------------------------------------------------------------------------

REBUILD_ROWS_PER_TRANSACTION = 500  # rows a rebuild applies per transaction (the write lock is held meanwhile)


@dataclass
class RollupRebuild:
    """Rebuild the rollups from `since` (a day's start; -inf: all of them) with `window_s`, a
    transaction at a time (`step`), so that the journal's writes wait a few milliseconds at most."""

    window_s: float
    since: float
    rows: int = 0
    cursor: tuple[float, int] = (-math.inf, 0)
    done: bool = False
    _started: bool = field(default=False, repr=False)

    def step(self, conn: sqlite3.Connection, state: RollupState) -> None:
        if not self._started:
            self._begin(conn, state)
            return
        at, last_id = self.cursor
        columns = ", ".join(ROLLUP_COLUMNS)
        rows = conn.execute(
            f"SELECT {columns}, id FROM usage WHERE at >= ? AND (at > ? OR id > ?) ORDER BY at, id LIMIT ?",
            (at, at, last_id, REBUILD_ROWS_PER_TRANSACTION),
        ).fetchall()
        cells = _Cells(conn, state.cells)
        _apply_in_order(conn, state, cells, [row[:-1] for row in rows])
        cells.flush()
        self.rows += len(rows)
        if rows:
            self.cursor = state.rebuild_cursor = (rows[-1][0], rows[-1][-1])
        if len(rows) < REBUILD_ROWS_PER_TRANSACTION:
            state.rebuild_from = state.rebuild_cursor = None
            self.done = True
        state.save(conn)

    def _begin(self, conn: sqlite3.Connection, state: RollupState) -> None:
        """Drop the cells from `since` on and set `printer_use` to the printers in use just before it: those
        with a print check in the window before it, and those whose use ended before it with no print check
        since to apply the end (it is in no cell yet; the report or the next print check applies it)."""
        self._started = True
        since = self.since
        for table, _ in GRAINS:
            conn.execute(f"DELETE FROM {table} WHERE start >= ?", (since,))
        state.cells.clear()
        if since > -math.inf:  # the same printer window (another one rebuilds everything)
            conn.execute("DELETE FROM printer_use WHERE last_at >= ?", (since - self.window_s,))
            conn.execute(
                "INSERT OR REPLACE INTO printer_use SELECT printer_id, MAX(at) FROM usage "
                "WHERE kind = 'print' AND granted = 1 AND at >= ? AND at < ? GROUP BY printer_id",
                (since - self.window_s, since),
            )
        else:
            conn.execute("DELETE FROM printer_use")
        self.cursor = (since, 0) if since > -math.inf else (-math.inf, 0)
        state.window_s = self.window_s
        state.quarters_from = min(state.quarters_from, since)
        state.through = since
        state.dirty_since = None
        state.rebuild_from, state.rebuild_cursor = since, self.cursor
        state.save(conn)


def rebuild_start(state: RollupState, window_s: float) -> float:
    """Where a rebuild must start: the day of the oldest stale row, or the beginning for another window."""
    if state.window_s != window_s or state.window_s is None:
        return -math.inf
    if state.dirty_since is None:
        return math.inf
    return cell_start(state.dirty_since, DAY) if math.isfinite(state.dirty_since) else -math.inf


# -- reading -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    start: float
    net: int
    peak: int


Series = tuple[str, str]  # (series, key)


def split_hours(edges: Sequence[float], stop: float) -> dict[float, list[float]]:
    """The hours a report's bucket edge falls inside (not on their start), each with the edges in it, up
    to `stop`: the hourly rollups cannot tell which side of such an edge an hour's events are; its quarter
    hours can when the edge is on one, and the rows always can."""
    split: dict[float, list[float]] = defaultdict(list)
    for edge in edges:
        if edge <= stop and edge % HOUR:
            split[cell_start(edge, HOUR)].append(edge)
    return split


# A printer's use starts with a grant with none in the printer window before it, and ends a window after a
# grant with none in the window after it; the window is at least a day (settings), so a printer starts and
# ends its use at most once in a piece (an hour at most). Each query reads the piece's rows and looks up one
# grant per printer by the (printer_id, at) index.
_GRANTS = "kind = 'print' AND granted = 1"
_PRINTER_STARTS = f"""
SELECT first FROM (
    SELECT printer_id, MIN(at) AS first FROM usage WHERE {_GRANTS} AND at >= :start AND at < :end GROUP BY printer_id
) AS used WHERE NOT EXISTS (
    SELECT 1 FROM usage WHERE printer_id = used.printer_id AND at >= used.first - :window AND at < :start AND {_GRANTS}
)"""
_PRINTER_ENDS = f"""
SELECT last + :window FROM (
    SELECT printer_id, MAX(at) AS last FROM usage
    WHERE {_GRANTS} AND at >= :start - :window AND at < :end - :window GROUP BY printer_id
) AS used WHERE last + :window < :as_of AND NOT EXISTS (
    SELECT 1 FROM usage WHERE printer_id = used.printer_id AND at > used.last AND at <= used.last + :window
    AND {_GRANTS}
)"""


def piece_events(
    conn: sqlite3.Connection, starts: list[float], end: float, window_s: float, as_of: float, series: set[str]
) -> list[Event]:
    """The events of the piece [starts[0], end) (an hour or a quarter hour) of `series`, read from the usage
    rows as the rollups count them: seat checkouts and ends, and printers starting and ending their use (ends
    from `as_of` on are left out, as the rollups leave them); denials counted per part of the piece from each
    of `starts`, at its start. Reads the piece's rows and the print checks a printer window before it."""
    begin = starts[0]
    events: list[Event] = []
    if series & {SEATS, SEATS_TOTAL}:
        for at, kind, product in conn.execute(
            "SELECT at, kind, product FROM usage WHERE at >= ? AND at < ? AND lease_id != '' "
            "AND ((kind = 'checkout' AND granted = 1) OR kind = 'checkin')",
            (begin, end),
        ):
            change = 1 if kind == "checkout" else -1
            events += [(at, change, SEATS, product), (at, change, SEATS_TOTAL, "")]
    if DENIALS in series:
        cases = " ".join(f"WHEN at >= {start!r} THEN {start!r}" for start in reversed(starts[1:]))
        part = f"CASE {cases} ELSE {begin!r} END" if cases else repr(begin)
        events += [
            (start, count, DENIALS, reason)
            for start, reason, count in conn.execute(
                f"SELECT {part} AS part, reason, SUM(count) FROM usage "
                f"WHERE at >= ? AND at < ? AND granted = 0 AND kind IN {DENIAL_KINDS} GROUP BY part, reason",
                (begin, end),
            )
        ]
    if PRINTERS in series:
        bounds = {"start": begin, "end": end, "window": window_s, "as_of": as_of}
        events += [(at, 1, PRINTERS, "") for (at,) in conn.execute(_PRINTER_STARTS, bounds)]
        events += [(at, -1, PRINTERS, "") for (at,) in conn.execute(_PRINTER_ENDS, bounds)]
    return events


def split_cells(
    conn: sqlite3.Connection, cells: dict[Series, dict[float, list[int]]], piece: float, length: float,
    edges: list[float], window_s: float, as_of: float,
) -> None:
    """Replace each series' cell of the piece [piece, piece + length) (an hour or a quarter hour) by one cell
    per part of it between `edges`, from the rows. Only the series with a cell there are read: the rollups
    hold every event the rows hold, so a series with no cell had nothing in the piece.

    The piece's net change stays the cell's: where the rows miss some of its events (rows older than the
    usage retention are pruned; the rollups keep them), the difference is put in the piece's first part,
    so that the counts after it stay exact."""
    present = {name for name, by_start in cells.items() if piece in by_start}
    if not present:
        return
    starts = [piece, *sorted(edges)]
    parts: dict[Series, dict[float, list[int]]] = defaultdict(dict)
    events = piece_events(conn, starts, piece + length, window_s, as_of, {series for series, _ in present})
    for at, change, series, key in sorted(events, key=lambda e: (e[0], e[1])):
        start = starts[bisect.bisect_right(starts, at) - 1]
        add_event(parts[(series, key)].setdefault(start, [0, 0]), at == start, change)
    for name in present | parts.keys():
        whole = cells[name].pop(piece, None)
        split = parts.pop(name, {})
        missing = (whole[0] if whole else 0) - sum(net for net, _ in split.values())
        if missing:
            first = split.setdefault(piece, [0, 0])
            first[0] += missing
            first[1] = max(first[1], first[0])
        cells[name].update(split)


def rollup_report(
    conn: sqlite3.Connection,
    held: Iterable[Lease],
    *,
    since: float,
    until: float,
    bucket: str,
    as_of: float,
    window_s: float,
    quarters_from: float,
) -> UsageReport:
    """The usage report (as `usage_report.usage_report` computes it from the rows) from the rollups, read on
    `conn`, inside a read transaction the caller opened once it saw the rollups current for `window_s` (and
    their quarter hours complete from `quarters_from` on).

    Whole hours (or UTC days) come from the rollups; an hour with a bucket's edge inside it (a range or
    buckets that do not start on a whole hour) from its quarter hours, and a quarter hour with an edge inside
    it (or an hour before `quarters_from`) from its usage rows (`split_cells`): a report reads the rows of at
    most a quarter hour per edge, and none for edges on quarter hours."""
    bucket_s = BUCKET_SECONDS[bucket]
    stop = min(until, as_of)
    edges = [min(since + i * bucket_s, until) for i in range(bucket_count(since, stop, bucket_s) + 1)]
    split = split_hours(edges, stop)
    quartered = {hour for hour in split if hour >= quarters_from}
    daily = not split and bucket == "day" and since % DAY == 0 and (until % DAY == 0 or until >= as_of)
    table, grain = ("usage_daily", DAY) if daily else ("usage_hourly", HOUR)
    first = cell_start(since, grain)
    day = cell_start(since, DAY)
    base: dict[Series, int] = defaultdict(int)
    for series, key, net in itertools.chain(
        conn.execute("SELECT series, key, SUM(net) FROM usage_daily WHERE start < ? GROUP BY series, key", (day,)),
        conn.execute(
            "SELECT series, key, SUM(net) FROM usage_hourly WHERE start >= ? AND start < ? GROUP BY series, key",
            (day, first),
        ),
    ):
        base[(series, key)] += net
    cells: dict[Series, dict[float, list[int]]] = defaultdict(dict)
    for start, series, key, net, peak in conn.execute(
        f"SELECT start, series, key, net, peak FROM {table} WHERE start >= ? AND start < ? ORDER BY start",
        (first, stop),
    ):
        if start not in quartered:
            cells[(series, key)][start] = [net, peak]
    for hour in sorted(quartered):  # the same events as the hour's cells, by quarter hour
        for start, series, key, net, peak in conn.execute(
            "SELECT start, series, key, net, peak FROM usage_quarter WHERE start >= ? AND start < ?",
            (hour, min(hour + HOUR, stop)),
        ):
            cells[(series, key)][start] = [net, peak]
    # Printer ends no print check has passed yet (no printer was used since): applied here.
    for (last,) in conn.execute(
        "SELECT last_at FROM printer_use WHERE last_at < ? ORDER BY last_at", (as_of - window_s,)
    ):
        end = last + window_s
        if end < first:
            base[(PRINTERS, "")] -= 1
        elif end < stop:
            start = cell_start(end, QUARTER if cell_start(end, HOUR) in quartered else grain)
            add_event(cells[(PRINTERS, "")].setdefault(start, [0, 0]), end == start, -1)
    for hour, inside in split.items():
        if hour not in quartered:
            split_cells(conn, cells, hour, HOUR, inside, window_s, as_of)
            continue
        cut: dict[float, list[float]] = defaultdict(list)
        for edge in inside:
            if edge % QUARTER:
                cut[cell_start(edge, QUARTER)].append(edge)
        for quarter, within in cut.items():
            split_cells(conn, cells, quarter, QUARTER, within, window_s, as_of)
    products = _products(conn, since, until, quarters_from) | {lease.product for lease in held}

    def peaks(series: str, key: str) -> list[int]:
        ordered = sorted(cells.get((series, key), {}).items())
        count, i, result = base.get((series, key), 0), 0, []
        for low, high in itertools.pairwise(edges):
            while i < len(ordered) and ordered[i][0] < low:
                count += ordered[i][1][0]
                i += 1
            peak = None if i < len(ordered) and ordered[i][0] == low else count
            while i < len(ordered) and ordered[i][0] < high:
                net, cell_peak = ordered[i][1]
                peak = count + cell_peak if peak is None else max(peak, count + cell_peak)
                count += net
                i += 1
            result.append(count if peak is None else peak)
        return result

    printers = peaks(PRINTERS, "")
    seats = {product: peaks(SEATS, product) for product in sorted(products)}
    seats_total = peaks(SEATS_TOTAL, "")
    refused: list[dict[str, int]] = [defaultdict(int) for _ in edges[1:]]
    for (series, reason), by_start in cells.items():
        if series != DENIALS:
            continue
        for start, (count, _) in by_start.items():
            index = bisect.bisect_right(edges, start) - 1  # a piece starts on its edge: no rounding across it
            if 0 <= index < len(refused) and count:
                refused[index][reason] += count
    return assemble_report(since, until, bucket, bucket_s, as_of, edges, printers, seats_total, seats, refused)


_SEAT_PRODUCTS = (
    "SELECT DISTINCT product FROM usage WHERE at >= ? AND at < ? AND lease_id != '' "
    "AND ((kind = 'checkout' AND granted = 1) OR kind = 'checkin')"
)


def _products(conn: sqlite3.Connection, since: float, until: float, quarters_from: float) -> set[str]:
    """The products with a seat lease started or ended from LEASE_LOOKBACK_S before `since` to `until`: the
    whole hours from the hourly rollups, the whole quarter hours of the hours cut at either end from the
    quarter-hour rollups (from `quarters_from` on), what is left of them from the rows."""
    low = since - LEASE_LOOKBACK_S
    inner_low, inner_high = math.ceil(low / HOUR) * HOUR, cell_start(until, HOUR)
    products = {
        key for (key,) in conn.execute(
            "SELECT DISTINCT key FROM usage_hourly WHERE series = ? AND start >= ? AND start < ?",
            (SEATS, inner_low, inner_high),
        )
    }
    for a, b in ((low, min(inner_low, until)), (max(inner_high, low), until)):
        if a >= b:
            continue
        rows = [(a, b)]
        quarter_low, quarter_high = math.ceil(a / QUARTER) * QUARTER, cell_start(b, QUARTER)
        if cell_start(a, HOUR) >= quarters_from and quarter_low <= quarter_high:
            products |= {
                key for (key,) in conn.execute(
                    "SELECT DISTINCT key FROM usage_quarter WHERE series = ? AND start >= ? AND start < ?",
                    (SEATS, quarter_low, quarter_high),
                )
            }
            rows = [(a, quarter_low), (quarter_high, b)]
        for x, y in rows:
            if x < y:
                products |= {key for (key,) in conn.execute(_SEAT_PRODUCTS, (x, y))}
    return products
