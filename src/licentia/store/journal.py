"""SQLite persistence around the core: a command journal, snapshots and the usage log.

Every command that changed state is appended to the journal together with the
usage records it produced, in one transaction, before its request is answered.
Commands that arrive while a transaction is being written are committed
together in the next one (group commit), so durability costs one fsync per
batch, not per request. On start the latest snapshot is loaded and the journal
after it is replayed through the same core.

Snapshots are not written by the event loop: every `snapshot_every` commands, at a moment when
everything applied is durable, a forked child writes the state as it was at the fork to the snapshot
file beside the database (`store.snapshot_file`), and only once that file is on disk are the journal's
commands up to its index deleted. A crash at any point of that leaves the previous snapshot with the
whole journal after it, or the new one. The WAL is checkpointed by a worker thread (passively, so that
it never waits for the loop's writes); should it still reach WAL_SIZE_LIMIT under a steady stream of
writes, the next commit finishes the checkpoint, which lets the WAL start over, cut back to that size.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from licentia.core.commands import Command, decode_command, encode_command
from licentia.core.model import Lease, UsageRecord
from licentia.core.state import LicenseState, Snapshot
from licentia.store.forked_write import ForkedWrite, ForkedWriteFailed
from licentia.store.private_file import write_private
from licentia.store.snapshot_file import read_snapshot_file, snapshot_chunks, snapshot_path
from licentia.store.usage_report import DenialCount, UsageReport
from licentia.store.usage_rollups import (
    DENIAL_KINDS,
    LEASE_LOOKBACK_S,
    ROLLUP_COLUMNS,
    RollupRebuild,
    RollupRow,
    RollupState,
    apply_rows,
    rebuild_start,
    rollup_report,
    rollups_answer,
)
from licentia.store.usage_rollups import SCHEMA as ROLLUP_SCHEMA

log = logging.getLogger("licentia.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (idx INTEGER PRIMARY KEY, at REAL NOT NULL, command BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT, origin TEXT NOT NULL DEFAULT '', idx INTEGER NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL, kind TEXT NOT NULL,
    granted INTEGER NOT NULL, reason TEXT NOT NULL, product TEXT, license_id TEXT, printer_id TEXT,
    printer_name TEXT, lease_id TEXT, client_host TEXT, client_user TEXT, application TEXT, source_ip TEXT,
    server TEXT NOT NULL DEFAULT '', count INTEGER NOT NULL DEFAULT 1);
CREATE UNIQUE INDEX IF NOT EXISTS usage_entry ON usage (origin, idx, seq);
CREATE INDEX IF NOT EXISTS usage_at ON usage (at);
CREATE INDEX IF NOT EXISTS usage_printer ON usage (printer_id, at);
CREATE INDEX IF NOT EXISTS usage_client ON usage (client_host, at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

USAGE_FIELDS = tuple(UsageRecord.__struct_fields__)
_INSERT_USAGE = (
    f"INSERT OR IGNORE INTO usage (origin, idx, seq, {', '.join(USAGE_FIELDS)}) "
    f"VALUES (?, ?, ?{', ?' * len(USAGE_FIELDS)})"
)


_USAGE_ROWS_PER_INSERT = 256  # rows per INSERT statement (SQLite allows 32766 parameters)
COALESCE_WINDOW_S = 300.0  # a client's repeated refusals within this time of the first share one usage row
_COALESCE_OPEN_ROWS = 10_000  # rows kept open for coalescing at most (the oldest are closed first)
PRUNE_ROWS_PER_TRANSACTION = 5000
USAGE_DRAIN_DELAY_S = 0.02  # a triad member's usage rows are in its Raft log first; the SQLite copy may lag
JOURNAL_ROWS_PER_DELETE = 2000  # journal rows deleted per transaction after a snapshot
WAL_CHECKPOINT_EVERY_S = 1.0  # at most this often, after writes, a worker thread checkpoints the WAL
WAL_SIZE_LIMIT = 16 * 1024 * 1024  # the WAL's bound: a commit checkpoints past it; cut back to it when it restarts


@functools.cache
def _insert_journal(rows: int) -> str:
    return "INSERT INTO journal (idx, at, command) VALUES " + ", ".join(["(?, ?, ?)"] * rows)


@functools.cache
def _insert_usage(rows: int) -> str:
    return _INSERT_USAGE + f", (?, ?, ?{', ?' * len(USAGE_FIELDS)})" * (rows - 1)


def _insert_usage_rows(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int | None:
    """Insert usage rows a few hundred per statement (one SQLite step each, not one per row);
    the rowid of the last row inserted, if any."""
    last = None
    for start in range(0, len(rows), _USAGE_ROWS_PER_INSERT):
        chunk = rows[start : start + _USAGE_ROWS_PER_INSERT]
        last = conn.execute(_insert_usage(len(chunk)), [v for row in chunk for v in row]).lastrowid
    return last


def _unwritten(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
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


_FIELD = {name: position for position, name in enumerate(USAGE_FIELDS, start=3)}  # in a usage_rows() tuple
_REFUSAL_KEY = tuple(
    _FIELD[name] for name in ("kind", "reason", "product", "client_host", "client_user", "application", "source_ip")
)
_ROLLUP_FIELDS = tuple(_FIELD[name] for name in ROLLUP_COLUMNS)


def _rollup_row(row: tuple[Any, ...], at: float | None = None) -> RollupRow:
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
            if row[_FIELD["granted"]] or row[_FIELD["server"]] or row[_FIELD["kind"]] == "checkin":
                plain.append(row)
                continue
            key = tuple(row[i] for i in _REFUSAL_KEY)
            at = row[_FIELD["at"]]
            opened = self._open.get(key)
            if opened is not None and opened[0] > self.shared_up_to and 0 <= at - opened[1] < self.window_s:
                grown = conn.execute(
                    "UPDATE usage SET count = count + ? WHERE id = ?", (row[_FIELD["count"]], opened[0])
                ).rowcount
                if grown:
                    self.grown.append((row, opened[1]))
                    last = None
                    continue
            _insert_usage_rows(conn, plain)
            plain = []
            cursor = conn.execute(_insert_usage(1), row)
            last = cursor.lastrowid if cursor.rowcount else None
            if last:
                self._open[key] = (last, at)
                if len(self._open) > _COALESCE_OPEN_ROWS:
                    self._close_oldest()
        return _insert_usage_rows(conn, plain) if plain else last

    def _close_oldest(self) -> None:
        by_age = sorted(self._open.items(), key=lambda item: item[1][1])
        self._open = dict(by_age[len(by_age) // 2 :])


def usage_rows(origin: str, idx: int, usage: list[UsageRecord]) -> list[tuple[Any, ...]]:
    return [(origin, idx, seq, *(getattr(record, name) for name in USAGE_FIELDS)) for seq, record in enumerate(usage)]


def _usage_record(values: tuple[Any, ...]) -> UsageRecord:
    fields = dict(zip(USAGE_FIELDS, values, strict=True))
    fields["granted"] = bool(fields["granted"])
    present: dict[str, Any] = {name: value if value is not None else "" for name, value in fields.items()}
    return UsageRecord(**present)


class JournalFailure(RuntimeError):
    """The journal could not make a command durable; the in-memory state can no longer be trusted."""


class UsageQuery(msgspec.Struct, forbid_unknown_fields=True):
    failed_only: bool = False
    kind: str | None = None
    printer_id: str | None = None
    client_host: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    offset: int = 0
    before: int | None = None  # keyset paging: only rows with a smaller id (the `next` of the previous page)


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    # The checkpoint thread copies the WAL into the database; a commit checkpoints (on the loop) only when the
    # WAL still reaches WAL_SIZE_LIMIT, and then has little left to copy.
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_SIZE_LIMIT // 4096}")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    return conn


class SqliteJournal:
    def __init__(self, path: Path, *, synchronous: str = "FULL", snapshot_every: int = 10_000) -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self.path = path
        self.snapshot_file = snapshot_path(path)
        self.snapshot_every = snapshot_every
        self._synchronous = synchronous
        self._writer = _connect(path, synchronous)
        self._writer.executescript(SCHEMA)
        self._writer.executescript(ROLLUP_SCHEMA)
        columns = {row[1] for row in self._writer.execute("PRAGMA table_info(usage)")}
        if "server" not in columns:
            self._writer.execute("ALTER TABLE usage ADD COLUMN server TEXT NOT NULL DEFAULT ''")
        if "count" not in columns:
            self._writer.execute("ALTER TABLE usage ADD COLUMN count INTEGER NOT NULL DEFAULT 1")
        self.refusals = RefusalCoalescer()
        self.rollups = RollupState.load(self._writer)
        self._rollup_task: asyncio.Task[None] | None = None
        # The newest usage row this server recorded itself; a backup partner has all of them once its
        # usage cursor reaches this id.
        self.own_usage_id = self._last_own_usage_id(self._writer)
        self._reader = _connect(path, synchronous)
        self._reader_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="licentia-journal")
        self._checkpointer = _connect(path, synchronous)
        self._checkpoint_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="licentia-wal")
        self._checkpoint_due = 0.0
        self._checkpoint_running = False
        self._pending: list[tuple[int, float, bytes, list[UsageRecord]]] = []
        self._pending_waiters: list[asyncio.Future[None]] = []
        self._snapshot_source: LicenseState | None = None  # a snapshot is due once all applied is durable
        self._snapshot_task: asyncio.Task[None] | None = None
        self._fork_snapshots = True  # written by a forked child (store.forked_write) while that works
        self._flushing = False
        self._write_lock = threading.Lock()
        self._usage_lock = threading.Lock()
        self._usage_queue: list[tuple[Any, ...]] = []
        self._usage_drain_scheduled = False
        self.failure: BaseException | None = None
        self.last_index = 0
        self.last_at = 0.0
        self.durable_index = 0
        self.snapshot_index = 0

    # -- start-up -------------------------------------------------------------------------------

    def load(self) -> LicenseState:
        """Rebuild the state: latest snapshot, then every journaled command after it."""
        self._move_snapshot_out_of_database()
        found = read_snapshot_file(self.snapshot_file)
        if found:
            self.snapshot_index, snapshot = found
            state = LicenseState.from_snapshot(snapshot, values_shared=True)  # read_snapshot_file shared them
        else:
            state = LicenseState()
        index = self.snapshot_index
        replayed = 0
        for idx, at, blob in self._writer.execute(
            "SELECT idx, at, command FROM journal WHERE idx > ? ORDER BY idx", (self.snapshot_index,)
        ):
            state.apply(decode_command(blob), at)
            index = idx
            self.last_at = at
            replayed += 1
        self.last_index = self.durable_index = index
        log.info(
            "Loaded state at journal index %d (snapshot %d, %d commands replayed).",
            index,
            self.snapshot_index,
            replayed,
        )
        return state

    def _move_snapshot_out_of_database(self) -> None:
        """Databases of earlier versions keep the snapshot in a table: write it to the snapshot file, drop
        the table and give its pages back to the file system (once, before the server serves)."""
        conn = self._writer
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'snapshot'").fetchone():
            return
        row = conn.execute("SELECT idx, data FROM snapshot WHERE id = 1").fetchone()
        found = read_snapshot_file(self.snapshot_file)
        if row and (found is None or found[0] < row[0]):
            state = LicenseState.from_snapshot(msgspec.json.decode(row[1], type=Snapshot))
            write_private(self.snapshot_file, *snapshot_chunks(row[0], state))
        conn.execute("DROP TABLE snapshot")
        conn.execute("VACUUM")
        log.warning("Moved the state snapshot out of the database into %s and compacted the database.",
                    self.snapshot_file.name)

    def meta(self, key: str) -> str | None:
        row = self._writer.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._writer.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @contextlib.contextmanager
    def _transaction(self, *, lazy: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer connection, which the event loop (journal batches) and
        the worker thread (triad usage rows, pruning, rebase) share: one at a time, rolled back on error.

        `lazy`: a commit that may wait for the next one's sync (no fsync of its own: synchronous=NORMAL in
        WAL mode); for work that can be done again, such as rebuilding the usage rollups."""
        with self._write_lock:
            conn = self._writer
            if lazy:
                conn.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._write_transaction(conn):
                    yield conn
            finally:
                if lazy:
                    conn.execute(f"PRAGMA synchronous={self._synchronous}")

    @contextlib.contextmanager
    def _write_transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            # The rollups' place as the database has it; a rebuild under way goes on (or fails).
            rebuild = self.rollups.rebuild_from, self.rollups.rebuild_cursor
            self.rollups = RollupState.load(conn)
            self.rollups.rebuild_from, self.rollups.rebuild_cursor = rebuild
            raise
        conn.execute("COMMIT")

    # -- appending ------------------------------------------------------------------------------

    def append(self, command: Command, at: float, usage: list[UsageRecord]) -> asyncio.Future[None]:
        """Queue an applied command; the returned future resolves once it is on disk."""
        if self.failure is not None:
            raise JournalFailure("the journal failed earlier; restart the server") from self.failure
        self.last_index += 1
        self._pending.append((self.last_index, at, encode_command(command), usage))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_waiters.append(future)
        self._kick()
        return future

    def offer_snapshot(self, state: LicenseState) -> None:
        """Start a snapshot when enough commands were journaled since the last one and none is being written:
        now if everything applied is durable, else as soon as the journal has caught up (`_flush`)."""
        if self.last_index - self.snapshot_index >= self.snapshot_every and self._snapshot_task is None:
            self._snapshot_source = state
            if self.durable_index == self.last_index:
                self._start_snapshot()

    def _start_snapshot(self) -> None:
        """Fork the child that writes the snapshot of the state as it is now, at the journal's last index,
        which is durable; compact the journal once the file is on disk."""
        state, self._snapshot_source = self._snapshot_source, None
        if state is None or self._snapshot_task is not None:
            return
        index = self.last_index
        loop = asyncio.get_running_loop()
        write: Awaitable[None]
        if self._fork_snapshots:
            # While the child runs, the cycle collector leaves the objects that exist now alone: walking them
            # would copy every page they are on (copy-on-write), which stalls the loop.
            gc.freeze()
            try:
                write = ForkedWrite(self.snapshot_file, lambda: snapshot_chunks(index, state)).wait()
            except OSError as exc:
                gc.unfreeze()
                log.error("Could not start writing a snapshot (%s); the journal keeps every command meanwhile.", exc)
                return
        else:  # encoded here, written by a worker thread
            write = loop.run_in_executor(None, functools.partial(write_private, self.snapshot_file,
                                                                 *snapshot_chunks(index, state)))
        self._snapshot_task = loop.create_task(self._finish_snapshot(write, index))

    async def _finish_snapshot(self, write: Awaitable[None], index: int) -> None:
        try:
            try:
                await write
            except ForkedWriteFailed as exc:
                self._fork_snapshots = False
                log.error("Could not write a snapshot (%s); the next ones are written by this process.", exc)
                return
            self.snapshot_index = index
            await asyncio.get_running_loop().run_in_executor(self._executor, self._drop_journal_until, index)
            log.info("Wrote a snapshot at journal index %d.", index)
        finally:
            gc.unfreeze()
            self._snapshot_task = None

    def _drop_journal_until(self, index: int) -> None:
        """Delete the commands the snapshot holds, a few thousand per transaction (the loop's writes share
        the connection), then checkpoint the WAL. `meta.compacted_to` says up to where they may be missing
        (a backup checks that the snapshot file it copies is at least that recent)."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('compacted_to', ?)", (str(index),))
        while True:
            with self._transaction() as conn:
                deleted = conn.execute(
                    "DELETE FROM journal WHERE idx IN (SELECT idx FROM journal WHERE idx <= ? LIMIT ?)",
                    (index, JOURNAL_ROWS_PER_DELETE),
                ).rowcount
            if deleted < JOURNAL_ROWS_PER_DELETE:
                break
        self._checkpoint_wal()

    def _checkpoint_wal(self) -> None:
        """Copy the WAL into the database without waiting for writers (PASSIVE); the next write after a
        complete checkpoint starts the WAL over, cut back to WAL_SIZE_LIMIT."""
        try:
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("Could not checkpoint the database's write-ahead log: %s.", exc)
        finally:
            self._checkpoint_running = False

    def _schedule_checkpoint(self) -> None:
        now = time.monotonic()
        if self._checkpoint_running or now < self._checkpoint_due:
            return
        self._checkpoint_running = True
        self._checkpoint_due = now + WAL_CHECKPOINT_EVERY_S
        self._checkpoint_executor.submit(self._checkpoint_wal)

    async def wait_for_snapshot(self) -> None:
        """Return once the snapshot being written, if any, is on disk and the journal compacted."""
        task = self._snapshot_task
        if task is not None:
            await asyncio.shield(task)

    async def barrier(self) -> None:
        """Wait until everything appended so far is durable."""
        if not self._pending:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_waiters.append(future)
        await future

    def _kick(self) -> None:
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Write what is pending on the event loop's own thread, one transaction (and fsync) at a time.

        Not in a worker thread: handing each batch to a thread and back cost ~0.7 ms of wake-ups per
        batch on a busy 2-core host (the thread waits for a CPU and the GIL), more than the write
        itself (~0.25 ms with its fsync); inline, the loop serves ~30% more license operations
        (bench/README.md). While the loop waits for a commit no request is served, but every
        license change waits for that commit anyway, and requests arriving meanwhile join the next
        batch. Starting one turn of the loop later lets the requests read in this turn join too.
        """
        await asyncio.sleep(0)
        try:
            while self._pending or self._pending_waiters:
                batch, self._pending = self._pending, []
                waiters, self._pending_waiters = self._pending_waiters, []
                try:
                    self._write(batch)
                except BaseException as exc:
                    self.failure = exc
                    log.critical("Could not write the journal (%s); refusing further changes.", exc)
                    for waiter in waiters + self._pending_waiters:
                        if not waiter.done():
                            waiter.set_exception(JournalFailure(str(exc)))
                    raise
                if batch:
                    self.durable_index = batch[-1][0]
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                if self._snapshot_source is not None and self.durable_index == self.last_index:
                    self._start_snapshot()
        finally:
            self._flushing = False
        self._schedule_checkpoint()

    def _write(self, batch: list[tuple[int, float, bytes, list[UsageRecord]]]) -> None:
        if not batch:
            return
        with self._transaction() as conn:
            conn.execute(_insert_journal(len(batch)), [v for idx, at, blob, _ in batch for v in (idx, at, blob)])
            rows = [row for idx, _, _, usage in batch for row in usage_rows("", idx, usage)]
            self.refusals.grown = []
            last = self.refusals.write(conn, rows)
            if rows:
                grown = {id(row): first for row, first in self.refusals.grown}
                apply_rows(
                    conn,
                    self.rollups,
                    [_rollup_row(row) for row in rows if id(row) not in grown],
                    counts_only=[_rollup_row(row, at=grown[id(row)]) for row in rows if id(row) in grown],
                )
            own_id = None
            server = _FIELD["server"]
            if any(row[server] == "" for row in rows):
                own_id = last if rows[-1][server] == "" and last else self._last_own_usage_id(conn)
        if own_id is not None:
            self.own_usage_id = own_id

    # -- usage log ------------------------------------------------------------------------------

    def _read(self, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        with self._reader_lock:
            return self._reader.execute(sql, tuple(params)).fetchall()

    async def query_usage(self, query: UsageQuery) -> list[dict[str, Any]]:
        where, params = self._usage_filter(query)
        sql = f"SELECT id, {', '.join(USAGE_FIELDS)} FROM usage"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        params += [query.limit, query.offset]
        rows = await asyncio.get_running_loop().run_in_executor(None, self._read, sql, params)
        records = [{"id": row[0], **dict(zip(USAGE_FIELDS, row[1:], strict=True))} for row in rows]
        for record in records:
            record["granted"] = bool(record["granted"])
        return records

    async def usage_pages(
        self, query: UsageQuery, *, limit: int | None, page_rows: int = 5000
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Every usage row matching `query` (newest first, `limit` rows at most, all when None), a page of
        rows (id, *USAGE_FIELDS) at a time, each page read in a worker thread. Rows written after the first
        page are left out, so the export is of the log as it was when it started."""
        where, params = self._usage_filter(query)
        loop = asyncio.get_running_loop()
        newest = await loop.run_in_executor(None, self._read, "SELECT MAX(id) FROM usage", ())
        cursor = (newest[0][0] or 0) + 1
        skip, left = query.offset, limit
        while left is None or left > 0:
            size = page_rows if left is None else min(page_rows, left)
            sql = f"SELECT id, {', '.join(USAGE_FIELDS)} FROM usage WHERE {' AND '.join([*where, 'id < ?'])} "
            sql += "ORDER BY id DESC LIMIT ? OFFSET ?"
            rows = await loop.run_in_executor(None, self._read, sql, [*params, cursor, size, skip])
            if not rows:
                return
            yield rows
            skip, cursor = 0, rows[-1][0]
            if left is not None:
                left -= len(rows)

    @staticmethod
    def _usage_filter(query: UsageQuery) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if query.failed_only:
            where.append("granted = 0")
        for column in ("kind", "printer_id", "client_host"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            where.append("at >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("at < ?")
            params.append(query.until)
        if query.before is not None:
            where.append("id < ?")
            params.append(query.before)
        return where, params

    async def refusals_since(self, since: float) -> dict[str, int]:
        """Refused print checks and checkouts at or after `since`, counted by reason (for the denial alert)."""
        sql = (
            "SELECT reason, SUM(count) FROM usage WHERE at >= ? AND granted = 0 "
            f"AND kind IN {DENIAL_KINDS} GROUP BY reason"
        )
        rows = await asyncio.get_running_loop().run_in_executor(None, self._read, sql, (since,))
        return {str(reason): int(count) for reason, count in rows}

    async def report_inputs(
        self, since: float, until: float, bucket_s: float, printer_window_s: float
    ) -> tuple[list[UsageRecord], list[DenialCount]]:
        """What `usage_report` needs for [since, until), read so that it stays small whatever the traffic.

        Print checks: per printer, the first and last grant in each printer-window-long stretch (the grants in
        between add nothing to the union of windows). Leases: their records from LEASE_LOOKBACK_S before
        `since`, plus the first end record after `until` of leases still open then. Denials: counted per bucket.
        """
        fields = ", ".join(USAGE_FIELDS)
        start = since - printer_window_s

        def read() -> tuple[list[UsageRecord], list[DenialCount]]:
            prints = self._read(
                "SELECT printer_id, MIN(at), MAX(at) FROM usage WHERE kind = 'print' AND granted = 1 "
                "AND at >= ? AND at < ? GROUP BY printer_id, CAST((at - ?) / ? AS INTEGER)",
                (start, until, start, printer_window_s),
            )
            records = [
                UsageRecord(at=at, kind="print", granted=True, reason="ok", printer_id=printer)
                for printer, first, last in prints
                for at in {first, last}
            ]
            leases = [
                _usage_record(row)
                for row in self._read(
                    f"SELECT {fields} FROM usage WHERE lease_id != '' AND at >= ? AND at < ? ORDER BY at",
                    (since - LEASE_LOOKBACK_S, until),
                )
            ]
            closed = {r.lease_id for r in leases if r.kind == "checkin"}
            open_ids = sorted({r.lease_id for r in leases if r.kind == "checkout" and r.granted} - closed)
            if open_ids:
                leases += [
                    _usage_record(row[:-1])
                    for row in self._read(
                        f"SELECT {fields}, MIN(at) FROM usage WHERE kind = 'checkin' AND at >= ? "
                        "AND lease_id IN (SELECT value FROM json_each(?)) GROUP BY lease_id",
                        (until, msgspec.json.encode(open_ids).decode()),
                    )
                ]
            denials = [
                DenialCount(at=at, reason=reason, count=count)
                for reason, at, count in self._read(
                    f"SELECT reason, MIN(at), SUM(count) FROM usage WHERE granted = 0 AND kind IN {DENIAL_KINDS} "
                    "AND at >= ? AND at < ? GROUP BY reason, CAST((at - ?) / ? AS INTEGER)",
                    (since, until, since, bucket_s),
                )
            ]
            return records + leases, denials

        return await asyncio.get_running_loop().run_in_executor(None, read)

    # -- usage rollups --------------------------------------------------------------------------

    def start_rollups(self, window_s: float) -> None:
        """Build the usage rollups in the background if they are missing (a database from before them) or
        were built for another printer window; the server serves meanwhile (call on the event loop)."""
        if not self.rollups.current(window_s) and self._rollup_task is None:
            self._rollup_task = asyncio.get_running_loop().create_task(self._rebuild_rollups(window_s))

    async def rollups_ready(self, window_s: float) -> bool:
        """Whether the rollups are current for `window_s`, after one rebuild if they were not."""
        if self.rollups.current(window_s):
            return True
        self.start_rollups(window_s)
        task = self._rollup_task
        if task is not None:
            await asyncio.shield(task)
        return self.rollups.current(window_s)

    async def _rebuild_rollups(self, window_s: float) -> None:
        try:
            since = rebuild_start(self.rollups, window_s)
            if since == math.inf:
                return
            rebuild = RollupRebuild(window_s, since)
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            while not rebuild.done:
                await loop.run_in_executor(self._executor, self._rollup_step, rebuild)
            took = time.perf_counter() - started
            if since == -math.inf and rebuild.rows:
                log.warning("Built the usage report's hourly and daily rollups from %d usage rows in %.1f s.",
                            rebuild.rows, took)
            elif rebuild.rows:
                log.info("Rebuilt the usage report's rollups from %s on (%d usage rows) in %.2f s.",
                         datetime.fromtimestamp(since, UTC).date().isoformat(), rebuild.rows, took)
        except Exception as exc:  # the report is computed from the rows meanwhile
            log.error("Could not build the usage report's rollups (%s); reports read the usage log instead.", exc)
        finally:
            self._rollup_task = None

    def _rollup_step(self, rebuild: RollupRebuild) -> None:
        with self._transaction(lazy=True) as conn:
            rebuild.step(conn, self.rollups)

    async def rollup_report(
        self, held: list[Lease], *, since: float, until: float, bucket: str, as_of: float, window_s: float
    ) -> UsageReport | None:
        """The usage report from the rollups, read in a worker thread; None when they cannot answer it (a
        range not on whole hours, or rollups that could not be brought up to date): read the rows then."""
        if not rollups_answer(since, until, as_of) or not await self.rollups_ready(window_s):
            return None

        def read() -> UsageReport | None:
            with self._reader_lock:
                conn = self._reader
                with self._write_lock:  # what the rollups' state says is what the read transaction sees
                    if not self.rollups.current(window_s):
                        return None
                    conn.execute("BEGIN")
                    conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
                try:
                    return rollup_report(conn, held, since=since, until=until, bucket=bucket, as_of=as_of,
                                         window_s=window_s)
                finally:
                    conn.execute("COMMIT")

        return await asyncio.get_running_loop().run_in_executor(None, read)

    async def own_usage_after(self, after_id: int, limit: int) -> list[tuple[int, UsageRecord]]:
        """Usage this server recorded itself (not taken from a backup partner), after row `after_id`, in order."""
        sql = f"SELECT id, {', '.join(USAGE_FIELDS)} FROM usage WHERE id > ? AND server = '' ORDER BY id LIMIT ?"
        rows = await asyncio.get_running_loop().run_in_executor(None, self._read, sql, (after_id, limit))
        if rows:
            self.refusals.shared_up_to = max(self.refusals.shared_up_to, rows[-1][0])
        return [(row[0], _usage_record(row[1:])) for row in rows]

    @staticmethod
    def _last_own_usage_id(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT id FROM usage WHERE server = '' ORDER BY id DESC LIMIT 1").fetchone()
        return int(row[0]) if row else 0

    def record_usage(self, rows: list[tuple[Any, ...]]) -> None:
        """Queue a triad member's usage rows (from its apply path); the worker thread writes them in order,
        a batch every USAGE_DRAIN_DELAY_S, beside the event loop."""
        with self._usage_lock:
            self._usage_queue.extend(rows)
            if self._usage_drain_scheduled:
                return
            self._usage_drain_scheduled = True
        self._executor.submit(self._drain_usage)

    def _drain_usage(self) -> None:
        # Rows arrive an entry at a time; waiting a moment makes one transaction (and fsync) of many.
        time.sleep(USAGE_DRAIN_DELAY_S)
        with self._usage_lock:
            rows, self._usage_queue = self._usage_queue, []
            self._usage_drain_scheduled = False
        if rows:
            # Every triad member writes the same rows, each keyed by its place in the log, so a member
            # that replays part of the log after a restart writes nothing twice. Refusals are not
            # coalesced here: which row a refusal would join depends on what a member remembers, and
            # members that remember differently would keep different usage logs.
            with self._transaction() as conn:
                rows = _unwritten(conn, rows)
                _insert_usage_rows(conn, rows)
                apply_rows(conn, self.rollups, [_rollup_row(row) for row in rows])

    async def rebase(self, state: LicenseState) -> None:
        """Make `state` the standalone starting point (after leaving a triad): snapshot it, drop the journal."""
        await self.barrier()
        await self.wait_for_snapshot()
        self.last_index += 1
        self.durable_index = self.last_index  # nothing to write for this index: the snapshot is the change
        self._snapshot_source = state
        self._start_snapshot()
        await self.wait_for_snapshot()
        if self.snapshot_index != self.last_index:
            raise JournalFailure("could not write the snapshot of the state to start from")

    async def prune_usage(self, older_than: float) -> None:
        """Delete usage rows older than `older_than`, a few thousand per transaction, so that a journal
        write on the event loop never waits long for the shared connection."""

        def prune() -> int:
            with self._write_lock:
                return self._writer.execute(
                    "DELETE FROM usage WHERE id IN (SELECT id FROM usage WHERE at < ? LIMIT ?)",
                    (older_than, PRUNE_ROWS_PER_TRANSACTION),
                ).rowcount

        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(self._executor, prune) >= PRUNE_ROWS_PER_TRANSACTION:
            pass

    # -- shutdown -------------------------------------------------------------------------------

    async def close(self, state: LicenseState | None = None) -> None:
        await self.barrier()
        await self.wait_for_snapshot()
        if state is not None and self.failure is None and self.last_index > self.snapshot_index:
            self._snapshot_source = state
            self._start_snapshot()
            await self.wait_for_snapshot()
        self._executor.shutdown(wait=True)
        self._checkpoint_executor.shutdown(wait=True)
        self._checkpoint_wal()
        self._writer.close()
        self._reader.close()
        self._checkpointer.close()
