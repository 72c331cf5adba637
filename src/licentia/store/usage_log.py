"""Reading the usage log: the admin's listing and export, the denial alert's counts, and what the usage
report needs, each query run in a worker thread on a reader connection of its own (the journal's writer
connection is the event loop's)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec

from licentia.core.model import UsageRecord
from licentia.store.usage_report import DenialCount
from licentia.store.usage_rollups import DENIAL_KINDS, LEASE_LOOKBACK_S
from licentia.store.usage_rows import USAGE_FIELDS, usage_record


class UsageQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Which usage rows the listing and the export select (newest first)."""

    failed_only: bool = False
    kind: str | None = None
    printer_id: str | None = None
    client_host: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    offset: int = 0
    before: int | None = None  # keyset paging: only rows with a smaller id (the `next` of the previous page)


class UsageLog:
    """The usage table's queries on `connection`, one at a time (`lock`: the rollups' report reads on it too)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.lock = threading.Lock()

    def read(self, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.connection.execute(sql, tuple(params)).fetchall()

    async def query_usage(self, query: UsageQuery) -> list[dict[str, Any]]:
        where, params = self._filter(query)
        sql = f"SELECT id, {', '.join(USAGE_FIELDS)} FROM usage"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        params += [query.limit, query.offset]
        rows = await asyncio.get_running_loop().run_in_executor(None, self.read, sql, params)
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
        where, params = self._filter(query)
        loop = asyncio.get_running_loop()
        newest = await loop.run_in_executor(None, self.read, "SELECT MAX(id) FROM usage", ())
        cursor = (newest[0][0] or 0) + 1
        skip, left = query.offset, limit
        while left is None or left > 0:
            size = page_rows if left is None else min(page_rows, left)
            sql = f"SELECT id, {', '.join(USAGE_FIELDS)} FROM usage WHERE {' AND '.join([*where, 'id < ?'])} "
            sql += "ORDER BY id DESC LIMIT ? OFFSET ?"
            rows = await loop.run_in_executor(None, self.read, sql, [*params, cursor, size, skip])
            if not rows:
                return
            yield rows
            skip, cursor = 0, rows[-1][0]
            if left is not None:
                left -= len(rows)

    @staticmethod
    def _filter(query: UsageQuery) -> tuple[list[str], list[Any]]:
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
        rows = await asyncio.get_running_loop().run_in_executor(None, self.read, sql, (since,))
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
            prints = self.read(
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
                usage_record(row)
                for row in self.read(
                    f"SELECT {fields} FROM usage WHERE lease_id != '' AND at >= ? AND at < ? ORDER BY at",
                    (since - LEASE_LOOKBACK_S, until),
                )
            ]
            closed = {r.lease_id for r in leases if r.kind == "checkin"}
            open_ids = sorted({r.lease_id for r in leases if r.kind == "checkout" and r.granted} - closed)
            if open_ids:
                leases += [
                    usage_record(row[:-1])
                    for row in self.read(
                        f"SELECT {fields}, MIN(at) FROM usage WHERE kind = 'checkin' AND at >= ? "
                        "AND lease_id IN (SELECT value FROM json_each(?)) GROUP BY lease_id",
                        (until, msgspec.json.encode(open_ids).decode()),
                    )
                ]
            denials = [
                DenialCount(at=at, reason=reason, count=count)
                for reason, at, count in self.read(
                    f"SELECT reason, MIN(at), SUM(count) FROM usage WHERE granted = 0 AND kind IN {DENIAL_KINDS} "
                    "AND at >= ? AND at < ? GROUP BY reason, CAST((at - ?) / ? AS INTEGER)",
                    (since, until, since, bucket_s),
                )
            ]
            return records + leases, denials

        return await asyncio.get_running_loop().run_in_executor(None, read)

    async def own_usage_after(self, after_id: int, limit: int) -> list[tuple[int, UsageRecord]]:
        """Usage this server recorded itself (not taken from a backup partner), after row `after_id`, in order."""
        sql = f"SELECT id, {', '.join(USAGE_FIELDS)} FROM usage WHERE id > ? AND server = '' ORDER BY id LIMIT ?"
        rows = await asyncio.get_running_loop().run_in_executor(None, self.read, sql, (after_id, limit))
        return [(row[0], usage_record(row[1:])) for row in rows]
