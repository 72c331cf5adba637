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
it never waits for the journal's batches); should it still reach WAL_SIZE_LIMIT under a steady stream of
writes, the next commit finishes the checkpoint, which lets the WAL start over, cut back to that size.

The journal's batches are committed, and synced, by a thread of their own (`_flush`): a sync that waits
behind the disk's other writes never holds the event loop.

The usage rows are built and inserted by `store.usage_rows` and read by `store.usage_log`, on a connection
of its own; the journal owns the writer connection and its transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
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
from licentia.store.snapshot_file import load_snapshot_file, read_snapshot_file, snapshot_chunks, snapshot_path
from licentia.store.usage_log import UsageLog, UsageQuery
from licentia.store.usage_report import DenialCount, UsageReport
from licentia.store.usage_rollups import SCHEMA as ROLLUP_SCHEMA
from licentia.store.usage_rollups import (
    RollupRebuild,
    RollupState,
    apply_rows,
    rebuild_start,
    rollup_report,
)
from licentia.store.usage_rows import FIELD_AT, RefusalCoalescer, insert_usage_rows, rollup_row, unwritten, usage_rows

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

PRUNE_ROWS_PER_TRANSACTION = 5000
USAGE_DRAIN_DELAY_S = 0.02  # a triad member's usage rows are in its Raft log first; the SQLite copy may lag
JOURNAL_ROWS_PER_DELETE = 2000  # journal rows deleted per transaction after a snapshot
FREE_PAGES_KEPT = 256  # free pages a database keeps for the rows to come (1 MiB of 4 KiB pages)
FREE_PAGES_PER_STEP = 1024  # pages given back per transaction (4 MiB)
WAL_CHECKPOINT_EVERY_S = 1.0  # at most this often, after writes, a worker thread checkpoints the WAL
WAL_SIZE_LIMIT = 16 * 1024 * 1024  # the WAL's bound: a commit checkpoints past it; cut back to it when it restarts


@functools.cache
def _insert_journal(rows: int) -> str:
    return "INSERT INTO journal (idx, at, command) VALUES " + ", ".join(["(?, ?, ?)"] * rows)


class JournalFailure(RuntimeError):
    """The journal could not make a command durable; the in-memory state can no longer be trusted."""


