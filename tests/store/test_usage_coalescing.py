"""A client's repeated refusals share one usage row with a count; the reports and alerts count every request."""

from __future__ import annotations

import asyncio
from pathlib import Path

from licentia.core import commands as c
from licentia.core.model import UsageRecord
from licentia.store.journal import SqliteJournal
from licentia.store.usage_log import UsageQuery
from licentia.store.usage_report import usage_report
from licentia.store.usage_rows import COALESCE_WINDOW_S

T0 = 1_700_000_000.0


def refusal(at: float, host: str = "ws-1", reason: str = "no_license", ip: str = "10.0.0.5") -> UsageRecord:
    return UsageRecord(at=at, kind="print", granted=False, reason=reason, product="LabelStudio",
                       printer_name=f"P-{at}", client_host=host, source_ip=ip)


def grant(at: float) -> UsageRecord:
    return UsageRecord(at=at, kind="print", granted=True, reason="ok", product="LabelStudio", printer_id="p1",
                       client_host="ws-1", source_ip="10.0.0.5")


async def write(journal: SqliteJournal, records: list[UsageRecord], per_command: int = 1) -> None:
    """Each slice of `per_command` records as the usage of one journaled command, as the server does."""
    for start in range(0, len(records), per_command):
        await journal.append(c.CreatePrinterGroup(name="Dock"), records[start].at, records[start : start + per_command])
    await journal.barrier()


def test_two_thousand_refusals_from_one_client_are_one_row_counting_them_all(tmp_path: Path):
    async def body() -> None:
        journal = SqliteJournal(tmp_path / "j.db")
        journal.load()
        await write(journal, [refusal(T0 + n * 0.05) for n in range(2000)], per_command=7)
        rows = await journal.query_usage(UsageQuery(limit=10_000))
        assert [(r["reason"], r["count"], r["at"], r["printer_name"]) for r in rows] == [
            ("no_license", 2000, T0, f"P-{T0}")
        ]
        assert await journal.refusals_since(T0) == {"no_license": 2000}
        records, denials = await journal.report_inputs(T0, T0 + 3600, 3600, 86400)
        report = usage_report(records, denials, [], since=T0, until=T0 + 3600, bucket="hour", as_of=T0 + 3600,
                              printer_window_s=86400, lease_ttl_s=120)
        assert report.buckets[0].denials == {"no_license": 2000}
        await journal.close()

    asyncio.run(body())


def test_refusals_of_other_clients_reasons_or_later_windows_get_rows_of_their_own(tmp_path: Path):
    async def body() -> None:
        journal = SqliteJournal(tmp_path / "j.db")
        journal.load()
        await write(journal, [
            refusal(T0), refusal(T0 + 1), refusal(T0 + 2, host="ws-2"), refusal(T0 + 3, ip="10.0.0.6"),
            refusal(T0 + 4, reason="access_denied"), grant(T0 + 5), grant(T0 + 6),
            refusal(T0 + COALESCE_WINDOW_S + 1), refusal(T0 + COALESCE_WINDOW_S + 2),
        ])
        rows = await journal.query_usage(UsageQuery(limit=100))
        assert [(r["at"] - T0, r["count"]) for r in reversed(rows)] == [
            (0, 2), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (COALESCE_WINDOW_S + 1, 2)
        ]
        await journal.close()

    asyncio.run(body())


def test_a_row_already_handed_to_the_backup_partner_is_not_grown(tmp_path: Path):
    async def body() -> None:
        journal = SqliteJournal(tmp_path / "j.db")
        journal.load()
        await write(journal, [refusal(T0), refusal(T0 + 1)])
        sent = await journal.own_usage_after(0, 100)
        assert [record.count for _, record in sent] == [2]
        await write(journal, [refusal(T0 + 2)])
        again = await journal.own_usage_after(sent[-1][0], 100)
        assert [(record.at, record.count) for _, record in again] == [(T0 + 2, 1)]
        await journal.close()

    asyncio.run(body())


def test_an_older_database_gets_the_count_column_with_every_row_counting_once(tmp_path: Path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE usage (id INTEGER PRIMARY KEY AUTOINCREMENT, origin TEXT NOT NULL DEFAULT '', "
            "idx INTEGER NOT NULL, seq INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL, kind TEXT NOT NULL, "
            "granted INTEGER NOT NULL, reason TEXT NOT NULL, product TEXT, license_id TEXT, printer_id TEXT, "
            "printer_name TEXT, lease_id TEXT, client_host TEXT, client_user TEXT, application TEXT, source_ip TEXT)"
        )
        conn.execute("INSERT INTO usage (idx, at, kind, granted, reason) VALUES (1, ?, 'print', 0, 'no_license')",
                     (T0,))

    async def body() -> None:
        journal = SqliteJournal(path)
        journal.load()
        assert [r["count"] for r in await journal.query_usage(UsageQuery())] == [1]
        await journal.close()

    asyncio.run(body())
