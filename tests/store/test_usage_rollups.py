"""Usage reports from the hourly and daily rollups give the numbers the usage log's rows give."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from licentia.core import commands as c
from licentia.core.commands import encode_command
from licentia.core.model import ClientInfo, Lease, UsageRecord
from licentia.store.backup import create_backup, restore_backup
from licentia.store.journal import SqliteJournal
from licentia.store.usage_report import UsageReport, bucket_count, usage_report
from licentia.store.usage_rows import usage_rows

T0 = 1_700_006_400.0  # a UTC midnight
HOUR = 3600.0
DAY = 86400.0
WINDOW = 1 * DAY
TTL = 120.0
SPAN = 12 * DAY
COMMAND = encode_command(c.CreatePrinterGroup(name="Dock"))  # the journal entry beside the usage (any command)


def random_log(rng: random.Random) -> tuple[list[list[UsageRecord]], list[Lease], float]:
    """Batches of usage records in time order over SPAN from T0 - DAY (quiet stretches included, and no
    granted print check in the last days, so that printers' windows end with no print check after them),
    the leases still held at the end, and a moment after the last record."""
    batches: list[list[UsageRecord]] = []
    open_leases: dict[str, tuple[float, str]] = {}
    at, n = T0 - DAY, 0
    while at < T0 - DAY + SPAN:
        at += rng.expovariate(1 / 900) if rng.random() > 0.01 else rng.uniform(DAY, 2 * DAY)
        batch: list[UsageRecord] = []
        for _ in range(rng.choice((1, 1, 2, 5))):
            n += 1
            roll = rng.random()
            if roll < 0.35 and at < T0 + SPAN - 3.5 * DAY:  # the last days print nothing: printers' windows end
                batch.append(UsageRecord(at=at, kind="print", granted=True, reason="ok", product="Labels",
                                         printer_id=f"P{rng.randrange(12)}"))
            elif roll < 0.35:
                batch.append(UsageRecord(at=at, kind="print", granted=False, reason="no_license", product="Labels",
                                         printer_id=f"P{rng.randrange(12)}"))
            elif roll < 0.5:
                product = rng.choice(("CAD", "Render", "Viewer"))
                open_leases[f"L{n}"] = (at, product)
                batch.append(UsageRecord(at=at, kind="checkout", granted=True, reason="ok", product=product,
                                         lease_id=f"L{n}"))
            elif roll < 0.65 and open_leases:
                lease_id = rng.choice(sorted(open_leases))
                _, product = open_leases.pop(lease_id)
                reason = rng.choice(("ok", "revoked", "lease_expired"))
                batch.append(UsageRecord(at=at, kind="checkin", granted=reason == "ok", reason=reason,
                                         product=product, lease_id=lease_id))
            elif roll < 0.9:  # refusals from a few clients: repeats within minutes share a row (a count)
                kind, reason = rng.choice((("print", "printer_blocked"), ("checkout", "limit_exceeded"),
                                           ("print", "access_denied")))
                batch.append(UsageRecord(at=at, kind=kind, granted=False, reason=reason,
                                         client_host=f"h{rng.randrange(3)}"))
            else:  # a lost heartbeat: refused, not a denial
                batch.append(UsageRecord(at=at, kind="heartbeat", granted=False, reason="lease_expired",
                                         lease_id=rng.choice(sorted(open_leases)) if open_leases else ""))
            at += rng.choice((0.0, rng.uniform(0, 5)))
        batches.append(batch)
    as_of = at + rng.uniform(1, HOUR)
    held = [Lease(lease_id, f"r-{lease_id}", "SEAT", product, None, ClientInfo(), "", granted, as_of + TTL, TTL)
            for lease_id, (granted, product) in open_leases.items()]
    return batches, held, as_of


def random_ranges(rng: random.Random, as_of: float, count: int) -> list[tuple[float, float, str]]:
    """Report ranges on whole hours (days from UTC or from another hour), some past the end of the log."""
    ranges = []
    for _ in range(count):
        bucket = rng.choice(("hour", "day"))
        since = T0 - 2 * DAY + rng.randrange(int(SPAN / HOUR) + 48) * HOUR
        if bucket == "day" and rng.random() < 0.5:
            since = math.floor(since / DAY) * DAY
        length = rng.randrange(1, 200) * HOUR if bucket == "hour" else rng.randrange(1, 15) * DAY
        until = since + length if rng.random() < 0.8 else since + length + rng.uniform(1, HOUR)
        if until > as_of or until % HOUR == 0:
            ranges.append((since, until, bucket))
    return ranges


def write_log(journal: SqliteJournal, batches: list[list[UsageRecord]]) -> None:
    """The standalone path: one command's usage per journal index, a few commands per transaction."""
    index = journal.last_index
    pending: list[tuple[int, float, bytes, list[UsageRecord]]] = []
    for batch in batches:
        index += 1
        pending.append((index, batch[0].at, COMMAND, batch))
        if len(pending) >= 4:
            journal._write(pending)
            pending = []
    journal._write(pending)
    journal.last_index = index


async def both_reports(
    journal: SqliteJournal, held: list[Lease], as_of: float, since: float, until: float, bucket: str
) -> tuple[UsageReport | None, UsageReport]:
    rolled = await journal.rollup_report(held, since=since, until=until, bucket=bucket, as_of=as_of, window_s=WINDOW)
    bucket_s = HOUR if bucket == "hour" else DAY
    records, denials = await journal.report_inputs(since, until, bucket_s, WINDOW)
    raw = usage_report(records, denials, held, since=since, until=until, bucket=bucket,  # type: ignore[arg-type]
                       as_of=as_of, printer_window_s=WINDOW, lease_ttl_s=TTL)
    return rolled, raw


async def assert_rollups_match_rows(
    journal: SqliteJournal, held: list[Lease], as_of: float, ranges: list[tuple[float, float, str]]
) -> int:
    busy = 0
    for since, until, bucket in ranges:
        rolled, raw = await both_reports(journal, held, as_of, since, until, bucket)
        assert rolled is not None, (since, until, bucket)
        assert msgspec.to_builtins(rolled) == msgspec.to_builtins(raw), (since, until, bucket)
        busy += any(b.printers or b.seats_total or b.denials_total for b in raw.buckets)
    return busy


def test_reports_from_rollups_equal_reports_from_the_rows_on_random_logs_and_ranges(tmp_path: Path):
    async def run(seed: int) -> None:
        rng = random.Random(seed)
        batches, held, as_of = random_log(rng)
        journal = SqliteJournal(tmp_path / f"usage-{seed}.db")
        journal.load()
        assert await journal.rollups_ready(WINDOW)
        write_log(journal, batches)
        assert journal.rollups.current(WINDOW)
        coalesced = journal._writer.execute("SELECT COUNT(*) FROM usage WHERE count > 1").fetchone()[0]
        assert coalesced > 0  # refusals that grew an earlier row are counted in the rollups too
        ranges = random_ranges(rng, as_of, 40)
        ranges += [(T0, T0 + 10 * DAY, "day"), (T0 + 5 * HOUR, math.ceil(as_of / HOUR) * HOUR, "day"),
                   (math.floor(as_of / HOUR) * HOUR - 30 * HOUR, as_of + 10 * HOUR, "hour")]
        assert await assert_rollups_match_rows(journal, held, as_of, ranges) > len(ranges) / 2
        await journal.close()

    for seed in range(4):
        asyncio.run(run(seed))


def off_hour_ranges(rng: random.Random, as_of: float, count: int) -> list[tuple[float, float, str]]:
    """Report ranges that start or end off the whole hours (a moment such as "90 days before now", or a
    local midnight in a zone 30 or 45 minutes from UTC), in hour or day buckets, some past the log's end."""
    ranges: list[tuple[float, float, str]] = []
    while len(ranges) < count:
        bucket = rng.choice(("hour", "day"))
        since = T0 - 2 * DAY + rng.uniform(0, SPAN + 2 * DAY)
        since = rng.choice((since, math.floor(since / HOUR) * HOUR + rng.choice((1800.0, 2700.0, 0.25)),
                            math.floor(since / HOUR) * HOUR))
        length = rng.uniform(0.2, 120) * HOUR if bucket == "hour" else rng.uniform(0.5, 15) * DAY
        until = rng.choice((since + length, math.ceil((since + length) / HOUR) * HOUR, as_of + rng.uniform(1, DAY)))
        if until > since and (since % HOUR or until % HOUR) and bucket_count(since, until, HOUR) <= 1000:
            ranges.append((since, until, bucket))
    return ranges


def test_off_hour_reports_from_rollups_and_edge_rows_equal_reports_from_the_rows_on_random_logs(tmp_path: Path):
    async def run(seed: int) -> None:
        rng = random.Random(100 + seed)
        batches, held, as_of = random_log(rng)
        journal = SqliteJournal(tmp_path / f"usage-{seed}.db")
        journal.load()
        assert await journal.rollups_ready(WINDOW)
        write_log(journal, batches)
        ranges = off_hour_ranges(rng, as_of, 40)
        ranges.append((as_of - 9 * DAY, as_of, "day"))  # "the last 9 days", from this very second
        assert await assert_rollups_match_rows(journal, held, as_of, ranges) > len(ranges) / 2
        await journal.close()

    for seed in range(4):
        asyncio.run(run(seed))


ZONES = (5.5 * HOUR, 5.75 * HOUR, -3.5 * HOUR, 9.5 * HOUR, 12.75 * HOUR, -9.5 * HOUR)  # zones off the whole hours


def quarter_hour_ranges(rng: random.Random, as_of: float, count: int) -> list[tuple[float, float, str]]:
    """Ranges as the console asks them in a zone 30 or 45 minutes from UTC (local midnights or hours: edges on
    quarter hours inside the hours), up to a local midnight or hour, to this very second, or to a moment inside
    a quarter hour; and ranges with a first edge inside a quarter hour."""
    ranges: list[tuple[float, float, str]] = []
    while len(ranges) < count:
        zone, bucket = rng.choice(ZONES), rng.choice(("hour", "day"))
        size = HOUR if bucket == "hour" else DAY
        since = T0 - 2 * DAY + rng.uniform(0, SPAN + 2 * DAY)
        since = rng.choice((math.floor((since + zone) / size) * size - zone,
                            math.floor(since / 900) * 900 + rng.uniform(1, 899)))
        length = rng.randrange(1, 100) * HOUR if bucket == "hour" else rng.randrange(1, 15) * DAY
        until = rng.choice((since + length, as_of, since + length - rng.uniform(1, 899),
                            math.floor((since + length) / 900) * 900))
        if until > since and bucket_count(since, until, size) <= 1000:
            ranges.append((since, until, bucket))
    return ranges


def test_quarter_hour_reports_from_rollups_equal_reports_from_the_rows_on_random_logs(tmp_path: Path):
    async def run(seed: int) -> None:
        rng = random.Random(200 + seed)
        batches, held, as_of = random_log(rng)
        journal = SqliteJournal(tmp_path / f"usage-{seed}.db")
        journal.load()
        assert await journal.rollups_ready(WINDOW)
        write_log(journal, batches)
        assert journal.rollups.quarters_from == -math.inf
        assert await assert_rollups_match_rows(journal, held, as_of, quarter_hour_ranges(rng, as_of, 40)) > 20
        await journal.close()

    for seed in range(4):
        asyncio.run(run(seed))


def as_an_earlier_version_left_it(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Make the database at `path` one whose rollups an earlier version wrote (no quarter hours); its
    hourly and daily cells."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DROP TABLE usage_quarter")
        conn.execute("DELETE FROM meta WHERE key = 'usage_rollup_quarters_from'")
    cells = {table: conn.execute(f"SELECT * FROM {table} ORDER BY start, series, key").fetchall()
             for table in ("usage_hourly", "usage_daily")}
    conn.close()
    return cells


def test_rollups_of_an_earlier_version_get_quarter_hours_once_and_keep_the_cells_of_pruned_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """Rollups without quarter hours (as an earlier version wrote them) over a log whose oldest rows were
    pruned: the next start rebuilds them once from the first day the rows determine (a printer window after
    the oldest row), says so in the log, keeps the cells before that day (the pruned rows' counts), and then
    answers every range, on quarter hours or not, as the rows do; the start after that has nothing to do."""

    async def run() -> None:
        rng = random.Random(31)
        batches, held, as_of = random_log(rng)
        path = tmp_path / "usage.db"
        journal = SqliteJournal(path)
        journal.load()
        assert await journal.rollups_ready(WINDOW)
        write_log(journal, batches)
        pruned = T0 + 1.5 * DAY
        await journal.prune_usage(pruned)
        oldest = journal._writer.execute("SELECT MIN(at) FROM usage").fetchone()[0]
        kept = [(since, until, bucket) for since, until, bucket in quarter_hour_ranges(rng, as_of, 60)
                if since >= pruned + WINDOW]
        before = [await journal.rollup_report(held, since=s, until=u, bucket=b, as_of=as_of, window_s=WINDOW)
                  for s, u, b in kept]
        await journal.close()
        earlier = as_an_earlier_version_left_it(path)
        journal = SqliteJournal(path)
        journal.load()
        assert not journal.rollups.current(WINDOW)
        with caplog.at_level(logging.INFO, logger="licentia"):
            assert await journal.rollups_ready(WINDOW)
        first_day = math.floor((oldest + WINDOW) / DAY) * DAY + DAY
        assert journal.rollups.quarters_from == first_day
        rebuilt = [r.getMessage() for r in caplog.records if "with quarter hours, once" in r.getMessage()]
        assert len(rebuilt) == 1 and "Rebuilt the usage report's rollups from " in rebuilt[0], rebuilt
        cells = {table: journal._writer.execute(f"SELECT * FROM {table} WHERE start < ? ORDER BY start, series, key",
                                                (first_day,)).fetchall() for table in earlier}
        assert cells == {table: [row for row in rows if row[0] < first_day] for table, rows in earlier.items()}
        after = [await journal.rollup_report(held, since=s, until=u, bucket=b, as_of=as_of, window_s=WINDOW)
                 for s, u, b in kept]
        assert len(kept) > 10 and after == before
        ranges = [r for r in quarter_hour_ranges(rng, as_of, 60) if r[0] >= first_day - DAY]
        assert await assert_rollups_match_rows(journal, held, as_of, ranges) > 10
        await journal.close()
        journal = SqliteJournal(path)  # rebuilt once: the next start has nothing to do
        assert journal.rollups.current(WINDOW) and journal.rollups.quarters_from == first_day
        await journal.close()

    asyncio.run(run())


def spread_log(rng: random.Random, rows: int, start: float, end: float) -> list[UsageRecord]:
    """`rows` usage records spread evenly over [start, end), as bench/_scale_store.py writes them: a third
    print checks of 100 printers, a third checkouts each checked in an hour later, a third refusals."""
    records: list[UsageRecord] = []
    for n in range(rows):
        at = start + (n + rng.random()) * (end - start) / rows
        if n % 3 == 0:
            records.append(UsageRecord(at=at, kind="print", granted=True, reason="ok", product="Labels",
                                       printer_id=f"P{rng.randrange(100)}"))
        elif n % 3 == 1:
            records += [UsageRecord(at=at, kind="checkout", granted=True, reason="ok", product="CAD", lease_id=f"L{n}"),
                        UsageRecord(at=at + HOUR, kind="checkin", granted=True, reason="ok", product="CAD",
                                    lease_id=f"L{n}")]
        else:
            records.append(UsageRecord(at=at, kind="print", granted=False, reason="limit_exceeded", product="Labels",
                                       client_host=f"h{n}"))
    return sorted(records, key=lambda record: record.at)


@contextlib.contextmanager
def vm_steps(conn: sqlite3.Connection) -> Iterator[list[int]]:
    """Counts the SQLite virtual-machine steps run on `conn` meanwhile, in thousands: the work of reading,
    whatever the machine's speed."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(count, 1000)
    try:
        yield steps
    finally:
        conn.set_progress_handler(None, 0)


async def api_report(journal: SqliteJournal, since: float, until: float, as_of: float) -> UsageReport:
    """The report as the API answers it (reports_api._report): from the rollups when they can, else from the rows."""
    report = await journal.rollup_report([], since=since, until=until, bucket="day", as_of=as_of, window_s=WINDOW)
    if report is None:
        records, denials = await journal.report_inputs(since, until, DAY, WINDOW)
        report = usage_report(records, denials, [], since=since, until=until, bucket="day", as_of=as_of,
                              printer_window_s=WINDOW, lease_ttl_s=TTL)
    return report


def test_a_90_day_report_from_this_second_reads_the_rows_of_its_edge_hours_only(tmp_path: Path):
    """"The last 90 days" from now (not on a whole hour) in day buckets: ten times the rows cost the report
    little more than the rows of the hours its edges cut (about 2 of every 24 hours), where reading the rows
    costs ten times as much; and its answer is the rows' answer."""

    async def run() -> None:
        as_of = T0 + 100 * DAY + 1234.5
        since, until = as_of - 90 * DAY, as_of
        work: dict[int, tuple[int, int]] = {}
        for rows in (3000, 30000):
            journal = SqliteJournal(tmp_path / f"usage-{rows}.db")
            journal.load()
            assert await journal.rollups_ready(WINDOW)
            records = spread_log(random.Random(rows), rows, as_of - 100 * DAY, as_of - 60.0)
            write_log(journal, [records[i : i + 20] for i in range(0, len(records), 20)])
            with vm_steps(journal.usage_log.connection) as steps:
                report = await api_report(journal, since, until, as_of)
            with vm_steps(journal.usage_log.connection) as steps_raw:
                inputs, denials = await journal.report_inputs(since, until, DAY, WINDOW)
            raw = usage_report(inputs, denials, [], since=since, until=until, bucket="day", as_of=as_of,
                               printer_window_s=WINDOW, lease_ttl_s=TTL)
            assert msgspec.to_builtins(report) == msgspec.to_builtins(raw)
            assert max(b.printers for b in report.buckets) > 5
            assert sum(b.denials_total for b in report.buckets) > rows / 4
            work[rows] = steps[0], steps_raw[0]
            await journal.close()
        (small, small_raw), (large, large_raw) = work[3000], work[30000]
        assert large - small < (large_raw - small_raw) / 4, work

    asyncio.run(run())


@contextlib.contextmanager
def usage_reads(conn: sqlite3.Connection) -> Iterator[list[str]]:
    """The statements run on `conn` meanwhile that read the usage table's rows (not its rollups)."""
    statements: list[str] = []

    def seen(sql: str) -> None:
        if re.search(r"\bFROM usage\b(?!_)", sql):
            statements.append(sql)

    conn.set_trace_callback(seen)
    try:
        yield statements
    finally:
        conn.set_trace_callback(None)


def test_a_90_day_report_in_a_zone_30_minutes_from_utc_reads_rows_only_for_its_ends(tmp_path: Path):
    """Day buckets from local midnights in a +5:30 zone: every edge falls inside an hour, on a quarter hour.
    The console's range (up to tomorrow's local midnight) reads no usage rows at all, and the same from this
    very second only those of the quarter hour it ends in, however many rows the log holds; both give the
    rows' answer, and both cost about what the same report on whole hours costs."""

    async def run() -> None:
        as_of = T0 + 100 * DAY + 1234.5  # 20 min 34.5 s into an hour
        zone = 5.5 * HOUR
        tomorrow = math.floor((as_of + zone) / DAY) * DAY + DAY - zone  # the next local midnight, in UTC
        ranges = [(tomorrow - 90 * DAY, tomorrow), (tomorrow - 90 * DAY, as_of)]
        journal = SqliteJournal(tmp_path / "usage.db")
        journal.load()
        assert await journal.rollups_ready(WINDOW)
        records = spread_log(random.Random(7), 30000, as_of - 100 * DAY, as_of - 60.0)
        write_log(journal, [records[i : i + 20] for i in range(0, len(records), 20)])
        conn = journal.usage_log.connection
        steps_by_range, reads_by_range = [], []
        for since, until in ranges:
            with usage_reads(conn) as reads, vm_steps(conn) as steps:
                report = await api_report(journal, since, until, as_of)
            with vm_steps(conn) as whole_hours:  # the same range half an hour later: edges on whole hours
                await api_report(journal, since + HOUR / 2, until + HOUR / 2, as_of + HOUR / 2)
            inputs, denials = await journal.report_inputs(since, until, DAY, WINDOW)
            raw = usage_report(inputs, denials, [], since=since, until=until, bucket="day", as_of=as_of,
                               printer_window_s=WINDOW, lease_ttl_s=TTL)
            assert msgspec.to_builtins(report) == msgspec.to_builtins(raw)
            assert len(report.buckets) == 90 and max(b.printers for b in report.buckets) > 5
            steps_by_range.append((steps[0], whole_hours[0]))
            reads_by_range.append(reads)
        console, from_now = reads_by_range
        assert console == [], (steps_by_range, len(console))
        times = [float(at) for sql in from_now for at in re.findall(r"\bat [<>]=? ([\d.]+)", sql)]
        assert from_now and min(times) >= math.floor(as_of / 900) * 900, from_now  # the last quarter hour only
        for steps, whole in steps_by_range:
            assert steps < 1.25 * whole, steps_by_range
        await journal.close()

    asyncio.run(run())


def test_an_off_hour_report_over_pruned_rows_keeps_the_counts_the_rollups_hold(tmp_path: Path):
    """Rows older than the usage retention are pruned and their rollups kept: a report whose first edge
    cuts the hour being pruned (as "the last 90 days" does with a 90-day retention) gives, from a printer
    window after its start on, the numbers it gave before the pruning: the hour's change comes from the rollups."""

    async def run() -> None:
        rng = random.Random(21)
        batches, held, as_of = random_log(rng)
        journal = SqliteJournal(tmp_path / "usage.db")
        journal.load()
        await journal.rollups_ready(WINDOW)
        write_log(journal, batches)
        grants = [r.at for batch in batches for r in batch if r.kind == "print" and r.granted and r.at > T0 + DAY]
        since = next(at for at in grants if HOUR / 4 < at % HOUR < HOUR / 2) + 1.5  # a print check just before it
        ranges = [(since, as_of, "day"), (since, since + 3 * DAY + 0.5, "hour")]
        await assert_rollups_match_rows(journal, held, as_of, ranges)
        before = [await journal.rollup_report(held, since=s, until=u, bucket=b, as_of=as_of, window_s=WINDOW)
                  for s, u, b in ranges]
        await journal.prune_usage(since)
        assert journal._writer.execute("SELECT COUNT(*) FROM usage WHERE at < ?", (since,)).fetchone()[0] == 0
        for (s, u, b), report in zip(ranges, before, strict=True):
            after = await journal.rollup_report(held, since=s, until=u, bucket=b, as_of=as_of, window_s=WINDOW)
            assert report is not None and after is not None
            kept = [i for i, bucket in enumerate(report.buckets) if bucket.start >= since + WINDOW]
            assert len(kept) >= 2 and any(report.buckets[i].printers for i in kept)
            assert [after.buckets[i] for i in kept] == [report.buckets[i] for i in kept]
        await journal.close()

    asyncio.run(run())


def test_rows_written_out_of_time_order_make_the_next_report_rebuild_the_rollups(tmp_path: Path):
    async def run() -> None:
        rng = random.Random(5)
        batches, held, as_of = random_log(rng)
        journal = SqliteJournal(tmp_path / "usage.db")
        journal.load()
        await journal.rollups_ready(WINDOW)
        late = [batch for i, batch in enumerate(batches) if i % 9 == 4]  # e.g. a backup partner's rows
        write_log(journal, [batch for i, batch in enumerate(batches) if i % 9 != 4])
        write_log(journal, late)
        assert journal.rollups.dirty_since == late[0][0].at
        ranges = [*random_ranges(rng, as_of, 20), (T0, T0 + 10 * DAY, "day")]
        assert await assert_rollups_match_rows(journal, held, as_of, ranges) > len(ranges) / 2
        assert journal.rollups.current(WINDOW)
        await journal.close()

    asyncio.run(run())


def test_a_rebuild_after_printing_stopped_keeps_the_end_of_the_last_printers_use(tmp_path: Path):
    """No print check since a printer's use ended (its end is applied by the next print check or the report):
    a rebuild from a later day, for rows written out of time order, still ends its use."""

    async def run() -> None:
        journal = SqliteJournal(tmp_path / "usage.db")
        journal.load()
        await journal.rollups_ready(WINDOW)

        def refused(at: float, host: str) -> list[UsageRecord]:
            return [UsageRecord(at=at, kind="checkout", granted=False, reason="limit_exceeded", client_host=host)]

        print_check = UsageRecord(at=T0 + HOUR, kind="print", granted=True, reason="ok", printer_id="P1")
        write_log(journal, [[print_check], refused(T0 + 3 * DAY, "h1")])
        write_log(journal, [refused(T0 + 2.5 * DAY, "h2")])  # late: the rollups are rebuilt from T0 + 2 days
        assert journal.rollups.dirty_since == T0 + 2.5 * DAY
        as_of = T0 + 4 * DAY
        for since, until, bucket in ((T0, as_of, "day"), (T0 + DAY, T0 + DAY + 5 * HOUR, "hour")):
            rolled, raw = await both_reports(journal, [], as_of, since, until, bucket)
            assert rolled is not None and msgspec.to_builtins(rolled) == msgspec.to_builtins(raw)
            assert [b.printers for b in rolled.buckets] == [b.printers for b in raw.buckets]
        assert [b.printers for b in raw.buckets] == [1, 0, 0, 0, 0]  # from T0 + 1 day, by hour: its use ends at 01:00
        await journal.close()

    asyncio.run(run())


def test_a_triad_members_rows_keep_the_rollups_and_rows_written_twice_count_once(tmp_path: Path):
    async def run() -> None:
        rng = random.Random(3)
        batches, held, as_of = random_log(rng)
        journal = SqliteJournal(tmp_path / "usage.db")
        journal.load()
        await journal.rollups_ready(WINDOW)
        rows = [row for idx, batch in enumerate(batches, start=1) for row in usage_rows("m1", idx, batch)]
        for start in range(0, len(rows), 50):
            journal.record_usage(rows[start : start + 50])
            journal._drain_usage()
        journal.record_usage(rows[-80:])  # a member replaying the end of its log after a restart
        journal._drain_usage()
        assert journal._writer.execute("SELECT COUNT(*) FROM usage").fetchone()[0] == len(rows)
        ranges = [*random_ranges(rng, as_of, 15), (T0, T0 + 10 * DAY, "day")]
        assert await assert_rollups_match_rows(journal, held, as_of, ranges) > len(ranges) / 2
        await journal.close()

    asyncio.run(run())


def test_a_database_from_before_rollups_builds_them_once_on_start(tmp_path: Path):
    async def run() -> None:
        rng = random.Random(8)
        batches, held, as_of = random_log(rng)
        path = tmp_path / "usage.db"
        journal = SqliteJournal(path)
        journal.load()
        write_log(journal, batches)  # rollups never built: as a database of an earlier version
        await journal.close()
        journal = SqliteJournal(path)
        journal.load()
        assert not journal.rollups.current(WINDOW)
        journal.start_rollups(WINDOW)
        assert await journal.rollups_ready(WINDOW)
        assert await assert_rollups_match_rows(journal, held, as_of, random_ranges(rng, as_of, 15)) > 0
        await journal.close()
        journal = SqliteJournal(path)  # built once: the next start has nothing to do
        assert journal.rollups.current(WINDOW)
        await journal.close()

    asyncio.run(run())


def test_a_restored_backup_has_rollups_that_agree_with_its_rows(tmp_path: Path):
    async def run() -> None:
        rng = random.Random(9)
        batches, held, as_of = random_log(rng)
        source, restored = tmp_path / "source", tmp_path / "restored"
        source.mkdir()
        journal = SqliteJournal(source / "licentia.db")
        journal.load()
        await journal.rollups_ready(WINDOW)
        write_log(journal, batches[: len(batches) // 2])
        await journal.close()
        create_backup(source, tmp_path / "backup.tar.gz")
        restore_backup(tmp_path / "backup.tar.gz", restored)
        journal = SqliteJournal(restored / "licentia.db")
        journal.load()
        assert journal.rollups.current(WINDOW)  # restored with the rows they were built from
        write_log(journal, batches[len(batches) // 2 :])
        ranges = [*random_ranges(rng, as_of, 15), (T0, T0 + 10 * DAY, "day")]
        assert await assert_rollups_match_rows(journal, held, as_of, ranges) > len(ranges) / 2
        await journal.close()

    asyncio.run(run())


def test_another_printer_window_rebuilds_the_rollups(tmp_path: Path):
    async def run() -> None:
        rng = random.Random(2)
        batches, held, as_of = random_log(rng)
        journal = SqliteJournal(tmp_path / "usage.db")
        journal.load()
        await journal.rollups_ready(3 * DAY)
        write_log(journal, batches)
        assert not journal.rollups.current(WINDOW)
        assert await assert_rollups_match_rows(journal, held, as_of, random_ranges(rng, as_of, 10)) > 0
        assert journal.rollups.window_s == WINDOW
        await journal.close()

    asyncio.run(run())


def test_rollup_tables_stay_small(tmp_path: Path):
    async def run() -> None:
        batches, _, _ = random_log(random.Random(1))
        journal = SqliteJournal(tmp_path / "usage.db")
        journal.load()
        await journal.rollups_ready(WINDOW)
        write_log(journal, batches)
        conn = sqlite3.connect(tmp_path / "usage.db")
        quarters = conn.execute("SELECT COUNT(*) FROM usage_quarter").fetchone()[0]
        hourly = conn.execute("SELECT COUNT(*) FROM usage_hourly").fetchone()[0]
        daily = conn.execute("SELECT COUNT(*) FROM usage_daily").fetchone()[0]
        series = conn.execute("SELECT COUNT(DISTINCT series || key) FROM usage_hourly").fetchone()[0]
        conn.close()
        assert hourly <= (SPAN / HOUR + 1) * series and daily <= (SPAN / DAY + 1) * series
        assert hourly < quarters <= min(4 * hourly, (SPAN / 900 + 1) * series)
        await journal.close()

    asyncio.run(run())