def _connect(path: Path, synchronous: str, *, new_database_vacuums: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    if new_database_vacuums and conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0:
        # A new database gives the pages it no longer needs back to the file system (`_give_back_free_pages`);
        # SQLite takes this before the first table and before WAL mode. Databases of earlier versions keep them.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    # The checkpoint thread copies the WAL into the database; a commit checkpoints (in the commit thread) only when the
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
        self._writer = _connect(path, synchronous, new_database_vacuums=True)
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
        self.usage_log = UsageLog(_connect(path, synchronous))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="licentia-journal")
        self._checkpointer = _connect(path, synchronous)
        self._checkpoint_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="licentia-wal")
        self._checkpoint_due = 0.0
        self._checkpoint_running = False
        self._commit_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="licentia-commit")
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
        try:
            self.snapshot_index, state = load_snapshot_file(self.snapshot_file)
        except FileNotFoundError:
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
        """One write transaction on the writer connection, which the commit thread (journal batches) and
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
            try:  # the collector waits until the child is done (`ForkedWrite`)
                write = ForkedWrite(self.snapshot_file, lambda: snapshot_chunks(index, state)).wait()
            except OSError as exc:
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
            self._snapshot_task = None

    def _drop_journal_until(self, index: int) -> None:
        """Delete the commands the snapshot holds, a few thousand per transaction (the journal's batches share
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
        self._give_back_free_pages()
        self._checkpoint_wal()

    def _give_back_free_pages(self) -> None:
        """Shorten the database file by its free pages (after a burst of commands the snapshot now holds, or
        pruned usage rows), FREE_PAGES_PER_STEP at a time, so that the journal's batches wait little for the
        connection; a database of an earlier version (no incremental vacuum) keeps them for its next rows."""
        while True:
            with self._transaction() as conn:
                free = conn.execute("PRAGMA freelist_count").fetchone()[0]
                if free <= FREE_PAGES_KEPT or conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                    return
                conn.execute(f"PRAGMA incremental_vacuum({FREE_PAGES_PER_STEP})").fetchall()

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
        """Write what is pending, one transaction (and fsync) at a time, in the commit thread; requests arriving
        meanwhile join the next batch. Starting one turn of the loop later lets the requests read in this turn join.

        Never on the loop's own thread: a sync waits behind whatever else the disk is writing (a snapshot child's
        hundreds of megabytes, a WAL checkpoint, another process), and while the loop waits no request is served.
        Until 2026-12-07 commits ran on the loop while the disk synced fast (handing a batch to a thread and back
        had cost ~0.7 ms of wake-ups, ~30% of the license operations, early on) and went to the thread only after
        one had been slow: that first slow one held the loop for its whole sync, 73 and 80 ms at 300k leases. In
        the same session `bench/checkout.py` served as many operations with every commit in the thread
        (1,689 and 1,570 ops/s against 1,643 and 1,523; bench/README.md).
        """
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        try:
            while self._pending or self._pending_waiters:
                batch, self._pending = self._pending, []
                waiters, self._pending_waiters = self._pending_waiters, []
                try:
                    if batch:
                        await loop.run_in_executor(self._commit_executor, self._write, batch)
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
                    [rollup_row(row) for row in rows if id(row) not in grown],
                    counts_only=[rollup_row(row, at=grown[id(row)]) for row in rows if id(row) in grown],
                )
            own_id = None
            server = FIELD_AT["server"]
            if any(row[server] == "" for row in rows):
                own_id = last if rows[-1][server] == "" and last else self._last_own_usage_id(conn)
        if own_id is not None:
            self.own_usage_id = own_id

    # -- usage log (read through `usage_log`, on its own connection) ----------------------------

    async def query_usage(self, query: UsageQuery) -> list[dict[str, Any]]:
        return await self.usage_log.query_usage(query)

    def usage_pages(
        self, query: UsageQuery, *, limit: int | None, page_rows: int = 5000
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        return self.usage_log.usage_pages(query, limit=limit, page_rows=page_rows)

    async def refusals_since(self, since: float) -> dict[str, int]:
        return await self.usage_log.refusals_since(since)

    async def report_inputs(
        self, since: float, until: float, bucket_s: float, printer_window_s: float
    ) -> tuple[list[UsageRecord], list[DenialCount]]:
        return await self.usage_log.report_inputs(since, until, bucket_s, printer_window_s)

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
            adding_quarters, self.rollups.adding_quarters = self.rollups.adding_quarters, False
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            while not rebuild.done:
                await loop.run_in_executor(self._executor, self._rollup_step, rebuild)
            took = time.perf_counter() - started
            if since == -math.inf and rebuild.rows:
                log.warning("Built the usage report's hourly and daily rollups from %d usage rows in %.1f s.",
                            rebuild.rows, took)
            elif adding_quarters:
                log.warning("Rebuilt the usage report's rollups from %s on with quarter hours, once, from %d usage "
                            "rows in %.1f s: reports whose edges fall on quarter hours no longer read usage rows.",
                            datetime.fromtimestamp(since, UTC).date().isoformat(), rebuild.rows, took)
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
        """The usage report from the rollups, read in a worker thread; None when they cannot answer it
        (rollups that could not be brought up to date): read the rows then."""
        if not await self.rollups_ready(window_s):
            return None

        def read() -> UsageReport | None:
            with self.usage_log.lock:
                conn = self.usage_log.connection
                with self._write_lock:  # what the rollups' state says is what the read transaction sees
                    if not self.rollups.current(window_s):
                        return None
                    quarters_from = self.rollups.quarters_from
                    conn.execute("BEGIN")
                    conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
                try:
                    return rollup_report(conn, held, since=since, until=until, bucket=bucket, as_of=as_of,
                                         window_s=window_s, quarters_from=quarters_from)
                finally:
                    conn.execute("COMMIT")

        return await asyncio.get_running_loop().run_in_executor(None, read)

    async def own_usage_after(self, after_id: int, limit: int) -> list[tuple[int, UsageRecord]]:
        """Usage this server recorded itself (not taken from a backup partner), after row `after_id`, in order."""
        rows = await self.usage_log.own_usage_after(after_id, limit)
        if rows:  # handed to the backup partner: coalescing must not grow them any more
            self.refusals.shared_up_to = max(self.refusals.shared_up_to, rows[-1][0])
        return rows

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
                rows = unwritten(conn, rows)
                insert_usage_rows(conn, rows)
                apply_rows(conn, self.rollups, [rollup_row(row) for row in rows])

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
        batch never waits long for the shared connection."""

        def prune() -> int:
            with self._write_lock:
                return self._writer.execute(
                    "DELETE FROM usage WHERE id IN (SELECT id FROM usage WHERE at < ? LIMIT ?)",
                    (older_than, PRUNE_ROWS_PER_TRANSACTION),
                ).rowcount

        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(self._executor, prune) >= PRUNE_ROWS_PER_TRANSACTION:
            pass
        await loop.run_in_executor(self._executor, self._give_back_free_pages)

    # -- shutdown -------------------------------------------------------------------------------

    async def close(self, state: LicenseState | None = None) -> None:
        await self.barrier()
        await self.wait_for_snapshot()
        if state is not None and self.failure is None and self.last_index > self.snapshot_index:
            self._snapshot_source = state
            self._start_snapshot()
            await self.wait_for_snapshot()
        self._executor.shutdown(wait=True)
        self._commit_executor.shutdown(wait=True)
        self._checkpoint_executor.shutdown(wait=True)
        self._checkpoint_wal()
        self._writer.close()
        self.usage_log.connection.close()
        self._checkpointer.close()
